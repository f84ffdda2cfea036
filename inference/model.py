"""The KServe model: a small :class:`kserve.Model` over :class:`mlcycle.serving.endpoint.ModelEndpoint`,
which does the loading, alias following, routing, decoding and encoding. This class maps KServe's calls
onto it: lifecycle, readiness, and the :class:`~kserve.protocol.infer_type.InferRequest` s of the
binary REST extension (and of KServe's own gRPC servicer, which ours bypasses: :mod:`inference.grpc_v2`)."""

from __future__ import annotations

from typing import Any

from kserve import Model
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from inference.kserve_private import v2_inputs
from mlcycle.errors import InvalidInputError
from mlcycle.serving import protocol
from mlcycle.serving.endpoint import ModelEndpoint


class MlflowModel(Model):
    """One served name (see :class:`~mlcycle.serving.endpoint.ModelEndpoint`) as a KServe model."""

    def __init__(self, endpoint: ModelEndpoint) -> None:
        super().__init__(endpoint.name)
        self.endpoint = endpoint

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A REST worker process (KServe pickles the models into each): load and follow its own copy."""
        self.__dict__.update(state)
        self.endpoint.serve_in_this_process()

    def load(self) -> bool:
        """KServe calls this on a request to a model that is not ready: loading happens at start and in
        the alias poller, never on a request, so this only reports (the request then answers 503)."""
        self.ready = self.endpoint.ready
        return self.ready

    def start(self) -> None:
        self.endpoint.start()

    def stop(self) -> None:
        self.endpoint.stop()
        super().stop()

    async def healthy(self) -> bool:
        return self.endpoint.ready

    def get_input_types(self) -> list[dict]:
        return self.endpoint.served_version(None).metadata["inputs"]

    def get_output_types(self) -> list[dict]:
        return self.endpoint.served_version(None).metadata["outputs"]

    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> tuple[Any, dict[str, str]]:
        if verb == InferenceVerb.EXPLAIN:
            self.endpoint.refuse_explain()
        return await self.infer(body, headers)

    async def infer(
        self, body: Any, headers: Any = None, version: str | None = None, *, authenticated: bool = False
    ) -> tuple[Any, dict[str, str]]:
        """A v2 request as our binary REST route (or KServe's gRPC servicer) hands it over; v1 and v2 JSON
        take the REST routes' fast path (inference.routes), gRPC its own (inference.grpc_v2)."""
        headers = headers or {}
        if not authenticated:
            self.endpoint.authenticate(headers)
        if not isinstance(body, InferRequest):
            raise InvalidInputError("expected a v2 inference request", field="body")
        kind = "v2-grpc" if body.from_grpc else "v2-rest"
        given_id = body.id or headers.get("x-request-id")
        sv, request_id, result = await self.endpoint.answer(kind, headers, given_id, version, v2_inputs(body))
        outputs = [InferOutput(*tensor) for tensor in protocol.v2_output_tensors(result)]
        response = InferResponse(
            response_id=request_id,
            model_name=self.name,
            model_version=sv.version,
            infer_outputs=outputs,
            from_grpc=body.from_grpc,
        )
        return response, protocol.response_headers(sv.version, sv.role)
