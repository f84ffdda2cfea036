"""Tiny registered wine models for the serving and predictor tests, logged the way training logs them.

One session-scoped MLflow store (own MLCYCLE_HOME) holds model ``wine`` with two versions:
version 1, a small random forest (alias ``champion``), and version 2, a logistic-regression pipeline
(alias ``challenger``); they disagree on a few rows, which the canary tests use to tell them apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class WineModels:
    home: Path
    env: dict[str, str]
    settings: Any
    X: pd.DataFrame
    y: pd.Series
    estimators: dict[str, Any]  # version -> fitted estimator
    experiment_id: str = ""


def log_wine_model(
    kind: str, name: str, X: pd.DataFrame, y: pd.Series, params: dict | None = None, experiment_id: str | None = None
):
    """Fit ``kind`` on X/y, log it with signature + input example, register it under ``name``."""
    import mlflow
    from mlflow.models import infer_signature

    from mlcycle.training.estimators import get_spec

    spec = get_spec(kind)
    est = spec.build({**spec.defaults, **(params or {})})
    est.fit(X, y)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            est,
            name="model",
            signature=infer_signature(X, est.predict(X)),
            input_example=X.head(5),
            registered_model_name=name,
            skops_trusted_types=list(spec.skops_trusted_types),
        )
    return est, str(info.registered_model_version)


def build_wine_models(home: Path, *, with_cancer: bool = False) -> WineModels:
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_wine

    from mlcycle import tracking
    from mlcycle.config import load_settings

    env = {
        "MLCYCLE_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLCYCLE_SERVING_POLL_SECONDS": "0",
    }
    for var in (
        "MLCYCLE_TRACKING_URI",
        "MLFLOW_TRACKING_URI",
        "MLCYCLE_REGISTRY_URI",
        "MLFLOW_REGISTRY_URI",
        "MLCYCLE_TEAM",
        "MLCYCLE_ARTIFACT_ROOT",
    ):
        os.environ.pop(var, None)
    os.environ.update(env)
    settings = load_settings()
    tracking.configure(settings)
    data = load_wine(as_frame=True)
    X, y = data.data, data.target
    experiment = tracking.ensure_experiment("serving-tests", settings)  # artifacts under MLCYCLE_HOME
    rf, v1 = log_wine_model("random_forest", "wine", X, y, {"n_estimators": 10, "max_depth": 4}, experiment)
    lr, v2 = log_wine_model("logistic_regression", "wine", X, y, {"C": 0.01}, experiment)
    estimators = {v1: rf, v2: lr}
    if with_cancer:  # a second model in the same server: breast cancer, version 1 of "cancer"
        from sklearn.datasets import load_breast_cancer

        cancer = load_breast_cancer(as_frame=True)
        est, version = log_wine_model(
            "logistic_regression", "cancer", cancer.data, cancer.target, {"C": 0.1}, experiment
        )
        estimators[f"cancer/{version}"] = est
    client = MlflowClient()
    client.set_registered_model_alias("wine", "champion", v1)
    client.set_registered_model_alias("wine", "challenger", v2)
    return WineModels(home=home, env=env, settings=settings, X=X, y=y, estimators=estimators, experiment_id=experiment)
