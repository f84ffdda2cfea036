"""Shared fixtures: every test gets its own MLCYCLE_HOME (and so its own MLflow store) in tmp_path."""

from __future__ import annotations

import pytest

from mlcycle import tracking
from mlcycle.config import Settings, load_settings


@pytest.fixture
def mlcycle_home(tmp_path, monkeypatch) -> Settings:
    """A fresh local MLflow store under tmp_path, with MLflow pointed at it."""
    home = tmp_path / "mlcycle-home"
    monkeypatch.setenv("MLCYCLE_HOME", str(home))
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = load_settings()
    tracking.configure(settings)
    # Runs a test starts without naming an experiment land in this one, whose artifacts live under
    # MLCYCLE_HOME; MLflow's Default experiment would put them in ./mlruns of the working directory.
    import mlflow

    mlflow.set_experiment(experiment_id=tracking.ensure_experiment("tests", settings))
    return settings
