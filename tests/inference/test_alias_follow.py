"""The predictor follows the champion alias: a broken version is refused (old one keeps serving, the
failure is counted), a good one is hot-swapped with no failed request. The server also has API keys on.
"""

from __future__ import annotations

import time

import pytest

from tests.inference.conftest import start_predictor, stop_predictor
from tests.inference.wine_models import log_wine_model

KEY = "s3cret-key-for-tests"
ROW = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [1, 13],
            "datatype": "FP64",
            "data": [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
        }
    ]
}
MAX_REQUESTS = 3000
MAX_SECONDS = 45


@pytest.fixture(scope="module")
def followed(swap_registry, tmp_path_factory):
    env = {**swap_registry.env, "MLCYCLE_SERVING_POLL_SECONDS": "0.3", "MLCYCLE_API_KEYS": f"*:{KEY}"}
    p = start_predictor(["models:/wine@champion"], env, tmp_path_factory.mktemp("logs") / "follow.log", grpc=False)
    yield p
    stop_predictor(p.proc)


def test_api_keys(followed):
    with followed.client() as c:
        assert c.post("/v2/models/wine/infer", json=ROW).status_code == 401
        r = c.post("/v2/models/wine/infer", json=ROW, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and "wrong" not in r.text
        assert c.post("/v2/models/wine/infer", json=ROW, headers={"x-api-key": KEY}).status_code == 200


def test_broken_version_is_refused_then_good_version_swaps_in(followed, swap_registry):
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from mlcycle import tracking
    from mlcycle.serving.loading import load_model

    tracking.configure(swap_registry.settings)
    client = MlflowClient()
    _, broken = log_wine_model(
        "random_forest", "wine", swap_registry.X, swap_registry.y, {"n_estimators": 3}, swap_registry.experiment_id
    )
    path = Path(load_model(f"models:/wine/{broken}", swap_registry.settings).local_path)
    (path / "model.skops").unlink()  # the version exists in the registry but cannot be loaded

    headers = {"x-api-key": KEY}
    seen, failures = [], []
    with followed.client(headers=headers) as c:
        assert c.post("/v2/models/wine/infer", json=ROW).json()["model_version"] == "1"
        client.set_registered_model_alias("wine", "champion", broken)
        deadline = time.monotonic() + MAX_SECONDS
        for _ in range(MAX_REQUESTS):
            metrics = c.get("/metrics").text
            if 'mlcycle_model_load_failures_total{model="wine"}' in metrics or time.monotonic() > deadline:
                break
            r = c.post("/v2/models/wine/infer", json=ROW)
            (seen if r.status_code == 200 else failures).append(r.json().get("model_version", r.text))
            time.sleep(0.05)
        assert 'mlcycle_model_load_failures_total{model="wine"} 1.0' in c.get("/metrics").text
        assert set(seen) <= {"1"} and not failures

        client.set_registered_model_alias("wine", "champion", "2")
        deadline = time.monotonic() + MAX_SECONDS
        streak = 0
        for _ in range(MAX_REQUESTS):
            r = c.post("/v2/models/wine/infer", json=ROW)
            if r.status_code != 200:
                failures.append(r.text)
                continue
            version = r.json()["model_version"]
            seen.append(version)
            streak = streak + 1 if version == "2" else 0
            if streak >= 20 or time.monotonic() > deadline:
                break
    assert not failures, failures[:3]
    assert streak >= 20, "the server never swapped to version 2"
    first_two = seen.index("2")
    assert set(seen[:first_two]) == {"1"} and set(seen[first_two:]) == {"2"}  # one atomic switch
