"""The deployment environments and what each one serves: the one table overlays and the deploy step share.

Each environment is its own Kubeflow cluster (Kubeflow installs one per cluster); the platform services
(MLflow, MinIO, PostgreSQL, Pushgateway) live in :data:`PLATFORM_NAMESPACE` and a team's models in the
team's namespace. ``kustomize/overlays/<env>`` holds the same values as :data:`ENVIRONMENTS`; the test
``tests/manifests/test_overlays.py::test_overlay_inference_service_matches_render`` fails when they differ.

Environment ↔ alias: ``dev`` and ``staging`` serve ``challenger`` (the newest candidate that passed the
gate), ``prod`` serves ``champion``. A new version reaches ``dev`` straight away (no canary), ``staging``
and ``prod`` by a canary that the analysis promotes or rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlcycle.errors import InvalidInputError
from mlcycle.registry.uris import CHALLENGER, CHAMPION

PLATFORM_NAMESPACE = "mlcycle"
RUNTIME_NAME = "mlcycle-mlflow"  # the ClusterServingRuntime in kustomize/base/serving
MODEL_FORMAT = "mlflow"
MODEL_URI_ENV = "MLCYCLE_MODEL_URI"  # the runtime passes $(MLCYCLE_MODEL_URI) to `python -m inference`
# The Secret (its name, not a credential) with a team's S3 keys, provisioned with its profile.
CREDENTIALS_SECRET = "mlcycle-s3-credentials"  # noqa: S105 (the Secret's name, not a credential)
# The team's MLflow user, written by `mlcycle teams sync --apply-secrets` (mlcycle.auth.secrets).
MLFLOW_CREDENTIALS_SECRET = "mlcycle-mlflow-credentials"  # noqa: S105 (the Secret's name, not a credential)
PART_OF = "mlcycle"
# Artifacts and payload logs live in this bucket, one prefix per team (the team's S3 user is scoped to it).
S3_ROOT = "s3://mlflow"


def payload_destination(team: str) -> str:
    """Where a team's predictors write payload logs (contract layout under an ``s3://`` prefix)."""
    return f"{S3_ROOT}/{team}/payloads" if team else f"{S3_ROOT}/payloads"


ScaleMetric = Literal["cpu", "memory", "concurrency", "rps"]


@dataclass(frozen=True)
class Environment:
    """What one environment serves and how it scales.

    Attributes:
        name: ``dev``, ``staging`` or ``prod``.
        alias: the registry alias this environment serves.
        min_replicas: predictor replicas at rest (0 lets Knative scale to zero).
        max_replicas: the autoscaler's ceiling.
        scale_metric: KServe ``scaleMetric`` (``concurrency`` and ``rps`` need Serverless mode).
        scale_target: target value of the metric per replica.
        canary_percent: traffic a new version gets first; ``None`` replaces the old version at once.
    """

    name: str
    alias: str
    min_replicas: int
    max_replicas: int
    scale_metric: ScaleMetric
    scale_target: int
    canary_percent: int | None


ENVIRONMENTS: dict[str, Environment] = {
    "dev": Environment("dev", CHALLENGER, 0, 1, "concurrency", 5, None),
    "staging": Environment("staging", CHALLENGER, 1, 2, "concurrency", 10, 50),
    "prod": Environment("prod", CHAMPION, 2, 10, "concurrency", 10, 10),
}


def get_environment(name: str) -> Environment:
    """The :class:`Environment` called ``name``.

    Raises:
        InvalidInputError: no such environment (``field`` is ``environment``).
    """
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        known = ", ".join(ENVIRONMENTS)
        raise InvalidInputError(f"unknown environment {name!r}; choose one of: {known}", field="environment") from None
