"""A registry outage during the gate is an outage, not a verdict: a real ``mlflow server`` is stopped
before the gate runs; the gate raises RegistryUnavailableError (503-class), the version stays ungated
(no decision, no ``failed:`` servability tag), and once a server is back the retried gate decides."""

from __future__ import annotations

import pytest

from mlcycle import lifecycle, tracking
from mlcycle.cli import main
from mlcycle.config import load_settings
from mlcycle.errors import RegistryUnavailableError
from mlcycle.registry import versions
from mlcycle.registry.gate import GatePolicy
from tests.integration.servers import mlflow_server

pytestmark = pytest.mark.slow


def _use(url, monkeypatch):
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # tracking.configure exported the last server's
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLCYCLE_TRACKING_URI", url)
    settings = load_settings()
    tracking.configure(settings)
    return settings


def test_an_outage_during_the_gate_leaves_the_version_ungated_and_retryable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "home"))
    for var in ("MLCYCLE_TEAM", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLCYCLE_ARTIFACT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # mlcycle's own retries are what is tested
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    with mlflow_server(backend, artifacts, tmp_path / "mlflow-1.log") as url:
        settings = _use(url, monkeypatch)
        run = lifecycle.run_training(tmp_path / "train.parquet", prepared.target, settings, registered_name="wine",
                                     model_type="logistic_regression")
        lifecycle.run_evaluation(run.run_id, tmp_path / "test.parquet", prepared.target, "wine")
        version = lifecycle.register_candidate(run.run_id, "wine")
    # The server is stopped (SIGTERM to its process group, by the context manager): the gate runs now.
    with pytest.raises(RegistryUnavailableError) as caught:
        lifecycle.gate_candidate(run.run_id, "wine", version, GatePolicy(), settings)
    assert caught.value.http_status == 503
    # Every other registry read says "unavailable" too (exit 3, retry later), never "not found" (exit 2).
    for args in (["approve", f"models:/wine/{version}", "--env", "prod", "--reason", "ok"], ["card", f"wine/{version}"],
                 ["promote", "wine", "--version", version, "--reason", "outage"]):
        capsys.readouterr()
        assert main(args) == 3, args
        err = capsys.readouterr().err
        assert "unavailable" in err and "not found" not in err and "Traceback" not in err, (args, err)
    with mlflow_server(backend, artifacts, tmp_path / "mlflow-2.log") as url:  # the registry is back
        settings = _use(url, monkeypatch)
        tags = versions.get_version("wine", version).tags
        assert "mlcycle.gate.decision" not in tags, tags  # ungated, not rejected
        assert not tags.get("mlcycle.servability", "").startswith("failed"), tags
        decision = lifecycle.gate_candidate(run.run_id, "wine", version, GatePolicy(), settings)  # the retry
        assert decision.promote, decision
        tags = versions.get_version("wine", version).tags
        assert (tags["mlcycle.gate.decision"], tags["mlcycle.servability"]) == ("promote", "ok")
        assert versions.alias_version("wine", "challenger") == version
