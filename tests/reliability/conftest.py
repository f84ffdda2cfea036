"""Fixtures for the reliability and security tests: tiny wine models and real predictors on loopback."""

from __future__ import annotations

import os

import pytest

from tests.inference.wine_models import WineModels, build_wine_models


@pytest.fixture(scope="session")
def wine_registry(tmp_path_factory) -> WineModels:
    """A local MLflow store (own MLCYCLE_HOME) with ``wine`` v1 (champion) and v2 (challenger)."""
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("reliability-home"))
    yield models
    os.environ.clear()
    os.environ.update(saved)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of values, nearest rank; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh MLflow store under tmp_path; like ``mlcycle_home`` but with no active experiment set, as
    in a pipeline pod (an active experiment makes ``start_run(run_id=...)`` of the training run refuse)."""
    from mlcycle import tracking
    from mlcycle.config import load_settings

    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "mlcycle-home"))
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    settings = load_settings()
    tracking.configure(settings)
    return settings
