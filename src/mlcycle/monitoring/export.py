"""Where monitoring results go: an MLflow run per check (against the model version) and a Pushgateway.

MLflow holds the history: every check is a run in experiment ``mlcycle-monitoring`` tagged with the
model name and version, so "has drift persisted for N windows?" is a query over those runs and needs no
state on the machine that runs the check (a pipeline pod has none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlcycle.registry.uris import team_experiment

EXPERIMENT = "mlcycle-monitoring"
JOB = "mlcycle-drift"
TAG_KIND = "mlcycle.monitoring.kind"
TAG_MODEL = "mlcycle.monitoring.model"
TAG_VERSION = "mlcycle.monitoring.version"
TAG_STATUS = "mlcycle.monitoring.status"
TAG_RETRAIN = "mlcycle.monitoring.retrain"
TAG_WINDOW_START = "mlcycle.monitoring.window_start"
TAG_WINDOW_END = "mlcycle.monitoring.window_end"
TESTED = ("drift", "ok")  # statuses that carry evidence; insufficient_data and no_data do not


def _metric_key(text: str) -> str:
    """MLflow metric keys allow letters, digits, ``_ - . / `` and space; replace anything else."""
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def consecutive_drift_windows(model_name: str, version: str, *, limit: int = 100) -> int:
    """How many of the latest tested drift checks of this version drifted in a row.

    Windows with too little data are skipped (no evidence either way). Counting stops at a check
    that did not drift or at one that already triggered retraining, so a trigger fires once per
    ``N`` drifting windows, not on every window after the ``N``-th.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(team_experiment(EXPERIMENT, model_name))
    if experiment is None:
        return 0
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            f"tags.`{TAG_KIND}` = 'drift' and tags.`{TAG_MODEL}` = '{model_name}' "
            f"and tags.`{TAG_VERSION}` = '{version}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=limit,
    )
    count = 0
    for run in runs:
        tags = run.data.tags
        status = tags.get(TAG_STATUS)
        if status not in TESTED:
            continue
        if status != "drift" or tags.get(TAG_RETRAIN) == "true":
            break
        count += 1
    return count


def log_check(
    kind: str,
    *,
    model_name: str,
    version: str,
    model_id: str | None,
    status: str,
    metrics: Mapping[str, float | None],
    tags: Mapping[str, str],
    settings,
    artifacts: Mapping[str, str] = (),
    summary: Mapping[str, Any] | None = None,
) -> str:
    """Log one monitoring check as an MLflow run; return its run id.

    The metrics are also attached to the model version's logged model (``model_id``), so they show on
    the model in the MLflow UI.
    """
    import mlflow

    from mlcycle.tracking import ensure_experiment

    experiment_id = ensure_experiment(team_experiment(EXPERIMENT, model_name), settings)
    base = model_name.rpartition(".")[2]
    all_tags = {
        TAG_KIND: kind,
        TAG_MODEL: model_name,
        TAG_VERSION: version,
        TAG_STATUS: status,
        **({"mlcycle.team": settings.team} if settings.team else {}),
        **tags,
    }
    clean = {_metric_key(k): float(v) for k, v in metrics.items() if v is not None}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{kind}-{base}-v{version}", tags=all_tags) as run:
        if clean:
            mlflow.log_metrics(clean, model_id=model_id or None)
        for local_path, artifact_dir in dict(artifacts).items():
            mlflow.log_artifact(local_path, artifact_path=artifact_dir)
        if summary is not None:
            mlflow.log_text(json.dumps(summary, indent=2, default=str), f"{kind}/summary.json")
        return run.info.run_id


def push_metrics(
    gateway: str,
    model_name: str,
    version: str,
    gauges: Mapping[str, float],
    *,
    column_scores: Mapping[str, float | None] | None = None,
    timeout: float = 10.0,
) -> None:
    """Push gauges ``{name: value}`` (labels ``model``, ``version``) to the Pushgateway, job ``mlcycle-drift``.

    Uses push-add with grouping key ``model``: a drift push replaces the drift series and a
    performance push the performance series of the same model, without deleting each other's.
    """
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    registry = CollectorRegistry()
    for name, value in gauges.items():
        if name == "mlcycle_drift_last_run_timestamp_seconds":
            Gauge(name, "Unix time of the last drift check", ["model"], registry=registry).labels(model=model_name).set(
                value
            )
            continue
        Gauge(name, name.replace("_", " "), ["model", "version"], registry=registry).labels(
            model=model_name, version=version
        ).set(value)
    if column_scores:
        gauge = Gauge(
            "mlcycle_drift_column_score",
            "Drift score per column (p-value or distance)",
            ["model", "version", "column"],
            registry=registry,
        )
        for column, score in column_scores.items():
            if score is not None:
                gauge.labels(model=model_name, version=version, column=column).set(score)
    pushadd_to_gateway(gateway, job=JOB, registry=registry, grouping_key={"model": model_name}, timeout=timeout)
