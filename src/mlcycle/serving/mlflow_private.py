"""Every use of MLflow's private API, in one place; ``tests/unit/serving/test_mlflow_private.py`` pins each.

The predictor's ``pyfunc-direct`` path calls a pyfunc model's own predict function without MLflow's
per-call schema enforcement (the decoder has already checked and typed every column). MLflow 3 has no
public way to do that, nor to ask whether its enforcement would change an input, so these read:

- ``PyFuncModel._predict_fn``: the flavor's predict function that ``PyFuncModel.predict`` calls after
  enforcing the signature;
- for a ``PythonModel``, ``PyFuncModel._model_impl`` (MLflow's ``_PythonModelPyfuncWrapper``) with its
  ``python_model`` and ``context``, and ``mlflow.pyfunc.model._is_context_in_predict_function_signature``:
  the wrapper's ``predict`` reads the model's ``predict`` signature (``inspect.signature``) and type
  hints on every call, which costs about as much as a small model; the direct call reads them once;
- ``ModelSignature``/``Model`` helpers ``_is_signature_from_type_hint``, ``_is_type_hint_from_example``
  and ``mlflow.pyfunc._get_dependencies_schema_from_model``: what would make ``predict`` do more than
  enforce the schema (type-hint conversion, dependency schemas);
- ``mlflow.models.utils._enforce_schema``: MLflow's enforcement itself, run once at load time on the
  input example to prove it changes nothing.

If MLflow changes any of these, :func:`direct_predict_fn` answers ``None`` or the wrapper's own
``predict`` (or the load-time check fails, and the model is served through ``PyFuncModel.predict``):
slower, never wrong. The pinning test says which one changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def direct_predict_fn(pyfunc_model: Any) -> Callable[[Any], Any] | None:
    """The model's own predict function, ``fn(frame)``, when ``PyFuncModel.predict`` would only enforce the
    input schema before calling it; ``None`` when it would do more (type-hint signature, params, dependency
    schemas) or when MLflow's internals are not what this module expects.

    For a ``PythonModel`` without type hints on ``predict`` this is its ``predict`` itself, called as
    MLflow's wrapper calls it with no params (with the context when it takes one); otherwise the flavor's
    predict function (``PyFuncModel._predict_fn``).
    """
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
    return _python_model_predict(pyfunc_model) or fn


def _python_model_predict(pyfunc_model: Any) -> Callable[[Any], Any] | None:
    """What ``_PythonModelPyfuncWrapper.predict(frame)`` calls, resolved once; ``None`` if not that wrapper."""
    import inspect

    from mlflow.pyfunc.model import _is_context_in_predict_function_signature, _PythonModelPyfuncWrapper

    impl = getattr(pyfunc_model, "_model_impl", None)
    if type(impl) is not _PythonModelPyfuncWrapper or pyfunc_model._predict_fn != impl.predict:
        return None
    python_model, context = impl.python_model, impl.context
    hints = getattr(python_model, "predict_type_hints", None)
    if hints is None or hints.input is not None:  # type hints: the wrapper converts the input
        return None
    predict = python_model.predict
    parameters = inspect.signature(predict).parameters
    kwargs = {"params": None} if "params" in parameters else {}
    if _is_context_in_predict_function_signature(parameters=parameters):
        return lambda frame: predict(context, frame, **kwargs)
    return lambda frame: predict(frame, **kwargs)


def enforce_schema(frame: Any, pyfunc_model: Any) -> Any:
    """What MLflow's per-call enforcement hands the model for ``frame`` (a DataFrame, not modified)."""
    from mlflow.models.utils import _enforce_schema

    return _enforce_schema(frame.copy(), pyfunc_model.metadata.get_input_schema())
