"""Point MLflow at the configured tracking server and registry, with nothing calling out.

``configure`` is the one place that turns :class:`~mlcycle.config.Settings` into MLflow state. Every
entry point (CLI, component, predictor, test) calls it before touching MLflow.
"""

from __future__ import annotations

import os
import sys

from mlcycle.config import Settings
from mlcycle.errors import AuthenticationError, MlcycleError, PermissionDeniedError

# MLflow's telemetry would call out to the internet; the project switches it off everywhere.
_QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Against a tracking server MLflow prints "View run ... at: <url>" to stdout, which would break `--json`.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def configure(settings: Settings) -> None:
    """Create local state directories and point MLflow at the configured stores."""
    for key, value in _QUIET_MLFLOW.items():
        os.environ.setdefault(key, value)
    if settings.s3_endpoint_url:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    if settings.is_local:
        settings.home_dir.mkdir(parents=True, exist_ok=True)
        (settings.home_dir / "artifacts").mkdir(exist_ok=True)

    # Through the environment, so a step that never touches MLflow does not pay for importing it (and
    # child processes inherit it); an already-imported MLflow is pointed at the stores directly.
    # MLflow's clients read the credentials from the environment on every request.
    os.environ.update(settings.mlflow_credentials_env)
    os.environ["MLFLOW_TRACKING_URI"] = settings.effective_tracking_uri
    os.environ["MLFLOW_REGISTRY_URI"] = settings.effective_registry_uri
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(settings.effective_tracking_uri)
        mlflow.set_registry_uri(settings.effective_registry_uri)


def auth_error(e: Exception, what: str = "") -> MlcycleError | None:
    """The mlcycle error for an MLflow 401/403 (``UNAUTHENTICATED`` / ``PERMISSION_DENIED``), else ``None``.

    The message is one line that names what was refused and what to set; it never repeats a credential.
    """
    return refusal(getattr(e, "error_code", None), what)


def refusal(code: str | None, what: str = "") -> MlcycleError | None:
    """:func:`auth_error` from MLflow's error code alone (``UNAUTHENTICATED`` | ``PERMISSION_DENIED``)."""
    where = f" {what}" if what else ""
    if code == "UNAUTHENTICATED":
        return AuthenticationError(
            f"the MLflow server refused{where}: missing or invalid credentials (set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD, e.g. `set -a; . $MLCYCLE_HOME/credentials/<team>.env`)",
            field="credentials",
        )
    if code == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user"
        return PermissionDeniedError(
            f"the MLflow server refused{where}: {user} has no permission on it (another team's, or it does "
            "not exist: MLflow answers both with 403)",
            field="credentials",
        )
    return None


def ensure_experiment(name: str, settings: Settings) -> str:
    """Return the id of experiment ``name``, creating it under the team's artifact root if needed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # Locally (or with an explicit MLCYCLE_ARTIFACT_ROOT) artifacts go under the team's root; against a
    # tracking server, the server's own artifact store (proxied S3/MinIO on a cluster) decides.
    location = None
    if settings.is_local or settings.artifact_root:
        location = f"{settings.effective_artifact_root}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another process created it between our look-up and create: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def configured_settings(**overrides: object) -> Settings:
    """Settings from the environment (plus overrides), with MLflow configured: a component's first line."""
    from mlcycle import logs
    from mlcycle.config import load_settings

    settings = load_settings(**overrides)
    configure(settings)
    logs.configure(settings)  # JSON/text lines at MLCYCLE_LOG_LEVEL, component = the kfp function
    return settings
