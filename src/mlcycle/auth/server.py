"""MLflow's tracking server with its basic-auth app, on 127.0.0.1 over the local store.

``mlflow server --app-name basic-auth`` (MLflow 3.17) needs three things this module manages under
``MLCYCLE_HOME``:

- ``credentials/admin.env`` — the admin's user name and a random password, generated on first start
  (mode 0600). The server gets the password as ``MLFLOW_AUTH_ADMIN_PASSWORD`` (MLflow creates the admin
  from it when the auth database has no admin yet), so it is never written into the config file.
- ``auth/secret_key`` — Flask's secret key for CSRF (``MLFLOW_FLASK_SERVER_SECRET_KEY``), mode 0600,
  the same on every start (and every worker).
- ``auth/basic_auth.ini`` — the auth config (``MLFLOW_AUTH_CONFIG_PATH``): ``default_permission =
  NO_PERMISSIONS`` (a user sees only what it was granted or created), the auth database
  (``auth/auth.db``, SQLite; PostgreSQL on a cluster) and the authorization function.

Everything else (users, grants, the creator-gets-MANAGE rule) is MLflow's own.
"""

from __future__ import annotations

import configparser
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlcycle.auth.credentials import (
    Credentials,
    credentials_dir,
    generate_password,
    read_env_file,
    write_env_file,
    write_private,
)
from mlcycle.config import Settings
from mlcycle.errors import ConfigError, MlcycleError

ADMIN_USERNAME = "admin"
DEFAULT_PERMISSION = "NO_PERMISSIONS"
AUTHORIZATION_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
# What every tracking server mlcycle starts runs with: no telemetry, and no job runner (MLflow 3.x starts
# eight huey consumer processes for its GenAI jobs by default; mlcycle uses none, and on a small machine
# they cost more CPU at start than the server itself). Set either variable to override.
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class TrackingServerError(MlcycleError):
    """The tracking server did not start or stopped (HTTP 503: nothing answers)."""

    http_status = 503


@dataclass(frozen=True)
class AuthFiles:
    """Where the auth server's state lives under ``MLCYCLE_HOME``."""

    home: Path

    @property
    def admin_env(self) -> Path:
        return self.home / "credentials" / "admin.env"

    @property
    def directory(self) -> Path:
        return self.home / "auth"

    @property
    def config(self) -> Path:
        return self.directory / "basic_auth.ini"

    @property
    def secret_key(self) -> Path:
        return self.directory / "secret_key"

    @property
    def database(self) -> Path:
        return self.directory / "auth.db"


def render_auth_config(database_uri: str, *, admin_username: str = ADMIN_USERNAME,
                       default_permission: str = DEFAULT_PERMISSION) -> str:
    """The ``basic_auth.ini`` text: no password in it (the admin's comes from ``MLFLOW_AUTH_ADMIN_PASSWORD``).

    Args:
        database_uri: where MLflow keeps users and grants (SQLAlchemy URL).
        admin_username: the admin MLflow bootstraps on first start.
        default_permission: what a user may do on a resource it has no grant on.
    """
    config = configparser.ConfigParser(interpolation=None)
    config["mlflow"] = {
        "default_permission": default_permission,
        "database_uri": database_uri,
        "admin_username": admin_username,
        "authorization_function": AUTHORIZATION_FUNCTION,
        "grant_default_workspace_access": "false",
    }
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def admin_credentials(settings: Settings) -> Credentials:
    """The admin credentials from ``MLCYCLE_HOME/credentials/admin.env``, generated on first use.

    Raises:
        ConfigError: the auth database exists but ``admin.env`` does not (the admin's password would not
            match the one MLflow stored); the message says how to recover.
    """
    files = AuthFiles(settings.home_dir)
    if files.admin_env.exists():
        return read_env_file(files.admin_env)
    if files.database.exists():
        raise ConfigError(
            f"{files.database} exists but {files.admin_env} does not: restore admin.env, or delete "
            f"{files.database} to start over with new users",
            field="credentials",
        )
    credentials_dir(settings.home_dir)
    creds = Credentials(ADMIN_USERNAME, generate_password())
    write_env_file(files.admin_env, creds)
    return creds


def prepare(settings: Settings, *, database_uri: str | None = None) -> tuple[AuthFiles, dict[str, str]]:
    """Create (once) the admin credentials, secret key and config; return the files and the server's env.

    Args:
        settings: ``MLCYCLE_HOME`` is where the files go.
        database_uri: the auth database; default ``MLCYCLE_HOME/auth/auth.db`` (SQLite).

    The returned environment holds secrets: pass it to the server process only, never log it.
    """
    files = AuthFiles(settings.home_dir)
    admin = admin_credentials(settings)
    files.directory.mkdir(parents=True, exist_ok=True)
    files.directory.chmod(0o700)
    if not files.secret_key.exists():
        write_private(files.secret_key, generate_password() + generate_password())
    database_uri = database_uri or f"sqlite:///{files.database}"
    write_private(files.config, render_auth_config(database_uri, admin_username=admin.username))
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(files.config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": files.secret_key.read_text(encoding="utf-8").strip(),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
        **{name: os.environ.get(name, value) for name, value in SERVER_ENV.items()},
    }
    return files, env


def server_command(settings: Settings, port: int, *, auth: bool) -> list[str]:
    """The ``mlflow server`` argv: loopback, one worker, the local store, artifacts proxied by the server."""
    if not settings.is_local:
        raise ConfigError(
            f"`mlcycle server` serves the local store; MLCYCLE_TRACKING_URI points at "
            f"{settings.effective_tracking_uri!r} (unset it, or run that server instead)",
            field="tracking_uri",
        )
    artifacts = settings.home_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", settings.effective_tracking_uri,
               "--registry-store-uri", settings.effective_registry_uri,
               "--artifacts-destination", str(artifacts), "--serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if auth:
        command += ["--app-name", "basic-auth"]
    return command


def start(settings: Settings, port: int, *, auth: bool, log_file: Path | None = None) -> subprocess.Popen:
    """Start the tracking server (its own process group); the caller stops it with :func:`stop`."""
    env = {**SERVER_ENV, **os.environ}
    if auth:
        env.update(prepare(settings)[1])
    command = server_command(settings, port, auth=auth)
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child, closed below
    try:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,  # noqa: S603
                                start_new_session=True)
    finally:
        if out:
            out.close()


def wait_until_up(process: subprocess.Popen, url: str, timeout: float) -> None:
    """Return once ``url``/health answers 200.

    Raises:
        TrackingServerError: the process exited, or nothing answered within ``timeout`` seconds.
    """
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingServerError(
                f"mlflow server exited with code {process.returncode} before it answered on {url}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TrackingServerError(f"mlflow server did not answer on {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Stop a server started by :func:`start`: its whole process group (workers included)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
