"""mlcycle's REST routes, registered before KServe's own (the first match wins in Starlette).

The hot paths (``POST /v2/models/{name}[/versions/{v}]/infer`` with a JSON body, ``POST
/v1/models/{name}:predict``) are answered by :class:`FastLane`, a plain ASGI layer in front of
FastAPI's exception middleware and router: no route matching over KServe's routes, no Request or
Response object, no dependency solving. It authenticates before a byte of the body is read, hands the
parsed JSON to the model's endpoint, and turns an exception into the very response the app's own
handlers give. What it does not take (the binary tensor extension, a model this server does not serve)
goes on to the same routes as plain Starlette routes. ``/metrics``
serves mlcycle's metrics (all workers'); ``/v2/health/ready`` and ``/v2/models/{name}/ready`` are 503
with the reason (e.g. a requirement that does not hold here) while a model is not ready;
``/v2/models/{name}[/versions/{v}]`` metadata lists and addresses the served versions (KServe answers
501 there); ``:explain`` is a JSON 501.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferRequest
from starlette.datastructures import Headers

from mlcycle.errors import InvalidInputError, MlcycleError, ModelNotFoundError, PayloadTooLargeError
from mlcycle.serving import protocol
from mlcycle.serving.limits import DEFAULT_MAX_BODY_BYTES, declared_length_error, send_error, too_large
from mlcycle.serving.runtime import metrics_body

JSON = "application/json"
_JSON_TYPE = (b"content-type", b"application/json")
_V2_PREFIX, _V2_SUFFIX, _V1_PREFIX, _V1_SUFFIX = "/v2/models/", "/infer", "/v1/models/", ":predict"


def hot_route(path: str) -> tuple[str, str, str | None] | None:
    """``(kind, model name, version)`` for the paths :class:`FastLane` answers, else None.

    The same paths the Starlette routes below match (a name or version is one non-empty path segment).
    """
    if path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
        parts = path[len(_V2_PREFIX) : -len(_V2_SUFFIX)].split("/")
        if len(parts) == 1 and parts[0]:
            return "v2-rest", parts[0], None
        if len(parts) == 3 and parts[0] and parts[1] == "versions" and parts[2]:
            return "v2-rest", parts[0], parts[2]
    elif path.startswith(_V1_PREFIX) and path.endswith(_V1_SUFFIX):
        name = path[len(_V1_PREFIX) : -len(_V1_SUFFIX)]
        if name and "/" not in name:
            return "v1", name, None
    return None


async def answer_body(endpoint: Any, kind: str, body: bytes, headers: Any, version: str | None) -> tuple[bytes, dict]:
    """A JSON request body in, the JSON response body and its headers out: both REST paths' one core."""
    result, extra = await endpoint.answer_json(kind, protocol.loads(body), headers, version)
    return protocol.dumps(result), extra


class FastLane:
    """An ASGI layer that answers the hot inference routes itself (see the module's docstring).

    Args:
        app: the rest of the application (FastAPI's exception middleware and router).
        registry: KServe's model repository (the served models).
        exception_handlers: the FastAPI app's own mapping (read at each error, so handlers added after
            this layer was built count): an exception becomes the response its handler gives.
        max_body_bytes: the body limit, applied here as :class:`~mlcycle.serving.limits.BodyLimitMiddleware`
            applies it to the rest of the app (the same 400/413 answers), without wrapping ``receive`` and
            ``send`` of every hot request in two more coroutines.
    """

    def __init__(
        self,
        app: Any,
        registry: ModelRepository,
        exception_handlers: Mapping,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.registry = registry
        self.exception_handlers = exception_handlers
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        route = hot_route(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        kind, name, version = route
        found = self.registry.get_model(name)
        headers = Headers(scope=scope)
        if found is None or not hasattr(found, "endpoint") or (
            kind != "v1" and INFERENCE_CONTENT_LENGTH_HEADER in headers
        ):
            await self.app(scope, receive, send)  # the routes' own 404, or the binary extension
            return
        endpoint = found.endpoint
        refused = declared_length_error(scope, self.max_body_bytes)
        if refused is not None:
            await send_error(send, refused)
            return
        try:
            endpoint.authenticate(headers)  # before a byte of the body is read
            body = await _read_body(receive, self.max_body_bytes)
            if body is None:
                return  # the client went away: nobody to answer
            content, extra = await answer_body(endpoint, kind, body, headers, version)
        except PayloadTooLargeError as exc:  # what BodyLimitMiddleware answers (the connection closes)
            await send_error(send, exc)
            return
        except Exception as exc:  # noqa: BLE001 - answered as the app's handler for it answers
            await self._answer_error(scope, receive, send, exc)
            return
        response_headers = [(b"content-length", str(len(content)).encode()), _JSON_TYPE]
        response_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})

    async def _answer_error(self, scope: dict, receive: Any, send: Any, exc: Exception) -> None:
        handlers = self.exception_handlers
        handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
        if handler is None:
            raise exc
        response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)


async def _read_body(receive: Any, max_bytes: int) -> bytes | None:
    """The request body (None if the client disconnected first).

    Raises:
        PayloadTooLargeError: the bytes received passed ``max_bytes`` (at most one chunk more is held).
    """
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body = message.get("body", b"")
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    if not message.get("more_body", False):
        return body
    chunks, received = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def mlcycle_error_handler(_: Request, exc: MlcycleError) -> Response:
    """An mlcycle error as its HTTP status and JSON body (never a traceback)."""
    return Response(orjson.dumps(exc.to_dict()), status_code=exc.http_status, media_type=JSON)


def register_routes(app: FastAPI, registry: ModelRepository) -> None:
    def model(name: str):
        found = registry.get_model(name)
        if found is None or not hasattr(found, "endpoint"):
            raise ModelNotFoundError(f"model {name!r} is not served here", field="model")
        return found

    async def metrics() -> Response:
        body, content_type = metrics_body()
        return Response(content=body, headers={"content-type": content_type})

    async def metadata(model_name: str, model_version: str | None = None) -> dict:
        return model(model_name).endpoint.metadata(model_version)

    async def server_ready() -> Response:
        """Ready when every served model is (the v2 spec's "server ready"); else 503 with each reason."""
        waiting = {
            name: found.endpoint.not_ready_error().message
            for name, found in registry.get_models().items()
            if hasattr(found, "endpoint") and not found.endpoint.ready
        }
        if not waiting:
            return Response(orjson.dumps({"ready": True}), media_type=JSON)
        body = {"ready": False, "error": "; ".join(waiting.values()), "type": "ModelNotReadyError", "models": waiting}
        return Response(orjson.dumps(body), status_code=503, media_type=JSON)

    async def model_ready(model_name: str) -> dict:
        endpoint = model(model_name).endpoint
        if not endpoint.ready:
            raise endpoint.not_ready_error()
        return {"name": model_name, "ready": True}

    async def version_ready(model_name: str, model_version: str) -> dict:
        return {"name": model_name, "ready": bool(model(model_name).endpoint.served_version(model_version))}

    async def infer(request: Request) -> Response:
        params, headers = request.path_params, request.headers
        m = model(params["model_name"])
        m.endpoint.authenticate(headers)  # before a byte of the body is read
        body = await request.body()
        binary = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if binary is None:
            content, extra = await answer_body(m.endpoint, "v2-rest", body, headers, params.get("model_version"))
            return Response(content, headers=extra, media_type=JSON)
        try:  # the binary tensor extension: KServe's decoder, whose KeyError/TypeError/... mean a bad header
            parsed = InferRequest.from_bytes(body, int(binary), m.name)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, KServeInvalidInput) as e:
            raise InvalidInputError(f"bad {INFERENCE_CONTENT_LENGTH_HEADER}: {e}", field="body") from e
        result, extra = await m.infer(parsed, dict(headers), version=params.get("model_version"), authenticated=True)
        content, json_length = result.to_rest()
        if json_length is None:
            return Response(orjson.dumps(content), headers=extra, media_type=JSON)
        extra[INFERENCE_CONTENT_LENGTH_HEADER] = str(json_length)
        return Response(content, headers=extra, media_type="application/octet-stream")

    async def predict_v1(request: Request) -> Response:
        m = model(request.path_params["model_name"])
        m.endpoint.authenticate(request.headers)  # before a byte of the body is read
        content, extra = await answer_body(m.endpoint, "v1", await request.body(), request.headers, None)
        return Response(content, headers=extra, media_type=JSON)

    async def explain_v1(request: Request) -> Response:
        """No explainer is served: 501 (404 for an unknown model); KServe's route predicted instead."""
        m = model(request.path_params["model_name"])
        m.endpoint.authenticate(request.headers)
        m.endpoint.refuse_explain()

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/v2/health/ready", server_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/ready", model_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}", metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/ready", version_ready, methods=["GET"])
    app.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    app.add_route("/v2/models/{model_name}/versions/{model_version}/infer", infer, methods=["POST"])
    app.add_route("/v1/models/{model_name}:predict", predict_v1, methods=["POST"])
    app.add_route("/v1/models/{model_name}:explain", explain_v1, methods=["POST"])
    app.add_exception_handler(MlcycleError, mlcycle_error_handler)
