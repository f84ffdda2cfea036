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


def engine(engine_env: dict[str, str], *args: str, check: bool = True, timeout: float = 300,
           **kwargs) -> subprocess.CompletedProcess:
    """Run ``podman``/``docker`` with the private configuration; output captured as text."""
    result = subprocess.run([engine_env["ENGINE"], *args], env={**os.environ, **engine_env}, capture_output=True,
                            text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{engine_env['ENGINE']} {' '.join(args[:3])} ... exited {result.returncode}:\n"
                             f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def images(engine_env, base_image) -> dict[str, str]:
    """Both images, built once per session by scripts/images.sh on the offline base: the layer cache is
    reused, and a target whose image already carries this source's digest is not rebuilt."""
    from mlcycle.config import COMPONENT_IMAGE, Settings

    env = {**os.environ, **engine_env, "MLCYCLE_BASE_IMAGE": base_image}
    env.pop("MLCYCLE_IMAGE_REPOSITORY", None)
    result = subprocess.run(["bash", str(ROOT / "scripts/images.sh")], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, f"scripts/images.sh failed:\n{result.stderr[-4000:]}"
    print(result.stderr + result.stdout)
    return {"component": COMPONENT_IMAGE, "predictor": Settings().predictor_image}


@pytest.fixture(scope="session")
def mlflow_url(tmp_path_factory) -> str:
    """An MLflow server on the host (127.0.0.1, a free port) that proxies artifacts, so that a container on
    the host's network reaches the registry and the artifacts over HTTP only."""
    from tests.integration.servers import mlflow_server

    root = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", root / "server.log") as url:
        yield url


@pytest.fixture
def on_server(mlflow_url, tmp_path, monkeypatch):
    """Settings whose tracking and registry are the host's MLflow server, MLflow configured for them."""
    from mlcycle import tracking
    from mlcycle.config import load_settings
    from tests.conftest import _ISOLATED_ENV

    for var in _ISOLATED_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLCYCLE_TRACKING_URI", mlflow_url)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = load_settings()
    tracking.configure(settings)
    yield settings
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # configure() exports them
        os.environ.pop(var, None)


def pytest_collection_modifyitems(items):
    """The first test here also builds the images (minutes on a cold cache): a longer timeout than the suite's."""
    for item in items:
        if "tests/containers/" in str(item.path) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(1800))
