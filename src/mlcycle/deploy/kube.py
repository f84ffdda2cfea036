"""The apply layer: create or patch InferenceServices through the official ``kubernetes`` client.

Thin on purpose: every decision is made by pure functions elsewhere; this module only speaks KServe's
rollout protocol (https://kserve.github.io/website/latest/modelserving/v1beta1/rollout/canary/):

- first rollout: create the InferenceService with no ``canaryTrafficPercent`` (100% to it);
- new version: patch the spec with ``canaryTrafficPercent: N``; KServe keeps the last revision that had
  100% and gives it the other ``100 - N``;
- promote: remove ``canaryTrafficPercent`` (JSON merge patch with ``null``), so the latest revision
  takes all traffic;
- rollback: set ``canaryTrafficPercent: 0``, so all traffic returns to the previous revision.

``api`` is a ``kubernetes.client.CustomObjectsApi`` or anything with the same four methods (tests pass
a recorder).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from mlcycle.deploy.render import ANNOTATION_MODEL_URI, check_canary_percent, check_inference_service
from mlcycle.errors import ConfigError, MlcycleError, ModelNotFoundError

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"

Action = Literal["created", "canary", "replaced", "updated", "unchanged", "promoted", "rolled_back"]


class ClusterError(MlcycleError):
    """The Kubernetes API refused or failed a request (HTTP 502: the fault is upstream of mlcycle)."""

    http_status = 502


@dataclass(frozen=True)
class RolloutResult:
    """What the apply step did.

    Attributes:
        action: ``created`` (first rollout, 100%), ``canary`` (new revision at ``traffic_percent``),
            ``replaced`` (new revision at 100% without canary), ``updated`` (same model, new settings,
            at 100%), ``unchanged``, ``promoted``, ``rolled_back``.
        name: InferenceService name.
        namespace: its namespace.
        model_uri: the model URI of the latest revision.
        traffic_percent: the latest revision's share of traffic after the step.
    """

    action: Action
    name: str
    namespace: str
    model_uri: str
    traffic_percent: int


def load_kube_config() -> None:
    """Configure the ``kubernetes`` client from the in-cluster service account, else from ``~/.kube/config``.

    Raises:
        ConfigError: neither is available; the message says what to set.
    """
    from kubernetes import config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as e:
            raise ConfigError(
                "no Kubernetes credentials: run inside the cluster or set KUBECONFIG to a kubeconfig file",
                field="kubeconfig",
            ) from e


def load_custom_objects_api() -> Any:
    """A ``CustomObjectsApi`` from the in-cluster service account, else from ``~/.kube/config``.

    Raises:
        ConfigError: neither is available; the message says what to set.
    """
    from kubernetes import client

    load_kube_config()
    return client.CustomObjectsApi()


def _api_error(e: Exception, what: str) -> ClusterError:
    status = getattr(e, "status", "?")
    reason = getattr(e, "reason", "") or str(e)
    return ClusterError(f"Kubernetes API refused to {what}: {status} {reason}")


def get_inference_service(api: Any, name: str, namespace: str) -> dict[str, Any] | None:
    """The InferenceService ``namespace/name``, or ``None`` if it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise _api_error(e, f"read inferenceservice {namespace}/{name}") from e


def list_inference_services(api: Any, namespace: str) -> list[dict[str, Any]]:
    """mlcycle's InferenceServices in ``namespace`` (label ``app.kubernetes.io/part-of=mlcycle``)."""
    from kubernetes.client.exceptions import ApiException

    try:
        found = api.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, label_selector="app.kubernetes.io/part-of=mlcycle"
        )
    except ApiException as e:
        raise _api_error(e, f"list inferenceservices in {namespace}") from e
    return list(found.get("items", []))


def model_uri_of(isvc: dict[str, Any]) -> str:
    """The model URI an InferenceService serves (its latest revision)."""
    return (isvc.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_MODEL_URI, "")


def _call(api_call: Any, what: str, *args: Any) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return api_call(*args)
    except ApiException as e:
        raise _api_error(e, what) from e


def apply_inference_service(api: Any, isvc: dict[str, Any], canary_percent: int | None) -> RolloutResult:
    """Create ``isvc`` at 100%, or patch the existing one so its new revision gets ``canary_percent``.

    Args:
        api: a ``CustomObjectsApi``.
        isvc: the rendered InferenceService (its own ``canaryTrafficPercent`` is ignored).
        canary_percent: the new revision's share when one already serves; ``None`` replaces at once.
    """
    check_inference_service(isvc)
    meta = isvc["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    body = copy.deepcopy(isvc)
    body["spec"]["predictor"].pop("canaryTrafficPercent", None)
    uri = model_uri_of(isvc)
    existing = get_inference_service(api, name, namespace)
    if existing is None:
        _call(
            api.create_namespaced_custom_object, f"create {namespace}/{name}", GROUP, VERSION, namespace, PLURAL, body
        )
        return RolloutResult("created", name, namespace, uri, 100)
    current_canary = existing.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
    same_model = model_uri_of(existing) == uri
    if same_model and current_canary is None and _contains(existing, body):
        return RolloutResult("unchanged", name, namespace, uri, 100)
    if same_model and current_canary is not None:
        # This version is already a canary (or was rolled back to 0%): deploying it again must not
        # promote it behind the analysis' back. Promote or roll back explicitly.
        return RolloutResult("unchanged", name, namespace, uri, current_canary)
    if same_model:
        # Same model, changed settings (scaling, labels): a new revision, but nothing to compare it with.
        body["spec"]["predictor"]["canaryTrafficPercent"] = None
        action: Action = "updated"
        share = 100
    elif canary_percent is None or canary_percent == 100:
        # ``null`` in a merge patch deletes the field: the new revision takes all traffic.
        body["spec"]["predictor"]["canaryTrafficPercent"] = None
        action = "replaced"
        share = 100
    else:
        share = check_canary_percent(canary_percent)
        body["spec"]["predictor"]["canaryTrafficPercent"] = share
        action = "canary"
    _call(
        api.patch_namespaced_custom_object, f"patch {namespace}/{name}", GROUP, VERSION, namespace, PLURAL, name, body
    )
    return RolloutResult(action, name, namespace, uri, share)


def _contains(have: Any, want: Any) -> bool:
    """True if every field of ``want`` is in ``have`` with the same value (lists item by item).

    The live object has more than was sent (defaults KServe's webhook fills in, status), so "is the
    cluster already at what we render" is containment, not equality.
    """
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and _contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_contains, have, want))
    return have == want


def _existing_or_404(api: Any, name: str, namespace: str) -> dict[str, Any]:
    existing = get_inference_service(api, name, namespace)
    if existing is None:
        raise ModelNotFoundError(f"inferenceservice {namespace}/{name} does not exist", field="name")
    return existing


def promote(api: Any, name: str, namespace: str) -> RolloutResult:
    """Give the latest revision all traffic by removing ``canaryTrafficPercent``."""
    existing = _existing_or_404(api, name, namespace)
    patch = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    _call(
        api.patch_namespaced_custom_object,
        f"promote {namespace}/{name}",
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        patch,
    )
    return RolloutResult("promoted", name, namespace, model_uri_of(existing), 100)


def rollback(api: Any, name: str, namespace: str) -> RolloutResult:
    """Send all traffic back to the previous revision: ``canaryTrafficPercent: 0``."""
    existing = _existing_or_404(api, name, namespace)
    patch = {"spec": {"predictor": {"canaryTrafficPercent": 0}}}
    _call(
        api.patch_namespaced_custom_object,
        f"roll back {namespace}/{name}",
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        patch,
    )
    return RolloutResult("rolled_back", name, namespace, model_uri_of(existing), 0)
