"""Bad input at scale: Hypothesis-generated requests against every v1/v2 endpoint of ONE real predictor.

Well over 5,000 requests per run (derandomized, so every run sends the same ones), valid-shaped and
malformed: wrong types, shapes and datatypes, NaN/inf literals, huge numbers, missing and extra fields,
non-JSON bytes, the binary-tensor header with nonsense, deeply nested JSON and oversized bodies. Every
answer must be below 500, every 4xx must carry a JSON error body, and the server must stay up.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from urllib.parse import quote

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.inference.conftest import start_predictor, stop_predictor

pytestmark = pytest.mark.slow

MAX_BODY = 1_000_000  # the server's MLCYCLE_SERVING_MAX_BODY_BYTES in this module
STATUSES: Counter[int] = Counter()
FAILURES: list[str] = []
FUZZED: set[str] = set()  # the fuzzing tests that ran to the end
FUZZ = settings(
    derandomize=True,  # the same requests every run: a failure reproduces
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as generated
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def server(wine_registry, tmp_path_factory):
    env = {
        **wine_registry.env,
        "MLCYCLE_SERVING_MAX_BODY_BYTES": str(MAX_BODY),
        "MLCYCLE_SERVING_MAX_ROWS": "1000",
        "MLCYCLE_SERVING_PAYLOAD_LOG": "false",
    }
    log = tmp_path_factory.mktemp("fuzz") / "predictor.log"
    p = start_predictor(["models:/wine@champion"], env, log, grpc=True)
    yield p
    stop_predictor(p.proc)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def columns(client) -> list[str]:
    return [i["name"] for i in client.get("/v2/models/wine").json()["inputs"]]


def check(response: httpx.Response, what: str) -> None:
    """Record the answer; a 5xx or a 4xx without a JSON error body is a failure."""
    STATUSES[response.status_code] += 1
    status = response.status_code
    if status >= 500:
        FAILURES.append(f"{what}: {status} {response.text[:300]}")
    elif status >= 400:
        try:
            body = response.json()
        except ValueError:
            FAILURES.append(f"{what}: {status} with a non-JSON body {response.text[:200]!r}")
            return
        if not (isinstance(body, dict) and ("error" in body or "detail" in body)):
            FAILURES.append(f"{what}: {status} with a JSON body that is no error: {response.text[:200]}")
    assert not FAILURES, FAILURES[:3]


# -- strategies -----------------------------------------------------------------------------------

WEIRD_NUMBERS = st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-1e999", "0x10", ""])
NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(min_value=-1e3, max_value=1e3),
)
SCALAR = st.one_of(NUMBER, WEIRD_NUMBERS, st.text(max_size=6), st.booleans(), st.none())
ANY_JSON = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=10,
)
DATATYPES = st.one_of(
    st.sampled_from(["FP64", "FP32", "FP16", "INT64", "INT32", "INT8", "UINT64", "BOOL", "BYTES", "fp64", "FP128"]),
    st.text(max_size=6),
)
# Mostly the served model (so the decoder sees most bodies), sometimes a name or version not served.
NAMES = st.one_of(st.just("wine"), st.just("wine"), st.sampled_from(["nope", "WINE", "wine.x", "w%ne", "a" * 300]))
VERSIONS = st.one_of(st.none(), st.just("1"), st.sampled_from(["2", "999", "abc", "-1", "1.0"]))


def row(n_features: int):
    return st.lists(NUMBER, min_size=n_features, max_size=n_features)


def good_rows(n_features: int):
    return st.lists(
        st.lists(st.floats(min_value=0, max_value=1e3), min_size=n_features, max_size=n_features),
        min_size=1,
        max_size=8,
    )


@st.composite
def v2_body(draw, columns: list[str]):
    f = len(columns)
    kind = draw(st.integers(0, 4))
    if kind == 0:  # valid: one [N, F] tensor
        rows = draw(good_rows(f))
        return {"inputs": [{"name": "input-0", "shape": [len(rows), f], "datatype": "FP64", "data": rows}]}
    if kind == 1:  # valid-shaped: one input per column, values anything numeric-ish
        n = draw(st.integers(1, 4))
        return {
            "inputs": [
                {"name": c, "shape": [n], "datatype": draw(DATATYPES), "data": draw(st.lists(SCALAR, min_size=n))}
                for c in columns
            ],
            "outputs": draw(st.one_of(st.none(), st.lists(st.fixed_dictionaries({"name": st.text(max_size=12)})))),
        }
    if kind == 2:  # a tensor with every field drawn from a wide space and some fields dropped
        tensor = {
            "name": draw(st.one_of(st.sampled_from(["input-0", *columns]), ANY_JSON)),
            "shape": draw(st.one_of(st.lists(st.integers(-2, 10**12), max_size=4), ANY_JSON)),
            "datatype": draw(st.one_of(DATATYPES, ANY_JSON)),
            "data": draw(st.one_of(st.lists(row(f), max_size=3), st.lists(SCALAR, max_size=30), ANY_JSON)),
        }
        for key in draw(st.sets(st.sampled_from(list(tensor)), max_size=2)):
            del tensor[key]
        if draw(st.booleans()):
            tensor["parameters"] = draw(ANY_JSON)
        return {"inputs": [tensor], "id": draw(st.one_of(st.text(max_size=8), ANY_JSON))}
    if kind == 3:  # wrong at the top level
        return draw(st.one_of(ANY_JSON, st.fixed_dictionaries({"inputs": ANY_JSON}), st.just({})))
    rows = draw(good_rows(f))  # valid data, lying shape
    return {"inputs": [{"name": "input-0", "shape": draw(st.lists(st.integers(-1, 20), max_size=3)),
                        "datatype": "FP64", "data": rows}]}


@st.composite
def v1_body(draw, columns: list[str]):
    f = len(columns)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return {"instances": draw(good_rows(f))}
    if kind == 1:  # rows as objects, some keys wrong or missing
        keys = draw(st.lists(st.sampled_from([*columns, "extra", ""]), max_size=f + 2, unique=True))
        return {"instances": draw(st.lists(st.fixed_dictionaries({k: SCALAR for k in keys}), max_size=3))}
    if kind == 2:
        return {draw(st.sampled_from(["instances", "inputs", "rows"])): draw(st.one_of(st.lists(row(f)), ANY_JSON))}
    return draw(ANY_JSON)


def encode(draw, body) -> bytes:
    """JSON as the stdlib writes it (NaN/Infinity literals, arbitrarily big integers), sometimes mangled."""
    text = json.dumps(body).encode()
    how = draw(st.integers(0, 9))
    if how == 0 and text:
        return text[: draw(st.integers(0, len(text) - 1))]  # truncated
    if how == 1:
        return text + draw(st.binary(max_size=8))  # trailing garbage
    return text


CONTENT_TYPES = st.sampled_from(["application/json", "application/json", "text/plain", "application/octet-stream", ""])


# -- the fuzzing ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=2000)
@given(data=st.data())
def test_v2_infer(client, columns, data):
    FUZZED.add("test_v2_infer")
    name, version = data.draw(NAMES), data.draw(VERSIONS)
    path = f"/v2/models/{quote(name, safe='')}" + (f"/versions/{quote(version)}" if version else "") + "/infer"
    body = encode(data.draw, data.draw(v2_body(columns)))
    headers = {"content-type": data.draw(CONTENT_TYPES)}
    if data.draw(st.integers(0, 9)) == 0:  # the binary tensor extension, with a header that may lie
        lengths = st.one_of(
            st.integers(-5, len(body) + 5).map(str), st.text(alphabet="0123456789-+abc", min_size=1, max_size=4)
        )
        headers["inference-header-content-length"] = data.draw(lengths)
        body += data.draw(st.binary(max_size=64))
    check(client.post(path, content=body, headers=headers), f"POST {path} {body[:200]!r} {headers}")


@settings(FUZZ, max_examples=1700)
@given(data=st.data())
def test_v1_predict(client, columns, data):
    FUZZED.add("test_v1_predict")
    name = data.draw(NAMES)
    path = f"/v1/models/{quote(name, safe='')}:predict"
    body = encode(data.draw, data.draw(v1_body(columns)))
    headers = {"content-type": data.draw(CONTENT_TYPES)}
    check(client.post(path, content=body, headers=headers), f"POST {path} {body[:200]!r}")


GET_PATHS = st.sampled_from(
    [
        "/",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v1/models",
        "/v2/models",
        "/v1/models/{name}",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v1/models/{name}:predict",
        "/metrics",
        "/docs",
        "/openapi.json",
    ]
)


@settings(FUZZ, max_examples=800)
@given(data=st.data())
def test_metadata_ready_health(client, data):
    FUZZED.add("test_metadata_ready_health")
    template = data.draw(GET_PATHS)
    name = quote(data.draw(st.one_of(NAMES, st.text(min_size=1, max_size=10))), safe="")
    version = quote(data.draw(st.one_of(VERSIONS.filter(bool), st.text(min_size=1, max_size=6))), safe="")
    path = template.format(name=name, version=version)
    method = data.draw(st.sampled_from(["GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"]))
    content = data.draw(st.one_of(st.none(), st.binary(max_size=32)))
    response = client.request(method, path, content=content)
    if method == "HEAD":  # no body by definition
        STATUSES[response.status_code] += 1
        assert response.status_code < 500, f"HEAD {path}: {response.status_code}"
        return
    check(response, f"{method} {path}")


@settings(FUZZ, max_examples=500)
@given(data=st.data())
def test_non_json_bytes(client, data):
    FUZZED.add("test_non_json_bytes")
    path = data.draw(st.sampled_from(["/v2/models/wine/infer", "/v1/models/wine:predict",
                                      "/v2/models/wine/versions/1/infer"]))
    body = data.draw(st.one_of(st.binary(max_size=256), st.text(max_size=64).map(str.encode)))
    check(client.post(path, content=body, headers={"content-type": data.draw(CONTENT_TYPES)}), f"POST {path} {body!r}")


# -- shape arithmetic ---------------------------------------------------------------------------------

MAX_ROWS = 1000  # the server's MLCYCLE_SERVING_MAX_ROWS in this module
HUGE = st.one_of(st.integers(MAX_ROWS * 20 + 1, 2**63 - 1), st.sampled_from([2**31, 2**32, 2**62, 2**63 - 1]))
NEGATIVE = st.one_of(st.integers(-(2**63), -1), st.sampled_from([-1, -2]))


@st.composite
def shape_arithmetic(draw, columns: list[str]):
    """A v2 body whose declared shapes are wrong in one way, and the status it must get.

    Negative dimensions (-1 is metadata's "any", never a request's), zero rows, products far past the
    row limit (refused before anything is allocated: 413), ranks other than the model's, and column
    inputs whose row counts or data lengths disagree. The data is always plausible numbers, so only the
    shape arithmetic is wrong.
    """
    f = len(columns)
    n = draw(st.integers(1, 4))
    rows = [[1.0] * f for _ in range(n)]
    kind = draw(st.sampled_from(["negative", "zero", "huge", "rank", "column-rows", "column-length"]))
    tensor = draw(st.booleans())
    expected = 400
    if kind == "negative":
        bad = draw(NEGATIVE)
        shape = draw(st.sampled_from([[bad, f], [n, bad], [bad, bad], [bad]])) if tensor else [bad]
    elif kind == "zero":
        shape = draw(st.sampled_from([[0, f], [0], [0, 0]])) if tensor else [0]
        rows = []
    elif kind == "huge":
        big = draw(HUGE)
        shape = draw(st.sampled_from([[big, f], [big, big], [big]])) if tensor else [big]
        expected = 413
    elif kind == "rank":
        rank = draw(st.sampled_from([0, 1, 3, 4]))
        shape = draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank))
        tensor = True
    if tensor and kind != "column-rows" and kind != "column-length":
        return {"inputs": [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": rows}]}, expected
    if kind in ("column-rows", "column-length"):
        odd = draw(st.sampled_from(columns))
        inputs = []
        for c in columns:
            m = n
            if c == odd and kind == "column-rows":
                m = draw(st.integers(0, 6).filter(lambda k: k != n))
            data = [1.0] * m
            if c == odd and kind == "column-length":
                data = [1.0] * draw(st.integers(0, 6).filter(lambda k: k != n))
            inputs.append({"name": c, "shape": [m], "datatype": "FP64", "data": data})
        return {"inputs": inputs}, expected
    # a per-column request whose first column carries the bad shape
    inputs = [{"name": c, "shape": shape if i == 0 else [n], "datatype": "FP64", "data": [1.0] * n}
              for i, c in enumerate(columns)]
    return {"inputs": inputs}, expected


@settings(FUZZ, max_examples=400)
@given(data=st.data())
def test_v2_shape_arithmetic(client, columns, data):
    """Every wrong shape is the client's mistake: exactly 400 (413 past the row limit), never a 5xx."""
    FUZZED.add("test_v2_shape_arithmetic")
    body, expected = data.draw(shape_arithmetic(columns))
    r = client.post("/v2/models/wine/infer", json=body)
    check(r, f"shape arithmetic {json.dumps(body)[:300]}")
    assert r.status_code == expected, (r.status_code, r.text[:300], json.dumps(body)[:300])


@pytest.mark.parametrize(
    "shape",
    [[-1], [-2], [0], [-1, 1], [2**63 - 1], [2, 3], [3]],
    ids=["minus-1", "minus-2", "zero", "minus-1-by-1", "int64-max", "wrong-rank", "length-mismatch"],
)
def test_column_shape_cases_are_4xx(client, columns, shape):
    """The reported 500s: per-column inputs with ``"shape": [-1]`` or ``[-2]`` (``np.empty`` raised)."""
    body = {"inputs": [{"name": c, "shape": shape, "datatype": "FP64", "data": [1.0, 2.0]} for c in columns]}
    r = client.post("/v2/models/wine/infer", json=body)
    check(r, f"columns with shape {shape}")
    assert r.status_code == (413 if shape[0] > MAX_ROWS else 400), r.text
    assert r.json()["field"] == columns[0], r.text


# -- v2 gRPC ------------------------------------------------------------------------------------

GRPC_CODES: Counter[str] = Counter()
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def grpc_tensor(draw, pb, columns: list[str]):
    rows = draw(st.integers(0, 5))
    shape = draw(st.one_of(st.just([rows, len(columns)]), st.just([rows]), st.lists(INT64, max_size=3)))
    contents = {}
    field = draw(st.sampled_from(["fp64", "fp32", "int64", "int", "uint", "bool", "bytes", "none"]))
    if field == "fp64":
        contents["fp64_contents"] = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80))
    elif field == "fp32":
        contents["fp32_contents"] = draw(st.lists(st.floats(width=32), max_size=80))
    elif field == "int64":
        contents["int64_contents"] = draw(st.lists(INT64, max_size=80))
    elif field == "int":
        contents["int_contents"] = draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=80))
    elif field == "uint":
        contents["uint_contents"] = draw(st.lists(st.integers(0, 2**32 - 1), max_size=80))
    elif field == "bool":
        contents["bool_contents"] = draw(st.lists(st.booleans(), max_size=80))
    elif field == "bytes":
        contents["bytes_contents"] = draw(st.lists(st.binary(max_size=8), max_size=20))
    return pb.ModelInferRequest.InferInputTensor(
        name=draw(st.one_of(st.just("input-0"), st.sampled_from(columns), st.text(max_size=6))),
        datatype=draw(DATATYPES),
        shape=shape,
        contents=pb.InferTensorContents(**contents) if contents else None,
    )


@settings(FUZZ, max_examples=600)
@given(data=st.data())
def test_v2_grpc(server, columns, data):
    """The v2 gRPC service: no INTERNAL/UNKNOWN answers to any generated request."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    global GRPC_STUB
    if GRPC_STUB is None:
        GRPC_STUB = pbg.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    name = data.draw(NAMES)
    kind = data.draw(st.integers(0, 5))
    try:
        if kind == 0:
            GRPC_STUB.ModelMetadata(pb.ModelMetadataRequest(name=name, version=data.draw(st.text(max_size=3))),
                                    timeout=10)
        elif kind == 1:
            GRPC_STUB.ModelReady(pb.ModelReadyRequest(name=name), timeout=10)
        else:
            tensors = data.draw(st.lists(grpc_tensor(pb, columns), min_size=0, max_size=3))
            raw = data.draw(st.one_of(st.just([]), st.lists(st.binary(max_size=128), max_size=len(tensors))))
            request = pb.ModelInferRequest(model_name=name, model_version=data.draw(st.sampled_from(["", "1", "9"])),
                                           id=data.draw(st.text(max_size=6)), inputs=tensors,
                                           raw_input_contents=raw)
            GRPC_STUB.ModelInfer(request, timeout=10)
        GRPC_CODES["OK"] += 1
    except grpc.RpcError as e:
        code = e.code()
        GRPC_CODES[code.name] += 1
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS), (
            f"kind {kind}: {code.name} {e.details()}"
        )


GRPC_STUB = None


def test_grpc_model_metadata_answers(server, columns):
    """Was INTERNAL for every call: KServe put the REST metadata dicts into the protobuf message."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    with grpc.insecure_channel(server.grpc) as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="wine"), timeout=10)
        assert [i.name for i in meta.inputs] == columns
        assert list(meta.versions) == ["1"]
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelMetadata(pb.ModelMetadataRequest(name="wine", version="7"), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


# -- refused early: oversized bodies and deep nesting ------------------------------------------------


def rss(server) -> int:
    return psutil.Process(server.proc.pid).memory_info().rss


def test_oversized_bodies_are_refused_with_413_and_bounded_memory(client, server):
    before = rss(server)
    big = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1.0, 2.0, 3.0, 4.0]," * 40_000 + b"[]]}"
    assert len(big) > MAX_BODY
    for path in ("/v1/models/wine:predict", "/v2/models/wine/infer", "/v2/models/nope/infer", "/v2/health/ready"):
        r = client.post(path, content=big, headers={"content-type": "application/json"})
        check(r, f"oversized POST {path}")
        assert r.status_code == 413, (path, r.status_code, r.text[:200])
        assert r.json()["type"] == "PayloadTooLargeError"
    # No Content-Length (chunked): refused once the bytes received pass the limit, not after reading all.
    sent = 0

    def chunks():
        nonlocal sent
        for _ in range(2_000):  # 2,000 x 64 KiB = 128 MiB offered; the server stops reading at ~1 MB
            sent += 65_536
            yield b" " * 65_536

    try:
        r = client.post("/v2/models/wine/infer", content=chunks(), headers={"content-type": "application/json"})
        check(r, "chunked oversized POST")
        assert r.status_code == 413
    except httpx.TransportError:  # the server may close the connection while we still send; then ask again
        STATUSES[413] += 1
    assert sent < 128 * 1024 * 1024, "the whole 128 MiB was read: no early refusal"
    # A nonsense Content-Length is refused by the HTTP parser with a 400, not a hang or a 500.
    host, port = server.url.removeprefix("http://").split(":")
    for length in (b"-3", b"abc", b"99999999999999999999"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/models/wine:predict HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}")
            status_line = s.recv(200).split(b"\r\n", 1)[0]
        assert status_line.split()[1] in (b"400", b"413"), (length, status_line)
    grown = rss(server) - before
    print(f"\nserver RSS grew {grown / 1e6:.1f} MB over the oversized requests (limit {MAX_BODY / 1e6:.1f} MB)")
    assert grown < 64 * 1024 * 1024


def test_deeply_nested_json_is_a_400(client, columns, server):
    before = rss(server)
    for depth in (100, 1_000, 1_100, 200_000):
        nested = b"[" * depth + b"]" * depth
        for path, body in (
            ("/v1/models/wine:predict", b'{"instances": ' + nested + b"}"),
            ("/v2/models/wine/infer", b'{"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64", '
                                      b'"data": ' + nested + b"}]}"),
            ("/v2/models/wine/infer", nested),
        ):
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            check(r, f"depth {depth} POST {path}")
            assert r.status_code in (400, 413), (depth, path, r.status_code, r.text[:200])
    assert rss(server) - before < 64 * 1024 * 1024


def test_the_server_survived_and_answered_everything(client, server, columns):
    assert server.proc.poll() is None, "the predictor exited"
    assert client.get("/v2/health/ready").status_code == 200
    r = client.post("/v1/models/wine:predict", json={"instances": [[13.0] * len(columns)]})
    assert r.status_code == 200, r.text
    total = sum(STATUSES.values())
    grpc_total, codes = sum(GRPC_CODES.values()), dict(sorted(GRPC_CODES.items()))
    print(f"\nfuzzing: {total} HTTP requests, status counts {dict(sorted(STATUSES.items()))}, "
          f"failures {len(FAILURES)}; {grpc_total} gRPC requests, codes {codes}")
    assert not FAILURES
    if len(FUZZED) == 5:  # the whole module ran (not a -k selection)
        assert total >= 5_000, f"only {total} requests were sent; the fuzzing should send at least 5,000"
