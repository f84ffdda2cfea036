"""The HTTP ceiling for bench_serving: a no-op v2 endpoint on the predictor's HTTP stack.

``python benchmarks/noop_v2.py --port N`` serves ``POST /v2/models/{name}/infer`` and ``GET
/v2/models/{name}/ready`` with FastAPI + uvicorn (the stack KServe's model server runs on, configured as
the predictor configures it: no access log, a plain Starlette route, orjson). The infer route reads the
body, parses it with orjson and checks it is a v2 request (``inputs``: objects with name, shape, datatype,
data), then returns a fixed v2 answer of the same form as the predictor's for one row. No model, no
batching, no metrics: what any model server on this stack can at best reach on the machine.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

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
    payload = orjson.loads(await request.body())
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or not all(
        isinstance(i, dict) and {"name", "shape", "datatype", "data"} <= i.keys() for i in inputs
    ):
        return Response(REFUSED, status_code=400, media_type="application/json")
    return Response(ANSWER, media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(orjson.dumps({"name": request.path_params["model_name"], "ready": True}))


def app() -> FastAPI:
    application = FastAPI()
    application.add_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
    application.add_route("/v2/models/{model_name}/ready", ready, methods=["GET"])
    return application


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(app(), host=args.host, port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
