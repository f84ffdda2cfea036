"""A decoded mixed-type request (``Columns``): joined by the micro-batcher as pandas would join the
DataFrames, and predicted as the DataFrame it stands for."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from mlcycle.serving.batching import AdaptiveBatcher
from mlcycle.serving.predict import Prediction
from mlcycle.serving.schema import NUMPY_TO_V2, Columns, V2Input, decode_v2, make_schema, v2_datatype


def _columns(i: int, n: int = 2, **extra) -> Columns:
    data = {"color": np.array(["red", f"c{i}"] * n, dtype=object)[:n], "x": np.arange(n) + i / 10,
            "k": np.arange(n, dtype=np.int64) * i, **extra}
    return Columns(data, n)


def test_a_mixed_request_decodes_to_typed_columns_and_its_frame():
    schema = make_schema(["color", "x", "k"], ["string", "double", "long"])
    x = decode_v2([V2Input("color", [2], "BYTES", ["red", "blue"]), V2Input("x", [2, 1], "FP64", [[0.5], [1]]),
                   V2Input("k", [2], "INT64", [1, 2])], schema)
    assert type(x) is Columns and len(x) == 2 and x.columns == ["color", "x", "k"]
    frame = x.frame()
    assert frame.dtypes.astype(str).tolist() == ["object", "float64", "int64"]
    assert frame["color"].tolist() == ["red", "blue"] and frame["k"].tolist() == [1, 2]
    assert frame.index.equals(pd.RangeIndex(2))


def test_requests_of_one_shape_join_array_by_array_as_pandas_would():
    parts = [_columns(i, n) for i, n in enumerate([1, 3, 2])]
    joined = Columns.concat(parts)
    assert type(joined) is Columns and len(joined) == 6
    expected = pd.concat([p.frame() for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(joined.frame(), expected)


@pytest.mark.parametrize(
    "odd",
    [
        {"drop": "k"},  # an optional column one request leaves out
        {"k": np.array([0.5, 1.5])},  # a column another request sends as floats
        {"k": pd.array([1, None], dtype="Int64")},  # not a NumPy array
    ],
    ids=["missing", "dtype", "extension"],
)
def test_requests_that_differ_are_joined_by_pandas(odd):
    last = _columns(9)
    if "drop" in odd:
        del last.data[odd["drop"]]
    else:
        last.data.update(odd)
    parts = [_columns(0), _columns(1), last]
    joined = Columns.concat(parts)
    assert isinstance(joined, pd.DataFrame)
    pd.testing.assert_frame_equal(joined, pd.concat([p.frame() for p in parts], ignore_index=True))


def test_the_batcher_answers_each_request_with_its_own_rows():
    calls = []

    def fn(x):
        calls.append(len(x))
        frame = x.frame() if type(x) is Columns else x
        return Prediction(frame["x"].to_numpy() + frame["k"].to_numpy())

    async def run():
        batcher = AdaptiveBatcher(fn, inline_below_s=0.0)
        parts = [_columns(i, n) for i, n in enumerate([1, 2, 3, 1])]
        results = await asyncio.gather(*(batcher.submit(p) for p in parts))
        await batcher.close()
        return parts, results

    parts, results = asyncio.run(run())
    for part, result in zip(parts, results, strict=True):
        np.testing.assert_array_equal(result.predictions, part.data["x"] + part.data["k"])
    assert sum(calls) == 7 and len(calls) < 4  # joined into fewer calls than requests


def test_a_model_writing_into_its_numeric_frame_leaves_the_request_as_logged():
    """A numeric request's frame is a copy: the payload log writes the decoded array after the model ran,
    so a model that changes its input in place must not change what is logged."""
    from mlcycle.serving.schema import to_model_frame

    schema = make_schema(["a", "b"], ["double", "double"])
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    frame = to_model_frame(x, schema)
    frame.iloc[0, 0] = 99.0
    frame.loc[1, "b"] = -1.0
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("name", sorted(NUMPY_TO_V2))
def test_an_outputs_v2_datatype_follows_its_dtype_in_either_byte_order(name):
    dtype = np.dtype(name)
    assert v2_datatype(np.zeros(2, dtype=dtype)) == NUMPY_TO_V2[name]
    assert v2_datatype(np.zeros(2, dtype=dtype.newbyteorder(">"))) == NUMPY_TO_V2[name]


@pytest.mark.parametrize("array", [np.array(["a"], dtype=object), np.array(["ab"]), np.array([b"x"]),
                                   np.array(["2024-01-01"], dtype="datetime64[ns]")])
def test_anything_not_numeric_is_bytes(array):
    assert v2_datatype(array) == "BYTES"
