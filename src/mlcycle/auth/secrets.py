"""A team's MLflow credentials as a Kubernetes Secret: a pure render function and a thin apply layer.

The Secret ``mlcycle-mlflow-credentials`` in the team's namespace holds ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``; the team's PodDefault (``profiles/components/team/poddefault.yaml``) injects
it into every pod labelled ``mlcycle-settings: "true"``, and InferenceServices and the canary-analysis
CronJob read it the same way, so everything a team runs acts as the team.
"""

from __future__ import annotations

from typing import Any

from mlcycle.auth.credentials import Credentials
from mlcycle.errors import MlcycleError

SECRET_NAME = "mlcycle-mlflow-credentials"  # noqa: S105 - the Secret's name, not a secret


class SecretApplyError(MlcycleError):
    """The Kubernetes API refused or failed to store the Secret (HTTP 502: the fault is upstream)."""

    http_status = 502


def render_team_secret(team: str, credentials: Credentials) -> dict[str, Any]:
    """The Secret manifest for ``team`` (``stringData``; the API server stores it base64-encoded)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": team,
            "labels": {"app.kubernetes.io/part-of": "mlcycle", "mlcycle.io/team": team},
        },
        "type": "Opaque",
        "stringData": credentials.as_env(),
    }


def load_core_api() -> Any:
    """A ``CoreV1Api`` from the in-cluster service account, else from ``~/.kube/config``."""
    from kubernetes import client

    from mlcycle.deploy.kube import load_kube_config

    load_kube_config()
    return client.CoreV1Api()


def apply_secret(api: Any, secret: dict[str, Any]) -> str:
    """Create the Secret, or replace it if it exists; returns ``created`` or ``replaced``.

    ``api`` is a ``kubernetes.client.CoreV1Api`` or anything with the same three methods.
    """
    from kubernetes.client.exceptions import ApiException

    name, namespace = secret["metadata"]["name"], secret["metadata"]["namespace"]
    try:
        api.read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status != 404:
            raise SecretApplyError(f"Kubernetes API refused to read secret {namespace}/{name}: {e.status}") from e
        try:
            api.create_namespaced_secret(namespace, secret)
        except ApiException as e2:
            raise SecretApplyError(f"Kubernetes API refused to create secret {namespace}/{name}: {e2.status}") from e2
        return "created"
    try:
        api.replace_namespaced_secret(name, namespace, secret)
    except ApiException as e:
        raise SecretApplyError(f"Kubernetes API refused to replace secret {namespace}/{name}: {e.status}") from e
    return "replaced"
