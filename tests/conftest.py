"""Shared fixtures: every test gets its own MLCYCLE_HOME (and so its own MLflow store) in tmp_path.

MLflow migrates a new SQLite store on first use (seconds here), so the migrated database is made once
per session and each test gets a fresh copy of it.
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from mlcycle import tracking
from mlcycle.config import Settings, load_settings

# Settings a developer's shell may carry that would point a test at the wrong store, team or policy.
_ISOLATED_ENV = (
    "MLCYCLE_TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "MLCYCLE_REGISTRY_URI",
    "MLFLOW_REGISTRY_URI",
    "MLCYCLE_TEAM",
    "MLCYCLE_ARTIFACT_ROOT",
    "MLCYCLE_PROTECTED_ENVIRONMENTS",
    "MLCYCLE_ACTOR",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLCYCLE_MLFLOW_USERNAME",
    "MLCYCLE_MLFLOW_PASSWORD",
    "MLCYCLE_MLFLOW_TOKEN",
)


@pytest.fixture(autouse=True)
def _no_handlers_left_behind():
    """Handlers a test adds to the root logger go with it: a StreamHandler bound to one test's captured
    stderr (kfp.local and others set one up) turns every later warning into a '--- Logging error ---'."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def _migrated_mlflow_db(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLCYCLE_HOME", str(home))
        for var in _ISOLATED_ENV:
            mp.delenv(var, raising=False)
        tracking.configure(load_settings())
        from mlflow import MlflowClient

        MlflowClient().search_registered_models()  # creates and migrates the schema
    return home / "mlflow.db"


@pytest.fixture
def mlcycle_home(_migrated_mlflow_db, tmp_path, monkeypatch) -> Settings:
    """A fresh local MLflow store under tmp_path, with MLflow pointed at it."""
    home = tmp_path / "mlcycle-home"
    home.mkdir()
    shutil.copy(_migrated_mlflow_db, home / "mlflow.db")
    monkeypatch.setenv("MLCYCLE_HOME", str(home))
    for var in _ISOLATED_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    settings = load_settings()
    tracking.configure(settings)
    # Runs a test starts without naming an experiment land in this one, whose artifacts live under
    # MLCYCLE_HOME; MLflow's Default experiment would put them in ./mlruns of the working directory.
    import mlflow

    mlflow.set_experiment(experiment_id=tracking.ensure_experiment("tests", settings))
    return settings


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skipped test is a failure: a missing server or tool must be installed, not skipped."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI", "").lower() == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs the suite on pytest-xdist workers (``-n 2 --dist loadscope``) with each test
    directory as one scope, run whole by one worker: a directory's session and module fixtures (a trained
    model, a started server, the images tests/containers builds) are made once, as in a serial run, and no
    two workers build the same image. Tests directly under tests/ are scoped by file. (xdist's own
    ``loadgroup`` marks do not group under pytest 9, whose node ids no longer take xdist's suffix.)"""
    from xdist.scheduler import LoadScopeScheduling

    class DirectoryScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            directory = path.rpartition("/")[0]
            return path if directory in ("", "tests") else directory

    return DirectoryScheduling(config, log)
