"""The direct pyfunc path: a pyfunc model's own predict function without MLflow's per-call schema
enforcement, used only where the load-time check proves it gives pyfunc's answers and types."""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from mlcycle.serving.loading import load_model
from mlcycle.serving.predict import predict
from mlcycle.serving.protocol import v2_json_inputs
from mlcycle.serving.schema import decode_v2


class Scores(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        factor = (params or {}).get("factor", 2.0)
        return pd.DataFrame({
            "score": model_input["x"].to_numpy() * factor + model_input["k"].to_numpy(),
            "label": np.where(model_input["color"].to_numpy() == "red", "hot", "cold"),
        })


FRAME = pd.DataFrame({"color": ["red", "blue", "green", "red"], "x": [0.5, 1.5, -2.0, 3.25],
                      "k": np.array([1, 2, 3, 4], dtype=np.int64)})


def _save(tmp_path, signature) -> str:
    path = str(tmp_path / "model")
    mlflow.pyfunc.save_model(path, python_model=Scores(), signature=signature, input_example=FRAME.head(2),
                             pip_requirements=["mlflow"])
    return path


def _request(frame: pd.DataFrame) -> dict:
    kinds = {"O": "BYTES", "f": "FP64", "i": "INT64"}
    return {"inputs": [{"name": c, "datatype": kinds[frame[c].dtype.kind], "shape": [len(frame)],
                        "data": frame[c].tolist()} for c in frame.columns]}


def test_a_python_model_is_called_directly_and_answers_as_pyfunc(wine_env, tmp_path):
    loaded = load_model(_save(tmp_path, infer_signature(FRAME, Scores().predict(None, FRAME))), wine_env.settings)
    assert loaded.fast_path == "pyfunc-direct"
    x = decode_v2(v2_json_inputs(_request(FRAME)), loaded.schema)
    got = predict(loaded, x)
    want = mlflow.pyfunc.load_model(str(loaded.local_path)).predict(FRAME)
    np.testing.assert_array_equal(got.columns["score"], want["score"].to_numpy())
    assert list(got.columns["label"]) == want["label"].tolist()


@pytest.mark.parametrize("what", ["params", "optional"])
def test_what_mlflow_would_change_keeps_the_checked_pyfunc_call(wine_env, tmp_path, what):
    """Params (MLflow fills their defaults) and optional columns: pyfunc's enforcement decides, every call."""
    out = Scores().predict(None, FRAME)
    if what == "params":
        signature = infer_signature(FRAME, out, params={"factor": 2.0})
    else:
        inputs = Schema([ColSpec("string", "color"), ColSpec("double", "x"), ColSpec("long", "k", required=False)])
        signature = ModelSignature(inputs=inputs, outputs=infer_signature(FRAME, out).outputs)
    loaded = load_model(_save(tmp_path, signature), wine_env.settings)
    assert loaded.fast_path == "pyfunc"
    if what == "params":
        assert signature.params == ParamSchema([ParamSpec("factor", "double", 2.0)])
