"""Authentication and authorization of a real predictor with per-team keys configured.

Missing or wrong credentials get 401, another team's key 403, each with a JSON body that names only
"missing" or "invalid" and never a key; the keys never reach the server's log, /metrics or payload logs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.inference.conftest import start_predictor, stop_predictor
from tests.inference.wine_models import log_wine_model

pytestmark = pytest.mark.slow  # a real predictor

KEY_A = "ka-7f3c9e1d2b4a6f8e0c1d3b5a7e9f1c3d"
KEY_B = "kb-2e4c6a8b0d1f3e5c7a9b1d3f5e7c9a1b"
ADMIN = "kadmin-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
WRONG = "kwrong-0000111122223333444455556666"
KEYS = (KEY_A, KEY_B, ADMIN, WRONG)
ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]


@pytest.fixture(scope="module")
def team_models(tmp_path_factory):
    """A registry with team-a's ``team-a.wine`` and team-b's ``team-b.grape`` (both wine classifiers)."""
    from sklearn.datasets import load_wine

    from mlcycle import tracking
    from mlcycle.config import load_settings

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("auth-home")
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT"):
        os.environ.pop(var, None)
    env = {"MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "MLCYCLE_SERVING_POLL_SECONDS": "0"}
    os.environ.update(env)
    settings = load_settings()
    tracking.configure(settings)
    data = load_wine(as_frame=True)
    experiment = tracking.ensure_experiment("auth-tests", settings)
    log_wine_model("logistic_regression", "team-a.wine", data.data, data.target, {"C": 0.1}, experiment)
    log_wine_model("logistic_regression", "team-b.grape", data.data, data.target, {"C": 0.1}, experiment)
    yield env
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def server(team_models, tmp_path_factory):
    env = {
        **team_models,
        "MLCYCLE_API_KEYS": f"team-a:{KEY_A},team-b:{KEY_B},*:{ADMIN}",
        "MLCYCLE_LOG_LEVEL": "DEBUG",  # the chattiest the server gets: keys must not show up even there
    }
    log = tmp_path_factory.mktemp("auth") / "predictor.log"
    p = start_predictor(["models:/team-a.wine/1", "models:/team-b.grape/1"], env, log, grpc=True)
    yield p
    stop_predictor(p.proc)


def calls(model: str) -> list[tuple[str, dict]]:
    return [
        (f"/v1/models/{model}:predict", {"instances": [ROW]}),
        (f"/v2/models/{model}/infer", {"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64",
                                                  "data": [ROW]}]}),
        (f"/v2/models/{model}/versions/1/infer", {"inputs": [{"name": "input-0", "shape": [1, 13],
                                                             "datatype": "FP64", "data": [ROW]}]}),
    ]


def assert_no_key(text: str) -> None:
    for key in KEYS:
        assert key not in text
        assert key[3:20] not in text  # not even a piece of one


def test_missing_credentials_are_401_saying_only_missing(server):
    with server.client() as c:
        for model in ("wine", "grape"):
            for path, body in calls(model):
                for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY_A}"},
                                {"X-API-Key": ""}):
                    r = c.post(path, json=body, headers=headers)
                    assert r.status_code == 401, (path, headers, r.text)
                    assert r.json()["type"] == "AuthenticationError"
                    assert r.json()["error"].startswith("missing credentials")
                    assert_no_key(r.text)


def test_wrong_credentials_are_401_saying_only_invalid(server):
    with server.client() as c:
        for model in ("wine", "grape"):
            for path, body in calls(model):
                for headers in ({"Authorization": f"Bearer {WRONG}"}, {"X-API-Key": WRONG},
                                {"X-API-Key": KEY_A + "x"}, {"Authorization": f"Bearer {KEY_A[:-1]}"}):
                    r = c.post(path, json=body, headers=headers)
                    assert r.status_code == 401, (path, headers, r.text)
                    assert r.json() == {"error": "invalid credentials", "type": "AuthenticationError"}


def test_team_keys_call_only_their_teams_models(server):
    with server.client() as c:
        for key, mine, theirs in ((KEY_A, "wine", "grape"), (KEY_B, "grape", "wine")):
            for header in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
                for path, body in calls(mine):
                    r = c.post(path, json=body, headers=header)
                    assert r.status_code == 200, (path, r.text)
                for path, body in calls(theirs):
                    r = c.post(path, json=body, headers=header)
                    assert r.status_code == 403, (path, r.text)
                    assert r.json()["type"] == "PermissionDeniedError"
                    assert_no_key(r.text)
        for model in ("wine", "grape"):  # the admin key calls every model
            for path, body in calls(model):
                assert c.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_grpc_is_checked_the_same_way(server):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    request = pb.ModelInferRequest(model_name="wine", inputs=[pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=[1, 13], contents=pb.InferTensorContents(fp64_contents=ROW))])
    with grpc.insecure_channel(server.grpc) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        for metadata, code in (((), grpc.StatusCode.UNAUTHENTICATED),
                               ((("x-api-key", WRONG),), grpc.StatusCode.UNAUTHENTICATED),
                               ((("authorization", f"Bearer {KEY_B}"),), grpc.StatusCode.PERMISSION_DENIED)):
            with pytest.raises(grpc.RpcError) as e:
                stub.ModelInfer(request, metadata=metadata, timeout=10)
            assert e.value.code() == code
            assert_no_key(e.value.details() or "")
        ok = stub.ModelInfer(request, metadata=(("authorization", f"Bearer {KEY_A}"),), timeout=10)
        assert ok.model_name == "wine"


def test_keys_never_reach_logs_metrics_or_payload_logs(server):
    with server.client() as c:
        metrics = c.get("/metrics")
    assert metrics.status_code == 200
    assert "mlcycle" in metrics.text
    assert_no_key(metrics.text)
    log = server.log.read_text(errors="replace")
    assert "team-a.wine" in log or "wine" in log  # the log is the server's, and it did write
    assert_no_key(log)
    for path in Path(server.home).rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            for key in KEYS:
                assert key.encode() not in data, f"{key[:6]}... found in {path}"


def test_credentials_are_checked_before_the_body_is_read(server):
    """A body that is not JSON (or not even finished) still gets 401 without a key: it was never parsed.
    Refusals are counted in /metrics and logged at DEBUG only, with at most one INFO summary a minute."""
    before = sum(" INFO " in x and "refused" in x for x in server.log.read_text().splitlines())
    with server.client() as c:
        for path in ("/v1/models/wine:predict", "/v2/models/wine/infer"):
            for body in (b"{not json", b"\xff\xfe", b'{"inputs": [' * 50):
                r = c.post(path, content=body, headers={"content-type": "application/json"})
                assert r.status_code == 401, (path, body, r.status_code, r.text)
        r = c.post("/v2/models/wine/infer", content=b"{not json",
                   headers={"content-type": "application/json", "x-api-key": KEY_A})
        assert r.status_code == 400  # with a key the body is read, and its mistake named
        metrics = c.get("/metrics").text
    counter = 'mlcycle_requests_refused_total{model="wine",status="401"}'
    refused = [x for x in metrics.splitlines() if x.startswith(counter)]
    assert refused and float(refused[0].rsplit(" ", 1)[1]) >= 6, refused
    log = server.log.read_text()
    assert "refused with 401" in log  # at DEBUG (this server logs at DEBUG)
    after = sum(" INFO " in x and "refused" in x for x in log.splitlines())
    assert after - before <= 1  # no INFO line per refusal: one summary a minute at most
