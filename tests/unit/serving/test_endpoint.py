"""mlcycle.serving.endpoint, protocol and workers without a server: the logic the KServe adapter maps onto."""

from __future__ import annotations

import asyncio
import pickle

import numpy as np
import pytest

from mlcycle.config import load_settings
from mlcycle.errors import InvalidInputError, MlcycleError, ModelNotFoundError, ModelNotReadyError
from mlcycle.serving import protocol
from mlcycle.serving.endpoint import ModelEndpoint, build_endpoints
from mlcycle.serving.predict import Prediction
from mlcycle.serving.workers import argv_with_worker_count, cores, worker_count


def _settings(tmp_path, monkeypatch, **env):
    monkeypatch.setenv("MLCYCLE_SERVING_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    monkeypatch.setenv("MLCYCLE_SERVING_PAYLOAD_LOG", "false")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_build_endpoints_names_and_refusals(wine_env, tmp_path, monkeypatch):
    s = _settings(tmp_path, monkeypatch)
    (wine,) = build_endpoints(["models:/wine@champion"], s, canary_ref="models:/wine@challenger", canary_percent=30)
    assert (wine.name, wine.canary_ref, wine.canary_percent) == ("wine", "models:/wine@challenger", 30.0)
    assert build_endpoints(["models:/wine/1"], s, name="vino")[0].name == "vino"
    with pytest.raises(MlcycleError, match="two models would be served as 'wine'"):
        build_endpoints(["models:/wine/1", "models:/wine/2"], s)
    with pytest.raises(MlcycleError, match="is not a version of any served model"):
        build_endpoints(["models:/wine/1"], s, canary_ref="models:/cancer/1")
    with pytest.raises(MlcycleError, match="one served name"):
        build_endpoints(["models:/wine/1", "models:/cancer/1"], s, name="vino")
    assert not (tmp_path / "downloads").exists()  # nothing downloaded before load()


def test_an_endpoint_answers_v1_and_v2_refuses_what_it_cannot_and_cleans_up(wine_env, tmp_path, monkeypatch):
    s = _settings(tmp_path, monkeypatch)
    endpoint = ModelEndpoint("models:/wine@champion", s, canary_ref="models:/wine/2", canary_percent=100)
    with pytest.raises(ModelNotReadyError):
        endpoint.authenticate({})
    endpoint.load()
    assert endpoint.ready and len(list((tmp_path / "downloads").iterdir())) == 2  # one directory per version
    row = wine_env.X.iloc[0].tolist()

    async def calls():
        v1, h1 = await endpoint.answer_json("v1", {"instances": [row]}, {})
        body = {"id": "r-1", "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
        v2, h2 = await endpoint.answer_json("v2-rest", body, {}, version="1")
        return v1, h1, v2, h2

    v1, h1, v2, h2 = asyncio.run(calls())
    assert h1 == {protocol.VERSION_HEADER: "2", protocol.ROLE_HEADER: "canary"}  # 100% canary
    assert v1["model_version"] == "2" and len(v1["predictions"]) == 1 and len(v1["classes"]) == 3
    assert h2[protocol.ROLE_HEADER] == "champion" and v2["id"] == "r-1" and v2["model_version"] == "1"
    assert endpoint.metadata()["versions"] == ["1", "2"]
    with pytest.raises(ModelNotFoundError, match="version 7 is not served here"):
        endpoint.metadata("7")
    with pytest.raises(MlcycleError) as refused:
        endpoint.refuse_explain()
    assert refused.value.http_status == 501 and refused.value.to_dict()["field"] == "verb"
    with pytest.raises(InvalidInputError, match="needs \"instances\""):
        asyncio.run(endpoint.answer_json("v1", {"rows": []}, {}))
    # A worker gets the references, not the loaded versions.
    copy = pickle.loads(pickle.dumps(endpoint))  # noqa: S301 - our own bytes
    assert copy.ref == endpoint.ref and copy.versions == {} and not copy.ready
    endpoint.stop()
    assert not endpoint.ready and list((tmp_path / "downloads").iterdir()) == []


def test_refresh_swaps_a_moved_alias_and_backs_off_a_broken_version(wine_env, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    s = _settings(tmp_path, monkeypatch, MLCYCLE_SERVING_POLL_SECONDS="0")
    client = MlflowClient()
    endpoint = ModelEndpoint("models:/wine@champion", s)
    endpoint.load()
    first = endpoint.versions["champion"].download_dir
    try:
        client.set_registered_model_alias("wine", "champion", "2")
        assert endpoint.refresh() == {"champion": "2"}
        assert not first.exists() and endpoint.versions["champion"].version == "2"
        assert len(list((tmp_path / "downloads").iterdir())) == 1
        assert endpoint.refresh() == {}  # nothing moved
        # A version that cannot load: counted, the old one keeps serving, not retried before its backoff.
        import mlcycle.serving.endpoint as module

        calls = []

        def broken(*args, **kwargs):
            calls.append(args)
            raise RuntimeError("download failed")

        monkeypatch.setattr(module.ServedVersion, "load", broken)
        client.set_registered_model_alias("wine", "champion", "1")
        assert endpoint.refresh() == {} and endpoint.refresh() == {}
        assert len(calls) == 1 and endpoint.load_failures == 1 and endpoint.versions["champion"].version == "2"
    finally:
        client.set_registered_model_alias("wine", "champion", "1")
        endpoint.stop()


def test_protocol_checks_and_encodes():
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        protocol.loads(b"{")
    with pytest.raises(InvalidInputError, match="shape must be a list of integers"):
        protocol.v2_json_inputs({"inputs": [{"name": "a", "shape": [1.5], "datatype": "FP64", "data": [1]}]})
    with pytest.raises(InvalidInputError, match="lacks 'shape', 'datatype'"):
        protocol.v2_json_inputs({"inputs": [{"name": "a", "data": [1]}]})
    assert protocol.requested_outputs({"outputs": [{"name": "predict"}]}) == {"predict"}
    result = Prediction(predictions=np.array([1, 0]), probabilities=None, classes=None)
    with pytest.raises(InvalidInputError, match="unknown output"):
        protocol.v2_json_response("wine", "1", result, "r", {"nope"})
    body = protocol.v2_json_response("wine", "1", result, "r", None)
    assert body["outputs"][0]["shape"] == [2] and protocol.loads(protocol.dumps(body))["outputs"][0]["data"] == [1, 0]
    frame = Prediction(predictions=np.array([1.0, 2.0]), probabilities=None, classes=None,
                       columns={"a": np.array([1.0, 2.0]), "b": np.array(["x", "y"])})
    assert protocol.v1_response("m", "1", frame)["predictions"] == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]


def test_worker_counts():
    assert worker_count("auto") == cores() >= 1 and worker_count("3") == 3
    with pytest.raises(ValueError, match="--workers takes a number or 'auto', not 'many'"):
        worker_count("many")
    n = str(cores())
    argv = ["m", "--workers", "auto", "--canary", "auto"]
    assert argv_with_worker_count(argv) == ["m", "--workers", n, "--canary", "auto"]
    assert argv_with_worker_count(["--workers=auto"]) == [f"--workers={n}"]


def test_refresh_keeps_serving_when_the_alias_moves_to_an_unservable_version(wine_env, tmp_path, monkeypatch, caplog):
    """A new version whose requirements do not hold here: one WARNING (no traceback), the old version
    keeps serving, and it is not downloaded again while the alias stays on it."""
    from mlflow import MlflowClient

    import mlcycle.serving.endpoint as module
    from mlcycle.errors import ModelNotServableError

    s = _settings(tmp_path, monkeypatch, MLCYCLE_SERVING_POLL_SECONDS="0")
    client = MlflowClient()
    endpoint = ModelEndpoint("models:/wine@champion", s)
    endpoint.load()
    calls = []

    def unservable(*args, **kwargs):
        calls.append(args)
        raise ModelNotServableError("not servable: models:/wine/2: lightgbm 1.0.0 (model) vs 4.6.0 (installed)")

    monkeypatch.setattr(module.ServedVersion, "load", unservable)
    try:
        client.set_registered_model_alias("wine", "champion", "2")
        with caplog.at_level("WARNING", logger="mlcycle.inference"):
            assert endpoint.refresh() == {} and endpoint.refresh() == {}
        assert len(calls) == 1 and endpoint.versions["champion"].version == "1" and endpoint.ready
        (record,) = [r for r in caplog.records if "lightgbm 1.0.0 (model)" in r.getMessage()]
        assert record.levelname == "WARNING" and record.exc_info is None
    finally:
        client.set_registered_model_alias("wine", "champion", "1")
        endpoint.stop()


def test_an_unservable_model_leaves_the_endpoint_not_ready_with_the_reason(wine_env, tmp_path, monkeypatch):
    """load_or_refuse: not ready, the reason in every 503, and no second download while the alias has
    not moved; when it moves to a servable version, the next poll loads it."""
    from mlflow import MlflowClient

    import mlcycle.serving.endpoint as module
    from mlcycle.errors import ModelNotServableError

    s = _settings(tmp_path, monkeypatch, MLCYCLE_SERVING_POLL_SECONDS="0")
    real_load = module.ServedVersion.load
    calls = []

    def unservable_v1(ref, *args, **kwargs):
        calls.append(ref)
        if str(MlflowClient().get_model_version_by_alias("wine", "champion").version) == "1":
            raise ModelNotServableError("not servable: models:/wine/1: lightgbm 1.0.0 (model) vs 4.6.0 (installed)")
        return real_load(ref, *args, **kwargs)

    monkeypatch.setattr(module.ServedVersion, "load", staticmethod(unservable_v1))
    endpoint = ModelEndpoint("models:/wine@champion", s)
    try:
        assert calls == [] and endpoint.load_or_refuse() is False and not endpoint.ready
        with pytest.raises(ModelNotReadyError, match="is not ready: not servable: models:/wine/1: lightgbm 1.0.0"):
            endpoint.authenticate({})
        endpoint._retry_load()  # the alias has not moved: not tried again
        assert len(calls) == 1
        MlflowClient().set_registered_model_alias("wine", "champion", "2")
        endpoint._retry_load()
        assert endpoint.ready and endpoint.versions["champion"].version == "2" and endpoint.not_ready_reason is None
    finally:
        MlflowClient().set_registered_model_alias("wine", "champion", "1")
        endpoint.stop()


def test_predictions_are_counted_once_per_row_when_requests_are_batched(wine_env, tmp_path, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    s = _settings(tmp_path, monkeypatch)
    endpoint = ModelEndpoint("models:/wine@champion", s)
    endpoint.load()
    rows = wine_env.X.iloc[:3].values.tolist()

    async def calls():
        bodies = [{"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                               "data": rows}]} for _ in range(40)]
        return await asyncio.gather(*(endpoint.answer_json("v2-rest", b, {}) for b in bodies))

    def counted() -> float:  # the process's metrics: other tests' requests count there too
        body, _ = endpoint._rt.metrics.render_latest()
        return sum(
            sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == "mlcycle_predictions_total" and sample.labels.get("model") == "wine"
        )

    before = counted()
    answers = asyncio.run(calls())
    batcher = endpoint.versions["champion"].batcher
    assert len(answers) == 40 and batcher.calls < 40  # the requests shared model calls
    assert counted() - before == 40 * len(rows)
    endpoint.stop()


@pytest.mark.parametrize("shape", [[True], [1, False], [1.0, 1], [1, 1, "2"], "1", [[1]], None])
def test_a_shape_that_is_not_a_list_of_integers_is_refused_naming_the_input(shape):
    with pytest.raises(InvalidInputError, match="input 'a': shape must be a list of integers") as e:
        protocol.v2_json_inputs({"inputs": [{"name": "a", "shape": shape, "datatype": "FP64", "data": [1]}]})
    assert e.value.field == "a"


@pytest.mark.parametrize("shape", [[], [1], [1, 1], [2, 3, 4]])
def test_a_list_of_integers_is_a_shape(shape):
    (got,) = protocol.v2_json_inputs({"inputs": [{"name": "a", "shape": shape, "datatype": "FP64", "data": [1]}]})
    assert got.shape == shape
