"""Monitoring end to end on loopback: the real predictor logs shifted traffic, the drift check pushes to a
real Pushgateway, a real Prometheus scrapes it (and the predictor) and evaluates our PrometheusRule, and
the drift and accuracy alerts fire.

Prometheus and the Pushgateway are Debian's binaries (scripts/install-debian-deps.sh); every process is
started here on a free 127.0.0.1 port and stopped here. Waits are bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle.config import load_settings
from mlcycle.monitoring.check import check_drift
from mlcycle.monitoring.payloads import read_payload_logs
from mlcycle.monitoring.performance import check_performance, ingest_labels
from tests.unit.monitoring.fixtures import logged_wine_fixture, monitoring_home_fixture, wine_fixture  # noqa: F401
from tests.unit.monitoring.test_alert_rules import RULE
from tests.unit.monitoring.wine_model import traffic

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
if PROMETHEUS is None or PUSHGATEWAY is None:
    pytest.skip(
        "needs Debian's prometheus and prometheus-pushgateway (scripts/install-debian-deps.sh)", allow_module_level=True
    )

WAIT_S = 60


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, *, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{what} not seen within {timeout}s (last error: {last})")


@contextlib.contextmanager
def server(cmd: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            return httpx.get(ready_url, timeout=2).status_code == 200

        wait_for(ready, what=f"{Path(cmd[0]).name} ready")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def v2_columns(frame: pd.DataFrame, request_id: str) -> dict:
    return {
        "id": request_id,
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].astype(float).tolist()}
            for c in frame.columns
        ],
    }


def firing(prom: str, alert: str, model: str) -> dict | None:
    alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return next(
        (
            a
            for a in alerts
            if a["labels"].get("alertname") == alert and a["state"] == "firing" and a["labels"].get("model") == model
        ),
        None,
    )


def test_shifted_traffic_through_the_predictor_fires_the_drift_and_accuracy_alerts(wine, tmp_path, monkeypatch):
    from tests.inference.conftest import start_predictor, stop_predictor

    pg_port, prom_port = free_port(), free_port()
    predictor_env = {
        "MLCYCLE_HOME": str(wine.settings.home_dir),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLCYCLE_SERVING_POLL_SECONDS": "0",
    }
    predictor = start_predictor(
        [f"models:/{wine.name}@champion"], predictor_env, tmp_path / "predictor.log", grpc=False
    )
    try:
        rules = tmp_path / "drift-rules.yaml"
        rules.write_text(yaml.safe_dump(yaml.safe_load(RULE.read_text())["spec"]))
        config = tmp_path / "prometheus.yml"
        predictor_target = predictor.url.removeprefix("http://")
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{pg_port}"]}],
                        },
                        {"job_name": "predictor", "static_configs": [{"targets": [predictor_target]}]},
                    ],
                }
            )
        )
        with (
            server(
                [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{pg_port}"],
                tmp_path / "pushgateway.log",
                f"http://127.0.0.1:{pg_port}/-/ready",
            ),
            server(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                tmp_path / "prometheus.log",
                f"http://127.0.0.1:{prom_port}/-/ready",
            ),
        ):
            prom = f"http://127.0.0.1:{prom_port}"

            # Shifted traffic, as a client would send it: 20 requests of 15 rows, every feature scaled.
            shifted = traffic(wine.model, wine.features, 300, seed=61, scale={c: 1.8 for c in wine.features})[
                wine.features
            ]
            with predictor.client() as client:
                for i in range(20):
                    chunk = shifted.iloc[i * 15 : (i + 1) * 15]
                    reply = client.post(f"/v2/models/{wine.name}/infer", json=v2_columns(chunk, f"req-{i}"))
                    assert reply.status_code == 200, reply.text
            payloads = str(wine.settings.home_dir / "payloads")
            logged = wait_for(
                lambda: (lambda f: f if len(f) >= 300 else None)(read_payload_logs(payloads, wine.name)),
                what="300 payload-log rows",
                timeout=30,
            )

            monkeypatch.setenv("MLCYCLE_PUSHGATEWAY_URL", f"http://127.0.0.1:{pg_port}")
            settings = load_settings()
            summary = check_drift(f"models:/{wine.name}@champion", settings, since="1h")
            assert summary["dataset_drift"] is True and summary["rows"] == 300
            assert summary["pushed_to"] == settings.pushgateway_url
            assert summary["prediction_score"] is not None, summary

            alert = wait_for(lambda: firing(prom, "MlcycleDriftDetected", wine.name), what="drift alert firing")
            assert alert["labels"]["version"] == wine.version
            assert alert["labels"]["severity"] == "warning"

            expected_scores = len(wine.features) + 1  # one per feature and one for the prediction column

            def scores_scraped() -> int | None:
                query = f'count(mlcycle_drift_column_score{{model="{wine.name}"}})'
                result = httpx.get(f"{prom}/api/v1/query", timeout=5, params={"query": query}).json()["data"]["result"]
                return int(result[0]["value"][1]) if result and int(result[0]["value"][1]) == expected_scores else None

            wait_for(scores_scraped, what=f"{expected_scores} column scores scraped")

            # Delayed labels: half the answers turn out wrong -> accuracy 0.5, below the 0.8 alert line.
            truth = logged[["request_id", "row", "prediction"]].copy()
            truth["label"] = np.where(
                np.arange(len(truth)) % 2 == 0, truth["prediction"], (truth["prediction"] + 1) % 3
            )
            truth.drop(columns="prediction").to_csv(tmp_path / "truth.csv", index=False)
            ingest_labels(tmp_path / "truth.csv", wine.name, settings.home_dir / "labels")
            performance = check_performance(f"models:/{wine.name}@champion", settings, since="1h")
            assert performance["accuracy"] == pytest.approx(0.5)
            wait_for(lambda: firing(prom, "MlcycleModelAccuracyLow", wine.name), what="accuracy alert firing")

            # Prometheus scraped the predictor too: its request counter saw our 20 requests.
            def predictor_requests() -> float | None:
                result = httpx.get(
                    f"{prom}/api/v1/query", timeout=5, params={"query": 'sum(mlcycle_requests_total{job="predictor"})'}
                ).json()["data"]["result"]
                return float(result[0]["value"][1]) if result and float(result[0]["value"][1]) >= 20 else None

            assert wait_for(predictor_requests, what="predictor metrics scraped") == 20
    finally:
        stop_predictor(predictor.proc)
