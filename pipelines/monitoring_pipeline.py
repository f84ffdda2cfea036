"""The monitoring pipeline: drift and performance checks, then retraining when drift persists.

Runs on a schedule (a KFP recurring run, :func:`mlcycle.monitoring.schedule.schedule_monitoring`).
Retraining is the training pipeline nested under ``dsl.If``: it trains a candidate and the usual gate
decides whether it replaces the champion, so a drift alarm never promotes a model by itself.
"""

from kfp import dsl

from components.check_drift import check_drift
from components.check_performance import check_performance
from pipelines.training_pipeline import training_pipeline


@dsl.pipeline(
    name="monitoring-pipeline",
    description="Evidently drift and delayed-label performance of the champion; retrain on persistent drift.",
)
def monitoring_pipeline(
    model_name: str = "wine",
    alias: str = "champion",
    team: str = "",
    since: str = "1h",
    payload_source: str = "",
    method: str = "",
    drift_share: float = 0.5,
    min_rows: int = 100,
    persistence_windows: int = 3,
    min_accuracy: float = 0.8,
    performance_window: str = "1d",
    retrain_dataset: str = "wine",
    retrain_model_type: str = "random_forest",
):
    """Check the served model; retrain when drift persisted for ``persistence_windows`` windows.

    Args:
        model_name: registered-model base name (the step's MLCYCLE_TEAM, or ``team``, qualifies it).
        alias: the alias in production.
        team: team prefix, passed to the retraining pipeline.
        since: drift window, e.g. ``1h`` (match the schedule's period).
        payload_source: payload-log root (``s3://`` prefix); empty: ``MLCYCLE_HOME/payloads``.
        method: one Evidently test for all columns (``psi``); empty: by type and sample size.
        drift_share: share of drifted feature columns that makes the window drift.
        min_rows: fewer rows is "insufficient data", never drift.
        persistence_windows: consecutive drifting windows before retraining.
        min_accuracy: performance threshold for delayed labels.
        performance_window: window of predictions scored against labels.
        retrain_dataset: data set the retraining pipeline trains on.
        retrain_model_type: estimator the retraining pipeline trains.
    """
    drift = check_drift(
        model_name=model_name,
        alias=alias,
        since=since,
        payload_source=payload_source,
        method=method,
        drift_share=drift_share,
        min_rows=min_rows,
        persistence_windows=persistence_windows,
    )
    drift.set_display_name("check drift")
    performance = check_performance(
        model_name=model_name,
        alias=alias,
        since=performance_window,
        payload_source=payload_source,
        min_accuracy=min_accuracy,
    )
    performance.set_display_name("check performance (delayed labels)")
    with dsl.If(drift.outputs["Output"] == True, name="drift-persisted"):  # noqa: E712 (a kfp condition, not Python)
        retrain = training_pipeline(
            dataset=retrain_dataset, model_name=model_name, team=team, model_type=retrain_model_type
        )
        retrain.set_display_name("retrain")
