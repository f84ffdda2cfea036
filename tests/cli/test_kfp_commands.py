"""``mlcycle submit`` / ``schedule`` against a recording kfp.Client stand-in, and ``mlcycle ui`` for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from mlcycle import kfp_client
from mlcycle.cli import main
from mlcycle.cli.commands_kfp import free_port
from tests.unit.test_kfp_client import FakeKfpClient, assert_real_signatures


class CompilingFake(FakeKfpClient):
    """Also keeps the pipeline name and parameters of the package it was handed (a temp file, gone later)."""

    packages: list[dict]

    def _record(self, method, **kwargs):
        path = kwargs.get("pipeline_file") or kwargs.get("pipeline_package_path")
        if path:
            spec = next(yaml.safe_load_all(Path(path).read_text()))
            self.packages = [*getattr(self, "packages", []), {
                "name": spec["pipelineInfo"]["name"],
                "parameters": sorted(spec["root"]["inputDefinitions"]["parameters"]),
            }]
        super()._record(method, **kwargs)


@pytest.fixture
def light_home(tmp_path, monkeypatch):
    """MLCYCLE_HOME in tmp_path without creating an MLflow store: submit and schedule never touch MLflow."""
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))
    for variable in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                     "MLCYCLE_TEAM"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "home"


@pytest.fixture
def fake(monkeypatch, light_home):
    client = CompilingFake()
    connected = []

    def connect(host, namespace=None):
        connected.append((host, namespace))
        return client

    monkeypatch.setattr(kfp_client, "connect", connect)
    monkeypatch.delenv("KFP_HOST", raising=False)
    client.connected = connected
    return client


def test_submit_compiles_the_training_pipeline_and_creates_a_run(fake, capsys):
    code = main(["submit", "--host", "http://kfp:8888", "--namespace", "team-a", "-p", "dataset=breast_cancer",
                 "-p", "n_trials=3", "--run-name", "try-1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fake.connected == [("http://kfp:8888", "team-a")]
    (created,) = fake.method_calls("create_run_from_pipeline_package")
    assert created["arguments"] == {"dataset": "breast_cancer", "n_trials": 3}
    assert created["run_name"] == "try-1" and created["namespace"] == "team-a"
    assert fake.packages[0]["name"] == "mlcycle-training"
    assert fake.method_calls("create_experiment")[0]["name"] == "mlcycle-training"
    assert json.loads(out) == {"run_id": "run-123", "experiment_id": "exp-1", "experiment": "mlcycle-training",
                               "url": "http://kfp:8888/#/runs/details/run-123"}
    assert_real_signatures(fake)


def test_submit_reads_kfp_host_and_takes_the_namespace_from_the_team(fake, capsys, monkeypatch):
    monkeypatch.setenv("KFP_HOST", "https://kfp.example")
    code = main(["--team", "team-b", "submit", "--pipeline", "monitoring", "-p", "model_name=wine"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert fake.connected == [("https://kfp.example", "team-b")]
    assert fake.packages[0]["name"] == "monitoring-pipeline"
    assert "run run-123 of the monitoring pipeline started in experiment mlcycle-monitoring (team-b)" in out


def test_submit_rejects_an_unknown_parameter_before_connecting(fake, capsys):
    code = main(["submit", "--host", "http://kfp:8888", "-p", "max_depth=3"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error [param]: unknown pipeline parameter(s) max_depth; this pipeline takes:")
    assert fake.connected == [] and fake.calls == []


def test_submit_uses_a_given_package(fake, capsys):
    package = Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / "training_pipeline.yaml"
    code = main(["submit", "--host", "http://kfp:8888", "--package", str(package), "--experiment", "mine"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert fake.method_calls("create_run_from_pipeline_package")[0]["pipeline_file"] == str(package)
    assert fake.method_calls("create_experiment")[0]["name"] == "mine"


def test_schedule_monitoring_every_10m_windows_10m(fake, capsys):
    code = main(["schedule", "--host", "http://kfp:8888", "--every", "10m", "-p", "model_name=wine", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (created,) = fake.method_calls("create_recurring_run")
    assert created["cron_expression"] == "0 */10 * * * *"
    assert created["params"] == {"model_name": "wine", "since": "10m"}
    assert created["job_name"] == "monitoring-every-10m"
    assert created["max_concurrency"] == 1 and created["no_catchup"] is True
    assert fake.packages[0]["name"] == "monitoring-pipeline"
    assert json.loads(out)["recurring_run_id"] == "rec-7"
    assert_real_signatures(fake)


def test_schedule_training_with_a_cron(fake, capsys):
    code = main(["schedule", "--pipeline", "training", "--cron", "0 0 2 * * *", "--host", "http://kfp:8888",
                 "--name", "nightly"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (created,) = fake.method_calls("create_recurring_run")
    assert created["cron_expression"] == "0 0 2 * * *" and created["job_name"] == "nightly"
    assert created["params"] == {}
    assert "recurring run rec-7 (nightly) runs the training pipeline on '0 0 2 * * *'" in out


def test_an_unreachable_host_is_one_line(monkeypatch, light_home, capsys, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file
    code = main(["submit", "--host", "http://127.0.0.1:9"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and "KFP connection failed at http://127.0.0.1:9" in err


@pytest.mark.slow
def test_ui_serves_the_configured_store_until_interrupted(mlcycle_home, tmp_path):
    from mlflow.tracking import MlflowClient

    MlflowClient().create_experiment("seen-by-the-ui")
    port = free_port()
    env = {**os.environ, "MLCYCLE_HOME": str(mlcycle_home.home_dir)}
    mlcycle = str(Path(sys.executable).with_name("mlcycle"))
    # Ctrl-C's default in the child even where this test runs with SIGINT ignored (a background job of a
    # non-interactive shell: the child would inherit the ignore and never see the interrupt).
    process = subprocess.Popen([mlcycle, "ui", "--no-browser", "--port", str(port)],
                               env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    url = f"http://127.0.0.1:{port}"
    # stderr read as it comes (the server's log lines too): the test interrupts only once `mlcycle ui` has
    # said it is up — the server can answer /health a moment before `mlcycle ui` has seen it answer.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(f"MLflow UI: {url}" in line for line in list(lines)):
            assert process.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert any(f"MLflow UI: {url}" in line for line in list(lines)), "".join(lines)
        assert httpx.get(f"{url}/health", timeout=2).status_code == 200
        found = httpx.post(f"{url}/api/2.0/mlflow/experiments/search", json={"max_results": 10}, timeout=10).json()
        assert "seen-by-the-ui" in {e["name"] for e in found["experiments"]}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        reader.join(timeout=10)
        assert "stopping the MLflow UI" in "".join(lines)
        with pytest.raises(httpx.ConnectError):  # the server went with it
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
