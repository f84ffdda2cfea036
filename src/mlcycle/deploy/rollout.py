"""Roll a model version out, promote or roll back its canary, and keep the registry's tags in step.

Each function here is one rollout step: render (pure) → apply (:mod:`mlcycle.deploy.kube`) → record the
serving state on the model versions (:mod:`mlcycle.deploy.serving_state`). :func:`deploy_after_gate` is
what the pipeline's ``deploy_model`` component calls.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mlcycle import release
from mlcycle.deploy.canary import CanaryDecision, CanaryPolicy, decide_canary
from mlcycle.deploy.environments import get_environment
from mlcycle.deploy.kube import (
    RolloutResult,
    apply_inference_service,
    get_inference_service,
    list_inference_services,
    model_uri_of,
    promote,
    rollback,
)
from mlcycle.deploy.prometheus import PrometheusReader, read_canary_samples
from mlcycle.deploy.render import LABEL_ENVIRONMENT, inference_service_name, render_inference_service
from mlcycle.deploy.serving_state import (
    CANARY,
    SERVING,
    read_serving_state,
    record_rollout,
    serving_tag,
)
from mlcycle.errors import ApprovalRequiredError, InvalidInputError, ModelNotFoundError, ServabilityError
from mlcycle.governance import audit
from mlcycle.registry import store
from mlcycle.registry.uris import parse_model_ref, qualified_name, split_name


def _target(model: str, team: str) -> tuple[str, str, str]:
    """``(registered name, InferenceService name, namespace)`` for ``model`` of ``team``."""
    from mlcycle.deploy.environments import PLATFORM_NAMESPACE

    registered = qualified_name(model, team)
    owner, base = split_name(registered)
    return registered, inference_service_name(base), owner or PLATFORM_NAMESPACE


REFUSALS = (ApprovalRequiredError, ServabilityError, release.ReleaseRefusedError)


def _require_releasable(client: Any, registered: str, version: str, environment: str, *, step: str,
                        settings: Any = None) -> None:
    """The release rules before a version serves in ``environment``; a refusal is recorded (``deploy.refused``)."""
    try:
        release.require_releasable(registered, version, environment, settings=settings, client=client)
    except REFUSALS as e:
        audit.record(registered, version, "deploy.refused", client=client,
                     details={"environment": environment, "step": step, "reason": e.message})
        raise


def deploy_version(
    api: Any, client: Any, model: str, version: str | int, environment: str, *, team: str = ""
) -> RolloutResult:
    """Roll ``version`` of ``model`` out in ``environment``: 100% the first time, else as a canary.

    Args:
        api: a ``kubernetes.client.CustomObjectsApi``.
        client: an ``mlflow.MlflowClient`` (the serving state is written to the version's tags).
        model: base or registered name.
        version: registered model version.
        environment: ``dev``, ``staging`` or ``prod``.
        team: owning team (its namespace serves the model).
    """
    env = get_environment(environment)
    registered, _, _ = _target(model, team)
    store.get_model_version(registered, str(version), mlflow_client=client)  # fail before touching the cluster
    # The release rules (gate passed, servable, approved where protected) before anything is applied.
    _require_releasable(client, registered, str(version), environment, step="deploy apply")
    isvc = render_inference_service(registered, environment, team=team, version=version)
    result = apply_inference_service(api, isvc, env.canary_percent)
    record_rollout(client, registered, str(version), environment, result)
    return result


def _latest_version(api: Any, name: str, namespace: str) -> str:
    existing = get_inference_service(api, name, namespace)
    if existing is None:
        raise ModelNotFoundError(f"inferenceservice {namespace}/{name} does not exist", field="name")
    ref = parse_model_ref(model_uri_of(existing))
    if ref.version is None:
        raise InvalidInputError(
            f"inferenceservice {namespace}/{name} serves {ref.uri!r}, not a pinned version; "
            "deploy a version before promoting or rolling back",
            field="model",
        )
    return ref.version


def promote_canary(api: Any, client: Any, model: str, environment: str, *, team: str = "") -> RolloutResult:
    """Give the canary all traffic and record it; the previous version is ``retired``."""
    get_environment(environment)
    registered, name, namespace = _target(model, team)
    version = _latest_version(api, name, namespace)
    # Gate, servability and a standing approval again: revoked (or re-gated) since the canary started?
    _require_releasable(client, registered, version, environment, step="canary promote")
    result = promote(api, name, namespace)
    record_rollout(client, registered, version, environment, result)
    return result


def rollback_canary(api: Any, client: Any, model: str, environment: str, *, team: str = "") -> RolloutResult:
    """Set the canary's traffic to 0% and record it; the previous version serves everything again.

    If the environment's alias (``champion`` in prod) still points at the rolled-back version, it is
    moved back to the version that serves, so the registry and the next gate compare against what
    actually runs (tag ``mlcycle.serving.<env>.alias_moved_from`` on that version says so).
    """
    env = get_environment(environment)
    registered, name, namespace = _target(model, team)
    version = _latest_version(api, name, namespace)
    result = rollback(api, name, namespace)
    record_rollout(client, registered, version, environment, result)
    _restore_alias(client, registered, env.alias, version, environment)
    return result


def _restore_alias(client: Any, registered: str, alias: str, rolled_back: str, environment: str) -> None:
    # Team ownership was checked by _target (qualified_name) before the rollback.
    current = store.alias_version(registered, alias, mlflow_client=client)
    serving = [v for v, t in read_serving_state(client, registered, environment).items() if t["state"] == SERVING]
    if current != rolled_back or not serving:
        return  # no such alias, or it does not point at the rolled-back version
    target = max(serving, key=int)
    move = release.restore_alias(registered, alias, target, expected_current=rolled_back,
                                 reason=f"{environment} canary rolled back", client=client)
    if move.moved:
        client.set_model_version_tag(registered, target, serving_tag(environment, "alias_moved_from"), rolled_back)


def analyze_canary(
    api: Any,
    client: Any,
    reader: PrometheusReader,
    model: str,
    environment: str,
    *,
    team: str = "",
    window: str = "10m",
    policy: CanaryPolicy | None = None,
    auto_promote: bool = False,
) -> tuple[CanaryDecision, RolloutResult | None]:
    """Read the canary's metrics, decide, and act: a rollback always, a promotion if ``auto_promote``.

    The champion and canary versions come from the registry's serving tags in ``environment``.

    Raises:
        InvalidInputError: no canary is running in ``environment``.
    """
    registered, name, namespace = _target(model, team)
    state = read_serving_state(client, registered, environment)
    canaries = [v for v, tags in state.items() if tags.get("state") == CANARY]
    champions = [v for v, tags in state.items() if tags.get("state") == SERVING]
    if not canaries or not champions:
        raise InvalidInputError(
            f"no canary of {registered} is running in {environment} (serving tags: {state or 'none'})",
            field="model",
        )
    champion_samples, canary_samples = read_canary_samples(
        reader,
        model=split_name(registered)[1],
        champion_version=max(champions, key=int),
        canary_version=max(canaries, key=int),
        namespace=namespace,
        window=window,
    )
    decision = decide_canary(champion_samples, canary_samples, policy)
    audit.record(
        registered,
        max(canaries, key=int),
        "canary.analysis",
        client=client,
        details={"environment": environment, "decision": decision.action, "reasons": "; ".join(decision.reasons)},
    )
    if decision.action == "rollback":
        return decision, rollback_canary(api, client, registered, environment, team=team)
    if decision.action == "promote" and auto_promote:
        try:
            return decision, promote_canary(api, client, registered, environment, team=team)
        except REFUSALS as e:
            # a healthy canary waits for its approval (or a re-gate); other canaries are still analysed
            audit.record(
                registered,
                max(canaries, key=int),
                "canary.promotion_refused",
                client=client,
                details={"environment": environment, "reason": e.message},
            )
    return decision, None


def analyze_namespace(
    api: Any,
    client: Any,
    reader: PrometheusReader,
    namespace: str,
    *,
    team: str = "",
    window: str = "10m",
    policy: CanaryPolicy | None = None,
    auto_promote: bool = False,
) -> list[dict[str, Any]]:
    """Analyse every canary running in ``namespace`` (what the team's CronJob runs every few minutes).

    A canary is an mlcycle InferenceService whose ``canaryTrafficPercent`` is above 0; its model comes
    from the pinned model URI, its environment from the ``mlcycle.io/environment`` label.

    Returns:
        One summary per canary: model, environment, decision, reasons and the step taken (if any).
    """
    summaries = []
    for isvc in list_inference_services(api, namespace):
        share = isvc.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
        environment = (isvc.get("metadata", {}).get("labels") or {}).get(LABEL_ENVIRONMENT)
        ref = parse_model_ref(model_uri_of(isvc)) if model_uri_of(isvc) else None
        if not share or environment is None or ref is None or ref.version is None:
            continue
        decision, result = analyze_canary(
            api,
            client,
            reader,
            ref.name,
            environment,
            team=team,
            window=window,
            policy=policy,
            auto_promote=auto_promote,
        )
        summaries.append(
            {
                "model": ref.name,
                "environment": environment,
                "canary_version": ref.version,
                "decision": decision.action,
                "reasons": list(decision.reasons),
                "action": result.action if result else None,
            }
        )
    return summaries


def deploy_after_gate(
    model: str,
    version: str,
    environment: str,
    *,
    team: str = "",
    gate_decision: str = "promote",
    settings: Any = None,
    api: Any = None,
) -> dict[str, Any]:
    """The pipeline's deploy step: deploy a version the gate promoted; skip (and say why) otherwise.

    In local mode (an embedded SQLite MLflow store), or outside any cluster (no in-cluster service
    account and no kubeconfig, e.g. ``kfp.local`` against a remote MLflow server), the step is skipped
    and the reason recorded on the version as ``mlcycle.serving.<env>.state = skipped`` and
    ``...reason``; serve locally with the predictor (``python -m inference models:/<name>/<version>``).

    Returns:
        A JSON-able summary: ``action`` (a :class:`RolloutResult` action or ``skipped``) and details.
    """
    from mlflow import MlflowClient

    from mlcycle.config import load_settings

    settings = settings or load_settings()
    get_environment(environment)
    registered = qualified_name(model, team)
    client = MlflowClient()
    if gate_decision != "promote":
        return {"action": "skipped", "reason": f"the gate decided {gate_decision!r}", "model": registered}

    def skip(why: str) -> dict[str, Any]:
        reason = f"{why}; serve it with `python -m inference models:/{registered}/{version}`"
        client.set_model_version_tag(registered, str(version), serving_tag(environment, "state"), "skipped")
        client.set_model_version_tag(registered, str(version), serving_tag(environment, "reason"), reason)
        return {"action": "skipped", "reason": reason, "model": registered, "version": str(version)}

    if api is None and settings.is_local:
        return skip("local mode: no Kubernetes cluster")
    if api is None:
        import os

        from mlcycle.deploy.kube import load_custom_objects_api
        from mlcycle.errors import ConfigError

        try:
            api = load_custom_objects_api()
        except ConfigError:
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise  # inside a pod, missing credentials are a fault, not a local run
            return skip("no Kubernetes cluster configured (no in-cluster service account, no kubeconfig)")
    try:
        _require_releasable(client, registered, str(version), environment, step="pipeline deploy", settings=settings)
    except REFUSALS as e:
        # Fail fast instead of holding a pod until someone approves: the run fails with the command to
        # run, the version says why, and `mlcycle deploy apply` (or a re-run) after approval proceeds.
        state = "awaiting_approval" if isinstance(e, ApprovalRequiredError) else "refused"
        client.set_model_version_tag(registered, str(version), serving_tag(environment, "state"), state)
        client.set_model_version_tag(registered, str(version), serving_tag(environment, "reason"), e.message)
        raise
    result = deploy_version(api, client, registered, version, environment, team=team)
    return {**asdict(result), "model": registered, "version": str(version), "environment": environment}
