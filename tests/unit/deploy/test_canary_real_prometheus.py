"""The canary queries against a real Prometheus scraping the predictor's real metrics object.

The recorded-answer tests check the parsing; this one checks the PromQL itself: Prometheus (Debian
package) scrapes a ``ServingMetrics`` registry served on loopback, with a champion answering fine and a
canary failing half its requests, and the analysis must see that and say rollback.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import httpx
import pytest
import yaml
from prometheus_client.exposition import MetricsHandler

from mlcycle.deploy.canary import CanaryPolicy, decide_canary
from mlcycle.deploy.prometheus import PrometheusReader, canary_queries, read_canary_samples
from mlcycle.serving.metrics import ServingMetrics

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def predictor_metrics():
    metrics = ServingMetrics()
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(metrics.registry))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield metrics, server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def prometheus(predictor_metrics, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (scripts/install-debian-deps.sh installs it)")
    _, target_port = predictor_metrics
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "predictor",
                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"], "labels": {"namespace": "team-a"}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready in 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _traffic(metrics: ServingMetrics, rounds: int) -> None:
    for _ in range(rounds):
        metrics.observe_request("wine", "4", "v2-rest", 200, 0.004)
        metrics.count_predictions("wine", "4", ["class_0", "class_1"])
        status = 500 if _ % 2 else 200
        metrics.observe_request("wine", "5", "v2-rest", status, 0.004)
        metrics.count_predictions("wine", "5", ["class_0", "class_1"])


def test_analysis_reads_a_failing_canary_from_real_prometheus(predictor_metrics, prometheus):
    metrics, _ = predictor_metrics
    reader = PrometheusReader(prometheus, timeout=5)
    # Every query parses and runs (an empty vector is fine before any traffic).
    for promql in canary_queries("wine", "team-a", "1m").values():
        reader.query(promql)
    # Traffic in steps so that the window holds several scrapes with rising counters; bounded.
    champion = canary = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _traffic(metrics, 100)
        time.sleep(1.0)
        champion, canary = read_canary_samples(
            reader, model="wine", champion_version="4", canary_version="5", namespace="team-a", window="1m"
        )
        if champion.requests >= 200 and canary.requests >= 200:
            break
    else:
        pytest.fail(f"Prometheus never showed enough traffic: {champion}, {canary}")
    reader.close()
    assert champion.error_rate == pytest.approx(0.0)
    assert canary.error_rate == pytest.approx(0.5, abs=0.05)
    assert 0.0025 <= canary.p95_latency_seconds <= 0.005  # the 4 ms observations' bucket
    assert set(canary.predictions) == {"class_0", "class_1"}
    decision = decide_canary(champion, canary, CanaryPolicy(min_requests=100))
    assert decision.action == "rollback"
