"""mlcycle's REST routes, registered before KServe's own (the first match wins in Starlette).

The hot paths are plain Starlette routes (no dependency solving, no pydantic models) that authenticate
before a byte of the body is read and hand the parsed JSON to the model's endpoint. ``/metrics``
serves mlcycle's metrics (all workers'); ``/v2/health/ready`` and ``/v2/models/{name}/ready`` are 503
with the reason (e.g. a requirement that does not hold here) while a model is not ready;
``/v2/models/{name}[/versions/{v}]`` metadata lists and addresses the served versions (KServe answers
501 there); ``:explain`` is a JSON 501.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferRequest

from mlcycle.errors import InvalidInputError, MlcycleError, ModelNotFoundError
from mlcycle.serving import protocol
from mlcycle.serving.runtime import metrics_body

JSON = "application/json"


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
            version = params.get("model_version")
            result, extra = await m.endpoint.answer_json("v2-rest", protocol.loads(body), headers, version)
            return Response(protocol.dumps(result), headers=extra, media_type=JSON)
        try:  # the binary tensor extension: KServe's decoder, whose KeyError/TypeError/... mean a bad header
            parsed = InferRequest.from_bytes(body, int(binary), m.name)
        except (ValueError, TypeError, KeyError, IndexError, KServeInvalidInput) as e:
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
        result, extra = await m.endpoint.answer_json("v1", protocol.loads(await request.body()), request.headers)
        return Response(protocol.dumps(result), headers=extra, media_type=JSON)

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
