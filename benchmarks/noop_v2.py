"""The HTTP ceiling for bench_serving: a no-op v2 endpoint on the predictor's HTTP stack.

``python benchmarks/noop_v2.py --port N`` serves ``POST /v2/models/{name}/infer`` and ``GET
/v2/models/{name}/ready`` with FastAPI + uvicorn (the stack KServe's model server runs on, configured as
the predictor configures it: no access log, orjson, and the infer route answered by a plain ASGI layer in
front of FastAPI's router, as the predictor's ``inference.routes.FastLane`` answers it). It reads the
body, parses it with orjson and checks it is a v2 request (``inputs``: objects with name, shape, datatype,
data), then returns a fixed v2 answer of the same form as the predictor's for one row. No model, no
batching, no metrics: what any model server on this stack can at best reach on the machine.
``--router`` serves the infer route as a plain Starlette route instead (the ceiling before FastLane).

``--grpc-port N`` also serves v2 gRPC ``ModelInfer`` on grpcio's asyncio server, on the same event loop
(uvicorn's: uvloop), as the predictor serves it: the request is parsed (grpcio deserialises it), checked
to have inputs, and answered with a fixed one-row ``ModelInferResponse``. The gRPC ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from concurrent import futures
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: the predictor's own path matching
from inference.routes import _read_body, hot_route  # noqa: E402
from mlcycle.serving.limits import DEFAULT_MAX_BODY_BYTES  # noqa: E402

ANSWER = orjson.dumps(
    {
        "id": "noop",
        "model_name": "noop",
        "model_version": "1",
        "outputs": [
            {"name": "predictions", "shape": [1], "datatype": "INT64", "data": [0]},
            {"name": "probabilities", "shape": [1, 3], "datatype": "FP64", "data": [0.5, 0.25, 0.25]},
        ],
    }
)
REFUSED = orjson.dumps({"error": 'a v2 request needs "inputs": a list of tensors'})


async def infer(request: Request) -> Response:
    if not _is_v2(orjson.loads(await request.body())):
        return Response(REFUSED, status_code=400, media_type="application/json")
    return Response(ANSWER, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(orjson.dumps({"name": request.path_params["model_name"], "ready": True}))


class NoopLane:
    """``POST /v2/models/{name}/infer`` answered in front of FastAPI's app (its middleware stack and router),
    as the predictor's FastLane is."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or hot_route(scope["path"]) is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, DEFAULT_MAX_BODY_BYTES)  # the predictor's own reading, limit included
        if body is None:
            return
        payload = orjson.loads(body)
        status, body = (200, ANSWER) if _is_v2(payload) else (400, REFUSED)
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_v2(payload) -> bool:
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    return isinstance(inputs, list) and all(
        isinstance(i, dict) and {"name", "shape", "datatype", "data"} <= i.keys() for i in inputs
    )


def app(router: bool = False):
    application = FastAPI()
    application.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    application.add_route("/v2/models/{model_name}/ready", ready, methods=["GET"])
    return application if router else NoopLane(application)


async def grpc_server(host: str, port: int):
    from grpc import StatusCode, aio
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pbg

    contents = pb.InferTensorContents
    answer = pb.ModelInferResponse(
        model_name="noop",
        model_version="1",
        outputs=[
            pb.ModelInferResponse.InferOutputTensor(
                name="predictions", datatype="INT64", shape=[1], contents=contents(int64_contents=[0])
            ),
            pb.ModelInferResponse.InferOutputTensor(
                name="probabilities", datatype="FP64", shape=[1, 3], contents=contents(fp64_contents=[0.5, 0.25, 0.25])
            ),
        ],
    )

    class Noop(pbg.GRPCInferenceServiceServicer):
        async def ModelInfer(self, request, context):
            if not request.inputs:
                await context.abort(StatusCode.INVALID_ARGUMENT, "a v2 request needs inputs")
            return answer

    server = aio.server(futures.ThreadPoolExecutor(max_workers=4))  # the predictor's server, no interceptor
    pbg.add_GRPCInferenceServiceServicer_to_server(Noop(), server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, help="also serve a no-op gRPC ModelInfer on this port")
    p.add_argument("--router", action="store_true", help="answer infer through FastAPI's router (a Starlette route)")
    args = p.parse_args()
    config = uvicorn.Config(app(args.router), host=args.host, port=args.port, access_log=False, log_level="warning")

    async def serve() -> None:
        grpc = await grpc_server(args.host, args.grpc_port) if args.grpc_port else None
        try:
            await uvicorn.Server(config).serve()
        finally:
            if grpc is not None:
                await grpc.stop(0)

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
