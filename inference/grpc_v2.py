"""The v2 gRPC ``ModelInfer`` of a served model, straight from the protobuf to the endpoint and back.

KServe's servicer turns each ``ModelInferRequest`` into an ``InferRequest``, goes through its data
plane and the model's ``__call__``, builds an ``InferResponse`` and converts that into the protobuf
again: per request, more Python than the model call of a compiled forest. Here the request's tensors
become :class:`~mlcycle.serving.schema.V2Input` s (typed contents as the repeated field's values, raw
contents as numpy over the received bytes), :meth:`ModelEndpoint.answer` does what it does for every
protocol, and the response carries every output in ``raw_output_contents`` (numbers little-endian,
BYTES as 4-byte length + UTF-8 each, as the v2 spec and KServe define them: raw for all outputs or for
none). Unlike KServe's path, a request's ``model_version`` addresses that version (as REST's
``/versions/{v}``) and its ``outputs`` select outputs (as REST's ``"outputs"``).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from kserve.errors import InvalidInput as KServeInvalidInput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import deserialize_bytes_tensor, get_content
from kserve.utils.numpy_codec import to_np_dtype
from kserve.utils.utils import to_headers

from mlcycle.errors import InvalidInputError
from mlcycle.serving import protocol
from mlcycle.serving.predict import Prediction
from mlcycle.serving.schema import V2Input, v2_datatype

_Tensor = pb.ModelInferResponse.InferOutputTensor


def grpc_inputs(request: Any) -> list[V2Input]:
    """A ``ModelInferRequest``'s input tensors; a malformed one is a 400 naming it."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"the request has {len(request.inputs)} inputs but {len(raw)} raw_input_contents (one per input)",
            field="raw_input_contents",
        )
    inputs = []
    for i, t in enumerate(request.inputs):
        shape = list(t.shape)
        if raw:
            if t.HasField("contents"):
                raise InvalidInputError(
                    f"input {t.name!r}: contents and raw_input_contents are exclusive", field=t.name
                )
            data = raw_array(t.name, shape, t.datatype, raw[i])
        else:
            try:
                data = get_content(t.datatype, t.contents)
            except KServeInvalidInput as e:
                raise InvalidInputError(f"input {t.name!r}: unknown datatype {t.datatype!r}", field=t.name) from e
        inputs.append(V2Input(t.name, shape, t.datatype, data))
    return inputs


def raw_array(name: str, shape: list[int], datatype: str, data: bytes) -> np.ndarray:
    """One input's raw bytes as numpy of ``shape`` (BYTES: 4-byte length + bytes each); a 400 naming
    the input when they do not fit the shape and datatype, or the datatype is unknown."""
    dtype = to_np_dtype(datatype)
    if dtype is None:
        raise InvalidInputError(f"input {name!r}: unknown datatype {datatype!r}", field=name)
    try:
        array = deserialize_bytes_tensor(data) if datatype == "BYTES" else np.frombuffer(data, dtype=dtype)
        return array.reshape(shape)
    except (ValueError, TypeError, struct.error) as e:
        problem = f"raw data does not match shape {shape} and datatype {datatype}"
        raise InvalidInputError(f"input {name!r}: {problem}: {e}", field=name) from e


def raw_contents(array: np.ndarray, datatype: str) -> bytes:
    """One output's ``raw_output_contents`` entry."""
    if datatype != "BYTES":
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    parts = []
    for value in array.ravel().tolist():
        encoded = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts += (struct.pack("<I", len(encoded)), encoded)
    return b"".join(parts)


def grpc_response(name: str, version: str, request_id: str, result: Prediction, wanted: set[str] | None) -> Any:
    """The ``ModelInferResponse`` of a prediction: every (asked-for) output, all as raw contents."""
    outputs, raw = [], []
    for key, value in protocol.selected_outputs(result, wanted).items():
        datatype = v2_datatype(value)
        outputs.append(_Tensor(name=key, datatype=datatype, shape=value.shape))
        raw.append(raw_contents(value, datatype))
    return pb.ModelInferResponse(
        model_name=name, model_version=version, id=request_id, outputs=outputs, raw_output_contents=raw
    )


async def model_infer(endpoint: Any, request: Any, context: Any) -> Any:
    """``ModelInfer`` for one of our models: authenticate, decode, answer, encode."""
    headers = to_headers(context)
    endpoint.authenticate(headers)
    wanted = {o.name for o in request.outputs} or None
    inputs = grpc_inputs(request)
    given_id = request.id or headers.get("x-request-id")
    version = request.model_version or None
    sv, request_id, result = await endpoint.answer("v2-grpc", headers, given_id, version, inputs)
    return grpc_response(endpoint.name, sv.version, request_id, result, wanted)
