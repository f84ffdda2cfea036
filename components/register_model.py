"""Component: register the candidate as a new model version."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(run_id: str, registered_name: str) -> str:
    """Register the run's model as a new version, tagged with its lineage (idempotent per run).

    Args:
        run_id: the evaluated training run.
        registered_name: registered-model name.

    Returns:
        The registered version.
    """
    from mlcycle import lifecycle
    from mlcycle.tracking import configured_settings

    configured_settings()
    return lifecycle.register_candidate(run_id, registered_name)
