"""Component: register the candidate and run the promotion gate."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    run_id: str,
    registered_name: str,
    gate_metric: str,
    min_improvement: float,
    floor: str,
    auto_promote: bool,
    pipeline_run_id: str,
) -> str:
    """Register the run's model as a new version and decide whether it may replace the champion.

    Registration is idempotent per run. The version must then load and replay its input example through
    the predictor's own code, with requirements matching the serving image, or it is rejected and no
    alias moves. Otherwise ``challenger`` points at it and the gate compares its holdout metric with the
    champion's on the same rows. The decision, its reason and the numbers become version tags.

    Args:
        run_id: the evaluated training run.
        registered_name: registered-model name.
        gate_metric: holdout metric compared (``f1_macro``, ``accuracy``, ``roc_auc``, ``log_loss``;
            ``rmse``, ``mae``, ``r2``); empty: the task's (``f1_macro``, ``rmse``). Each has its direction.
        min_improvement: how much the candidate must beat the champion by.
        floor: the worst acceptable metric value on its own scale, champion or not; empty: the metric's
            default (0.5 for accuracy, macro F1 and ROC AUC, 0 for R², none for log loss, RMSE, MAE).
        auto_promote: move ``champion`` right away when the gate passes; off holds the version as
            ``challenger`` for a canary rollout first.
        pipeline_run_id: the KFP run, recorded as who decided.

    Returns:
        ``promote``, ``hold`` (passed, automatic promotion off) or ``reject``; the reason is the version tag
        ``mlcycle.gate.reason``.
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    lifecycle.check_write_access(registered_name, settings)
    policy = lifecycle.gate_policy_for_run(run_id, gate_metric, floor, min_improvement)
    outcome = lifecycle.register_and_gate(run_id, registered_name, policy, settings,
                                          decided_by=f"pipeline:{pipeline_run_id}", auto_promote=auto_promote)
    return outcome.action
