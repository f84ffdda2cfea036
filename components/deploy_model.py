"""Component: roll a version that passed the gate out to KServe (canary when one already serves)."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_model(registered_name: str, version: str, environment: str, gate_decision: str = "promote") -> str:
    """Deploy ``version`` of ``registered_name`` as an InferenceService in ``environment``.

    The first rollout takes all traffic; a later version goes out as a canary with the environment's
    share (``mlcycle.deploy.environments``), to be promoted or rolled back by the canary analysis. The
    serving state is written to the version's ``mlcycle.serving.<environment>.*`` tags. In local mode
    (no cluster) the step is skipped and the reason recorded in those tags.

    Args:
        registered_name: registered-model name (``team-a.wine``); its namespace is its team's.
        version: the registered version the gate passed.
        environment: ``dev``, ``staging`` or ``prod``.
        gate_decision: the gate's decision; anything but ``promote`` skips the step.

    Returns:
        A JSON summary: ``action`` (``created``, ``canary``, ``replaced``, ``updated``, ``unchanged`` or
        ``skipped``), the InferenceService's name and namespace, the new revision's traffic share, or
        the reason it was skipped.
    """
    import json

    from mlcycle.deploy.rollout import deploy_after_gate
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    outcome = deploy_after_gate(
        registered_name,
        version,
        environment,
        team=settings.team,
        gate_decision=gate_decision,
        settings=settings,
    )
    return json.dumps(outcome, sort_keys=True)
