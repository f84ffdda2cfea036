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
