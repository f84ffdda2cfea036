"""The predictor's wire format: JSON request bodies in, JSON-ready responses out (v1 and v2 REST).

Plain functions over parsed JSON and :class:`~mlcycle.serving.predict.Prediction`, no web framework: the
predictor's routes call them, and they are unit-tested here without a server. Every client mistake is an
:class:`~mlcycle.errors.InvalidInputError` (400) naming the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from mlcycle.errors import InvalidInputError
from mlcycle.serving.predict import Prediction
from mlcycle.serving.schema import InputSchema, V2Input, decode_v2, decode_v2_json_columns, v2_datatype

VERSION_HEADER = "x-mlcycle-model-version"
ROLE_HEADER = "x-mlcycle-model-role"
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
# An mlcycle error's HTTP status -> the gRPC status code name (grpc.StatusCode[name]); others: INTERNAL.
GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


def loads(body: bytes | bytearray | str) -> Any:
    """A request body as JSON, or a 400 saying why it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInputError(f"the request body is not valid JSON: {e}", field="body") from e


def dumps(content: Any) -> bytes:
    """A response body (numeric numpy arrays serialised without a Python list)."""
    return orjson.dumps(content, option=JSON_OPTIONS)


def request_object(payload: Any) -> dict:
    """``payload`` if it is a JSON object, else a 400."""
    if not isinstance(payload, dict):
        raise InvalidInputError("the request body must be a JSON object", field="body")
    return payload


def v1_instances(payload: dict) -> Any:
    """The rows of a v1 request (``instances``, or ``inputs`` as TF serving allows)."""
    instances = payload.get("instances", payload.get("inputs"))
    if instances is None:
        raise InvalidInputError('a v1 request needs "instances": a list of rows', field="instances")
    return instances


def v2_json_inputs(payload: dict) -> list[V2Input]:
    """The ``inputs`` of a v2 JSON request, each checked for name, shape (integers), datatype and data."""
    raw = payload.get("inputs")
    if not isinstance(raw, list):
        raise InvalidInputError('a v2 request needs "inputs": a list of tensors', field="inputs")
    inputs = []
    for i, item in enumerate(raw):
        if type(item) is dict and len(item) >= 4:  # the common case, checked without building lists
            try:
                name, shape, datatype, data = item["name"], item["shape"], item["datatype"], item["data"]
            except KeyError:
                pass
            else:
                if type(name) is str and type(datatype) is str and _int_list(shape):
                    inputs.append(V2Input(name, shape, datatype, data))
                    continue
        if not isinstance(item, dict):
            raise InvalidInputError(f"inputs[{i}] must be an object", field="inputs")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in item]
        if missing:
            raise InvalidInputError(f"inputs[{i}] lacks {', '.join(map(repr, missing))}", field="inputs")
        name, shape = item["name"], item["shape"]
        if not isinstance(name, str):
            raise InvalidInputError(f"inputs[{i}].name must be a string", field="inputs")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidInputError(f"input {name!r}: shape must be a list of integers", field=name)
        if not isinstance(item["datatype"], str):
            raise InvalidInputError(f"input {name!r}: datatype must be a string", field=name)
        inputs.append(V2Input(name, shape, item["datatype"], item["data"]))
    return inputs


def decode_v2_json(payload: dict, schema: InputSchema, *, max_rows: int) -> Any:
    """A v2 JSON request's inputs as the model's input: the usual column request in one pass
    (:func:`~mlcycle.serving.schema.decode_v2_json_columns`), anything else checked input by input
    (:func:`v2_json_inputs`) and decoded by :func:`~mlcycle.serving.schema.decode_v2`, whose 400s name
    the field."""
    x = decode_v2_json_columns(payload.get("inputs"), schema, max_rows=max_rows)
    if x is not None:
        return x
    return decode_v2(v2_json_inputs(payload), schema, max_rows=max_rows)


def _int_list(shape: Any) -> bool:
    """A list of ints (no bools); the usual ``[N]`` and ``[N, 1]`` without a generator (seen per input
    in the 1-row profile of a 13-column request)."""
    if type(shape) is not list:
        return False
    n = len(shape)
    if n == 2 and type(shape[0]) is int and type(shape[1]) is int:
        return True
    if n == 1 and type(shape[0]) is int:
        return True
    return all(type(d) is int for d in shape)


def requested_outputs(payload: dict) -> set[str] | None:
    """The output names a v2 request asks for, or None for all."""
    outputs = payload.get("outputs")
    if not outputs:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInputError('"outputs" must be a list of {"name": ...}', field="outputs")
    return {o["name"] for o in outputs}


def jsonable(array: np.ndarray) -> Any:
    """Numeric arrays go to orjson as they are (``OPT_SERIALIZE_NUMPY``, no Python list); others as lists."""
    if array.dtype.kind in "biuf" and array.dtype.byteorder in "=|":
        return np.ascontiguousarray(array)
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]


def v2_json_response(
    name: str, version: str, result: Prediction, request_id: str, wanted: set[str] | None
) -> dict[str, Any]:
    """A v2 REST response body with the outputs asked for (all by default)."""
    outputs = [
        {"name": k, "shape": list(v.shape), "datatype": v2_datatype(v), "data": jsonable(v.ravel())}
        for k, v in selected_outputs(result, wanted).items()
    ]
    return {"id": request_id, "model_name": name, "model_version": version, "outputs": outputs}


def selected_outputs(result: Prediction, wanted: set[str] | None) -> dict[str, np.ndarray]:
    """The outputs a request asked for, in the model's order (all for None); an unknown name is a 400."""
    available = result.outputs()
    if wanted is None:
        return available
    unknown = wanted - set(available)
    if unknown:
        raise InvalidInputError(
            f"unknown output(s) {', '.join(map(repr, sorted(unknown)))}; this model has "
            f"{', '.join(map(repr, available))}",
            field="outputs",
        )
    return {k: v for k, v in available.items() if k in wanted}


def v2_output_tensors(result: Prediction) -> list[tuple[str, list[int], str, Any]]:
    """``(name, shape, datatype, data)`` per output, for a framework's tensor type (gRPC, binary REST)."""
    tensors = []
    for k, v in result.outputs().items():
        datatype = v2_datatype(v)
        data = np.ascontiguousarray(v) if datatype != "BYTES" else [str(e) for e in v.ravel().tolist()]
        tensors.append((k, list(v.shape), datatype, data))
    return tensors


def v1_response(name: str, version: str, result: Prediction) -> dict[str, Any]:
    """A v1 ``:predict`` response body; a DataFrame/dict output is one record per row (as MLflow's)."""
    body: dict[str, Any] = {"predictions": jsonable(result.predictions), "model_name": name, "model_version": version}
    if result.columns is not None:
        cols = {k: v.tolist() for k, v in result.columns.items()}
        body["predictions"] = [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)]
    if result.probabilities is not None:
        body["probabilities"] = jsonable(result.probabilities)
        body["classes"] = result.classes.tolist()
    return body


def response_headers(version: str, role: str) -> dict[str, str]:
    """Which version (and role: champion or canary) answered."""
    return {VERSION_HEADER: version, ROLE_HEADER: role}
