"""decode_v2_json_columns, the one-pass decoding of the usual v2 JSON column request: the same array as
decode_v2 for what it takes, the same value errors, and None (so decode_v2 names the problem) for the rest."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from mlcycle.errors import InvalidInputError, PayloadTooLargeError
from mlcycle.serving.protocol import decode_v2_json, v2_json_inputs
from mlcycle.serving.schema import InputSchema, decode_v2, decode_v2_json_columns, make_schema

SCHEMA = make_schema(["a", "b", "c"], ["double", "long", "float"])


def _request(rows: int = 1, shape=None, datatype: str = "FP64") -> dict:
    values = np.arange(3 * rows, dtype=float).reshape(3, rows)
    return {
        "inputs": [
            {"name": c, "shape": list(shape or [rows, 1]), "datatype": datatype, "data": values[i].tolist()}
            for i, c in enumerate(SCHEMA.columns)
        ]
    }


@pytest.mark.parametrize(
    "request_",
    [_request(1), _request(5), _request(4, shape=[4]), _request(2, datatype="INT64"), _request(3, datatype="FP32")],
)
def test_what_it_takes_decodes_to_decode_v2_s_array(request_):
    fast = decode_v2_json_columns(request_["inputs"], SCHEMA, max_rows=10)
    slow = decode_v2(v2_json_inputs(request_), SCHEMA, max_rows=10)
    assert fast is not None and fast.flags.c_contiguous and fast.dtype == np.float64
    np.testing.assert_array_equal(fast, slow)


def _mutated(change) -> dict:
    body = copy.deepcopy(_request(2))
    change(body["inputs"])
    return body


UNUSUAL = {
    "reordered columns": lambda ins: ins.reverse(),
    "a missing column": lambda ins: ins.pop(),
    "an extra column": lambda ins: ins.append({**ins[0], "name": "z"}),
    "a duplicated column": lambda ins: ins.__setitem__(2, {**ins[0]}),
    "a lower-case datatype": lambda ins: ins[1].__setitem__("datatype", "fp64"),
    "a BYTES datatype": lambda ins: ins[1].__setitem__("datatype", "BYTES"),
    "a bool dimension": lambda ins: ins[2].__setitem__("shape", [2, True]),
    "a float dimension": lambda ins: ins[0].__setitem__("shape", [2.0, 1]),
    "shapes that differ": lambda ins: ins[1].__setitem__("shape", [2]),
    "a wide column": lambda ins: [i.__setitem__("shape", [1, 2]) for i in ins],
    "data that is not a list": lambda ins: ins[0].__setitem__("data", "1,2"),
    "too few values": lambda ins: ins[2].__setitem__("data", [1.0]),
    "a word among the numbers": lambda ins: ins[0].__setitem__("data", [1.0, "x"]),
    "an input without data": lambda ins: ins[1].pop("data"),
    "an input that is a list": lambda ins: ins.__setitem__(0, ["a", [2, 1], "FP64", [1, 2]]),
}


@pytest.mark.parametrize("change", list(UNUSUAL.values()), ids=list(UNUSUAL))
def test_anything_unusual_is_left_to_decode_v2(change):
    body = _mutated(change)
    assert decode_v2_json_columns(body["inputs"], SCHEMA, max_rows=10) is None
    try:
        expected = decode_v2(v2_json_inputs(body), SCHEMA, max_rows=10)
    except InvalidInputError as e:  # the same 400 through decode_v2_json, naming the same field
        with pytest.raises(InvalidInputError) as got:
            decode_v2_json(body, SCHEMA, max_rows=10)
        assert (got.value.message, got.value.field) == (e.message, e.field)
    else:  # decode_v2 takes it (reordered, lower-case): the same array
        np.testing.assert_array_equal(decode_v2_json(body, SCHEMA, max_rows=10), expected)


def test_more_rows_than_allowed_are_the_same_413():
    with pytest.raises(PayloadTooLargeError):
        decode_v2_json(_request(11), SCHEMA, max_rows=10)
    assert decode_v2_json_columns(_request(11)["inputs"], SCHEMA, max_rows=10) is None


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("a", float("nan"), "NaN or infinite"), ("c", float("inf"), "NaN or infinite"), ("b", 2.5, "whole numbers")],
)
def test_bad_values_are_decode_v2_s_400_naming_the_column(column, value, message):
    body = _request(2)
    body["inputs"][SCHEMA.columns.index(column)]["data"][1] = value
    with pytest.raises(InvalidInputError, match=message) as fast:
        decode_v2_json_columns(body["inputs"], SCHEMA, max_rows=10)
    with pytest.raises(InvalidInputError) as slow:
        decode_v2(v2_json_inputs(body), SCHEMA, max_rows=10)
    assert (fast.value.message, fast.value.field) == (slow.value.message, slow.value.field)
    assert fast.value.field == column


def test_tensor_and_typed_schemas_are_not_its_business():
    cols = ("a", "b", "c")
    tensor = InputSchema(cols, ("double",) * 3, tensor_name="x", tensor_dtype="float64", tensor_shape=(-1, 3),
                         index={c: i for i, c in enumerate(cols)})
    typed = make_schema(["a", "b", "c"], ["double", "string", "double"])
    for schema in (tensor, typed):
        assert decode_v2_json_columns(_request(1)["inputs"], schema, max_rows=10) is None
