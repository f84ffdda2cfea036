"""A fresh local MLflow store per test without paying for MLflow's schema migrations each time.

``mlcycle_home`` (tests/conftest.py) migrates a new SQLite database per test (~4 s here). These tests
need the same isolation but many stores, so the migrated database is made once per session and copied.
"""

from __future__ import annotations

import shutil

import pytest

from mlcycle import tracking
from mlcycle.config import Settings, load_settings

_ENV = (
    "MLCYCLE_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "MLCYCLE_REGISTRY_URI",
    "MLFLOW_REGISTRY_URI",
    "MLCYCLE_TEAM",
    "MLCYCLE_ARTIFACT_ROOT",
)


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCYCLE_HOME", str(home))
        for var in _ENV:
            mp.delenv(var, raising=False)
        settings = load_settings()
        tracking.configure(settings)
        from mlflow import MlflowClient

        MlflowClient().search_registered_models()  # creates and migrates the schema
    return home / "mlflow.db"


@pytest.fixture
def mlcycle_home(_migrated_mlflow_db, tmp_path, monkeypatch) -> Settings:
    """Same contract as the shared fixture: a fresh MLflow store under tmp_path, MLflow pointed at it."""
    home = tmp_path / "mlcycle-home"
    home.mkdir()
    shutil.copy(_migrated_mlflow_db, home / "mlflow.db")
    monkeypatch.setenv("MLCYCLE_HOME", str(home))
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = load_settings()
    tracking.configure(settings)
    return settings
