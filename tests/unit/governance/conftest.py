"""A fresh local MLflow store per test, copied from one migrated once per session (migrations take seconds)."""

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
    "MLCYCLE_PROTECTED_ENVIRONMENTS",
    "MLCYCLE_ACTOR",
)


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCYCLE_HOME", str(home))
        for var in _ENV:
            mp.delenv(var, raising=False)
        tracking.configure(load_settings())
        from mlflow import MlflowClient

        MlflowClient().search_registered_models()  # creates and migrates the schema
    return home / "mlflow.db"


@pytest.fixture
def mlcycle_home(_migrated_mlflow_db, tmp_path, monkeypatch) -> Settings:
    """Same contract as tests/conftest.py's fixture: a fresh MLflow store under tmp_path, MLflow pointed at it."""
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


@pytest.fixture
def registry(mlcycle_home, tmp_path):
    """Registered model team-a.wine with three bare versions (no training needed)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.create_registered_model("team-a.wine")
    source = tmp_path / "model"
    source.mkdir()
    for _ in range(3):
        client.create_model_version("team-a.wine", str(source))
    return client
