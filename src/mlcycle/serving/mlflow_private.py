"""Every use of MLflow's private API, in one place; ``tests/unit/serving/test_mlflow_private.py`` pins each.

The predictor's ``pyfunc-direct`` path calls a pyfunc model's own predict function without MLflow's
per-call schema enforcement (the decoder has already checked and typed every column). MLflow 3 has no
public way to do that, nor to ask whether its enforcement would change an input, so these read:

- ``PyFuncModel._predict_fn``: the flavor's predict function that ``PyFuncModel.predict`` calls after
  enforcing the signature;
- ``ModelSignature``/``Model`` helpers ``_is_signature_from_type_hint``, ``_is_type_hint_from_example``
  and ``mlflow.pyfunc._get_dependencies_schema_from_model``: what would make ``predict`` do more than
  enforce the schema (type-hint conversion, dependency schemas);
- ``mlflow.models.utils._enforce_schema``: MLflow's enforcement itself, run once at load time on the
  input example to prove it changes nothing.

If MLflow changes any of these, :func:`direct_predict_fn` answers ``None`` (or the load-time check
fails) and the model is served through ``PyFuncModel.predict``: slower, never wrong. The pinning test
says which one changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def direct_predict_fn(pyfunc_model: Any) -> Callable[[Any], Any] | None:
    """The model's own predict function when ``PyFuncModel.predict`` would only enforce the input schema
    before calling it; ``None`` when it would do more (type-hint signature, params, dependency schemas)
    or when MLflow's internals are not what this module expects."""
    import mlflow.pyfunc

    fn = getattr(pyfunc_model, "_predict_fn", None)
    meta = pyfunc_model.metadata
    if not callable(fn):
        return None
    if meta._is_signature_from_type_hint() or meta._is_type_hint_from_example():
        return None
    if meta.get_params_schema() is not None:
        return None
    if mlflow.pyfunc._get_dependencies_schema_from_model(pyfunc_model._model_meta):
        return None
    return fn


def enforce_schema(frame: Any, pyfunc_model: Any) -> Any:
    """What MLflow's per-call enforcement hands the model for ``frame`` (a DataFrame, not modified)."""
    from mlflow.models.utils import _enforce_schema

    return _enforce_schema(frame.copy(), pyfunc_model.metadata.get_input_schema())


def call_directly(pyfunc_model: Any, frame: Any) -> Any:
    """``pyfunc_model``'s own predict function on ``frame``, without enforcement (the request path: only
    for a model :func:`direct_predict_fn` accepted and the load-time check proved)."""
    return pyfunc_model._predict_fn(frame)
