"""Component: move the `champion` alias to a version that passed the gate."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote_model(registered_name: str, version: str, pipeline_run_id: str) -> str:
    """Point ``champion`` at ``version`` if the champion did not move since the evaluation.

    Args:
        registered_name: registered-model name.
        version: the version that passed the gate.
        pipeline_run_id: the KFP run, recorded as who moved the alias.

    Returns:
        What happened, in one sentence.
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    configured_settings()
    move = lifecycle.promote_if_passed(registered_name, version, moved_by=f"pipeline:{pipeline_run_id}")
    if not move.moved:
        return f"not promoted: {move.reason}"
    return f"champion of {registered_name} is v{version} (was v{move.previous or 'none'})"
