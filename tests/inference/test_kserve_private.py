"""Pins what ``inference/kserve_private.py`` (the one module using KServe's private API) relies on.

If the installed KServe changes any of it, a test here fails and names it: re-read that function in
``site-packages/kserve``, adjust ``inference/kserve_private.py``, then update the pin. Also the entry
point's contract with KServe's flags: ``--help`` lists them all, and ``--workers auto`` survives KServe
parsing ``sys.argv`` (with ``--workers`` as an int) when it is first imported.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import subprocess
import sys

import httpx
import numpy as np
import pytest
from kserve import ModelServer, model_server
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.infer_type import InferInput, InferRequest
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer

from inference.kserve_private import PredictorMultiProcessServer, PredictorRESTServer, v2_inputs
from mlcycle.errors import InvalidInputError
from tests.inference.conftest import REPO, clean_environ

# sha256 (first 16 hex digits) of the source of every KServe function whose private attributes or call
# order kserve_private.py relies on, as read in kserve 0.21.0.
PINNED = {
    "RESTServer.__init__": "c85b4ca79cab7f7c",  # self.config (uvicorn.Config), self.access_log_format
    # create_application() then serve (which loads config.app, set by ours): the worker entry point
    "RESTServer.run": "aec949cefa2b0162",
    "RESTServer.start": "5889df83b6d57baa",  # the same for the single process
    "RESTServer._register_endpoints": "841b714394633cb5",  # KServe's routes, called after ours
    "RESTServer._add_exception_handlers": "ca0a28c1b356a6eb",
    "RESTServer._add_middlewares": "eb71860ac9500c56",  # only with --access_log_format
    "RESTServerMultiProcess.__init__": "ff15cd5a0c374e22",  # _rest_server, _processes, should_exit
    "RESTServerMultiProcess.start": "b53cc368f07d8868",  # calls keep_subprocess_alive(sockets) every 0.5 s
    "RESTServerMultiProcess.init_processes": "75142004d4ac292e",  # workers run _rest_server.run
    "RESTServerMultiProcess.terminate_all": "e2f956fe73417f7a",  # SIGTERM, then the grace period
    "RESTServerProcess.__init__": "879f83043e9a2e10",  # _process (a spawned multiprocessing.Process)
    "GRPCServer.__init__": "d2f75891584958f5",  # _port, _data_plane, _model_repository_extension, _kwargs
    "GRPCServer.stop": "d6cf7ca03639797a",  # stops self._server, which our start() sets
    "ModelServer.stop": "c87cc006e46d8397",  # reads _rest_multiprocess_server and _grpc_server
    "ModelServer._serve": "ff3ff3ccb85e49d3",  # gathers self.servers
    "InferInput.as_numpy": "a6783dbbe89ae187",  # decodes _raw_data
    "InferRequest.__init__": "98ae5376e2f6915a",  # raw_inputs -> InferInput._raw_data
    "InferRequest.from_bytes": "5e8eda9b7377df70",  # the binary extension -> InferInput._raw_data
}
FUNCTIONS = {
    "RESTServer": RESTServer,
    "RESTServerMultiProcess": RESTServerMultiProcess,
    "RESTServerProcess": RESTServerProcess,
    "GRPCServer": GRPCServer,
    "ModelServer": ModelServer,
    "InferInput": InferInput,
    "InferRequest": InferRequest,
}


def _digest(qualified: str) -> str:
    cls, name = qualified.split(".")
    return hashlib.sha256(inspect.getsource(getattr(FUNCTIONS[cls], name)).encode()).hexdigest()[:16]


def test_the_kserve_functions_relied_on_are_unchanged():
    changed = [name for name, digest in PINNED.items() if _digest(name) != digest]
    assert not changed, f"KServe changed {changed}: re-read them and adjust inference/kserve_private.py"


def _servers() -> tuple[DataPlane, ModelRepositoryExtension]:
    registry = ModelRepository()
    return DataPlane(model_registry=registry), ModelRepositoryExtension(model_registry=registry)


def test_grpc_raw_contents_arrive_as_raw_data_and_decode_to_numpy():
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    grpc_like = InferRequest(
        "wine", [InferInput("input-0", [2, 3], "FP64")], raw_inputs=[values.tobytes()], from_grpc=True
    )
    assert grpc_like.inputs[0]._raw_data == values.tobytes()
    (decoded,) = v2_inputs(grpc_like)
    assert decoded.shape == [2, 3] and np.array_equal(np.asarray(decoded.data).reshape(2, 3), values)
    # The REST binary extension is decoded by KServe itself: data set, no raw bytes left.
    header = b'{"inputs":[{"name":"input-0","shape":[2,3],"datatype":"FP64","parameters":{"binary_data_size":48}}]}'
    rest = InferRequest.from_bytes(header + values.tobytes(), len(header), "wine")
    assert rest.inputs[0]._raw_data is None
    assert np.array_equal(np.asarray(v2_inputs(rest)[0].data).reshape(2, 3), values)
    short = InferRequest("wine", [InferInput("input-0", [2, 3], "FP64")], raw_inputs=[b"\0" * 8], from_grpc=True)
    with pytest.raises(InvalidInputError, match="raw data does not match shape"):
        v2_inputs(short)


def test_the_rest_server_binds_our_host_and_the_multiprocess_server_runs_it():
    dataplane, extension = _servers()
    rest = PredictorRESTServer(
        "kserve.model_server:app", dataplane, extension, 8123, host="127.0.0.1", max_body_bytes=1000, workers=2
    )
    assert rest.config.host == "127.0.0.1" and rest.config.port == 8123 and rest.config.workers == 2
    multi = PredictorMultiProcessServer(rest, grace_period=3)
    assert multi._rest_server is rest and multi._processes == [] and not multi.should_exit.is_set()
    process = RESTServerProcess([], rest.run)
    try:
        assert process._process.exitcode is None and process._process.pid is None  # not started
    finally:
        process._parent_conn.close()
        process._child_conn.close()
    grpc = GRPCServer(8124, dataplane, extension, kwargs={"grpc_max_send_message_length": 10})
    assert (grpc._port, grpc._data_plane, grpc._model_repository_extension) == (8124, dataplane, extension)
    assert grpc._kwargs["grpc_max_send_message_length"] == 10


def test_the_app_answers_with_our_routes_before_kserves():
    """KServe's app with our routes, the body limit and its handlers, called in this process (ASGI)."""
    dataplane, extension = _servers()
    rest = PredictorRESTServer(
        "kserve.model_server:app", dataplane, extension, 8125, host="127.0.0.1", max_body_bytes=1000
    )
    rest.create_application()

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=rest.config.app)  # what uvicorn serves
        async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
            return [
                await client.post("/v1/models/nope:explain", json={}),  # ours: a JSON 404, not KServe's
                await client.post("/v2/models/nope/infer", content=b"x" * 2000),  # the body limit
                await client.get("/v2/health/live"),  # KServe's route, still there
            ]

    explain, too_big, live = asyncio.run(calls())
    assert explain.status_code == 404 and explain.json()["field"] == "model", explain.text
    assert too_big.status_code == 413, too_big.text  # a model not served here: the body limit behind the lane
    from inference.routes import FastLane
    from mlcycle.serving.limits import BodyLimitMiddleware

    # uvicorn serves the lane (with its own body limit), then the body limit, then FastAPI's app (not wrapped again)
    assert isinstance(rest.config.app, FastLane) and isinstance(rest.config.app.app, BodyLimitMiddleware)
    assert rest.config.app.max_body_bytes == rest.config.app.app.max_bytes
    assert rest.config.app.app.app is model_server.app
    assert not {BodyLimitMiddleware, FastLane} & {m.cls for m in model_server.app.user_middleware}
    assert live.status_code == 200 and live.json() == {"live": True}


def _run_predictor(*args: str) -> subprocess.CompletedProcess:
    env = {**clean_environ(), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "inference", *args], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_kserve_flag_and_ours():
    done = _run_predictor("--help")
    assert done.returncode == 0, done.stderr
    flags = {s for action in model_server.parser._actions for s in action.option_strings}
    missing = [f for f in sorted(flags) if f not in done.stdout]
    assert not missing, missing
    for ours in ("--http-port", "--grpc-port", "--host", "--canary", "--canary-percent", "'auto'"):
        assert ours in done.stdout, ours


@pytest.mark.parametrize("workers", [["--workers", "auto"], ["--workers=auto"]])
def test_workers_auto_survives_kserves_import_time_parse(tmp_path, workers):
    """KServe alone exits on ``--workers auto`` when imported; the predictor gets past it to our own
    check of the model URI (which fails here: there is no such model)."""
    kserve_alone = subprocess.run(
        [sys.executable, "-c", "import kserve", *workers], capture_output=True, text=True, timeout=120
    )
    assert kserve_alone.returncode == 2 and "invalid int value: 'auto'" in kserve_alone.stderr
    done = subprocess.run(
        [sys.executable, "-m", "inference", "models:/no-such-model/1", *workers, "--http-port", "1"],
        env={**clean_environ(), "PYTHONPATH": str(REPO), "MLCYCLE_HOME": str(tmp_path)},
        cwd=str(REPO), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "invalid int value" not in done.stderr, done.stderr[-2000:]
    assert "error: model models:/no-such-model/1 not found" in done.stderr, done.stderr[-2000:]
