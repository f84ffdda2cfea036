"""A model whose recorded requirements do not hold in the serving environment, on a real predictor
(``--workers 1`` and ``--workers 2``): the predictor starts, that model's endpoint stays not ready with
the package and both versions named (503 with a JSON body on ``/v2/health/ready``, on its
``/ready`` and on requests; never a 500 or a traceback), ``/v2/health/live`` stays 200, another model
in the same predictor answers, one WARNING line says so at load, and when the alias moves to a version
whose requirements hold the endpoint loads it and becomes ready.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.inference.conftest import start_predictor, stop_predictor

pytestmark = pytest.mark.slow

ROW = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [0.5]},
                  {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.5]}]}
PINNED = [f"mlflow=={version('mlflow')}", f"scikit-learn=={version('scikit-learn')}"]
BAD_PIN = "lightgbm==1.0.0"  # installed here: a 4.x (LightGBM pins compare by major.minor)
MAX_SECONDS = 60  # for the alias move to be followed (the poller runs every 0.3 s)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """``req`` v1 pins a LightGBM this environment does not have (alias champion), v2 does not;
    ``good`` v1 is servable."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from mlcycle import tracking
    from mlcycle.config import load_settings

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("req-home")
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT"):
        os.environ.pop(var, None)
    env = {"MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "MLCYCLE_SERVING_POLL_SECONDS": "0.3"}
    os.environ.update(env)
    settings = load_settings()
    tracking.configure(settings)
    experiment = tracking.ensure_experiment("requirements", settings)
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    model = LogisticRegression().fit(x, (x.a + x.b > 0).astype(int))
    for name, requirements in (("req", [*PINNED, BAD_PIN]), ("req", PINNED), ("good", PINNED)):
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(model, name="model", input_example=x.head(3), registered_model_name=name,
                                     pip_requirements=requirements)
    client = MlflowClient()
    yield env, client
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("workers", [1, 2])
def test_unmet_requirements_are_503_not_ready_until_the_alias_moves(registry, workers, tmp_path):
    env, client = registry
    client.set_registered_model_alias("req", "champion", "1")
    log = tmp_path / "predictor.log"
    # gRPC is served by the process that loads the models, so it is checked with one worker.
    p = start_predictor(["models:/req@champion", "models:/good/1", "--workers", str(workers)], env, log,
                        grpc=workers == 1, up="/v2/health/live")
    try:
        with p.client() as c:
            installed = version("lightgbm")
            named = f"lightgbm 1.0.0 (model) vs {installed} (installed as lightgbm)"
            ready = c.get("/v2/health/ready")
            assert ready.status_code == 503 and ready.json()["ready"] is False
            assert named in ready.json()["models"]["req"] and "good" not in ready.json()["models"]
            model_ready = c.get("/v2/models/req/ready")
            assert model_ready.status_code == 503 and named in model_ready.json()["error"]
            assert c.get("/v2/models/good/ready").status_code == 200
            for path, body in (("/v2/models/req/infer", ROW), ("/v1/models/req:predict", {"instances": [[0.5, 1.5]]})):
                r = c.post(path, json=body)
                assert r.status_code == 503, r.text
                assert r.json()["type"] == "ModelNotReadyError" and named in r.json()["error"]
            assert c.post("/v2/models/good/infer", json=ROW).status_code == 200
            assert c.get("/v2/health/live").status_code == 200
            if p.grpc:
                ready, code, details = grpc_answers(p.grpc)
                assert (ready, code) == (False, "UNAVAILABLE") and named in details
            text = log.read_text()
            refusals = [line for line in text.splitlines() if "not ready (503)" in line]
            assert 1 <= len(refusals) <= workers and all(named in line for line in refusals)
            assert "Traceback" not in text

            client.set_registered_model_alias("req", "champion", "2")
            deadline = time.monotonic() + MAX_SECONDS
            while True:  # each worker follows the alias on its own: ask a few times, spread over them
                answers = [c.get("/v2/health/ready") for _ in range(4 * workers)]
                answers += [c.post("/v2/models/req/infer", json=ROW) for _ in range(4 * workers)]
                if {r.status_code for r in answers} == {200} or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert {r.status_code for r in answers} == {200}, answers[-1].text
            assert answers[0].json() == {"ready": True} and answers[-1].json()["model_version"] == "2"
            if p.grpc:
                assert grpc_answers(p.grpc) == (True, "OK", "")
    except httpx.HTTPError:
        raise AssertionError(log.read_text()[-3000:]) from None
    finally:
        stop_predictor(p.proc)


def grpc_answers(address: str) -> tuple[bool, str, str]:
    """gRPC ``ServerReady``, and the status code and details of a ``ModelInfer`` to ``req``."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    with grpc.insecure_channel(address) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        ready = stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        tensors = [pb.ModelInferRequest.InferInputTensor(name=i["name"], datatype="FP64", shape=[1],
                                                         contents=pb.InferTensorContents(fp64_contents=i["data"]))
                   for i in ROW["inputs"]]
        try:
            stub.ModelInfer(pb.ModelInferRequest(model_name="req", inputs=tensors), timeout=10)
            return ready, "OK", ""
        except grpc.RpcError as e:
            return ready, e.code().name, e.details()
