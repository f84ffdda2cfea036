"""Real servers from Debian packages (and MLflow's own), started on 127.0.0.1 free ports for tests.

Every server is started by the test that needs it and stopped by it; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from mlcycle.auth.server import SERVER_ENV


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; CI runs as root, so drop to Debian's postgres user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def wait_until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError as e:  # still starting
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not come up in {timeout}s ({last})")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster; yields a SQLAlchemy URL for database ``mlflow``."""
    bindir = postgres_bin()
    assert bindir, "PostgreSQL is not installed (scripts/install-debian-deps.sh installs it)"
    # pytest's tmp dirs are private to root; the postgres user needs a directory it can reach.
    workdir = Path(tempfile.mkdtemp(prefix="mlcycle-pg-"))
    data, sockets = workdir / "pgdata", workdir / "pgsock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(_as_postgres_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "mlcycle",
                                      "--no-sync"]), check=True, capture_output=True)
    subprocess.run(_as_postgres_user([
        str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(workdir / "postgres.log"), "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
        check=True, capture_output=True)
    try:
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlcycle", "mlflow"],
                       check=True, capture_output=True)
        # psycopg2 explicitly: SQLAlchemy 2.1 defaults postgresql:// to psycopg 3, which we do not ship.
        yield f"postgresql+psycopg2://mlcycle@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def psql(url: str, sql: str) -> str:
    bindir = postgres_bin()
    command = [str(bindir / "psql"), url.replace("+psycopg2", ""), "-tAc", sql]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_file: Path, *, app_name: str | None = None,
                  env: dict[str, str] | None = None, start_timeout: float = 90) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, proxying artifacts to a local folder.

    ``app_name="basic-auth"`` with ``env`` from ``mlcycle.auth.server.prepare`` runs it with authentication.
    """
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, **SERVER_ENV, **(env or {})}  # SERVER_ENV: telemetry off, no GenAI job workers
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        env.pop(name, None)  # the server authenticates others; it is no client
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            [str(mlflow_bin), "server", "--backend-store-uri", backend_uri, "--artifacts-destination",
             str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             *(["--app-name", app_name] if app_name else [])],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}; see {log_file}")
            return httpx.get(f"{url}/health", timeout=2).status_code == 200

        wait_until(healthy, timeout=start_timeout, what="mlflow server")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
