"""The predictor over real HTTP and gRPC on loopback: answers, errors, canary, payload log, metrics."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from mlcycle.serving.compiled import TOLERANCE

N_ROWS = 20


def v2_tensor(x: np.ndarray, request_id: str | None = None) -> dict:
    body = {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}]}
    if request_id:
        body["id"] = request_id
    return body


def v2_columns(frame: pd.DataFrame) -> dict:
    return {
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()} for c in frame.columns
        ]
    }


# The forest (version 1) serves compiled (float32 ONNX Runtime): probabilities within the compile contract's
# 1e-6, labels identical; the logistic regression (version 2) serves through scikit-learn.
def expected(wine, version: str, frame: pd.DataFrame):
    est = wine.estimators[version]
    return est.predict(frame), est.predict_proba(frame)


def check_v2(body: dict, wine, frame: pd.DataFrame) -> str:
    version = body["model_version"]
    preds, proba = expected(wine, version, frame)
    out = {o["name"]: o for o in body["outputs"]}
    assert out["predictions"]["data"] == preds.tolist()
    assert out["probabilities"]["shape"] == [len(frame), 3]
    np.testing.assert_allclose(np.reshape(out["probabilities"]["data"], (-1, 3)), proba, rtol=0, atol=TOLERANCE)
    return version


def test_health_and_metadata(predictor):
    with predictor.client() as c:
        assert c.get("/v2/health/live").json() == {"live": True}
        assert c.get("/v2/health/ready").json() == {"ready": True}
        assert c.get("/v2/models/wine/ready").json()["ready"] is True
        meta = c.get("/v2/models/wine").json()
        assert meta["name"] == "wine" and meta["versions"] == ["1", "2"]
        assert [i["name"] for i in meta["inputs"]][:2] == ["alcohol", "malic_acid"]
        assert meta["inputs"][0]["shape"] == [-1, 1]
        assert {o["name"] for o in meta["outputs"]} == {"predictions", "probabilities"}
        assert meta["parameters"]["runtime"] == "onnxruntime"  # the champion forest, compiled
        assert meta["parameters"]["compile"].startswith("onnxruntime: reproduced RandomForestClassifier on ")
        v2 = c.get("/v2/models/wine/versions/2").json()
        assert v2["versions"] == ["1", "2"]
        assert v2["parameters"]["runtime"] == "scikit-learn"
        assert "LogisticRegression is not a tree ensemble" in v2["parameters"]["compile"]
        assert c.get("/v2/models/wine/versions/9").status_code == 404
        assert c.get("/v2/models/nope").status_code == 404


def test_v2_tensor_columns_and_v1_equal_sklearn(predictor, wine):
    frame = wine.X.sample(N_ROWS, random_state=3)
    with predictor.client() as c:
        for pinned in ("1", "2"):
            r = c.post(f"/v2/models/wine/versions/{pinned}/infer", json=v2_tensor(frame.to_numpy()))
            assert r.status_code == 200, r.text
            assert check_v2(r.json(), wine, frame) == pinned
        r = c.post("/v2/models/wine/infer", json=v2_columns(frame))
        assert r.status_code == 200, r.text
        version = check_v2(r.json(), wine, frame)
        assert r.headers["x-mlcycle-model-version"] == version
        r = c.post("/v1/models/wine:predict", json={"instances": frame.to_numpy().tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        preds, proba = expected(wine, body["model_version"], frame)
        assert body["predictions"] == preds.tolist()
        np.testing.assert_allclose(body["probabilities"], proba, rtol=0, atol=TOLERANCE)
        r = c.post("/v1/models/wine:predict", json={"instances": frame.head(2).to_dict(orient="records")})
        assert r.status_code == 200
        assert r.json()["predictions"] == expected(wine, r.json()["model_version"], frame.head(2))[0].tolist()


def test_grpc_equals_sklearn(predictor, wine):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    frame = wine.X.sample(N_ROWS, random_state=4)
    request = pb.ModelInferRequest(
        model_name="wine",
        id="grpc-1",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input-0",
                datatype="FP64",
                shape=list(frame.shape),
                contents=pb.InferTensorContents(fp64_contents=frame.to_numpy().ravel().tolist()),
            )
        ],
    )
    with grpc.insecure_channel(predictor.grpc) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="wine"), timeout=10).ready
        response = stub.ModelInfer(request, timeout=10)
        outputs = {o.name: i for i, o in enumerate(response.outputs)}
        version = response.model_version
        preds, proba = expected(wine, version, frame)
        raw = response.raw_output_contents
        got_preds = np.frombuffer(raw[outputs["predictions"]], dtype=np.int64)
        got_proba = np.frombuffer(raw[outputs["probabilities"]], dtype=np.float64).reshape(-1, 3)
        np.testing.assert_array_equal(got_preds, preds)
        np.testing.assert_allclose(got_proba, proba, rtol=0, atol=TOLERANCE)
        assert response.id == "grpc-1" and len(raw) == len(response.outputs)  # raw for every output
        # model_version addresses that version (as REST's /versions/{v}); outputs select outputs
        request.model_version = version
        request.outputs.add(name="probabilities")
        only = stub.ModelInfer(request, timeout=10)
        assert [o.name for o in only.outputs] == ["probabilities"] and only.model_version == version
        request.model_version = "999"
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "version 999 is not served" in e.value.details()
        bad = pb.ModelInferRequest(
            model_name="wine",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0", datatype="FP64", shape=[1, 2], contents=pb.InferTensorContents(fp64_contents=[1, 2])
                )
            ],
        )
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(bad, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "expected [N, 13]" in e.value.details()


ROW = [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]


def _t(shape, data, datatype="FP64", name="input-0"):
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


BAD_INPUTS = [
    # (path, json body or raw bytes, status, text in the error)
    ("/v2/models/wine/infer", _t([1, 12], ROW[:12]), 400, "expected [N, 13]"),
    ("/v2/models/wine/infer", _t([13], ROW), 400, "expected [N, 13]"),
    ("/v2/models/wine/infer", _t([1, 13], ROW[:12]), 400, "holds 12 values"),
    ("/v2/models/wine/infer", _t([1, 13], ["a"] * 13, "BYTES"), 400, "datatype BYTES"),
    ("/v2/models/wine/infer", _t([1, 13], ["x", *ROW[1:]]), 400, "only numbers"),
    ("/v2/models/wine/infer", _t([0, 13], []), 400, "empty batch"),
    ("/v2/models/wine/infer", _t([101, 13], ROW * 101), 413, "at most 100"),
    (
        "/v2/models/wine/infer",
        {
            "inputs": [
                {"name": "alcohol", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "hue", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ]
        },
        400,
        "missing input column(s) 'malic_acid'",
    ),
    (
        "/v2/models/wine/infer",
        {
            "inputs": [
                {"name": "alcohol", "shape": [1], "datatype": "FP64", "data": [1.0]},
                {"name": "colour", "shape": [1], "datatype": "FP64", "data": [1.0]},
            ]
        },
        400,
        "unknown input(s) 'colour'",
    ),
    ("/v2/models/wine/infer", b'{"inputs": [', 400, "not valid JSON"),
    ("/v2/models/wine/infer", {"outputs": []}, 400, '"inputs": a list of tensors'),
    ("/v2/models/wine/infer", [1, 2], 400, "must be a JSON object"),
    ("/v2/models/wine/infer", {"inputs": [{"name": "x", "shape": [1, 13]}]}, 400, "lacks 'datatype', 'data'"),
    (
        "/v2/models/wine/infer",
        {"inputs": [{"name": "x", "shape": "1x13", "datatype": "FP64", "data": ROW}]},
        400,
        "shape must be a list of integers",
    ),
    ("/v2/models/wine/infer", {**_t([1, 13], ROW), "outputs": [{"name": "colour"}]}, 400, "unknown output(s)"),
    ("/v2/models/nope/infer", _t([1, 13], ROW), 404, "nope"),
    ("/v2/models/wine/versions/9/infer", _t([1, 13], ROW), 404, "version 9 is not served"),
    ("/v1/models/wine:predict", {"instances": [ROW[:3]]}, 400, "expected [N, 13]"),
    ("/v1/models/wine:predict", {"rows": [ROW]}, 400, '"instances"'),
    ("/v1/models/wine:predict", {"instances": []}, 400, "empty batch"),
    ("/v1/models/wine:predict", {"instances": [dict.fromkeys(["alcohol"], 1.0)]}, 400, "missing column(s)"),
    ("/v1/models/wine:predict", b'{"instances": [[1, 2', 400, "not valid JSON"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_INPUTS)
def test_bad_input_is_a_4xx_naming_the_problem(predictor, path, body, status, message):
    with predictor.client() as c:
        if isinstance(body, bytes):
            r = c.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = c.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]  # a JSON body whose "error" names the problem
    assert "Traceback" not in r.text


def test_nan_is_refused(predictor):
    # JSON has no NaN; a client that sends one anyway (Python's json does) gets a 4xx, not a 500.
    with predictor.client() as c:
        r = c.post(
            "/v2/models/wine/infer",
            content=b'{"inputs":[{"name":"x","shape":[1,13],"datatype":"FP64",'
            b'"data":[NaN,1,2,3,4,5,6,7,8,9,10,11,12]}]}',
            headers={"content-type": "application/json"},
        )
    assert 400 <= r.status_code < 500, r.text


def test_canary_split_and_stickiness(predictor, wine):
    """30% canary: counts within 4 binomial sigmas; the same request id always gets the same version."""
    row = wine.X.head(1).to_numpy()
    n, p = 300, 0.30
    with predictor.client() as c:
        versions = [c.post("/v2/models/wine/infer", json=v2_tensor(row)).json()["model_version"] for _ in range(n)]
        sticky = {
            rid: {c.post("/v2/models/wine/infer", json=v2_tensor(row, rid)).json()["model_version"] for _ in range(3)}
            for rid in (f"customer-{i}" for i in range(10))
        }
        by_header = {
            c.post("/v2/models/wine/infer", json=v2_tensor(row), headers={"x-request-id": "abc-123"}).json()[
                "model_version"
            ]
            for _ in range(3)
        }
    canary = versions.count("2")
    assert set(versions) == {"1", "2"}
    assert abs(canary - n * p) <= 4 * math.sqrt(n * p * (1 - p)), canary
    assert all(len(v) == 1 for v in sticky.values())
    assert len(by_header) == 1


def test_payload_log_read_back(predictor, wine):
    frame = wine.X.sample(3, random_state=5)
    with predictor.client() as c:
        r = c.post("/v2/models/wine/infer", json=v2_tensor(frame.to_numpy(), "payload-check-1"))
    assert r.status_code == 200
    version = r.json()["model_version"]
    root = predictor.home / "payloads" / "wine"
    deadline = time.monotonic() + 20  # the logger flushes every 5 s
    rows = pd.DataFrame()
    while time.monotonic() < deadline:
        files = sorted(root.glob("part-*.parquet")) if root.exists() else []
        if files:
            rows = pd.concat([pd.read_parquet(f) for f in files])
            rows = rows[rows["request_id"] == "payload-check-1"]
            if len(rows) == 3:
                break
        time.sleep(0.5)
    assert len(rows) == 3
    rows = rows.sort_values("row")
    assert rows["model_name"].unique().tolist() == ["wine"]
    assert rows["model_version"].unique().tolist() == [version]
    assert rows["protocol"].unique().tolist() == ["v2-rest"]
    np.testing.assert_allclose(rows[list(wine.X.columns)].to_numpy(), frame.to_numpy())
    assert rows["prediction"].tolist() == wine.estimators[version].predict(frame).tolist()
    assert {"proba_0", "proba_1", "proba_2"} <= set(rows.columns)


def test_metrics_count_requests(predictor):
    with predictor.client() as c:
        c.post("/v2/models/wine/infer", json=_t([1, 12], ROW[:12]))
        text = c.get("/metrics").text
    assert 'mlcycle_requests_total{model="wine",protocol="v2-rest",status="200"' in text
    assert 'status="400"' in text
    assert 'mlcycle_model_info{model="wine",role="canary",version="2"} 1.0' in text
    assert 'mlcycle_canary_traffic_percent{model="wine"} 30.0' in text
    assert "mlcycle_predictions_total" in text


def test_several_models_in_one_server(predictor, wine):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data.sample(7, random_state=1)
    est = wine.estimators["cancer/1"]
    with predictor.client() as c:
        assert sorted(c.get("/v2/models").json()["models"]) == ["cancer", "wine"]
        assert c.get("/v2/models/cancer").json()["versions"] == ["1"]
        r = c.post("/v2/models/cancer/infer", json=v2_tensor(frame.to_numpy()))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == "cancer" and body["model_version"] == "1"
        out = {o["name"]: o for o in body["outputs"]}
        assert out["predictions"]["data"] == est.predict(frame).tolist()
        np.testing.assert_allclose(np.reshape(out["probabilities"]["data"], (-1, 2)), est.predict_proba(frame))
        wrong = c.post("/v2/models/cancer/infer", json=v2_tensor(wine.X.head(1).to_numpy()))
        assert wrong.status_code == 400 and "expected [N, 30]" in wrong.json()["error"]


def test_explain_is_501_not_a_prediction(predictor):
    """``:explain`` used to return predictions (the verb was ignored): now a JSON 501, 404 if unknown."""
    with predictor.client() as c:
        r = c.post("/v1/models/wine:explain", json={"instances": [[13.0] * 13]})
        assert r.status_code == 501, r.text
        assert r.json()["type"] == "NotImplementedOperationError" and "explainer" in r.json()["error"]
        r = c.post("/v1/models/nope:explain", json={"instances": [[13.0] * 13]})
        assert r.status_code == 404 and r.json()["type"] == "ModelNotFoundError"


def test_the_single_process_server_runs_on_uvicorn_s_loop(predictor):
    """``--event_loop auto`` is uvloop when installed, as uvicorn gives each ``--workers N`` process;
    KServe's own start ran one process on the pure-Python asyncio loop."""
    assert "event loop: uvloop.Loop (--event_loop auto)" in predictor.log.read_text()
