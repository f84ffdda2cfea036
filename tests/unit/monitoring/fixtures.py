"""One MLflow store and one logged wine model per session; each test registers its own name.

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


# Shared by every module that imports these fixtures: pytest would otherwise run a session fixture
# once per importing module, and logging the model is the slow part.
_SESSION: dict[str, object] = {}


@pytest.fixture(scope="session", name="monitoring_home")
def monitoring_home_fixture(tmp_path_factory) -> Settings:
    """Settings for a session-wide MLCYCLE_HOME; the environment is only changed per test (``wine``)."""
    if "settings" not in _SESSION:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLCYCLE_HOME", str(tmp_path_factory.mktemp("mlcycle-home")))
            for var in _CLEARED:
                mp.delenv(var, raising=False)
            _SESSION["settings"] = load_settings()
    return _SESSION["settings"]


@pytest.fixture(scope="session", name="logged_wine")
def logged_wine_fixture(monitoring_home):
    if "model" not in _SESSION:
        tracking.configure(monitoring_home)
        import mlflow

        # Its own experiment, so artifacts stay under MLCYCLE_HOME (not ./mlruns of the working directory).
        mlflow.set_experiment(experiment_id=tracking.ensure_experiment("monitoring-tests", monitoring_home))
        _SESSION["model"] = log_wine_model()
    return _SESSION["model"]


@dataclass
class Wine:
    settings: Settings
    model: object
    name: str
    version: str
    features: list[str]
    payloads: str


@pytest.fixture(name="wine")
def wine_fixture(monitoring_home, logged_wine, tmp_path, monkeypatch) -> Wine:
    """A freshly registered ``wine-<n>@champion`` with its own payload directory (MLCYCLE_HOME/payloads)."""
    model, uri, features = logged_wine
    name = f"wine-{next(_names)}"
    monkeypatch.setenv("MLCYCLE_HOME", str(monitoring_home.home_dir))
    for var in _CLEARED:
        monkeypatch.delenv(var, raising=False)
    tracking.configure(monitoring_home)  # another module's fixture may have pointed MLflow elsewhere
    version = register(uri, name)
    return Wine(monitoring_home, model, name, str(version.version), features, str(tmp_path / "payloads"))
