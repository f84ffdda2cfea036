"""Model performance with delayed labels: ground truth arrives later and is joined by request id.

Labels are files (CSV or Parquet) with ``request_id``, optionally ``row`` (the row within the request;
absent means row 0, i.e. single-row requests) and ``label``. :func:`ingest_labels` validates one and
stores it under ``<labels root>/<base_name>/labels-<utc>-<pid>.parquet``; :func:`check_performance`
joins the payload logs of a window with every label received so far and reports accuracy and macro F1
over the labelled rows. Fewer than ``min_labels`` labelled rows is ``insufficient_data``, never an alert.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.errors import DataValidationError, InvalidInputError
from mlcycle.monitoring import export
from mlcycle.monitoring.payloads import read_payload_logs
from mlcycle.monitoring.reference import logged_model_id, resolve_version
from mlcycle.monitoring.windows import window

KEYS = ["request_id", "row"]
LABEL = "label"


def read_label_file(path: str | Path) -> pd.DataFrame:
    """Read and validate a label file: ``request_id``, optional ``row``, ``label``.

    Raises:
        InvalidInputError: the file is missing or not CSV/Parquet.
        DataValidationError: a required column is missing or a key is empty or duplicated.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"label file {path} does not exist", field="labels")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype={"request_id": str})
    elif path.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    else:
        raise InvalidInputError(f"label file {path} must be .csv or .parquet", field="labels")
    for column in ("request_id", LABEL):
        if column not in frame.columns:
            raise DataValidationError(
                f"label file {path} has no {column!r} column", field=column, rule="required_column"
            )
    if "row" not in frame.columns:
        frame["row"] = 0
    frame = frame[[*KEYS, LABEL]].copy()
    frame["request_id"] = frame["request_id"].astype(str)
    if frame["request_id"].isin(["", "nan", "None"]).any() or frame[LABEL].isna().any():
        raise DataValidationError(
            f"label file {path} has empty request ids or labels", field="request_id", rule="not_null"
        )
    try:
        frame["row"] = frame["row"].astype("int64")
    except (TypeError, ValueError) as e:
        raise DataValidationError(f"label file {path}: 'row' must be integers", field="row", rule="dtype") from e
    if frame.duplicated(KEYS).any():
        raise DataValidationError(
            f"label file {path} labels the same (request_id, row) twice", field="request_id", rule="unique"
        )
    return frame


def ingest_labels(
    path: str | Path, model_name: str, root: str | Path, *, s3_endpoint_url: str | None = None
) -> dict[str, Any]:
    """Validate the label file at ``path`` and store it for ``model_name`` under ``root`` (a directory or
    an ``s3://`` prefix)."""
    import io

    frame = read_label_file(path)
    frame["ingested_at"] = pd.Timestamp.now(tz="UTC")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"labels-{stamp}-{os.getpid()}.parquet"
    base = model_name.rpartition(".")[2]
    root = str(root)
    if root.startswith("s3://"):
        bucket, key_prefix = _s3_location(root, base)
        body = io.BytesIO()
        frame.to_parquet(body, index=False)
        _s3_client(s3_endpoint_url).put_object(Bucket=bucket, Key=key_prefix + name, Body=body.getvalue())
        target = f"s3://{bucket}/{key_prefix}{name}"
    else:
        directory = Path(root) / base
        directory.mkdir(parents=True, exist_ok=True)
        target = str(directory / name)
        frame.to_parquet(target, index=False)
    return {"rows": len(frame), "path": target, "model": model_name}


def read_labels(root: str | Path, model_name: str, *, s3_endpoint_url: str | None = None) -> pd.DataFrame:
    """Every label stored for ``model_name`` under ``root``; a later ingestion of the same key wins."""
    import io

    base = model_name.rpartition(".")[2]
    root = str(root)
    if root.startswith("s3://"):
        bucket, key_prefix = _s3_location(root, base)
        client = _s3_client(s3_endpoint_url)
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].rpartition("/")[2].startswith("labels-")]
        frames = [
            pd.read_parquet(io.BytesIO(client.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in sorted(keys)
        ]
    else:
        directory = Path(root) / base
        frames = [pd.read_parquet(f) for f in sorted(directory.glob("labels-*.parquet"))] if directory.is_dir() else []
    if not frames:
        return pd.DataFrame(
            {"request_id": pd.Series(dtype=str), "row": pd.Series(dtype="int64"), LABEL: pd.Series(dtype=object)}
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("ingested_at", kind="stable").drop_duplicates(KEYS, keep="last")[[*KEYS, LABEL]]


def default_labels_root(settings) -> str:
    """Where delayed labels live: ``MLCYCLE_LABELS_URI`` (``s3://`` on a cluster) or ``MLCYCLE_HOME/labels``."""
    return settings.labels_uri or str(settings.home_dir / "labels")


def _s3_location(root: str, base: str) -> tuple[str, str]:
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    if not bucket:
        raise InvalidInputError(f"labels location {root!r} names no bucket", field="labels_uri")
    return bucket, "/".join(p for p in (prefix.strip("/"), base) if p) + "/"


def _s3_client(endpoint_url: str | None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url)


def _comparable(predictions: pd.Series, labels: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Predictions and labels in one type: numbers when both are numeric, else strings."""
    if pd.api.types.is_numeric_dtype(predictions):
        numeric = pd.to_numeric(labels, errors="coerce")
        if numeric.notna().all():
            return predictions.astype(float), numeric.astype(float)
    return predictions.astype(str), labels.astype(str)


def compute_performance(payloads: pd.DataFrame, labels: pd.DataFrame, *, min_labels: int = 30) -> dict:
    """Accuracy and macro F1 of ``prediction`` against ``label`` on the rows both sides have."""
    from sklearn.metrics import accuracy_score, f1_score

    if payloads.empty:
        return {"status": "no_data", "rows": 0, "labeled_rows": 0, "accuracy": None, "f1_macro": None}
    joined = payloads[[*KEYS, "prediction"]].merge(labels, on=KEYS, how="inner")
    base = {"rows": len(payloads), "labeled_rows": len(joined), "label_coverage": len(joined) / len(payloads)}
    if len(joined) < min_labels:
        return {"status": "insufficient_data", **base, "accuracy": None, "f1_macro": None}
    predicted, actual = _comparable(joined["prediction"], joined[LABEL])
    return {
        "status": "ok",
        **base,
        "accuracy": float(accuracy_score(actual, predicted)),
        "f1_macro": float(f1_score(actual, predicted, average="macro", zero_division=0)),
    }


def check_performance(
    model_ref: str,
    settings,
    *,
    since: str | None = None,
    until: str | None = None,
    source: str | None = None,
    labels_root: str | None = None,
    min_accuracy: float = 0.8,
    min_labels: int = 30,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Accuracy / macro F1 of the version ``model_ref`` points at, over predictions made in the window.

    Logged as an MLflow run (kind ``performance``) and pushed as ``mlcycle_model_accuracy`` and
    ``mlcycle_model_f1_macro`` when a Pushgateway is configured; ``below_threshold`` says whether
    accuracy fell under ``min_accuracy`` (the alert rule uses the same default).
    """
    if not 0 <= min_accuracy <= 1:
        raise InvalidInputError("min_accuracy must be between 0 and 1", field="min_accuracy")
    span = window(since, until)
    version = resolve_version(model_ref, settings.team)
    name, number = version.name, str(version.version)
    payloads = read_payload_logs(
        str(source or settings.payload_dir), name, span.start, span.end, s3_endpoint_url=settings.s3_endpoint_url
    )
    if not payloads.empty and "model_version" in payloads.columns:
        payloads = payloads[payloads["model_version"].astype(str) == number]
    labels = read_labels(labels_root or default_labels_root(settings), name, s3_endpoint_url=settings.s3_endpoint_url)
    result = compute_performance(payloads, labels, min_labels=min_labels)
    below = result["status"] == "ok" and result["accuracy"] < min_accuracy
    summary = {
        **result,
        "model": name,
        "version": number,
        "min_accuracy": min_accuracy,
        "below_threshold": below,
        "window_start": span.start.isoformat() if span.start else None,
        "window_end": span.end.isoformat(),
    }
    if log_to_mlflow:
        summary["mlflow_run_id"] = export.log_check(
            "performance",
            model_name=name,
            version=number,
            model_id=logged_model_id(version),
            status=result["status"],
            metrics={
                "accuracy": result["accuracy"],
                "f1_macro": result["f1_macro"],
                "labeled_rows": float(result["labeled_rows"]),
                "rows": float(result["rows"]),
            },
            tags={export.TAG_WINDOW_START: summary["window_start"] or "", export.TAG_WINDOW_END: summary["window_end"]},
            settings=settings,
            summary=summary,
        )
    if settings.pushgateway_url and result["status"] == "ok":
        export.push_metrics(
            settings.pushgateway_url,
            name,
            number,
            {
                "mlcycle_model_accuracy": result["accuracy"],
                "mlcycle_model_f1_macro": result["f1_macro"],
            },
        )
        summary["pushed_to"] = settings.pushgateway_url
    summary["checked_at"] = time.time()
    return summary
