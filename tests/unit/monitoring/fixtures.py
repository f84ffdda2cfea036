"""One MLflow store and one logged wine model per test module; each test registers its own name.

Logging a model takes seconds; registering a name takes milliseconds. Monitoring state (the history of
checks) is keyed by registered name and version, so a fresh name per test keeps tests independent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from mlcycle import tracking
from mlcycle.config import Settings, load_settings
from tests.unit.monitoring.wine_model import log_wine_model, register

_names = itertools.count(1)
_CLEARED = (
    "MLCYCLE_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "MLCYCLE_REGISTRY_URI",
    "MLFLOW_REGISTRY_URI",
    "MLCYCLE_TEAM",
    "MLCYCLE_ARTIFACT_ROOT",
    "MLCYCLE_PUSHGATEWAY_URL",
)


@pytest.fixture(scope="module")
def monitoring_home(tmp_path_factory) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCYCLE_HOME", str(tmp_path_factory.mktemp("mlcycle-home")))
        for var in _CLEARED:
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        settings = load_settings()
        tracking.configure(settings)
        yield settings


@pytest.fixture(scope="module")
def logged_wine(monitoring_home):
    return log_wine_model()


@dataclass
class Wine:
    settings: Settings
    model: object
    name: str
    version: str
    features: list[str]
    payloads: str


@pytest.fixture
def wine(monitoring_home, logged_wine, tmp_path, monkeypatch) -> Wine:
    """A freshly registered ``wine-<n>@champion`` with its own payload directory (MLCYCLE_HOME/payloads)."""
    model, uri, features = logged_wine
    name = f"wine-{next(_names)}"
    version = register(uri, name)
    monkeypatch.setenv("MLCYCLE_HOME", str(monitoring_home.home_dir))
    return Wine(monitoring_home, model, name, str(version.version), features, str(tmp_path / "payloads"))
