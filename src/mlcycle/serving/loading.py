"""Load an MLflow scikit-learn model for serving: resolve the reference, fetch once, keep the estimator.

``load_model("models:/wine@champion", settings)`` resolves the alias to its registry version
(``MlflowClient.get_model_version_by_alias``), loads exactly that version (so an alias moving during the
load cannot mix two versions), and returns a :class:`LoadedModel`: the raw scikit-learn estimator
(called directly, not through pyfunc, for speed), its classes, and its input schema from the signature.
Everything that touches MLflow, the network or the disk happens here, once; the request path only uses
the returned object.

Batch inference reuses :func:`load_model` and :func:`mlcycle.serving.predict.predict` unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError, ModelNotFoundError
from mlcycle.registry.uris import ModelRef, parse_model_ref, split_name
from mlcycle.serving.schema import InputSchema, input_schema

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


@dataclass
class LoadedModel:
    """A model version ready to predict. Built by :func:`load_model`; immutable in practice.

    Attributes:
        served_name: the name it is served under (the base name, ``wine``).
        registered_name: the registry name (``team-a.wine``), or ``None`` for a plain URI.
        version: the registry version as a string (``"3"``), or ``None`` for a plain URI.
        ref: the reference it was loaded from (``models:/wine@champion``).
        uri: the exact URI loaded (``models:/wine/3``).
        run_id: the MLflow run that logged it.
        estimator: the scikit-learn estimator.
        classes: the classifier's classes (``None`` for a regressor).
        schema: the input schema from the signature.
        local_path: where the model's files are on disk.
        forest_fast_path: ``predict_proba`` of a bare forest bypasses joblib (checked at load time to give
            bit-identical probabilities; see :func:`mlcycle.serving.predict.forest_predict_proba`).
        predict_from_proba: predictions are ``classes[argmax(proba)]`` (checked at load time to equal
            ``estimator.predict``), which saves a second pass through the model.
        compiled: a :class:`mlcycle.serving.compiled.CompiledPredictor` that reproduced the estimator
            (set by :func:`mlcycle.serving.compiled.compile_loaded`), or ``None``; ``compile_note`` says
            how it was checked or why the model is not compiled.
    """

    served_name: str
    registered_name: str | None
    version: str | None
    ref: str
    uri: str
    run_id: str | None
    estimator: Any
    classes: np.ndarray | None
    schema: InputSchema
    local_path: Path
    mlflow_model: Any = field(repr=False, default=None)
    predict_from_proba: bool = False
    forest_fast_path: bool = False
    compiled: Any = field(repr=False, default=None)
    compile_note: str = ""

    @property
    def label(self) -> str:
        """``wine:3``: name and version, for logs and messages."""
        return f"{self.registered_name or self.served_name}:{self.version or self.uri}"

    @property
    def runtime(self) -> str:
        """What computes the predictions: ``onnxruntime``, ``treelite`` or ``scikit-learn``."""
        return self.compiled.runtime if self.compiled is not None else "scikit-learn"

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def prediction_datatype(self) -> str:
        from mlcycle.serving.schema import v2_datatype

        if self.classes is not None:
            return v2_datatype(np.asarray(self.classes))
        return "FP64"


def _mlflow_not_found(e: Exception) -> bool:
    return getattr(e, "error_code", None) in _NOT_FOUND_CODES


def resolve_version(ref: ModelRef) -> tuple[str, str | None]:
    """For a registry ref, the ``(version, run_id)`` it points at now; ``(None, None)`` otherwise.

    Raises:
        ModelNotFoundError: the model, version or alias does not exist.
    """
    if not ref.is_registry:
        return None, None  # type: ignore[return-value]
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        if ref.alias:
            mv = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            mv = client.get_model_version(ref.name, ref.version)
    except MlflowException as e:
        if _mlflow_not_found(e):
            raise ModelNotFoundError(f"model {ref.uri} not found: {e.message}", field="model") from e
        raise
    return str(mv.version), mv.run_id


def _single_threaded(estimator: Any) -> None:
    """Set every ``n_jobs`` parameter to 1: joblib's thread pool costs more than it saves per request."""
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator; leave it alone
        return
    jobs = {k: 1 for k, v in params.items() if k.split("__")[-1] == "n_jobs" and v != 1}
    if jobs:
        estimator.set_params(**jobs)


def _align_feature_names(estimator: Any, schema: InputSchema, uri: str) -> InputSchema:
    """Put the schema's columns in the order the estimator was fitted with, then drop the names.

    The predictor checks names itself and passes a plain array in the fitted order; without
    ``feature_names_in_`` scikit-learn skips its per-call name check (and its warning per request).
    """
    from mlcycle.serving.schema import make_schema

    first = estimator.steps[0][1] if getattr(estimator, "steps", None) else estimator
    names = getattr(first, "feature_names_in_", None)
    if names is None or schema.is_tensor:
        return schema
    names = [str(n) for n in names]
    if names != list(schema.columns):
        if sorted(names) != sorted(schema.columns):
            raise InvalidInputError(
                f"{uri}: the signature's columns {list(schema.columns)} are not the columns the model "
                f"was fitted on {names}",
                field="signature",
            )
        types = dict(zip(schema.columns, schema.types, strict=True))
        schema = make_schema(names, [types[n] for n in names])
    if "feature_names_in_" in vars(first):
        del first.feature_names_in_
    return schema


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _parse(ref: str, team: str) -> ModelRef:
    """Like ``parse_model_ref``, and a local model directory (``/path/to/model``) is a plain URI."""
    if ref.startswith(("/", "./", "../")):
        return ModelRef(uri=ref)
    return parse_model_ref(ref, team)


def load_model(
    ref: str, settings: Settings, *, name: str | None = None, dst_path: str | Path | None = None
) -> LoadedModel:
    """Load the model ``ref`` points at (``models:/name@alias``, ``models:/name/N``, any MLflow URI).

    Args:
        ref: the model reference; ``wine@champion`` is shorthand for ``models:/wine@champion``.
        settings: where MLflow is (call :func:`mlcycle.tracking.configure` first) and the team.
        name: the name to serve it under; default: the registered base name, or ``model``.
        dst_path: an existing directory to download into (the predictor gives each version its own and
            removes it when that version stops serving); default: MLflow's choice (a new temporary
            directory for a remote store, the artifact itself for a local one).

    Raises:
        ModelNotFoundError: the model, version or alias does not exist (HTTP 404).
        InvalidInputError: the model has no usable signature, or is not a scikit-learn model.
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    parsed = _parse(ref, settings.team)
    version, run_id = resolve_version(parsed)
    uri = f"models:/{parsed.name}/{version}" if parsed.is_registry else parsed.uri
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(dst_path) if dst_path is not None else None
            )
        )
    except MlflowException as e:
        if _mlflow_not_found(e):
            raise ModelNotFoundError(f"model {uri} not found: {e.message}", field="model") from e
        raise
    except FileNotFoundError as e:
        raise ModelNotFoundError(f"model {uri} not found: {e}", field="model") from e
    if not (local / "MLmodel").is_file():
        raise ModelNotFoundError(f"{uri} is not an MLflow model (no MLmodel file in it)", field="model")
    meta = Model.load(str(local))
    if "sklearn" not in meta.flavors:
        raise InvalidInputError(
            f"{uri} has flavors {sorted(meta.flavors)}; this predictor serves scikit-learn models",
            field="model",
        )
    schema = input_schema(meta.signature)
    estimator = mlflow.sklearn.load_model(str(local))
    _single_threaded(estimator)
    schema = _align_feature_names(estimator, schema, uri)
    classes = getattr(_final_step(estimator), "classes_", None)
    if classes is not None and not hasattr(estimator, "predict_proba"):
        classes = None
    served = name or (parsed.base_name if parsed.is_registry else "model")
    loaded = LoadedModel(
        served_name=served,
        registered_name=parsed.name,
        version=version,
        ref=parsed.uri,
        uri=uri,
        run_id=run_id or meta.run_id,
        estimator=estimator,
        classes=np.asarray(classes) if classes is not None else None,
        schema=schema,
        local_path=local,
        mlflow_model=meta,
    )
    loaded.forest_fast_path = _forest_fast_path_matches(loaded)
    loaded.predict_from_proba = _proba_argmax_matches(loaded)
    log.info("loaded %s from %s (%d features)", loaded.label, uri, schema.n_features)
    return loaded


def load_input_example(loaded: LoadedModel) -> np.ndarray | None:
    """The model's saved input example as a float ``[N, F]`` array in signature order, if it has one."""
    from mlcycle.serving.schema import frame_to_array

    meta = loaded.mlflow_model
    if meta is None or meta.saved_input_example_info is None:
        return None
    example = meta.load_input_example(str(loaded.local_path))
    if example is None:
        return None
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        if loaded.schema.is_tensor:
            return np.ascontiguousarray(example.to_numpy(dtype=np.float64))
        return frame_to_array(example, loaded.schema)
    arr = np.asarray(example, dtype=np.float64)
    return np.ascontiguousarray(arr.reshape(len(arr), -1))


def _forest_fast_path_matches(loaded: LoadedModel) -> bool:
    """True when the joblib-free forest probabilities equal ``predict_proba`` bit for bit."""
    from mlcycle.serving.predict import forest_predict_proba, supports_forest_fast_path

    if loaded.classes is None or not supports_forest_fast_path(loaded.estimator):
        return False
    try:
        x = load_input_example(loaded)
    except Exception:  # noqa: BLE001 - an unreadable example only costs the shortcut
        return False
    if x is None or len(x) == 0:
        return False
    return bool(np.array_equal(forest_predict_proba(loaded.estimator, x), loaded.estimator.predict_proba(x)))


def _proba_argmax_matches(loaded: LoadedModel) -> bool:
    """True when ``classes[argmax(predict_proba)]`` equals ``predict`` on the input example."""
    if loaded.classes is None:
        return False
    try:
        x = load_input_example(loaded)
    except Exception:  # noqa: BLE001 - an unreadable example only costs the shortcut
        log.warning("could not read the input example of %s", loaded.label, exc_info=True)
        return False
    if x is None or len(x) == 0:
        return False
    est = loaded.estimator
    derived = loaded.classes[np.argmax(est.predict_proba(x), axis=1)]
    return bool(np.array_equal(derived, est.predict(x)))


def served_name_of(ref: str, team: str = "") -> str:
    """The name a reference is served under: its base name (``wine``), or ``model`` for a plain URI."""
    parsed = _parse(ref, team)
    return split_name(parsed.name)[1] if parsed.name else "model"
