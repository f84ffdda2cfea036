"""The predictor image as the ServingRuntime runs it (uid 10001, read-only root, only /tmp writable), loading
a model from the host's MLflow server: its v2 REST and gRPC answers equal the in-process predictor's."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.containers.conftest import engine
from tests.integration.servers import free_port

pytestmark = [pytest.mark.containers, pytest.mark.slow]

START_TIMEOUT_S = 180
N_ROWS = 20


@pytest.fixture(scope="module")
def wine_on_server(mlflow_url, tmp_path_factory):
    """``wine`` version 1 (a small forest) on the host's server, alias champion; the rows to ask about."""
    with pytest.MonkeyPatch.context() as mp:
        from mlflow.tracking import MlflowClient
        from sklearn.datasets import load_wine

        from mlcycle import tracking
        from mlcycle.config import load_settings
        from tests.conftest import _ISOLATED_ENV
        from tests.inference.wine_models import log_wine_model

        for var in _ISOLATED_ENV:
            mp.delenv(var, raising=False)
        mp.setenv("MLCYCLE_HOME", str(tmp_path_factory.mktemp("predictor-home")))
        mp.setenv("MLCYCLE_TRACKING_URI", mlflow_url)
        settings = load_settings()
        tracking.configure(settings)
        data = load_wine(as_frame=True)
        experiment = tracking.ensure_experiment("container-serving", settings)
        _, version = log_wine_model("random_forest", "wine", data.data, data.target,
                                    {"n_estimators": 10, "max_depth": 4}, experiment)
        MlflowClient().set_registered_model_alias("wine", "champion", version)
        yield settings, data.data.sample(N_ROWS, random_state=5), version


@pytest.fixture(scope="module")
def predictor_container(images, engine_env, mlflow_url, wine_on_server):
    """The predictor image under the ServingRuntime's security context, on the host's network."""
    http_port, grpc_port = free_port(), free_port()
    run = engine(engine_env, "run", "-d", "--rm", "--network=host", "--user", "10001:10001", "--read-only",
                 "--tmpfs", "/tmp:rw,mode=1777", "--cap-drop=ALL", "--security-opt=no-new-privileges",
                 "-e", f"MLCYCLE_TRACKING_URI={mlflow_url}", "-e", "MLCYCLE_SERVING_POLL_SECONDS=0",
                 images["predictor"], "models:/wine@champion", "--host", "127.0.0.1",
                 "--http-port", str(http_port), "--grpc-port", str(grpc_port))
    container = run.stdout.strip()
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            state = engine(engine_env, "inspect", "--format", "{{.State.Running}}", container, check=False)
            if state.stdout.strip() != "true":
                logs = engine(engine_env, "logs", container, check=False)
                pytest.fail(f"the predictor container stopped:\n{(logs.stdout + logs.stderr)[-3000:]}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = engine(engine_env, "logs", container, check=False)
                pytest.fail(f"predictor not ready in {START_TIMEOUT_S}s:\n{(logs.stdout + logs.stderr)[-3000:]}")
            time.sleep(0.5)
        yield {"url": url, "grpc": f"127.0.0.1:{grpc_port}", "id": container}
    finally:
        engine(engine_env, "rm", "-f", "-t", "5", container, check=False)


@pytest.fixture(scope="module")
def in_process(wine_on_server):
    """The same version through mlcycle's serving code in this process (load, compile, predict)."""
    from mlcycle.serving import load_model, predict
    from mlcycle.serving.compiled import compile_loaded

    settings, rows, version = wine_on_server
    loaded = load_model(f"models:/wine/{version}", settings)
    compile_loaded(loaded)
    return predict(loaded, rows.to_numpy())


def test_runs_as_the_serving_runtime_user_on_a_read_only_root(predictor_container, engine_env):
    whoami = engine(engine_env, "exec", predictor_container["id"], "python3", "-c",
                    "import os; print(os.getuid(), os.getgid());"
                    "open('/tmp/w', 'w').write('x');"
                    "open('/opt/venv/x', 'w')", check=False)
    assert whoami.stdout.split() == ["10001", "10001"]
    assert "Read-only file system" in whoami.stderr


def test_v2_rest_equals_in_process_predictor(predictor_container, wine_on_server, in_process):
    from mlcycle.serving.compiled import TOLERANCE

    _, rows, version = wine_on_server
    x = rows.to_numpy()
    body = {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}]}
    r = httpx.post(f"{predictor_container['url']}/v2/models/wine/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model_version"] == version
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert outputs["predictions"]["data"] == in_process.predictions.tolist()
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (-1, 3)), in_process.probabilities,
                               rtol=0, atol=TOLERANCE)
    bad = httpx.post(f"{predictor_container['url']}/v2/models/wine/infer",
                     json={"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
                     timeout=30)
    assert bad.status_code == 400 and "expected [N, 13]" in bad.text


def test_v2_grpc_equals_in_process_predictor(predictor_container, wine_on_server, in_process):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    from mlcycle.serving.compiled import TOLERANCE

    _, rows, version = wine_on_server
    request = pb.ModelInferRequest(model_name="wine", inputs=[pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=list(rows.shape),
        contents=pb.InferTensorContents(fp64_contents=rows.to_numpy().ravel().tolist()))])
    with grpc.insecure_channel(predictor_container["grpc"]) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="wine"), timeout=30).ready
        response = stub.ModelInfer(request, timeout=30)
    assert response.model_version == version
    index = {o.name: i for i, o in enumerate(response.outputs)}
    raw = response.raw_output_contents
    np.testing.assert_array_equal(np.frombuffer(raw[index["predictions"]], dtype=np.int64), in_process.predictions)
    np.testing.assert_allclose(np.frombuffer(raw[index["probabilities"]], dtype=np.float64).reshape(-1, 3),
                               in_process.probabilities, rtol=0, atol=TOLERANCE)
