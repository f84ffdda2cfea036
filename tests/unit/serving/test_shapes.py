"""Declared v2 shapes are checked before anything is allocated (a negative dimension was a 500)."""

from __future__ import annotations

import pytest

from mlcycle.errors import InvalidInputError, PayloadTooLargeError
from mlcycle.serving.schema import V2Input, check_shape, decode_v2, make_schema

SCHEMA = make_schema(["a", "b", "c"])


@pytest.mark.parametrize("shape", [[-1], [-2], [2, -1], [-(2**63)]])
def test_negative_dimensions_are_a_400_naming_the_input(shape):
    with pytest.raises(InvalidInputError, match="0 or more") as e:
        check_shape("a", shape, max_rows=10, n_features=3)
    assert e.value.field == "a"


@pytest.mark.parametrize("shape", [[2**63 - 1, 3], [2**32, 2**32], [31]])
def test_products_past_the_row_limit_are_a_413(shape):
    with pytest.raises(PayloadTooLargeError):
        check_shape("x", shape, max_rows=10, n_features=3)


@pytest.mark.parametrize("shape", [[1.5], ["2"], [True], [None]])
def test_non_integer_dimensions_are_a_400(shape):
    with pytest.raises(InvalidInputError, match="integers"):
        check_shape("x", shape, max_rows=10, n_features=3)


@pytest.mark.parametrize("shape", [[-1], [-2], [0]])
def test_column_inputs_with_bad_row_counts(shape):
    inputs = [V2Input(c, shape, "FP64", [1.0]) for c in SCHEMA.columns]
    with pytest.raises(InvalidInputError) as e:
        decode_v2(inputs, SCHEMA, max_rows=10)
    assert e.value.field == "a"


def test_a_huge_tensor_shape_is_refused_before_its_data_is_read():
    with pytest.raises(PayloadTooLargeError):
        decode_v2([V2Input("input-0", [2**40, 3], "FP64", [[1.0, 2.0, 3.0]])], SCHEMA, max_rows=10)


def _column_by_column(inputs, schema):
    """The decoder's general loop: one column per call, so the one-call path cannot be taken."""
    import numpy as np

    x = np.empty((len(inputs[0].data), schema.n_features))
    for inp in inputs:
        x[:, schema.index[inp.name]] = decode_v2([V2Input(inp.name, [len(inp.data)], "FP64", inp.data)],
                                                 make_schema([inp.name]))[:, 0]
    return x


@pytest.mark.parametrize("order", ["signature", "shuffled"])
@pytest.mark.parametrize("nested", [False, True])
def test_alike_column_inputs_decode_in_one_call_exactly_as_one_by_one(order, nested):
    import numpy as np

    rng = np.random.default_rng(0)
    values = {c: rng.normal(size=4).tolist() for c in SCHEMA.columns}
    names = list(SCHEMA.columns) if order == "signature" else ["c", "a", "b"]
    inputs = [V2Input(n, [4, 1] if nested else [4], "FP64", [[v] for v in values[n]] if nested else values[n])
              for n in names]
    x = decode_v2(inputs, SCHEMA, max_rows=10)
    assert x.flags.c_contiguous and x.shape == (4, 3)
    np.testing.assert_array_equal(x, np.column_stack([values[c] for c in SCHEMA.columns]))
    np.testing.assert_array_equal(x, _column_by_column(inputs, SCHEMA))


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"b": [1.0, "x"]}, "b", "only numbers"),  # not a number: named by the column loop
        ({"c": [1.0]}, "c", "holds 1 values"),  # a column shorter than its declared shape
        ({"a": [1.0, None]}, "a", "NaN"),  # null: NaN, refused by the value check
        ({"b": [[1.0], 2.0]}, "b", "only numbers"),  # ragged nesting
    ],
)
def test_unlike_column_inputs_are_named_as_before(data, field, message):
    columns = {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]} | data
    inputs = [V2Input(c, [2], "FP64", v) for c, v in columns.items()]
    with pytest.raises(InvalidInputError, match=message) as e:
        decode_v2(inputs, SCHEMA, max_rows=10)
    assert e.value.field == field


@pytest.mark.parametrize(
    ("typ", "values"),
    [
        ("double", [1.5, 2, -3.25]),
        ("float", [0.1, 1e30]),
        ("long", [1, 2, 3.0]),
        ("integer", [7, -2147483647]),
        ("integer", [2147483648]),  # past int32: refused by the general path
        ("long", [1, 2.5]),  # not whole: refused
        ("double", [1.0, float("nan")]),  # NaN: the general path decides (null or not finite)
        ("double", [1.0, True]),  # a bool among numbers: refused
        ("boolean", [True, False]),
        ("boolean", [True, 1]),
        ("string", ["red", "blue"]),
        ("string", ["red", 5]),
        ("string", ["red", None]),
    ],
)
@pytest.mark.parametrize("optional", [False, True])
def test_plain_json_lists_convert_exactly_as_the_general_path(typ, values, optional):
    """A JSON list is converted in one numpy call when its values are all of the column's type; the result
    (values, dtype, bad rows) is the general path's, which an object array always takes."""
    import numpy as np

    from mlcycle.serving.schema import convert_column

    fast, fast_bad = convert_column("c", typ, list(values), optional=optional)
    slow, slow_bad = convert_column("c", typ, np.asarray(values, dtype=object), optional=optional)
    assert fast_bad == slow_bad
    if not slow_bad:
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast, slow)
