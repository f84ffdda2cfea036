"""Component: move the `champion` alias to the version that passed the gate."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote_model(registered_name: str, run_id: str, pipeline_run_id: str) -> str:
    """Point ``champion`` at the run's registered version if the champion did not move since the evaluation.

    Args:
        registered_name: registered-model name.
        run_id: the training run whose version passed the gate.
        pipeline_run_id: the KFP run, recorded as who moved the alias.

    Returns:
        The version that is champion now (the run's version, or the unchanged champion when the champion
        moved since the evaluation; the step's log says which).
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    move = lifecycle.promote_run_version(registered_name, run_id, moved_by=f"pipeline:{pipeline_run_id}",
                                         settings=configured_settings())
    print(f"champion of {registered_name}: {move.reason}" if move.moved else f"not promoted: {move.reason}")
    return move.version if move.moved else (move.previous or "")
