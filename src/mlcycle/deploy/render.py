"""Render the KServe ``InferenceService`` for a model in an environment: a pure function, no cluster.

The CRD schema lets through things that KServe's admission webhook or the API server's name checks
reject later (``canaryTrafficPercent`` outside 0–100, names that are not DNS labels, bad label values),
so :func:`render_inference_service` and :func:`check_inference_service` check those rules themselves and
raise :class:`~mlcycle.errors.InvalidInputError` naming the field.

The predictor loads the model from MLflow itself (``python -m inference <model URI>``), so the
InferenceService carries no ``storageUri``: the model URI travels in the ``MLCYCLE_MODEL_URI``
environment variable, which the ``mlcycle-mlflow`` ClusterServingRuntime passes as the predictor's
argument (``$(MLCYCLE_MODEL_URI)``). A version URI (``models:/team-a.wine/5``) pins what runs, so a new
version is a new Knative revision and KServe can split traffic between the two; an alias URI
(``models:/wine@champion``) is what the overlays' template serves when applied by hand.
"""

from __future__ import annotations

import re
from typing import Any

from mlcycle.deploy.environments import (
    CREDENTIALS_SECRET,
    MLFLOW_CREDENTIALS_SECRET,
    MODEL_FORMAT,
    MODEL_URI_ENV,
    PART_OF,
    PLATFORM_NAMESPACE,
    RUNTIME_NAME,
    get_environment,
    payload_destination,
)
from mlcycle.errors import InvalidInputError
from mlcycle.registry.uris import qualified_name, split_name

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"

LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_ENVIRONMENT = "mlcycle.io/environment"
LABEL_MODEL = "mlcycle.io/model"
LABEL_TEAM = "mlcycle.io/team"
ANNOTATION_MODEL_URI = "mlcycle.io/model-uri"
ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"

# KServe's webhook: an InferenceService name is a DNS-1035 label ("[a-z]([-a-z0-9]*[a-z0-9])?").
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Knative names the predictor's private Service "<isvc>-predictor-00001-private", a DNS label of at most
# 63 characters, so the InferenceService name may use 63 - len("-predictor-00001-private") = 39.
MAX_ISVC_NAME = 39
# Kubernetes label values: at most 63 characters, alphanumeric at both ends, '-', '_', '.' inside.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")


def inference_service_name(base_name: str) -> str:
    """The InferenceService name for a model's base name: lowercase, ``_`` → ``-``, checked.

    Raises:
        InvalidInputError: the result is not a DNS-1035 label of at most 39 characters.
    """
    name = base_name.lower().replace("_", "-")
    check_dns_label(name, field="name", pattern=DNS_1035_LABEL, max_length=MAX_ISVC_NAME)
    return name


def check_dns_label(value: str, *, field: str, pattern: re.Pattern[str] = DNS_1123_LABEL, max_length: int = 63) -> str:
    """Return ``value`` if it is a DNS label (RFC 1123 by default) of at most ``max_length`` characters."""
    if not isinstance(value, str) or len(value) > max_length or not pattern.match(value):
        kind = "DNS-1035 label (starting with a letter)" if pattern is DNS_1035_LABEL else "DNS-1123 label"
        raise InvalidInputError(
            f"{field} {value!r} must be a {kind}: lowercase letters, digits and '-', at most {max_length} characters",
            field=field,
        )
    return value


def check_canary_percent(value: object) -> int:
    """Return ``value`` if it is an integer traffic share from 0 to 100 (KServe's webhook rule)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise InvalidInputError(
            f"canaryTrafficPercent must be an integer from 0 to 100, got {value!r}",
            field="canaryTrafficPercent",
        )
    return value


def check_label(key: str, value: str) -> None:
    """Check one Kubernetes label against the API server's rules for keys and values."""
    prefix, _, name = key.rpartition("/")
    if (
        prefix
        and (len(prefix) > 253 or not DNS_1123_SUBDOMAIN.match(prefix))
        or len(name) > 63
        or not LABEL_NAME.match(name)
    ):
        raise InvalidInputError(f"label key {key!r} is not a valid Kubernetes label key", field="labels")
    if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
        raise InvalidInputError(
            f"label {key}={value!r} is not a valid label value (at most 63 characters, alphanumeric at "
            "both ends, '-', '_' and '.' inside)",
            field="labels",
        )


def render_inference_service(
    model: str,
    environment: str,
    *,
    team: str = "",
    version: str | int | None = None,
    canary_percent: int | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Render the InferenceService that serves ``model`` in ``environment``.

    Args:
        model: base name (``wine``) or registered name (``team-a.wine``) of the model.
        environment: ``dev``, ``staging`` or ``prod`` (see :mod:`mlcycle.deploy.environments`).
        team: the owning team; its namespace is where the model is served. Empty for a single-tenant
            install, which serves from the platform namespace.
        version: the registered version to pin; ``None`` serves the environment's alias.
        canary_percent: traffic for this (new) revision while the previous one keeps the rest;
            ``None`` gives it all traffic.
        namespace: override the namespace (default: the team, else the platform namespace).

    Returns:
        The InferenceService as a plain dict, ready for the Kubernetes API or ``yaml.safe_dump``.

    Raises:
        InvalidInputError: a name, label or the canary share breaks a rule the cluster enforces.
        PermissionDeniedError: ``model`` names another team's model.
    """
    env = get_environment(environment)
    registered = qualified_name(model, team)
    owner, base = split_name(registered)
    if version is not None:
        version = str(version)
        if not version.isdigit():
            raise InvalidInputError(f"model version {version!r} must be a number", field="version")
        model_uri = f"models:/{registered}/{version}"
    else:
        model_uri = f"models:/{registered}@{env.alias}"
    name = inference_service_name(base)
    namespace = check_dns_label(namespace or owner or PLATFORM_NAMESPACE, field="namespace")

    labels = {LABEL_PART_OF: PART_OF, LABEL_ENVIRONMENT: env.name, LABEL_MODEL: base}
    pod_labels = {LABEL_PART_OF: PART_OF, LABEL_MODEL: base}
    if owner:
        labels[LABEL_TEAM] = owner
        pod_labels[LABEL_TEAM] = owner
    env_vars = [
        {"name": MODEL_URI_ENV, "value": model_uri},
        # Payload logs for drift checks: the team's prefix in the platform's bucket.
        {"name": "MLCYCLE_SERVING_PAYLOAD_DESTINATION", "value": payload_destination(owner)},
    ]
    if owner:
        env_vars.append({"name": "MLCYCLE_TEAM", "value": owner})
    predictor: dict[str, Any] = {
        "minReplicas": env.min_replicas,
        "maxReplicas": env.max_replicas,
        "scaleMetric": env.scale_metric,
        "scaleTarget": env.scale_target,
        # Pod labels: the PodMonitor and the team's AuthorizationPolicy select predictor pods by these.
        "labels": pod_labels,
        "model": {
            "modelFormat": {"name": MODEL_FORMAT},
            "runtime": RUNTIME_NAME,
            "protocolVersion": "v2",
            "env": env_vars,
            # S3 credentials for the team's artifact prefix; optional so a single-tenant install that
            # serves MLflow-proxied artifacts needs none.
            # And the team's MLflow user (``mlcycle teams sync --apply-secrets``): it loads as the team.
            "envFrom": [{"secretRef": {"name": CREDENTIALS_SECRET, "optional": True}},
                        {"secretRef": {"name": MLFLOW_CREDENTIALS_SECRET, "optional": True}}],
        },
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = check_canary_percent(canary_percent)
    isvc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                # Canary traffic splitting needs Knative revisions: Serverless mode.
                ANNOTATION_DEPLOYMENT_MODE: "Serverless",
                ANNOTATION_MODEL_URI: model_uri,
            },
        },
        "spec": {"predictor": predictor},
    }
    check_inference_service(isvc)
    return isvc


def check_inference_service(isvc: dict[str, Any]) -> dict[str, Any]:
    """Check the rules that KServe's webhook and the API server apply beyond the CRD schema.

    Works on any InferenceService dict (rendered here, built by kustomize, or read from a cluster).

    Raises:
        InvalidInputError: the first broken rule, with ``field`` naming where.
    """
    meta = isvc.get("metadata") or {}
    check_dns_label(meta.get("name", ""), field="name", pattern=DNS_1035_LABEL, max_length=MAX_ISVC_NAME)
    if "namespace" in meta:
        check_dns_label(meta["namespace"], field="namespace")
    for key, value in (meta.get("labels") or {}).items():
        check_label(key, value)
    for key in meta.get("annotations") or {}:
        check_label(key, "x")  # annotation keys follow label-key rules; values are free text
    predictor = (isvc.get("spec") or {}).get("predictor")
    if not predictor:
        raise InvalidInputError("an InferenceService needs spec.predictor", field="spec.predictor")
    for key, value in (predictor.get("labels") or {}).items():
        check_label(key, value)
    if "canaryTrafficPercent" in predictor:
        check_canary_percent(predictor["canaryTrafficPercent"])
    low, high = predictor.get("minReplicas", 1), predictor.get("maxReplicas", 0)
    if low < 0 or high < 0 or (high and low > high):
        raise InvalidInputError(
            f"replicas must satisfy 0 <= minReplicas <= maxReplicas, got {low} and {high}",
            field="minReplicas",
        )
    metric = predictor.get("scaleMetric")
    if metric is not None and metric not in SCALE_METRICS:
        raise InvalidInputError(
            f"scaleMetric {metric!r} must be one of {', '.join(SCALE_METRICS)}", field="scaleMetric"
        )
    if "scaleTarget" in predictor and predictor["scaleTarget"] < 1:
        raise InvalidInputError("scaleTarget must be at least 1", field="scaleTarget")
    return isvc
