"""Component: accuracy and macro F1 of the served version from the delayed labels received so far."""

from kfp import dsl
from kfp.dsl import Artifact, Metrics, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_performance(
    model_name: str,
    alias: str,
    since: str,
    payload_source: str,
    min_accuracy: float,
    metrics: Output[Metrics],
    summary: Output[Artifact],
) -> bool:
    """Join the window's predictions with ground-truth labels by request id; score them.

    Args:
        model_name: registered-model name.
        alias: the alias served in production.
        since: window of predictions, e.g. ``1d`` (labels arrive later than predictions).
        payload_source: payload-log root; empty means ``MLCYCLE_HOME/payloads``.
        min_accuracy: below this accuracy the check reports ``below_threshold``.
        metrics: accuracy, macro F1, labelled rows.
        summary: the JSON summary.

    Returns:
        True when accuracy is below ``min_accuracy`` on enough labelled rows.
    """
    import json

    from mlcycle.monitoring.performance import check_performance as run_check
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    result = run_check(
        f"models:/{model_name}@{alias}",
        settings,
        since=since or None,
        source=payload_source or None,
        min_accuracy=min_accuracy,
    )
    metrics.log_metric("labeled_rows", float(result["labeled_rows"]))
    for key in ("accuracy", "f1_macro"):
        if result[key] is not None:
            metrics.log_metric(key, result[key])
    with open(summary.path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    return bool(result["below_threshold"])
