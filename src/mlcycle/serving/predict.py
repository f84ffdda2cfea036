"""Predict with a loaded model: one call on a decoded request, predictions (and probabilities) back.

Every model is served through MLflow pyfunc unless :func:`mlcycle.serving.loading.load_model` proved a
flavor's fast path gives the same answer on the model's input example (``loaded.fast_path``):

- ``sklearn``: the scikit-learn estimator called directly (``predict_proba`` for classifiers; the
  joblib-free forest sum when ``forest_fast_path``; one pass when ``predict_from_proba``);
- ``lightgbm`` / ``xgboost``: the native model's ``predict`` (and ``predict_proba``) on the typed frame;
- ``pyfunc``: ``PyFuncModel.predict`` on a DataFrame with the signature's column types.

What the model returns becomes a :class:`Prediction`: an array or Series is ``predictions``; a
DataFrame or dict is one output per column (``columns``; ``predictions`` is then its first column, for
metrics and drift). An exception inside the model is an :class:`~mlcycle.errors.InvalidInputError`
(400) when it is MLflow's ``INVALID_PARAMETER_VALUE`` or mlcycle's own ``InvalidInputError``, else a
:class:`~mlcycle.errors.ModelPredictionError` (500) carrying its type and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcycle.errors import InvalidInputError, MlcycleError, ModelPredictionError
from mlcycle.serving.loading import LoadedModel
from mlcycle.serving.schema import Columns, to_model_frame


@dataclass(frozen=True)
class Prediction:
    """Predictions for ``N`` rows; ``probabilities`` is ``[N, len(classes)]`` for classifiers."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: np.ndarray | None = None
    columns: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    def slice(self, start: int, stop: int) -> Prediction:
        """Rows ``start:stop`` (views, no copy): how a micro-batch is split back per request."""
        proba = self.probabilities[start:stop] if self.probabilities is not None else None
        cols = {k: v[start:stop] for k, v in self.columns.items()} if self.columns is not None else None
        return Prediction(self.predictions[start:stop], proba, self.classes, cols)

    def outputs(self) -> dict[str, np.ndarray]:
        """Every output by its v2 name: the model's columns, or ``predictions`` (and ``probabilities``)."""
        if self.columns is not None:
            return dict(self.columns)
        out = {"predictions": self.predictions}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        return out


FOREST_TYPES = ("RandomForestClassifier", "ExtraTreesClassifier")


def supports_forest_fast_path(estimator: object) -> bool:
    """True for a bare single-output random/extra-trees classifier (see :func:`forest_predict_proba`)."""
    return type(estimator).__name__ in FOREST_TYPES and getattr(estimator, "n_outputs_", 0) == 1


def forest_predict_proba(forest: object, x: np.ndarray) -> np.ndarray:
    """``forest.predict_proba(x)`` without joblib: the same sums in the same order, so the same bits.

    scikit-learn dispatches one joblib task per tree even with ``n_jobs=1``; for a 100-tree forest and
    a few rows that bookkeeping costs more than the trees. The input is already validated (finite,
    right width), so each tree's ``tree_.predict`` is called directly on one float32 copy.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    trees = forest.estimators_
    out = np.zeros((len(x32), forest.n_classes_), dtype=np.float64)
    for tree in trees:
        out += tree.tree_.predict(x32)[:, : tree.n_classes_]
    out /= len(trees)
    return out


def _array(values: Any) -> np.ndarray:
    import pandas as pd

    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind == "M":  # datetimes leave as ISO-8601 strings (BYTES)
        arr = np.datetime_as_string(arr, unit="auto").astype(object)
    elif arr.dtype.kind in "US":
        arr = arr.astype(object)
    return arr


def as_prediction(result: Any, n_rows: int) -> Prediction:
    """What a model returned, as a :class:`Prediction` of ``n_rows`` rows.

    Raises:
        ModelPredictionError: the model returned something else than one answer per row.
    """
    import pandas as pd

    columns = None
    if isinstance(result, pd.DataFrame):
        columns = {str(c): _array(result[c]) for c in result.columns}
    elif isinstance(result, dict):
        columns = {
            str(k): _array(v).reshape(n_rows, -1) if _array(v).ndim > 1 else _array(v) for k, v in result.items()
        }
    if columns is not None:
        if not columns:
            raise ModelPredictionError("the model returned no columns")
        for name, arr in columns.items():
            if len(arr) != n_rows:
                raise ModelPredictionError(f"the model returned {len(arr)} rows in {name!r} for {n_rows} input rows")
        return Prediction(next(iter(columns.values())), columns=columns)
    preds = _array(result)
    if preds.ndim == 0 or len(preds) != n_rows:
        raise ModelPredictionError(
            f"the model returned {type(result).__name__} of shape {list(preds.shape)} for {n_rows} input rows"
        )
    if preds.ndim == 2 and preds.shape[1] == 1:
        preds = preds[:, 0]
    return Prediction(preds)


def _sklearn(loaded: LoadedModel, x: Any) -> Prediction:
    est = loaded.estimator
    compiled = loaded.compiled
    # checked at load time to reproduce est (mlcycle.serving.compiled): numeric arrays, or typed columns
    # for a pipeline compiled with one input per column (fed the decoded arrays: no DataFrame is built)
    if compiled is not None and loaded.fast_path == "sklearn" and (compiled.inputs or isinstance(x, np.ndarray)):
        if loaded.classes is None:
            return Prediction(compiled.predict(x))
        proba = compiled.predict_proba(x)
        return Prediction(loaded.classes[np.argmax(proba, axis=1)], proba, loaded.classes)
    if type(x) is Columns:  # a decoded mixed-type request: the estimator's DataFrame, built once per call
        x = x.frame()
    if loaded.classes is None:
        return as_prediction(est.predict(x), len(x))
    proba = forest_predict_proba(est, x) if loaded.forest_fast_path else est.predict_proba(x)
    fast = loaded.predict_from_proba
    preds = loaded.classes[np.argmax(proba, axis=1)] if fast else np.asarray(est.predict(x))
    return Prediction(preds, proba, loaded.classes)


def _native(loaded: LoadedModel, x: Any) -> Prediction:
    frame = to_model_frame(x, loaded.schema)
    est = loaded.estimator
    out = as_prediction(est.predict(frame), len(frame))
    if loaded.classes is not None:
        return Prediction(out.predictions, np.asarray(est.predict_proba(frame), dtype=np.float64), loaded.classes)
    return out


def _pyfunc(loaded: LoadedModel, x: Any) -> Prediction:
    frame = to_model_frame(x, loaded.schema)
    return as_prediction(loaded.pyfunc_model().predict(frame), len(frame))


def _pyfunc_direct(loaded: LoadedModel, x: Any) -> Prediction:
    """The pyfunc model's own predict function, without MLflow's per-call schema enforcement: the decoder
    has already checked and typed every column by the signature (used only where the load-time check in
    ``loading`` proved it gives pyfunc's answer and types)."""
    frame = to_model_frame(x, loaded.schema)
    return as_prediction(loaded.direct_predict()(frame), len(frame))


RUNNERS = {"sklearn": _sklearn, "lightgbm": _native, "xgboost": _native, "pyfunc": _pyfunc,
           "pyfunc-direct": _pyfunc_direct}


def run_model(loaded: LoadedModel, x: Any, path: str) -> Prediction:
    """Predict ``x`` through one path (``sklearn``, ``lightgbm``, ``xgboost`` or ``pyfunc``), errors mapped."""
    try:
        return RUNNERS[path](loaded, x)
    except MlcycleError:
        raise
    except Exception as e:
        raise model_error(e) from e


def model_error(e: Exception) -> MlcycleError:
    """An exception raised inside a model, as the error the client gets (400 or 500, never a bare 500)."""
    if getattr(e, "error_code", None) == "INVALID_PARAMETER_VALUE":
        message = getattr(e, "message", None) or str(e)
        return InvalidInputError(f"the model refused the input: {message}", field="inputs")
    return ModelPredictionError(f"the model raised {type(e).__name__}: {e}")


def predict(loaded: LoadedModel, x: Any) -> Prediction:
    """Predict ``x``: a float ``[N, F]`` array (numeric or tensor signature), or the :class:`Columns` or
    typed DataFrame of a mixed one.

    Raises:
        InvalidInputError: the model refused the input (MLflow ``INVALID_PARAMETER_VALUE``).
        ModelPredictionError: the model raised anything else (500, with its type and message).
    """
    return run_model(loaded, x, loaded.fast_path)
