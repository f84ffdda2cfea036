"""Load any MLflow model with a signature for serving: resolve the reference, fetch once, prove fast paths.

``load_model("models:/wine@champion", settings)`` resolves the alias to its registry version
(``MlflowClient.get_model_version_by_alias``), loads exactly that version (so an alias moving during the
load cannot mix two versions), checks its recorded requirements against this environment
(:mod:`mlcycle.serving.requirements`), loads it through MLflow pyfunc and returns a :class:`LoadedModel`.

A flavor's fast path (the scikit-learn estimator called directly, LightGBM's or XGBoost's native
``predict``) is used only when it gives exactly pyfunc's predictions on the model's input example,
decoded as a request would be; otherwise every request goes through pyfunc. ``fast_path`` says which.
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
from mlcycle.tracking import auth_error

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
    fast_path: str = "pyfunc"
    flavors: tuple[str, ...] = ()
    output_columns: list[dict[str, Any]] | None = None
    pyfunc: Any = field(repr=False, default=None)
    compiled: Any = field(repr=False, default=None)
    compile_note: str = ""
    direct: Any = field(repr=False, default=None)

    def pyfunc_model(self) -> Any:
        """The MLflow ``PyFuncModel`` (loaded again after unpickling in a REST worker)."""
        if self.pyfunc is None:
            import mlflow.pyfunc

            self.pyfunc = mlflow.pyfunc.load_model(str(self.local_path))
        return self.pyfunc

    def direct_predict(self) -> Any:
        """The pyfunc model's own predict function, ``fn(frame)`` (the ``pyfunc-direct`` path; see
        :func:`mlcycle.serving.mlflow_private.direct_predict_fn`), resolved once per process."""
        if self.direct is None:
            from mlcycle.serving.mlflow_private import direct_predict_fn

            pm = self.pyfunc_model()
            # None only where MLflow's internals differ from the load-time check's: the checked call then
            self.direct = direct_predict_fn(pm) or pm.predict
        return self.direct

    def __getstate__(self) -> dict[str, Any]:
        # A PyFuncModel need not pickle (a user's PythonModel class may not); a worker reloads it.
        state = dict(self.__dict__)
        state["pyfunc"] = state["direct"] = None
        return state

    @property
    def label(self) -> str:
        """``wine:3``: name and version, for logs and messages."""
        return f"{self.registered_name or self.served_name}:{self.version or self.uri}"

    @property
    def runtime(self) -> str:
        """What computes the predictions: ``onnxruntime`` or ``treelite`` when compiled, else the fast path."""
        if self.compiled is not None:
            return self.compiled.runtime
        return "scikit-learn" if self.fast_path == "sklearn" else self.fast_path

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    @property
    def prediction_datatype(self) -> str:
        from mlcycle.serving.schema import v2_datatype

        if self.classes is not None:
            return v2_datatype(np.asarray(self.classes))
        return self._example_datatype or "FP64"

    _example_datatype: str | None = None


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
        if (refused := auth_error(e, f"model {ref.uri}")) is not None:
            raise refused from e
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
        InvalidInputError: the model has no usable signature, or pyfunc cannot load it.
        ModelNotServableError: its recorded requirements do not hold here (package and both versions named).
    """
    import mlflow
    import mlflow.pyfunc
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
        if (refused := auth_error(e, f"model {uri}")) is not None:
            raise refused from e
        raise
    except FileNotFoundError as e:
        raise ModelNotFoundError(f"model {uri} not found: {e}", field="model") from e
    if not (local / "MLmodel").is_file():
        raise ModelNotFoundError(f"{uri} is not an MLflow model (no MLmodel file in it)", field="model")
    meta = Model.load(str(local))
    schema = input_schema(meta.signature)
    from mlcycle.serving.requirements import check_model_requirements

    check_model_requirements(local, uri)
    served = name or (parsed.base_name if parsed.is_registry else "model")
    loaded = LoadedModel(
        served_name=served,
        registered_name=parsed.name,
        version=version,
        ref=parsed.uri,
        uri=uri,
        run_id=run_id or meta.run_id,
        estimator=None,
        classes=None,
        schema=schema,
        local_path=local,
        mlflow_model=meta,
        flavors=tuple(sorted(meta.flavors)),
    )
    try:
        loaded.pyfunc = mlflow.pyfunc.load_model(str(local))
    except MlflowException:
        raise
    except Exception as e:  # noqa: BLE001 - a model that cannot load is refused with its cause
        raise InvalidInputError(f"{uri} cannot be loaded through MLflow pyfunc: {type(e).__name__}: {e}",
                                field="model") from e
    _choose_fast_path(loaded)
    log.info("loaded %s from %s (%d inputs, %s path)", loaded.label, uri, schema.n_features, loaded.fast_path)
    return loaded


def _same_prediction(a: Any, b: Any) -> bool:
    """Bit-identical predictions (and the same output columns)."""
    ca, cb = a.outputs(), b.outputs()
    ca.pop("probabilities", None)
    cb.pop("probabilities", None)
    if list(ca) != list(cb):
        return False
    for k in ca:
        x, y = np.asarray(ca[k]), np.asarray(cb[k])
        if x.shape != y.shape or x.dtype.kind != y.dtype.kind:
            return False
        if x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not bool(np.all(x == y)):
            return False
    return True


def _output_columns(pred: Any) -> list[dict[str, Any]] | None:
    from mlcycle.serving.schema import v2_datatype

    if pred.columns is None:
        return None
    return [
        {"name": k, "datatype": v2_datatype(np.asarray(v)), "shape": [-1, *np.asarray(v).shape[1:]]}
        for k, v in pred.columns.items()
    ]


def _choose_fast_path(loaded: LoadedModel) -> None:
    """Run the input example through pyfunc, then each candidate fast path; keep the first identical one."""
    from mlcycle.serving.predict import run_model

    try:
        x = load_input_example(loaded)
    except Exception:  # noqa: BLE001 - an unreadable example only costs the fast paths
        log.warning("could not read the input example of %s; serving through pyfunc", loaded.label, exc_info=True)
        x = None
    if x is None or len(x) == 0:
        log.info("%s has no input example: no fast path can be proven, serving through pyfunc", loaded.label)
        return
    reference = run_model(loaded, x, "pyfunc")
    loaded.output_columns = _output_columns(reference)
    from mlcycle.serving.schema import v2_datatype

    loaded._example_datatype = v2_datatype(np.asarray(reference.predictions))
    for path, native in [] if reference.columns is not None else _candidates(loaded):
        loaded.estimator, loaded.fast_path = native, path
        loaded.classes = _classes(native)
        loaded.forest_fast_path = loaded.predict_from_proba = False
        try:
            if path == "sklearn":
                _single_threaded(native)
                if isinstance(x, np.ndarray):
                    loaded.schema = _align_feature_names(native, loaded.schema, loaded.uri)
                    x = load_input_example(loaded)
                    reference = run_model(loaded, x, "pyfunc")
                loaded.forest_fast_path = _forest_fast_path_matches(loaded, x)
                loaded.predict_from_proba = _proba_argmax_matches(loaded, x)
            got = run_model(loaded, x, path)
        except Exception:  # noqa: BLE001 - a fast path that fails on the example is simply not used
            log.info("%s: the %s fast path fails on the input example; not used", loaded.label, path, exc_info=True)
            got = None
        if got is not None and _same_prediction(got, reference):
            return
        log.info("%s: the %s fast path differs from pyfunc on the input example; not used", loaded.label, path)
    loaded.estimator, loaded.fast_path, loaded.classes = None, "pyfunc", None
    loaded.forest_fast_path = loaded.predict_from_proba = False
    if _direct_pyfunc_matches(loaded, x, reference):
        loaded.fast_path = "pyfunc-direct"


def _direct_pyfunc_matches(loaded: LoadedModel, x: Any, reference: Any) -> bool:
    """Whether the pyfunc model's own predict function, called without MLflow's schema enforcement, gives
    pyfunc's answer: only for a column signature without optional columns or params, no type-hint
    signature and no declared dependencies, when the decoded example already has exactly the columns,
    types and values MLflow's enforcement would hand the model, and the answers are identical."""
    from mlcycle.serving.predict import run_model
    from mlcycle.serving.schema import to_model_frame

    schema = loaded.schema
    if schema.is_tensor or any(schema.optional or ()):
        return False
    try:
        from mlcycle.serving.mlflow_private import direct_predict_fn, enforce_schema

        pm = loaded.pyfunc_model()
        loaded.direct = direct_predict_fn(pm)
        if loaded.direct is None:
            return False
        frame = to_model_frame(x, schema)
        enforced = enforce_schema(frame, pm)
        if list(enforced.columns) != list(frame.columns) or not enforced.dtypes.equals(frame.dtypes):
            return False
        if not enforced.equals(frame):
            return False
        got = run_model(loaded, x, "pyfunc-direct")
    except Exception:  # noqa: BLE001 - MLflow internals that differ or fail only cost the direct call
        log.info("%s: the direct pyfunc call cannot be checked; serving through pyfunc", loaded.label, exc_info=True)
        return False
    if not _same_prediction(got, reference):
        log.info("%s: the direct pyfunc call differs from pyfunc on the input example; not used", loaded.label)
        return False
    return True


def _classes(native: Any) -> np.ndarray | None:
    classes = getattr(_final_step(native), "classes_", None)
    if classes is None or not hasattr(native, "predict_proba"):
        return None
    return np.asarray(classes)


def _candidates(loaded: LoadedModel) -> list[tuple[str, Any]]:
    """``(path, native model)`` for the flavors with a fast path, loaded separately from pyfunc's copy."""
    flavors = loaded.mlflow_model.flavors
    local = str(loaded.local_path)
    out = []
    try:
        if "sklearn" in flavors:
            import mlflow.sklearn

            out.append(("sklearn", mlflow.sklearn.load_model(local)))
        elif "lightgbm" in flavors:
            import mlflow.lightgbm

            model = mlflow.lightgbm.load_model(local)
            if hasattr(model, "predict") and hasattr(model, "fit"):  # the scikit-learn API (LGBMClassifier...)
                out.append(("lightgbm", model))
        elif "xgboost" in flavors:
            import mlflow.xgboost

            model = mlflow.xgboost.load_model(local)
            if hasattr(model, "fit"):  # XGBRegressor / XGBClassifier
                out.append(("xgboost", model))
    except Exception:  # noqa: BLE001 - a flavor that cannot load natively is served through pyfunc
        log.info("%s: the native model cannot be loaded; serving through pyfunc", loaded.label, exc_info=True)
    return out


def load_input_example(loaded: LoadedModel) -> Any:
    """The model's saved input example decoded as a request would be, if it has one.

    A float ``[N, F]`` array in signature order for a numeric or tensor signature, a typed DataFrame
    for a mixed one.
    """
    from mlcycle.serving.schema import frame_to_array, frame_to_input

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
        if loaded.schema.is_numeric:
            return frame_to_array(example, loaded.schema)
        x, reasons = frame_to_input(example, loaded.schema)
        if reasons is not None:
            raise InvalidInputError(f"the input example has bad rows: {'; '.join(r for r in reasons if r)}")
        return x
    arr = np.asarray(example, dtype=np.float64)
    return np.ascontiguousarray(arr.reshape(len(arr), -1))


def _forest_fast_path_matches(loaded: LoadedModel, x: Any) -> bool:
    """True when the joblib-free forest probabilities equal ``predict_proba`` bit for bit."""
    from mlcycle.serving.predict import forest_predict_proba, supports_forest_fast_path

    if loaded.classes is None or not supports_forest_fast_path(loaded.estimator) or not isinstance(x, np.ndarray):
        return False
    if len(x) == 0:
        return False
    return bool(np.array_equal(forest_predict_proba(loaded.estimator, x), loaded.estimator.predict_proba(x)))


def _proba_argmax_matches(loaded: LoadedModel, x: Any) -> bool:
    """True when ``classes[argmax(predict_proba)]`` equals ``predict`` on the input example."""
    if loaded.classes is None:
        return False
    if len(x) == 0:
        return False
    est = loaded.estimator
    derived = loaded.classes[np.argmax(est.predict_proba(x), axis=1)]
    return bool(np.array_equal(derived, est.predict(x)))


def served_name_of(ref: str, team: str = "") -> str:
    """The name a reference is served under: its base name (``wine``), or ``model`` for a plain URI."""
    parsed = _parse(ref, team)
    return split_name(parsed.name)[1] if parsed.name else "model"
