"""A real predictor (``python -m inference``) on free loopback ports, over tiny registered wine models."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.inference.wine_models import WineModels, build_wine_models

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # generous: the machine running the tests may be busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Predictor:
    url: str
    grpc: str | None
    proc: subprocess.Popen
    log: Path
    home: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


STORE_VARIABLES = ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI")


def clean_environ() -> dict[str, str]:
    """This process's environment without the store URIs MLflow exports when configured in-process."""
    return {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}


def start_predictor(
    args: list[str], env: dict[str, str], log: Path, grpc: bool = True, up: str = "/v2/health/ready"
) -> Predictor:
    """Start ``python -m inference`` and wait until ``up`` answers 200 (``/v2/health/live`` for a
    predictor expected to have a model that is not ready)."""
    http_port = free_port()
    cmd = [sys.executable, "-m", "inference", *args, "--host", "127.0.0.1", "--http-port", str(http_port)]
    grpc_addr = None
    if grpc:
        grpc_port = free_port()
        cmd += ["--grpc-port", str(grpc_port)]
        grpc_addr = f"127.0.0.1:{grpc_port}"
    full_env = {**clean_environ(), **env, "PYTHONPATH": str(REPO)}
    out = log.open("wb")
    proc = subprocess.Popen(
        cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=str(REPO), start_new_session=True
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"predictor exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}{up}", timeout=1).status_code == 200:
                return Predictor(url, grpc_addr, proc, log, Path(env["MLCYCLE_HOME"]))
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_predictor(proc)
    raise RuntimeError(f"predictor not ready within {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def stop_predictor(proc: subprocess.Popen) -> None:
    """Stop the predictor we started (its process group: REST workers included)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def wine(tmp_path_factory) -> WineModels:
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("predictor-home"), with_cancer=True)
    yield models
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def predictor(wine, tmp_path_factory):
    """Two models: wine (champion v1, a forest, with canary v2, a logistic regression, at 30%) and cancer
    (version 1); gRPC on, payload log on."""
    env = {**wine.env, "MLCYCLE_SERVING_POLL_SECONDS": "0", "MLCYCLE_SERVING_MAX_ROWS": "100"}
    log = tmp_path_factory.mktemp("logs") / "predictor.log"
    p = start_predictor(
        ["models:/wine@champion", "models:/cancer/1", "--canary", "models:/wine@challenger", "--canary-percent", "30"],
        env,
        log,
    )
    yield p
    stop_predictor(p.proc)


@pytest.fixture(scope="session")
def swap_registry(tmp_path_factory) -> WineModels:
    """A second registry (own MLCYCLE_HOME) whose champion alias the swap test moves."""
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("swap-home"))
    os.environ.clear()
    os.environ.update(saved)
    return models


def copy_home(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
