"""One monitoring check from end to end: resolve the model, read the window, test, log, push, decide.

:func:`check_drift` is what ``mlcycle drift``, ``mlcycle monitor`` and the ``check_drift`` component
call; its return value is the JSON summary they print or pass on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcycle.monitoring import export
from mlcycle.monitoring.drift import DriftConfig, compute_drift
from mlcycle.monitoring.payloads import read_payload_logs
from mlcycle.monitoring.reference import load_reference, logged_model_id, resolve_version
from mlcycle.monitoring.windows import window


@dataclass(frozen=True)
class RetrainPolicy:
    """Retrain only when drift persists: ``windows`` consecutive drifting windows of one version."""

    windows: int = 3

    def __post_init__(self) -> None:
        if self.windows < 1:
            from mlcycle.errors import InvalidInputError

            raise InvalidInputError("persistence windows must be at least 1", field="persistence")


def check_drift(
    model_ref: str,
    settings,
    *,
    since: str | None = None,
    until: str | None = None,
    source: str | None = None,
    config: DriftConfig | None = None,
    policy: RetrainPolicy | None = None,
    report_dir: str | Path | None = None,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Run one drift check of the model version ``model_ref`` points at, over one window of traffic.

    Args:
        model_ref: ``models:/wine@champion`` or ``models:/wine/3`` (shorthand accepted).
        settings: :class:`mlcycle.config.Settings`; MLflow must already point at its stores.
        since: window length (``1h``) or ISO start; default: all logged traffic.
        until: ISO end of the window; default: now.
        source: payload-log root (directory or ``s3://`` prefix); default ``$MLCYCLE_HOME/payloads``.
        config: statistics settings (:class:`~mlcycle.monitoring.drift.DriftConfig`).
        policy: how many consecutive drifting windows trigger retraining.
        report_dir: where the HTML report goes; default ``$MLCYCLE_HOME/monitoring/<model>/``.
        log_to_mlflow: log the check as a run in experiment ``mlcycle-monitoring``.

    Returns:
        The summary: ``status``, ``dataset_drift``, ``drifted_columns``, ``rows``, ``scores``,
        ``report_path``, ``retrain``, ``consecutive_drift_windows``, model, version and window.
    """
    config = config or DriftConfig()
    policy = policy or RetrainPolicy()
    span = window(since, until)
    version = resolve_version(model_ref, settings.team)
    reference = load_reference(version)
    current = read_payload_logs(
        str(source or settings.payload_dir),
        reference.model_name,
        span.start,
        span.end,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    if not current.empty and "model_version" in current.columns:
        # Only traffic answered by this version says something about this version.
        current = current[current["model_version"].astype(str) == reference.version]
    stamp = span.end.strftime("%Y%m%dT%H%M%SZ")
    directory = Path(report_dir) if report_dir else settings.home_dir / "monitoring" / reference.base_name
    report_path = directory / f"drift-{reference.base_name}-v{reference.version}-{stamp}.html"
    result = compute_drift(reference.frame, current, reference.features, config=config, report_path=report_path)
    summary = result.summary()
    previous = export.consecutive_drift_windows(reference.model_name, reference.version) if log_to_mlflow else 0
    consecutive = previous + 1 if result.dataset_drift else (previous if result.status not in export.TESTED else 0)
    retrain = result.dataset_drift and consecutive >= policy.windows
    summary.update(
        {
            "model": reference.model_name,
            "version": reference.version,
            "model_uri": f"models:/{reference.model_name}/{reference.version}",
            "window_start": span.start.isoformat() if span.start else None,
            "window_end": span.end.isoformat(),
            "consecutive_drift_windows": consecutive,
            "persistence_windows": policy.windows,
            "retrain": retrain,
            # What retraining needs to repeat the served model's training (its training run's tags).
            "training": {
                "run_id": reference.run_id,
                "dataset": reference.run_tags.get("mlcycle.dataset"),
                "model_type": reference.run_tags.get("mlcycle.model_type"),
                "target": reference.target,
            },
        }
    )
    if log_to_mlflow:
        metrics = {
            "drift_detected": float(result.dataset_drift),
            "drift_share": result.drift_share,
            "drifted_columns": float(len(result.drifted_columns)),
            "rows": float(result.rows),
            "prediction_drift": float(summary["prediction_drift"]),
            "prediction_drift_score": summary["prediction_score"],
            "consecutive_drift_windows": float(consecutive),
            **{f"drift_score.{c}": v for c, v in summary["scores"].items()},
        }
        artifacts = {str(report_path): "drift"} if result.report_path and report_path.exists() else {}
        summary["mlflow_run_id"] = export.log_check(
            "drift",
            model_name=reference.model_name,
            version=reference.version,
            model_id=logged_model_id(version),
            status=result.status,
            metrics=metrics,
            tags={
                export.TAG_RETRAIN: str(retrain).lower(),
                export.TAG_WINDOW_START: summary["window_start"] or "",
                export.TAG_WINDOW_END: summary["window_end"],
            },
            settings=settings,
            artifacts=artifacts,
            summary=summary,
        )
    if settings.pushgateway_url:
        gauges = {"mlcycle_drift_rows": float(result.rows), "mlcycle_drift_last_run_timestamp_seconds": time.time()}
        if result.status in export.TESTED:  # too little data is no evidence: keep the last verdict
            gauges |= {"mlcycle_drift_detected": float(result.dataset_drift), "mlcycle_drift_share": result.drift_share}
        export.push_metrics(
            settings.pushgateway_url,
            reference.model_name,
            reference.version,
            gauges,
            # The prediction column's score rides along as column="prediction" (prediction drift).
            column_scores={**summary["scores"], "prediction": summary["prediction_score"]}
            if result.status in export.TESTED
            else None,
        )
        summary["pushed_to"] = settings.pushgateway_url
    return summary


def monitor(
    run_once: Callable[[], dict[str, Any]],
    *,
    every_seconds: float,
    max_runs: int | None = None,
    on_result: Callable[[dict[str, Any]], None] = lambda summary: None,
    on_retrain: Callable[[dict[str, Any]], None] = lambda summary: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Call ``run_once`` every ``every_seconds`` (fixed rate, no drift of the schedule) ``max_runs`` times.

    Returns the number of checks run. ``on_retrain`` is called with the summary when a check decides to
    retrain. ``None`` for ``max_runs`` runs until interrupted.
    """
    runs = 0
    next_at = clock()
    while max_runs is None or runs < max_runs:
        summary = run_once()
        runs += 1
        on_result(summary)
        if summary.get("retrain"):
            on_retrain(summary)
        if max_runs is not None and runs >= max_runs:
            break
        next_at += every_seconds
        sleep(max(0.0, next_at - clock()))
    return runs


def retraining_arguments(summary: dict[str, Any], *, dataset: str | None = None) -> dict[str, str]:
    """The training pipeline's arguments to retrain the model a drift summary is about.

    Repeats the served version's training (data set and estimator from its run's tags) under the same
    registered name; the training pipeline's gate then decides whether the new version is promoted.

    Raises:
        InvalidInputError: the data set is unknown (no ``mlcycle.dataset`` tag and none given).
    """
    from mlcycle.errors import InvalidInputError
    from mlcycle.registry.uris import split_name

    training = summary.get("training") or {}
    chosen = dataset or training.get("dataset")
    if not chosen:
        raise InvalidInputError(
            f"cannot retrain {summary.get('model')}: its training run has no mlcycle.dataset tag; "
            "name the data set (--retrain-dataset)",
            field="dataset",
        )
    team, base = split_name(summary["model"])
    arguments = {"dataset": chosen, "model_name": base, "team": team}
    if training.get("model_type"):
        arguments["model_type"] = training["model_type"]
    if training.get("target") and not dataset:
        arguments["target"] = training["target"]
    return arguments
