"""inference.grpc_v2: ModelInfer from the protobuf straight to the endpoint, every output as raw contents
(read back here with KServe's own decoders), malformed tensors a 400 naming the input."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import deserialize_bytes_tensor

from inference.grpc_v2 import grpc_inputs, grpc_response, model_infer
from mlcycle.errors import AuthenticationError, InvalidInputError
from mlcycle.serving.predict import Prediction

Tensor = pb.ModelInferRequest.InferInputTensor


def test_typed_contents_become_the_repeated_fields_values():
    request = pb.ModelInferRequest(inputs=[
        Tensor(name="a", datatype="FP64", shape=[2, 1], contents=pb.InferTensorContents(fp64_contents=[1.5, 2.5])),
        Tensor(name="b", datatype="BYTES", shape=[2], contents=pb.InferTensorContents(bytes_contents=[b"x", b"y"])),
        Tensor(name="c", datatype="INT32", shape=[2], contents=pb.InferTensorContents(int_contents=[3, -4])),
    ])
    a, b, c = grpc_inputs(request)
    assert (a.name, a.shape, a.datatype, a.data) == ("a", [2, 1], "FP64", [1.5, 2.5])
    assert (b.datatype, b.data) == ("BYTES", [b"x", b"y"])
    assert (c.datatype, c.data) == ("INT32", [3, -4])


def test_raw_contents_become_arrays_of_the_declared_shape():
    values = np.arange(6, dtype="<f4").reshape(2, 3)
    request = pb.ModelInferRequest(
        inputs=[Tensor(name="x", datatype="FP32", shape=[2, 3])], raw_input_contents=[values.tobytes()]
    )
    (x,) = grpc_inputs(request)
    assert isinstance(x.data, np.ndarray) and x.data.dtype == np.float32
    np.testing.assert_array_equal(x.data, values)


@pytest.mark.parametrize(
    ("request_", "message", "field"),
    [
        (pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP64", shape=[1, 3])],
                              raw_input_contents=[np.zeros(2).tobytes()]),
         "raw data does not match shape [1, 3] and datatype FP64", "x"),
        (pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP64", shape=[1]), Tensor(name="y", shape=[1])],
                              raw_input_contents=[b"\0" * 8]),
         "2 inputs but 1 raw_input_contents", "raw_input_contents"),
        (pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP64", shape=[1],
                                             contents=pb.InferTensorContents(fp64_contents=[1.0]))],
                              raw_input_contents=[b"\0" * 8]),
         "contents and raw_input_contents are exclusive", "x"),
        (pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP128", shape=[1])]), "unknown datatype 'FP128'", "x"),
        (pb.ModelInferRequest(inputs=[Tensor(name="x", datatype="FP128", shape=[1])], raw_input_contents=[b"\0"]),
         "unknown datatype 'FP128'", "x"),
    ],
)
def test_a_malformed_tensor_is_a_400_naming_it(request_, message, field):
    with pytest.raises(InvalidInputError, match=re.escape(message)) as e:
        grpc_inputs(request_)
    assert e.value.field == field and e.value.http_status == 400


def _outputs(response) -> dict:
    """Read a response as a client does: KServe's BYTES decoder, numpy for numbers."""
    dtypes = {"INT64": "<i8", "FP64": "<f8", "FP32": "<f4", "BOOL": "?"}
    assert len(response.raw_output_contents) == len(response.outputs)  # raw for all outputs (the spec)
    out = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        assert not tensor.HasField("contents")
        if tensor.datatype == "BYTES":
            values = [v.decode() for v in deserialize_bytes_tensor(raw)]
        else:
            values = np.frombuffer(raw, dtype=dtypes[tensor.datatype]).tolist()
        out[tensor.name] = (tensor.datatype, list(tensor.shape), values)
    return out


def test_every_output_goes_as_raw_contents_with_its_datatype():
    frame = Prediction(np.array([0.5, 1.5]), columns={
        "score": np.array([0.5, 1.5]), "label": np.array(["low", "hé"], dtype=object),
        "flag": np.array([True, False]), "n": np.array([3, 4], dtype=np.int64),
    })
    response = grpc_response("m", "2", "req-1", frame, None)
    assert (response.model_name, response.model_version, response.id) == ("m", "2", "req-1")
    assert _outputs(response) == {
        "score": ("FP64", [2], [0.5, 1.5]), "label": ("BYTES", [2], ["low", "hé"]),
        "flag": ("BOOL", [2], [True, False]), "n": ("INT64", [2], [3, 4]),
    }
    proba = Prediction(np.array([1, 0]), probabilities=np.array([[0.2, 0.8], [0.9, 0.1]]), classes=np.array([0, 1]))
    assert _outputs(grpc_response("m", "2", "r", proba, None))["probabilities"] == (
        "FP64", [2, 2], [0.2, 0.8, 0.9, 0.1])
    assert list(_outputs(grpc_response("m", "2", "r", proba, {"probabilities"}))) == ["probabilities"]
    with pytest.raises(InvalidInputError, match="unknown output.*'nope'"):
        grpc_response("m", "2", "r", proba, {"nope"})


class Endpoint:
    name = "wine"

    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse, self.calls = refuse, []

    def authenticate(self, headers) -> None:
        if self.refuse is not None:
            raise self.refuse

    async def answer(self, kind, headers, given_id, version, inputs):
        self.calls.append((kind, headers.get("authorization"), given_id, version, [i.name for i in inputs]))
        return SimpleNamespace(version=version or "4"), given_id or "generated", Prediction(np.array([7]))


def _context(**metadata: str):
    items = tuple(SimpleNamespace(key=k.replace("_", "-"), value=v) for k, v in metadata.items())
    return SimpleNamespace(invocation_metadata=lambda: items)


ONE_ROW = [Tensor(name="x", datatype="FP64", shape=[1, 1], contents=pb.InferTensorContents(fp64_contents=[1.0]))]


def test_model_infer_addresses_the_named_version_and_keeps_the_request_id():
    endpoint = Endpoint()
    request = pb.ModelInferRequest(model_name="wine", model_version="3", id="abc", inputs=ONE_ROW)
    response = asyncio.run(model_infer(endpoint, request, _context(authorization="Bearer k")))
    assert endpoint.calls == [("v2-grpc", "Bearer k", "abc", "3", ["x"])]
    assert (response.model_version, response.id) == ("3", "abc")
    asyncio.run(model_infer(endpoint, pb.ModelInferRequest(model_name="wine", inputs=ONE_ROW),
                            _context(x_request_id="from-header")))
    assert endpoint.calls[-1] == ("v2-grpc", None, "from-header", None, ["x"])


def test_model_infer_authenticates_before_decoding():
    endpoint = Endpoint(refuse=AuthenticationError("no key", field="authorization"))
    bad = pb.ModelInferRequest(model_name="wine", inputs=[Tensor(name="x", datatype="FP128", shape=[1])])
    with pytest.raises(AuthenticationError):
        asyncio.run(model_infer(endpoint, bad, _context()))
    assert endpoint.calls == []
