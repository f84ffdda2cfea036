"""Every use of KServe's private API, in one place; ``tests/inference/test_kserve_private.py`` pins each.

KServe 0.21 has no public way to do these, so its servers are subclassed here:

- :class:`PredictorRESTServer` binds ``host`` (KServe: 0.0.0.0) and builds the app with our routes first,
  the body limit, no timing middleware or access log unless ``--access_log_format`` asks, then KServe's
  routes and handlers (``_register_endpoints``, ``_add_exception_handlers``, ``_add_middlewares``); it
  serves the body limit and the hot-route lane in front of that app by setting ``config.app`` before
  uvicorn loads it. A worker writes its payload log when it stops.
- :class:`PredictorMultiProcessServer` runs that server in KServe's workers (``_rest_server``) and
  replaces only those that exit (``RESTServerProcess._process``): KServe killed workers still importing.
- :class:`PredictorGRPCServer` serves gRPC on ``host:port`` with mlcycle's errors, metadata and
  ``ModelInfer`` (:mod:`inference.grpc_v2`), no per-call log line (``_server``, ``_port``,
  ``_data_plane``, ``_kwargs``).
- :class:`PredictorServer` is ``ModelServer.start`` with those (``ModelServer.stop`` reads
  ``_rest_server``, ``_rest_multiprocess_server``, ``_grpc_server``); :func:`v2_inputs` reads
  ``InferInput._raw_data`` (gRPC's raw contents).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import warnings
from concurrent import futures
from typing import Any

from google.protobuf import json_format
from grpc import StatusCode, aio
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer

from inference.grpc_v2 import model_infer, raw_array
from inference.routes import register_routes
from mlcycle.errors import MlcycleError
from mlcycle.serving.protocol import GRPC_CODES
from mlcycle.serving.runtime import close_payloads, freeze_heap
from mlcycle.serving.schema import V2Input

log = logging.getLogger("mlcycle.inference")


def v2_inputs(request: InferRequest) -> list[V2Input]:
    """A v2 request's inputs; binary ones (the REST binary extension) as numpy over the received bytes,
    decoded and checked as gRPC's raw contents are (:func:`inference.grpc_v2.raw_array`)."""
    inputs = []
    for inp in request.inputs:
        shape = list(inp.shape)
        data = inp.data if inp._raw_data is None else raw_array(inp.name, shape, inp.datatype, inp._raw_data)
        inputs.append(V2Input(inp.name, shape, inp.datatype, data))
    return inputs


def _silence_access_log() -> None:
    """No access log line per request: it costs the hot path and Prometheus counts requests."""
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate, access.disabled = [], False, True


def _after_shutdown(signum: int, _frame: Any) -> None:
    log.debug("REST worker: signal %d after shutdown; finishing the payload log first", signum)


class PredictorRESTServer(RESTServer):
    def __init__(self, *args: Any, host: str, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.config.access_log = False  # uvicorn's; --access_log_format adds KServe's middleware instead
        self.max_body_bytes = max_body_bytes

    def create_application(self) -> None:
        """KServe's FastAPI app with our routes, and the ASGI app uvicorn serves (``config.app``).

        That is :class:`~inference.routes.FastLane` for the hot routes (applying the body limit itself),
        then the body limit for everything else, then the FastAPI app (whose own stack, Starlette's
        ServerErrorMiddleware and FastAPI's telemetry and body limit layers, cost a tenth of a 1-row
        request). With ``--access_log_format`` KServe's timing and access log must see every request, so
        the lane goes inside them, innermost of the app's middlewares, instead.
        """
        from kserve.model_server import app

        from inference.routes import FastLane
        from mlcycle.serving.limits import BodyLimitMiddleware

        lane = {
            "registry": self.dataplane.model_registry,
            "exception_handlers": app.exception_handlers,
            "max_body_bytes": self.max_body_bytes,
        }
        if self.access_log_format:  # KServe's timing and access log, as asked for
            app.add_middleware(FastLane, **lane)
            self._add_middlewares(app)
            app.add_middleware(BodyLimitMiddleware, max_bytes=self.max_body_bytes)
            self.config.app = app
        else:
            _silence_access_log()
            self.config.app = FastLane(BodyLimitMiddleware(app, max_bytes=self.max_body_bytes), **lane)
        register_routes(app, self.dataplane.model_registry)
        self._register_endpoints(app)  # KServe's routes; ours, registered first, take precedence
        self._add_exception_handlers(app)
        # KServe's app still declares ORJSONResponse, which FastAPI now warns about on every new route use.
        warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")

    def run(self, sockets: Any = None) -> None:
        """A worker process's entry point: after a graceful stop every answered request is logged.

        Uvicorn re-raises the SIGTERM it handled once it has shut down; with the default handler that
        killed the worker before its last payload rows were written. Ours lets ``run`` return.
        """
        freeze_heap()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _after_shutdown)
        try:
            super().run(sockets=sockets)
        finally:
            for model in self.dataplane.model_registry.get_models().values():
                model.stop()
            close_payloads()


class PredictorMultiProcessServer(RESTServerMultiProcess):
    def __init__(self, rest_server: PredictorRESTServer, **kwargs: Any) -> None:
        config = rest_server.config
        args = (FASTAPI_APP_IMPORT_STRING, rest_server.dataplane, rest_server.model_repository_extension, config.port)
        super().__init__(*args, workers=config.workers, **kwargs)
        self._rest_server = rest_server  # the workers run ours

    async def keep_subprocess_alive(self, sockets: list) -> None:
        """Replace workers that exited; leave busy ones alone (KServe killed any that did not answer a
        ping within 5 s, so a worker still importing on a busy machine was restarted before it served).
        A hung worker is the liveness probe's business."""
        from mlcycle.serving.metrics import mark_process_dead

        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self._processes):
            if process._process.exitcode is None:
                continue
            log.warning("REST worker %s exited with %s; starting a new one", process.pid, process._process.exitcode)
            mark_process_dead(process.pid)
            replacement = RESTServerProcess(sockets, self._rest_server.run, log_config_file=self.log_config_file)
            replacement.start()
            self._processes[idx] = replacement


class MlcycleErrorInterceptor(ExceptionToStatusInterceptor):
    async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str):
        if isinstance(ex, MlcycleError):
            await context.abort(StatusCode[GRPC_CODES.get(ex.http_status, "INTERNAL")], ex.message)
        return await super().handle_exception(ex, request_or_iterator, context, method_name)


class PredictorServicer(InferenceServicer):
    """ModelInfer straight to the endpoint (:mod:`inference.grpc_v2`); ModelMetadata from our metadata,
    its ``parameters`` dropped (KServe's passed the REST dicts to the protobuf, which has no field for
    them: every call was INTERNAL); ServerReady from the models'."""

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
        model = self._data_plane.model_registry.get_model(request.model_name)
        if model is None or not hasattr(model, "endpoint"):
            return await super().ModelInfer(request, context)  # KServe's NOT_FOUND (or another kind of model)
        return await model_infer(model.endpoint, request, context)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
        """Ready when every served model is, as REST's ``/v2/health/ready`` (KServe's: always ready)."""
        models = self._data_plane.model_registry.get_models().values()
        return pb.ServerReadyResponse(ready=all([await m.healthy() for m in models]))

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 (the gRPC method name)
        model = self._data_plane.get_model_from_registry(request.name)
        if not hasattr(model, "endpoint"):
            return await super().ModelMetadata(request, context)
        meta = model.endpoint.metadata(request.version or None)
        return json_format.ParseDict(meta, pb.ModelMetadataResponse(), ignore_unknown_fields=True)


class PredictorGRPCServer(GRPCServer):
    def __init__(self, host: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = f"[{host}]" if ":" in host else host

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(MlcycleErrorInterceptor(),),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        servicer = PredictorServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"{self.host}:{self._port}")
        log.info("gRPC listening on %s:%s", self.host, self._port)
        await self._server.start()
        await self._server.wait_for_termination()


class PredictorServer(ModelServer):
    """``kserve.ModelServer`` on ``host`` with the servers above; ``options`` are the parsed flags
    (KServe's included: gRPC message lengths, log config, SSL files...)."""

    def __init__(self, *, host: str, options: dict[str, Any], max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host, self.options, self.max_body_bytes = host, options, max_body_bytes

    def start(self, models: list) -> None:
        for model in models:  # KServe's public registration; readiness is each model's own
            self.register_model(model)
            if self.workers == 1:
                model.start()  # with --workers N each worker loads and follows its own copy
        freeze_heap()
        rest = PredictorRESTServer(
            FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port,
            host=self.host, max_body_bytes=self.max_body_bytes, access_log_format=self.access_log_format,
            workers=self.workers, grace_period=self.grace_period, event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive, ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
        )
        if self.workers > 1:
            self._rest_multiprocess_server = PredictorMultiProcessServer(
                rest, grace_period=self.grace_period, log_config_file=self.options.get("log_config_file")
            )
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        if self.enable_grpc:
            self._grpc_server = PredictorGRPCServer(
                self.host, self.grpc_port, self.dataplane, self.model_repository_extension,
                kwargs=self.options, grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        # The loop uvicorn would pick for --event_loop (auto: uvloop when installed), as each of the
        # --workers N processes already gets from uvicorn's own run(). KServe ran the single-process
        # server under asyncio.run(), always the pure-Python loop: it and its socket transports were ~20%
        # of a 1-row request's profile. The executor and exception handler go on the loop that runs (KServe set them on
        # the one get_event_loop() returned before asyncio.run made another).
        with asyncio.Runner(loop_factory=rest.config.get_loop_factory()) as runner:
            loop = runner.get_loop()
            asyncio.set_event_loop(loop)
            log.info("event loop: %s.%s (--event_loop %s)", type(loop).__module__, type(loop).__name__,
                     self.event_loop)
            self.setup_event_loop()
            self.register_signal_handler()
            try:
                runner.run(self._serve())
            finally:
                close_payloads()  # the single-process server's rows (workers close their own)
