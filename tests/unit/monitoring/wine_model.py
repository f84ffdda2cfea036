"""A tiny registered wine model with its reference sample, written the way training writes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mlcycle.monitoring.payloads import write_payload_log


def wine_frame() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True).frame
    return data, "target"


def log_wine_model(kind: str = "random_forest"):
    """Train and log a small model with ``reference/reference.parquet`` in its run, as training does.

    Returns ``(model, model_uri, features)``; register it with :func:`register`.
    """
    import tempfile
    from pathlib import Path

    import mlflow

    from mlcycle.training.estimators import build_estimator, get_spec

    data, target = wine_frame()
    features = [c for c in data.columns if c != target]
    model = build_estimator(kind, {"n_estimators": 20, "max_depth": 4} if kind == "random_forest" else {})
    model.fit(data[features], data[target])
    reference = data.copy()
    reference["prediction"] = model.predict(data[features])
    with mlflow.start_run(tags={"mlcycle.target": target, "mlcycle.model_type": kind, "mlcycle.dataset": "wine"}):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=data[features].head(2).astype(float),
            skops_trusted_types=list(get_spec(kind).skops_trusted_types),
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "reference.parquet"
            reference.to_parquet(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="reference")
    return model, info.model_uri, features


def register(model_uri: str, name: str, alias: str = "champion"):
    """Register ``model_uri`` as a new version of ``name`` and point ``alias`` at it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    version = mlflow.register_model(model_uri, name)
    MlflowClient().set_registered_model_alias(name, alias, version.version)
    return version


def traffic(
    model, features: list[str], rows: int, *, seed: int, scale: dict[str, float] | None = None, noise: float = 0.05
) -> pd.DataFrame:
    """``rows`` requests resampled from wine with a little noise, optionally with columns scaled."""
    data, _ = wine_frame()
    rng = np.random.default_rng(seed)
    sample = data[features].iloc[rng.integers(0, len(data), rows)].reset_index(drop=True).astype(float)
    sample = sample * (1 + rng.normal(0, noise, sample.shape))
    for column, factor in (scale or {}).items():
        sample[column] = sample[column] * factor
    sample["prediction"] = model.predict(sample[features])
    return sample


def log_traffic(
    frame: pd.DataFrame, root, model_name: str, version: str, *, when: datetime | None = None
) -> pd.DataFrame:
    """Write ``frame`` as payload-log rows (one row per request) the way the predictor does."""
    when = when or datetime.now(UTC) - timedelta(minutes=1)
    logged = frame.copy()
    logged.insert(0, "request_id", [str(uuid.uuid4()) for _ in range(len(frame))])
    logged.insert(1, "row", 0)
    logged.insert(2, "timestamp", pd.Timestamp(when).tz_convert("UTC"))
    logged.insert(3, "model_name", model_name)
    logged.insert(4, "model_version", str(version))
    logged.insert(5, "protocol", "v2-rest")
    write_payload_log(logged, str(root), model_name.rpartition(".")[2])
    return logged
