"""Component: the promotion gate — decide, record why, point `challenger` at the candidate."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate_model(
    run_id: str,
    registered_name: str,
    version: str,
    gate_metric: str,
    min_improvement: float,
    floor: float,
    pipeline_run_id: str,
) -> str:
    """Decide whether the candidate may replace the champion and record the decision on the version.

    The version must first load and replay its input example through the predictor's own code, and
    its recorded requirements must match the serving image; otherwise it is rejected and no alias moves.

    Args:
        run_id: the evaluated training run (its holdout metrics are compared).
        registered_name: registered-model name.
        version: the candidate's registered version.
        gate_metric: holdout metric compared (``f1_macro``, ``accuracy``, ``roc_auc``, ``log_loss``).
        min_improvement: how much the candidate must beat the champion by.
        floor: the worst acceptable metric value, champion or not.
        pipeline_run_id: the KFP run, recorded as who decided.

    Returns:
        ``promote`` or ``reject`` (the reason is the version tag ``mlcycle.gate.reason``).
    """
    from mlcycle import lifecycle
    from mlcycle.registry.gate import GatePolicy
    from mlcycle.tracking import configured_settings

    decision = lifecycle.gate_candidate(
        run_id, registered_name, version,
        GatePolicy(metric=gate_metric, min_improvement=min_improvement, floor=floor), configured_settings(),
        decided_by=f"pipeline:{pipeline_run_id}")
    return decision.decision
