"""Refuse oversized request bodies before they are read into memory: a plain ASGI middleware.

Uvicorn limits header sizes but reads a body of any length; Starlette's ``request.body()`` then holds it
all. :class:`BodyLimitMiddleware` answers **413** with a JSON error body

- at once when ``Content-Length`` says the body is larger than ``max_bytes`` (nothing is read), and
- for a body without a length (chunked), as soon as the bytes received pass ``max_bytes``: the request
  path raises :class:`~mlcycle.errors.PayloadTooLargeError` from ``receive()``, so at most
  ``max_bytes`` plus one chunk is ever held.

A malformed ``Content-Length`` is a 400. Deeply nested JSON needs no check of its own: orjson refuses
more than 1,024 levels while parsing (a 400 from the predictor), and the body limit bounds the work.
"""

from __future__ import annotations

from typing import Any

import orjson

from mlcycle.errors import InvalidInputError, MlcycleError, PayloadTooLargeError

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


class BodyLimitMiddleware:
    """An ASGI middleware: HTTP request bodies larger than ``max_bytes`` get a 413 JSON answer."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = declared_length_error(scope, self.max_bytes)
        if error is not None:
            await send_error(send, error)
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLargeError as e:  # raised in a route that did not turn it into a response itself
            if started:
                raise
            await send_error(send, e)


def declared_length_error(scope: dict, max_bytes: int) -> MlcycleError | None:
    """The 400 (malformed) or 413 (over ``max_bytes``) a request's ``Content-Length`` earns, else None."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
                if length < 0:
                    raise ValueError(value)
            except ValueError:
                return InvalidInputError("bad Content-Length header", field="content-length")
            return too_large(max_bytes) if length > max_bytes else None
    return None


def too_large(max_bytes: int) -> PayloadTooLargeError:
    """The 413 for a body over ``max_bytes``."""
    return PayloadTooLargeError(
        f"the request body is larger than {max_bytes} bytes (MLCYCLE_SERVING_MAX_BODY_BYTES)", field="body"
    )


async def send_error(send: Any, error: MlcycleError) -> None:
    """``error`` as its JSON answer, closing the connection (a refused body may be partly unread)."""
    body = orjson.dumps(error.to_dict())
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
