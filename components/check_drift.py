"""Component: check a window of logged traffic for drift against the served version's reference."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Metrics, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def check_drift(
    model_name: str,
    alias: str,
    since: str,
    payload_source: str,
    method: str,
    drift_share: float,
    min_rows: int,
    persistence_windows: int,
    report: Output[HTML],
    metrics: Output[Metrics],
    summary: Output[Artifact],
) -> bool:
    """Evidently data and prediction drift of ``models:/<model_name>@<alias>`` over the last ``since``.

    Args:
        model_name: registered-model name (team-qualified on a cluster, e.g. ``team-a.wine``).
        alias: the alias served in production, normally ``champion``.
        since: window length, e.g. ``1h``.
        payload_source: payload-log root (``s3://`` prefix); empty means ``MLCYCLE_HOME/payloads``.
        method: one Evidently test for every column (``psi``); empty chooses by type and sample size.
        drift_share: the window drifts when this share of feature columns drifts.
        min_rows: fewer rows in the window is "insufficient data", never drift.
        persistence_windows: consecutive drifting windows before retraining is due.
        report: the Evidently HTML report, shown in the KFP UI.
        metrics: drift share, rows, per-column scores.
        summary: the JSON summary (``dataset_drift``, ``drifted_columns``, ``rows``, ``scores``, ...).

    Returns:
        True when drift persisted for ``persistence_windows`` windows: retraining is due.
    """
    import json
    import shutil

    from mlcycle.monitoring.check import RetrainPolicy
    from mlcycle.monitoring.check import check_drift as run_check
    from mlcycle.monitoring.drift import DriftConfig
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    result = run_check(
        f"models:/{model_name}@{alias}",
        settings,
        since=since or None,
        source=payload_source or None,
        config=DriftConfig(method=method or None, drift_share=drift_share, min_rows=min_rows),
        policy=RetrainPolicy(windows=persistence_windows),
    )
    if result["report_path"]:
        shutil.copyfile(result["report_path"], report.path)
    else:
        with open(report.path, "w", encoding="utf-8") as f:
            f.write(f"<html><body><p>{result['status']}: {result['message']}</p></body></html>")
    for key in ("drift_share", "rows", "consecutive_drift_windows"):
        metrics.log_metric(key, float(result[key]))
    metrics.log_metric("dataset_drift", float(result["dataset_drift"]))
    for column, score in result["scores"].items():
        if score is not None:
            metrics.log_metric(f"score_{column}", score)
    with open(summary.path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    return bool(result["retrain"])
