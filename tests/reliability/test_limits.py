"""The body-limit middleware on its own, in process (fast): declared, chunked and malformed lengths."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlcycle.serving.limits import BodyLimitMiddleware

LIMIT = 1_000


def app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": len(await request.body())})

    application = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    application.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    return application


@pytest.fixture
def client():
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://test")


async def _post(client, **kwargs) -> httpx.Response:
    async with client:
        return await client.post("/echo", **kwargs)


def run(coro):
    import asyncio

    return asyncio.run(coro)


def test_a_body_within_the_limit_passes(client):
    r = run(_post(client, content=b"x" * LIMIT))
    assert r.status_code == 200 and r.json() == {"received": LIMIT}


def test_a_declared_oversized_body_is_413_without_reading_it(client):
    r = run(_post(client, content=b"x" * (LIMIT + 1)))
    assert r.status_code == 413
    assert r.json()["type"] == "PayloadTooLargeError" and "MLCYCLE_SERVING_MAX_BODY_BYTES" in r.json()["error"]


def test_a_chunked_body_is_cut_off_once_past_the_limit(client):
    pulled = 0

    async def chunks():
        nonlocal pulled
        for _ in range(1_000):
            pulled += 1
            yield b"y" * 100

    r = run(_post(client, content=chunks()))
    assert r.status_code == 413
    assert r.json()["type"] == "PayloadTooLargeError"
    assert pulled < 1_000  # stopped reading early (ASGITransport buffers, so only "before the end")


def test_a_malformed_content_length_is_400():
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):  # never reached
        raise AssertionError("the app must not run")

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"-5")]}
    asyncio.run(BodyLimitMiddleware(inner, max_bytes=LIMIT)(scope, receive, send))
    assert sent[0]["status"] == 400


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError):
        BodyLimitMiddleware(app(), max_bytes=0)
