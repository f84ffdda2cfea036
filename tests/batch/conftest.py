"""One registry for the batch tests: ``wine`` v1 (small forest, ``champion``) and v2 (logistic
regression, ``challenger``), logged as training logs them (signature + input example).

Requirements are given explicitly when logging: MLflow otherwise infers them in a subprocess, which costs
more than the rest of the fixture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

STORE_VARIABLES = ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                   "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT", "MLCYCLE_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")


@dataclass
class BatchWine:
    home: Path
    env: dict[str, str]
    settings: Any
    X: pd.DataFrame
    estimators: dict[str, Any]  # version -> fitted estimator


def _log(kind: str, X: pd.DataFrame, y: pd.Series, params: dict, experiment_id: str):
    import mlflow
    from mlflow.models import infer_signature

    from mlcycle.training.estimators import get_spec

    spec = get_spec(kind)
    est = spec.build({**spec.defaults, **params})
    est.fit(X, y)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            est, name="model", signature=infer_signature(X, est.predict(X)), input_example=X.head(5),
            registered_model_name="wine", skops_trusted_types=list(spec.skops_trusted_types),
            pip_requirements=["scikit-learn"],
        )
    return est, str(info.registered_model_version)


@pytest.fixture(scope="session")
def batch_wine(tmp_path_factory) -> BatchWine:
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_wine

    from mlcycle import tracking
    from mlcycle.config import load_settings

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("batch-home")
    env = {"MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "MLCYCLE_SERVING_POLL_SECONDS": "0"}
    for var in STORE_VARIABLES:
        os.environ.pop(var, None)
    os.environ.update(env)
    settings = load_settings()
    tracking.configure(settings)
    data = load_wine(as_frame=True)
    experiment = tracking.ensure_experiment("batch-tests", settings)
    rf, v1 = _log("random_forest", data.data, data.target, {"n_estimators": 10, "max_depth": 4}, experiment)
    lr, v2 = _log("logistic_regression", data.data, data.target, {"C": 0.01}, experiment)
    client = MlflowClient()
    client.set_registered_model_alias("wine", "champion", v1)
    client.set_registered_model_alias("wine", "challenger", v2)
    # Leave the process environment as it was: later test directories must not inherit this store.
    # Each test gets it back through the ``wine`` fixture (monkeypatched, undone after the test).
    os.environ.clear()
    os.environ.update(saved)
    return BatchWine(home=home, env=env, settings=settings, X=data.data, estimators={v1: rf, v2: lr})


@pytest.fixture
def wine(batch_wine, monkeypatch) -> BatchWine:
    """The batch registry, with this process pointed at it again (other session fixtures move it)."""
    from mlcycle import tracking

    for var in STORE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    for key, value in batch_wine.env.items():
        monkeypatch.setenv(key, value)
    tracking.configure(batch_wine.settings)
    return batch_wine


def wine_like(X: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` wine-shaped rows: real rows with noise of a tenth of each column's spread."""
    rng = np.random.default_rng(seed)
    base = X.to_numpy()[rng.integers(0, len(X), n)]
    noisy = np.abs(base + rng.normal(0, 0.1, base.shape) * X.std().to_numpy())
    return pd.DataFrame(noisy, columns=X.columns)
