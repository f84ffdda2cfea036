"""The container tier: a container engine (podman here, docker where it answers) configured by
scripts/images.sh, and podman's Docker-compatible API for kfp's DockerRunner."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_BASE = "localhost/mlcycle-base:bookworm"


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    """ENGINE and the variables every podman process needs (from scripts/images.sh env)."""
    if not (shutil.which("podman") or shutil.which("docker")):
        pytest.skip("no container engine: scripts/install-debian-deps.sh installs podman (as root)")
    out = subprocess.run(["bash", str(ROOT / "scripts/images.sh"), "env"], check=True, capture_output=True,
                         text=True).stdout
    return dict(line.split("=", 1) for line in out.split())


@pytest.fixture(scope="session")
def base_image(engine_env) -> str:
    """The offline base (Debian bookworm's Python 3.11), built once and kept in the engine's storage."""
    subprocess.run(["bash", str(ROOT / "scripts/images.sh"), "base"], check=True, capture_output=True)
    return OFFLINE_BASE


@pytest.fixture(scope="session")
def docker_host(engine_env, tmp_path_factory):
    """DOCKER_HOST for the docker SDK: podman's API service on a private socket, stopped by its pid."""
    if engine_env["ENGINE"] == "docker":
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    env = {**os.environ, **engine_env}
    process = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"unix://{sock}"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait()
