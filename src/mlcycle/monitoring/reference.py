"""The reference side of a drift check: the model version and the training sample stored with it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mlcycle.errors import ModelNotFoundError
from mlcycle.registry.uris import parse_model_ref

REFERENCE_ARTIFACT = "reference/reference.parquet"
TARGET_TAG = "mlcycle.target"
PREDICTION = "prediction"


@dataclass(frozen=True)
class Reference:
    """A served model version and its reference sample."""

    model_name: str  # registered (team-qualified) name
    version: str
    run_id: str
    frame: pd.DataFrame
    target: str | None
    features: list[str]
    run_tags: dict[str, str] = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        return self.model_name.rpartition(".")[2]


def resolve_version(model_ref: str, team: str = ""):
    """The MLflow ``ModelVersion`` a reference like ``models:/wine@champion`` points at.

    Raises:
        InvalidInputError: the reference is malformed or not a registry reference.
        ModelNotFoundError: the model, alias or version does not exist.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlcycle.errors import InvalidInputError

    ref = parse_model_ref(model_ref, team)
    if not ref.is_registry:
        raise InvalidInputError(
            f"{model_ref!r} is not a registered model; drift needs models:/<name>@<alias> or /<version>",
            field="model",
        )
    client = MlflowClient()
    try:
        if ref.alias:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        return client.get_model_version(ref.name, ref.version)
    except MlflowException as e:
        from mlcycle.tracking import auth_error

        if (refused := auth_error(e, f"model {ref.uri}")) is not None:  # 401/403: not "not found"
            raise refused from e
        raise ModelNotFoundError(f"{ref.uri} does not exist: {e.message}", field="model") from e


def load_reference(model_version) -> Reference:
    """Download ``reference/reference.parquet`` from the run that logged ``model_version``.

    Raises:
        ModelNotFoundError: the run has no reference sample (the model was not trained by mlcycle).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_id = model_version.run_id
    try:
        path = client.download_artifacts(run_id, REFERENCE_ARTIFACT)
    except (MlflowException, OSError) as e:
        raise ModelNotFoundError(
            f"model {model_version.name} version {model_version.version}: run {run_id} has no "
            f"{REFERENCE_ARTIFACT}; retrain it with mlcycle so the reference sample is stored",
            field="model",
        ) from e
    frame = pd.read_parquet(path)
    tags = dict(client.get_run(run_id).data.tags)
    target = tags.get(TARGET_TAG)
    features = [c for c in frame.columns if c not in {target, PREDICTION}]
    return Reference(
        model_name=model_version.name,
        version=str(model_version.version),
        run_id=run_id,
        frame=frame,
        target=target,
        features=features,
        run_tags={k: v for k, v in tags.items() if k.startswith("mlcycle.")},
    )


def logged_model_id(model_version) -> str | None:
    """The MLflow 3 logged-model id behind a registry version (its ``source`` is ``models:/m-...``)."""
    if getattr(model_version, "model_id", None):
        return model_version.model_id
    source = getattr(model_version, "source", "") or ""
    if source.startswith("models:/m-"):
        return source.removeprefix("models:/").split("/", 1)[0]
    return None
