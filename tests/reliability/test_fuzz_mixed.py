"""Bad input at scale for a mixed-type model: a custom ``PythonModel`` with a column-based signature
(string, long, 32-bit integer, double, boolean, and two optional columns: a string and a double),
served by a real predictor. Hypothesis generates v2 and v1 requests (derandomized: every run sends the
same ones): valid ones (optional columns present or absent, nulls where allowed), one column of the
wrong type or datatype, a required column missing or null, per-column lengths and shapes that
disagree. Every answer is below 500; every 4xx is a JSON error whose ``field`` names the column at
fault; every valid request answers 200 with the model's own prediction.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from importlib.metadata import version

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.inference.conftest import start_predictor, stop_predictor

pytestmark = pytest.mark.slow

FUZZ = settings(
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
)
# column -> (MLflow type, v2 datatype, required)
COLUMNS = {
    "color": ("string", "BYTES", True),
    "k": ("long", "INT64", True),
    "n": ("integer", "INT32", True),
    "x": ("double", "FP64", True),
    "flag": ("boolean", "BOOL", True),
    "note": ("string", "BYTES", False),
    "extra": ("double", "FP64", False),
}
REQUIRED = [c for c, (_, _, req) in COLUMNS.items() if req]
OPTIONAL = [c for c, (_, _, req) in COLUMNS.items() if not req]
STATUSES: Counter[int] = Counter()


def expected_scores(frame: pd.DataFrame) -> list[float]:
    """What the served model computes (the same arithmetic as ``MixedModel.predict``)."""
    extra = frame["extra"].astype(float).fillna(0.0) if "extra" in frame else 0.0
    note = frame["note"].fillna("").str.len() if "note" in frame else 0
    red = (frame["color"] == "red").astype(float)
    return list(frame["x"] * 2.0 + frame["k"] + frame["n"] * 0.5 + frame["flag"].astype(float) + red + extra + note)


def _mixed_class():
    import mlflow.pyfunc

    class MixedModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            extra = model_input["extra"].astype(float).fillna(0.0) if "extra" in model_input else 0.0
            note = model_input["note"].fillna("").str.len() if "note" in model_input else 0
            red = (model_input["color"] == "red").astype(float)
            return (model_input["x"] * 2.0 + model_input["k"] + model_input["n"] * 0.5
                    + model_input["flag"].astype(float) + red + extra + note).to_numpy()

    return MixedModel


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from mlcycle import tracking
    from mlcycle.config import load_settings

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("mixed-home")
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT"):
        os.environ.pop(var, None)
    env = {"MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "MLCYCLE_SERVING_POLL_SECONDS": "0",
           "MLCYCLE_SERVING_PAYLOAD_LOG": "false", "MLCYCLE_SERVING_MAX_ROWS": "100"}
    os.environ.update(env)
    settings_ = load_settings()
    tracking.configure(settings_)
    experiment = tracking.ensure_experiment("fuzz-mixed", settings_)
    signature = ModelSignature(
        inputs=Schema([ColSpec(typ, name, required=req) for name, (typ, _, req) in COLUMNS.items()]),
    )
    example = pd.DataFrame({"color": ["red", "blue"], "k": np.array([1, 2], dtype=np.int64),
                            "n": np.array([3, 4], dtype=np.int32), "x": [0.5, -1.0], "flag": [True, False],
                            "note": ["a", "bc"], "extra": [1.0, 2.0]})
    with mlflow.start_run(experiment_id=experiment):
        mlflow.pyfunc.log_model(
            name="model", python_model=_mixed_class()(), signature=signature, input_example=example,
            registered_model_name="mixed",
            pip_requirements=[f"mlflow=={version('mlflow')}", f"pandas=={version('pandas')}"],
        )
    p = start_predictor(["models:/mixed/1"], env, tmp_path_factory.mktemp("fuzz-mixed") / "predictor.log",
                        grpc=False)
    yield p
    stop_predictor(p.proc)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# -- strategies -----------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)  # JSON can carry it
GOOD = {
    "string": TEXT,
    "long": st.integers(-(10**12), 10**12),
    "integer": st.integers(-(2**31) + 1, 2**31 - 1),
    "double": st.floats(min_value=-1e6, max_value=1e6),
    "boolean": st.booleans(),
}
# Values that are wrong for the column's type whatever the rest of the request says.
BAD = {
    "string": st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6), st.booleans(),
                        st.lists(st.integers(0, 9), max_size=2)),
    "long": st.one_of(st.text(min_size=1, max_size=4), st.booleans(), st.floats(0.1, 0.9).map(lambda f: f + 3)),
    "integer": st.one_of(st.text(min_size=1, max_size=4), st.integers(2**31, 2**40), st.booleans()),
    "double": st.one_of(st.text(min_size=1, max_size=4), st.booleans(), st.sampled_from(["NaN", "inf"])),
    "boolean": st.one_of(st.text(min_size=1, max_size=4), st.integers(2, 9), st.floats(0.1, 0.9)),
}
WRONG_DATATYPES = {
    "BYTES": ["FP64", "INT64", "BOOL"],
    "INT64": ["BYTES", "BOOL", "FP64"],
    "INT32": ["BYTES", "BOOL", "FP32"],
    "FP64": ["BYTES", "BOOL"],
    "BOOL": ["BYTES", "FP64", "INT64"],
}


@st.composite
def valid_columns(draw, n: int) -> dict[str, list]:
    cols = {c: draw(st.lists(GOOD[COLUMNS[c][0]], min_size=n, max_size=n)) for c in REQUIRED}
    for c in OPTIONAL:
        if draw(st.booleans()):  # present, possibly with nulls
            cols[c] = draw(st.lists(st.one_of(GOOD[COLUMNS[c][0]], st.none()), min_size=n, max_size=n))
    return cols


def v2_inputs(cols: dict[str, list], n: int) -> list[dict]:
    return [{"name": c, "shape": [n], "datatype": COLUMNS[c][1], "data": v} for c, v in cols.items()]


@st.composite
def v2_case(draw) -> tuple[dict, dict[str, list] | None, str | None]:
    """``(body, columns when valid, the column a 4xx must name)``."""
    n = draw(st.integers(1, 5))
    cols = draw(valid_columns(n))
    kind = draw(st.sampled_from(["valid", "valid", "wrong-value", "wrong-datatype", "missing", "null",
                                 "length", "rows", "shape"]))
    if kind == "valid":
        return {"inputs": v2_inputs(cols, n)}, cols, None
    inputs = v2_inputs(cols, n)
    if kind == "missing":
        col = draw(st.sampled_from(REQUIRED))
        return {"inputs": [i for i in inputs if i["name"] != col]}, None, col
    col = draw(st.sampled_from(sorted(cols)))
    target = next(i for i in inputs if i["name"] == col)
    typ = COLUMNS[col][0]
    if kind == "wrong-value":
        row = draw(st.integers(0, n - 1))
        target["data"][row] = draw(BAD[typ])
    elif kind == "wrong-datatype":
        target["datatype"] = draw(st.sampled_from(WRONG_DATATYPES[COLUMNS[col][1]]))
    elif kind == "null":
        col = draw(st.sampled_from(REQUIRED))
        target = next(i for i in inputs if i["name"] == col)
        target["data"][draw(st.integers(0, n - 1))] = None
    elif kind == "length":  # the data holds more or fewer values than the shape says
        target["data"] = target["data"] + target["data"][:1] if draw(st.booleans()) else target["data"][:-1]
    elif kind == "rows":  # one column declares (and holds) another number of rows
        m = draw(st.integers(1, 6).filter(lambda k: k != n))
        target["shape"], target["data"] = [m], (target["data"] * 6)[:m]
    else:  # a shape no column input can have
        target["shape"] = draw(st.sampled_from([[n, 2], [1, n, 1], [], [-1], [n, 0]]))
    if kind == "rows" and col == inputs[0]["name"]:
        col = inputs[1]["name"]  # the first column sets the row count: the next one disagrees with it
    return {"inputs": inputs}, None, col


@st.composite
def v1_case(draw) -> tuple[dict, dict[str, list] | None, str | None]:
    n = draw(st.integers(1, 4))
    cols = draw(valid_columns(n))
    records = [{c: v[r] for c, v in cols.items()} for r in range(n)]
    kind = draw(st.sampled_from(["valid", "valid", "wrong-value", "missing", "null"]))
    if kind == "valid":
        return {"instances": records}, cols, None
    row = draw(st.integers(0, n - 1))
    if kind == "missing":
        col = draw(st.sampled_from(REQUIRED))
        del records[row][col]
    elif kind == "null":
        col = draw(st.sampled_from(REQUIRED))
        records[row][col] = None
    else:
        col = draw(st.sampled_from(sorted(cols)))
        records[row][col] = draw(BAD[COLUMNS[col][0]])
    return {"instances": records}, None, col


def check(r: httpx.Response, body: dict, valid: dict[str, list] | None, col: str | None, scores) -> None:
    STATUSES[r.status_code] += 1
    what = json.dumps(body)[:300]
    assert r.status_code < 500, f"{r.status_code} {r.text[:300]} for {what}"
    if valid is not None:
        assert r.status_code == 200, f"{r.status_code} {r.text[:300]} for {what}"
        frame = pd.DataFrame(valid)
        np.testing.assert_allclose(scores(r.json()), expected_scores(frame), rtol=1e-9)
        return
    assert 400 <= r.status_code < 500, f"{r.status_code} for {what}"
    error = r.json()
    assert isinstance(error, dict) and "error" in error, r.text[:300]
    assert error.get("field") == col, f"field {error.get('field')!r}, expected {col!r}: {r.text[:300]} for {what}"


@settings(FUZZ, max_examples=350)
@given(case=v2_case())
def test_v2_mixed(client, case):
    body, valid, col = case
    r = client.post("/v2/models/mixed/infer", json=body)
    check(r, body, valid, col, lambda b: b["outputs"][0]["data"])


@settings(FUZZ, max_examples=200)
@given(case=v1_case())
def test_v1_mixed(client, case):
    body, valid, col = case
    r = client.post("/v1/models/mixed:predict", json=body)
    check(r, body, valid, col, lambda b: b["predictions"])


def test_the_mixed_server_survived(client, server):
    assert server.proc.poll() is None, "the predictor exited"
    assert client.get("/v2/health/ready").status_code == 200
    print(f"\nmixed fuzzing: status counts {dict(sorted(STATUSES.items()))}")
    assert STATUSES[200] > 0 and sum(v for k, v in STATUSES.items() if 400 <= k < 500) > 0
