"""A request can be followed from the HTTP call into the predictor's log lines by its id."""

import json

from tests.inference.conftest import start_predictor, stop_predictor


def test_log_lines_of_a_request_carry_its_id_model_and_version(wine, tmp_path):
    env = {**wine.env, "MLCYCLE_LOG_FORMAT": "json", "MLCYCLE_LOG_LEVEL": "DEBUG", "MLCYCLE_SERVING_POLL_SECONDS": "0"}
    # KServe's own flags reach the server: --model_name names the served model (the rest must not break it).
    kserve_flags = ["--model_name", "vino", "--timeout-keep-alive", "20", "--max_asyncio_workers", "4"]
    p = start_predictor(["models:/wine@champion", *kserve_flags], env, tmp_path / "predictor.log", grpc=False)
    try:
        row = wine.X.iloc[0].tolist()
        with p.client() as c:
            ok = c.post("/v2/models/vino/infer", json={"id": "trace-me-42", "inputs": [
                {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]})
            bad = c.post("/v2/models/vino/infer", json={"id": "trace-bad-7", "inputs": [
                {"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]})
        assert ok.status_code == 200 and ok.json()["id"] == "trace-me-42" and ok.json()["model_name"] == "vino"
        assert bad.status_code == 400
    finally:
        stop_predictor(p.proc)
    lines = [json.loads(line) for line in p.log.read_text().splitlines() if line.startswith("{")]
    answered = [ln for ln in lines if ln.get("request_id") == "trace-me-42"]
    assert answered and answered[0]["model"] == "vino" and answered[0]["version"] == ok.json()["model_version"]
    assert answered[0]["component"] == "predictor" and answered[0]["level"].upper() == "DEBUG"
    refused = [ln for ln in lines if ln.get("request_id") == "trace-bad-7"]
    assert refused and "400" in refused[0]["message"]
    # Payload contents stay out of the logs.
    assert not any(str(row[0]) in json.dumps(ln) for ln in answered + refused)
