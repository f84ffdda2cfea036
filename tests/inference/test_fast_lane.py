"""inference.routes.FastLane: the hot REST routes answered in front of FastAPI's router, with the app's
own error responses, and everything else passed on untouched."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import httpx
import orjson
import pytest
from starlette.routing import compile_path

from inference.routes import FastLane, hot_route, mlcycle_error_handler
from mlcycle.errors import AuthenticationError, InvalidInputError, MlcycleError

ROUTES = {  # the Starlette routes FastLane stands in front of: it must take exactly their paths
    "/v2/models/{model_name}/infer": "v2-rest",
    "/v2/models/{model_name}/versions/{model_version}/infer": "v2-rest",
    "/v1/models/{model_name}:predict": "v1",
}
PATHS = [
    "/v2/models/wine/infer", "/v2/models/wine/versions/3/infer", "/v1/models/wine:predict",
    "/v2/models/a:b/infer", "/v1/models/a:b:predict", "/v2/models//infer", "/v2/models/wine/infer/",
    "/v2/models/wine/versions//infer", "/v2/models/wine/versions/3/4/infer", "/v2/models/wine/explain",
    "/v1/models/:predict", "/v1/models/a/b:predict", "/v2/models/wine", "/v2/models/infer", "/v2/infer",
]


@pytest.mark.parametrize("path", PATHS)
def test_hot_route_takes_exactly_the_paths_the_starlette_routes_match(path):
    expected = None
    for pattern, kind in ROUTES.items():
        regex, _, _ = compile_path(pattern)
        m = re.match(regex, path)
        if m:
            params = m.groupdict()
            expected = (kind, params["model_name"], params.get("model_version"))
            break
    assert hot_route(path) == expected


class Endpoint:
    def __init__(self, fail: Exception | None = None, refuse: Exception | None = None):
        self.fail, self.refuse, self.calls = fail, refuse, []

    def authenticate(self, headers):
        if self.refuse is not None:
            raise self.refuse

    async def answer_json(self, kind, payload, headers, version=None):
        self.calls.append((kind, payload, headers.get("x-request-id"), version))
        if self.fail is not None:
            raise self.fail
        return {"kind": kind, "payload": payload}, {"X-Model-Version": "7"}


class Inner:
    """The rest of the app: records what reached it and answers 299."""

    def __init__(self):
        self.paths = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


async def _generic(_, exc):  # KServe's generic handler's shape
    from starlette.responses import JSONResponse

    return JSONResponse({"error": f"{type(exc).__name__} : {exc}"}, status_code=500)


def _lane(endpoint: Endpoint, handlers=None):
    registry = SimpleNamespace(get_model=lambda name: SimpleNamespace(endpoint=endpoint) if name == "wine" else None)
    inner = Inner()
    handlers = {Exception: _generic, MlcycleError: mlcycle_error_handler} if handlers is None else handlers
    return FastLane(inner, registry, handlers), inner


def _post(app, path, **kwargs) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client:
            return await client.post(path, **kwargs)

    return asyncio.run(go())


def test_the_hot_routes_are_answered_without_the_router():
    endpoint = Endpoint()
    lane, inner = _lane(endpoint)
    r = _post(lane, "/v2/models/wine/versions/3/infer", json={"inputs": []}, headers={"x-request-id": "r1"})
    assert r.status_code == 200 and r.json() == {"kind": "v2-rest", "payload": {"inputs": []}}
    assert r.headers["x-model-version"] == "7" and r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    r = _post(lane, "/v1/models/wine:predict", json={"instances": [[1]]})
    assert r.status_code == 200 and r.json()["kind"] == "v1"
    assert endpoint.calls == [("v2-rest", {"inputs": []}, "r1", "3"), ("v1", {"instances": [[1]]}, None, None)]
    assert inner.paths == []


def test_a_body_in_several_chunks_is_joined():
    endpoint = Endpoint()
    lane, _ = _lane(endpoint)
    chunks = [b'{"inputs": ', b"[1, 2", b"]}"]

    async def stream():
        for c in chunks:
            yield c

    r = _post(lane, "/v2/models/wine/infer", content=stream())
    assert r.status_code == 200 and endpoint.calls[0][1] == {"inputs": [1, 2]}


def test_what_it_does_not_take_goes_on_to_the_app():
    lane, inner = _lane(Endpoint())
    assert _post(lane, "/v2/models/other/infer", json={}).status_code == 299  # not served here: the routes' 404
    assert _post(lane, "/v2/models/wine/infer", content=b"x", headers={"inference-header-content-length": "1"}
                 ).status_code == 299  # the binary extension
    assert _post(lane, "/v2/models/wine/ready", json={}).status_code == 299

    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lane), base_url="http://p") as client:
            return await client.get("/v2/models/wine/infer")

    assert asyncio.run(get()).status_code == 299
    assert inner.paths == ["/v2/models/other/infer", "/v2/models/wine/infer", "/v2/models/wine/ready",
                           "/v2/models/wine/infer"]


def test_errors_become_the_apps_own_responses():
    lane, _ = _lane(Endpoint(fail=InvalidInputError("column 'x' row 2: expected a number", field="x")))
    r = _post(lane, "/v2/models/wine/infer", json={"inputs": []})
    assert r.status_code == 400 and r.json()["field"] == "x" and "row 2" in r.json()["error"]
    r = _post(lane, "/v2/models/wine/infer", content=b"{not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    lane, _ = _lane(Endpoint(fail=ZeroDivisionError("in the model")))
    r = _post(lane, "/v2/models/wine/infer", json={"inputs": []})
    assert r.status_code == 500 and r.json() == {"error": "ZeroDivisionError : in the model"}


def test_authentication_comes_before_the_body_is_read():
    endpoint = Endpoint(refuse=AuthenticationError("no API key", field="authorization"))
    lane, _ = _lane(endpoint)
    read = []

    async def app_call():
        async def receive():
            read.append(True)
            return {"type": "http.request", "body": b"{}", "more_body": False}

        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v2/models/wine/infer", "headers": [],
                 "query_string": b""}
        await lane(scope, receive, send)
        return sent

    sent = asyncio.run(app_call())
    assert sent[0]["status"] == 401 and not read and endpoint.calls == []
    assert orjson.loads(sent[1]["body"])["field"] == "authorization"


def test_a_client_gone_before_its_body_gets_no_answer_and_no_model_call():
    endpoint = Endpoint()
    lane, _ = _lane(endpoint)
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/wine/infer", "headers": [], "query_string": b""}
    asyncio.run(lane(scope, receive, send))
    assert sent == [] and endpoint.calls == []


def test_an_exception_without_a_handler_is_raised():
    lane, _ = _lane(Endpoint(fail=ZeroDivisionError("boom")), handlers={})
    with pytest.raises(ZeroDivisionError):
        _post(lane, "/v2/models/wine/infer", json={})


def test_the_body_limit_holds_on_the_hot_routes_before_the_endpoint_sees_the_body():
    endpoint = Endpoint()
    registry = SimpleNamespace(get_model=lambda name: SimpleNamespace(endpoint=endpoint))
    handlers = {Exception: _generic, MlcycleError: mlcycle_error_handler}
    lane = FastLane(Inner(), registry, handlers, max_body_bytes=64)
    declared = _post(lane, "/v2/models/wine/infer", content=b"x" * 65)  # Content-Length says too much
    assert declared.status_code == 413 and declared.json()["field"] == "body"
    assert declared.headers["connection"] == "close"

    async def stream():  # no length: refused once the bytes received pass the limit
        for _ in range(10):
            yield b"y" * 20

    chunked = _post(lane, "/v1/models/wine:predict", content=stream())
    assert chunked.status_code == 413 and "64 bytes" in chunked.json()["error"]
    bad = _post(lane, "/v2/models/wine/infer", content=b"{}", headers={"content-length": "-1"})
    assert bad.status_code == 400 and bad.json()["field"] == "content-length"
    assert endpoint.calls == []
    fits = _post(lane, "/v2/models/wine/infer", content=b'{"inputs": []}')
    assert fits.status_code == 200 and len(endpoint.calls) == 1
