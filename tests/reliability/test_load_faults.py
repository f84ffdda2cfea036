"""Sustained load on loopback while things break: the served alias moves (hot swap), the MLflow server
dies and comes back, the payload-log directory becomes unwritable.

ONE real ``mlflow server`` (SQLite backend, proxied artifacts) and ONE predictor following
``models:/wine@champion`` through it. Each test runs a bounded load (threads x count x seconds) while it
breaks one thing, then asserts: zero failed client requests in (a) and (b); in (c) every request is still
served and the dropped payload rows are counted in ``/metrics``. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mlcycle.auth.server import SERVER_ENV
from tests.inference.conftest import free_port, start_predictor, stop_predictor
from tests.inference.wine_models import log_wine_model
from tests.reliability.conftest import percentile

pytestmark = pytest.mark.slow

THREADS = 4
MAX_REQUESTS = 200_000  # per load run, whatever happens
MAX_SECONDS = 120.0  # per load run, whatever happens (an MLflow restart alone can take 30 s here)
ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


class MlflowServer:
    """``mlflow server`` on a fixed loopback port that the test can kill and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend = f"sqlite:///{workdir / 'mlflow.db'}"
        self.artifacts = workdir / "artifacts"
        self.log = workdir / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        mlflow_bin = Path(sys.executable).parent / "mlflow"
        env = {**os.environ, **SERVER_ENV}  # telemetry off, no GenAI job workers
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [str(mlflow_bin), "server", "--backend-store-uri", self.backend, "--artifacts-destination",
                 str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("mlflow server did not come up in 120 s")

    def kill(self) -> None:
        """SIGKILL, as a crashed pod: no goodbye to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """An MLflow server holding ``wine`` v1 (champion) and v2, and a predictor following the alias."""
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_wine

    from mlcycle import tracking
    from mlcycle.config import load_settings

    saved = dict(os.environ)
    work = tmp_path_factory.mktemp("load-faults")
    server = MlflowServer(work)
    server.start()
    try:
        for var in ("MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI", "MLCYCLE_TEAM",
                    "MLCYCLE_ARTIFACT_ROOT"):
            os.environ.pop(var, None)
        env = {
            "MLCYCLE_HOME": str(work / "home"),
            "MLCYCLE_TRACKING_URI": server.url,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        os.environ.update(env)
        settings = load_settings()
        tracking.configure(settings)
        data = load_wine(as_frame=True)
        experiment = tracking.ensure_experiment("load-faults", settings)
        log_wine_model("random_forest", "wine", data.data, data.target, {"n_estimators": 10, "max_depth": 4},
                       experiment)
        log_wine_model("logistic_regression", "wine", data.data, data.target, {"C": 0.01}, experiment)
        client = MlflowClient()
        client.set_registered_model_alias("wine", "champion", "1")
        payloads = work / "payloads"
        predictor_env = {
            **env,
            "MLCYCLE_SERVING_POLL_SECONDS": "0.3",
            "MLCYCLE_SERVING_PAYLOAD_DESTINATION": str(payloads),
            # The poller must not sit in MLflow's long retry backoff while the server is away.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        }
        predictor = start_predictor(["models:/wine@champion"], predictor_env, work / "predictor.log", grpc=False)
        try:
            yield server, predictor, client, payloads
        finally:
            stop_predictor(predictor.proc)
    finally:
        server.kill()
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Load:
    """THREADS clients sending one-row v1 predictions until told to stop (or a bound is hit)."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)  # the version that answered, in order
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self) -> None:
        body = {"instances": [ROW]}
        deadline = time.monotonic() + MAX_SECONDS
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self.stop.is_set() and time.monotonic() < deadline:
                with self.lock:
                    if len(self.latencies) + len(self.failures) >= MAX_REQUESTS:
                        return
                start = time.perf_counter()
                try:
                    r = c.post("/v1/models/wine:predict", json=body)
                    ok, what = r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                except httpx.HTTPError as e:
                    ok, what = False, repr(e)
                elapsed = time.perf_counter() - start
                with self.lock:
                    if ok:
                        self.latencies.append(elapsed)
                        self.versions.append(r.headers.get("x-mlcycle-model-version", "?"))
                    else:
                        self.failures.append(what)

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(THREADS)]
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=MAX_SECONDS + 30)
        self.seconds = time.monotonic() - self.started

    def wait_for_version(self, version: str, timeout: float = 30.0) -> bool:
        """Until a request after now is answered by ``version`` (False after ``timeout``)."""
        with self.lock:
            seen = len(self.versions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if version in self.versions[seen:]:
                    return True
            assert any(t.is_alive() for t in self.threads), "the load ended (count or time bound) before that"
            time.sleep(0.1)
        return False

    def report(self, what: str) -> str:
        total = len(self.latencies) + len(self.failures)
        line = (f"{what}: {total} requests in {self.seconds:.1f} s ({total / self.seconds:.0f}/s, {THREADS} clients), "
                f"{len(self.failures)} failed, p50 {percentile(self.latencies, 50) * 1000:.1f} ms, "
                f"p99 {percentile(self.latencies, 99) * 1000:.1f} ms")
        print(f"\n{line}")
        return line


def metric(predictor, name: str) -> float:
    text = httpx.get(f"{predictor.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_a_alias_moves_and_the_model_hot_swaps_under_load(stack):
    _, predictor, client, _ = stack
    with Load(predictor.url) as load:
        time.sleep(1.0)
        swaps = 0
        for version in ("2", "1", "2", "1"):
            client.set_registered_model_alias("wine", "champion", version)
            assert load.wait_for_version(version), f"the predictor never served version {version}"
            swaps += 1
            time.sleep(0.5)
    load.report(f"(a) champion moved {swaps} times (hot swaps)")
    assert not load.failures, load.failures[:5]
    assert len(load.latencies) > 100
    assert {"1", "2"} <= set(load.versions)


def test_b_mlflow_server_goes_away_and_comes_back_under_load(stack):
    server, predictor, client, _ = stack
    client.set_registered_model_alias("wine", "champion", "1")
    with Load(predictor.url) as load:
        assert load.wait_for_version("1")
        time.sleep(1.0)
        server.kill()
        down_at = time.monotonic()
        time.sleep(3.0)  # requests keep coming while the registry is gone; the poller fails meanwhile
        served_while_down = len(load.latencies)
        server.start()
        down_for = time.monotonic() - down_at
        client.set_registered_model_alias("wine", "champion", "2")  # the registry works again...
        assert load.wait_for_version("2", timeout=60), "the predictor did not follow the alias after MLflow came back"
        served_after = len(load.latencies) - served_while_down
    load.report(f"(b) MLflow server killed for {down_for:.1f} s and restarted on the same port")
    assert not load.failures, load.failures[:5]
    assert served_after > 0
    assert metric(predictor, "mlcycle_model_load_failures_total") >= 1  # the poller noticed, and said so


def test_c_payload_log_directory_becomes_unwritable_under_load(stack):
    _, predictor, client, payloads = stack
    before = metric(predictor, "mlcycle_payload_log_dropped_total")
    aside = payloads.with_name("payloads-aside")
    with Load(predictor.url) as load:
        time.sleep(1.0)
        # Unwritable for root too (chmod is not): the directory becomes a regular file.
        if payloads.exists():
            payloads.rename(aside)
        payloads.write_text("not a directory\n")
        try:
            deadline = time.monotonic() + 25  # the logger writes every 5 s (or 5,000 rows)
            while time.monotonic() < deadline and metric(predictor, "mlcycle_payload_log_dropped_total") <= before:
                time.sleep(0.5)
            served_while_broken = len(load.latencies)
            time.sleep(1.0)
        finally:
            payloads.unlink()
            if aside.exists():
                aside.rename(payloads)
            else:
                payloads.mkdir()
    dropped = metric(predictor, "mlcycle_payload_log_dropped_total") - before
    load.report(f"(c) payload-log directory replaced by a file: {dropped:.0f} payload rows dropped and counted")
    assert not load.failures, load.failures[:5]
    assert served_while_broken > 0
    assert dropped > 0
    shutil.rmtree(aside, ignore_errors=True)
