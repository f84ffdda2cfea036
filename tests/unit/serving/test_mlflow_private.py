"""Pins the MLflow internals ``mlcycle.serving.mlflow_private`` relies on: if MLflow changes one, a test
here names it (the predictor itself then falls back to ``PyFuncModel.predict``, slower but right)."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from mlcycle.serving.mlflow_private import direct_predict_fn, enforce_schema


class Doubler(mlflow.pyfunc.PythonModel):
    calls = 0

    def predict(self, context, model_input, params=None):
        Doubler.calls += 1
        return model_input["x"].to_numpy() * 2 + model_input["k"].to_numpy()


FRAME = pd.DataFrame({"x": [0.5, 1.5], "k": np.array([1, 2], dtype=np.int64)})


def _load(tmp_path, **signature_kwargs):
    path = str(tmp_path / "model")
    signature = infer_signature(FRAME, Doubler().predict(None, FRAME), **signature_kwargs)
    mlflow.pyfunc.save_model(path, python_model=Doubler(), signature=signature, pip_requirements=["mlflow"])
    return mlflow.pyfunc.load_model(path)


def test_the_direct_call_is_what_predict_calls_after_enforcement(tmp_path):
    pm = _load(tmp_path)
    fn = direct_predict_fn(pm)
    assert fn is not None
    before = Doubler.calls
    np.testing.assert_array_equal(fn(FRAME), pm.predict(FRAME))
    assert Doubler.calls == before + 2  # one call each: both reach the model's own predict once


def test_a_python_model_is_called_past_mlflows_wrapper_with_its_context(tmp_path):
    """The wrapper's per-call work (``inspect.signature``, type-hint conversion) is what the direct call
    saves: it must reach the model's ``predict`` with the wrapper's context, and the wrapper not at all."""
    from mlflow.pyfunc.model import _PythonModelPyfuncWrapper

    pm = _load(tmp_path)
    impl = pm._model_impl
    assert type(impl) is _PythonModelPyfuncWrapper and pm._predict_fn == impl.predict
    seen = []
    original = impl.python_model.predict
    impl.python_model.predict = lambda context, model_input, params=None: seen.append(context) or original(
        context, model_input, params=params
    )
    impl.predict = None  # the wrapper's own predict must not be called
    np.testing.assert_array_equal(direct_predict_fn(pm)(FRAME), FRAME["x"].to_numpy() * 2 + FRAME["k"].to_numpy())
    assert seen == [impl.context]


class NoContext(mlflow.pyfunc.PythonModel):
    def predict(self, model_input):
        return model_input["x"].to_numpy() + 1


def test_a_python_model_without_context_or_params_is_called_as_mlflow_calls_it(tmp_path):
    path = str(tmp_path / "model")
    signature = infer_signature(FRAME, NoContext().predict(FRAME))
    mlflow.pyfunc.save_model(path, python_model=NoContext(), signature=signature, pip_requirements=["mlflow"])
    pm = mlflow.pyfunc.load_model(path)
    np.testing.assert_array_equal(direct_predict_fn(pm)(FRAME), pm.predict(FRAME))


def test_params_make_predict_do_more_so_there_is_no_direct_call(tmp_path):
    assert direct_predict_fn(_load(tmp_path, params={"factor": 2.0})) is None


def test_enforcement_is_mlflows_own_and_leaves_its_input_alone(tmp_path):
    pm = _load(tmp_path)
    narrow = FRAME.astype({"k": np.int32})
    enforced = enforce_schema(narrow, pm)
    assert enforced["k"].dtype == np.int64  # an int column where the signature says long: converted
    assert narrow["k"].dtype == np.int32  # ...in a copy
    same = enforce_schema(FRAME, pm)
    assert same.equals(FRAME) and same.dtypes.equals(FRAME.dtypes)


def test_the_internals_exist_with_the_names_used():
    from mlflow.models import Model
    from mlflow.models.utils import _enforce_schema
    from mlflow.pyfunc.model import _is_context_in_predict_function_signature

    assert callable(_enforce_schema) and callable(_is_context_in_predict_function_signature)
    assert callable(mlflow.pyfunc._get_dependencies_schema_from_model)
    assert callable(Model._is_signature_from_type_hint) and callable(Model._is_type_hint_from_example)
