"""A model's input schema, from its MLflow signature, and turning requests into a feature matrix.

The schema is what the MLflow signature says the model takes: named columns with MLflow types, or one
tensor. :func:`input_schema` reads it once at load time; after that every request is decoded without
touching MLflow or pandas:

- :func:`decode_v2` takes v2 (Open Inference) inputs: ONE numeric tensor ``[N, F]`` (columns in
  signature order), or one input per signature column (shape ``[N]`` or ``[N, 1]``).
- :func:`decode_v1` takes v1 ``instances``: a list of rows (lists of F numbers) or of ``{column: value}``.
- :func:`check_rows` and :func:`frame_to_array` do the same for a pandas DataFrame, row by row, so that
  batch inference can quarantine bad rows instead of failing the whole batch.

Every client mistake raises :class:`~mlcycle.errors.InvalidInputError` (400) whose message names the
input or column and the problem; a batch over the limit raises
:class:`~mlcycle.errors.PayloadTooLargeError` (413).

:func:`v2_metadata` turns the schema into v2 model metadata the way MLServer's MLflow runtime does:
a column becomes an input of shape ``[-1, 1]`` with its v2 datatype, a tensor keeps its shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from mlcycle.errors import InvalidInputError, PayloadTooLargeError

DEFAULT_MAX_ROWS = 10_000

# MLflow column type -> v2 datatype (as MLServer's MLflow runtime maps them).
MLFLOW_TO_V2 = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
NUMPY_TO_V2 = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
NUMERIC_V2 = frozenset(NUMPY_TO_V2.values())
# The same by dtype object, native byte order: ``dtype.name`` builds its string on every read (~3 µs,
# seen in the 1-row request profile), a dict lookup by dtype takes ~0.1 µs.
_V2_BY_DTYPE = {**{np.dtype(k): v for k, v in NUMPY_TO_V2.items()}, np.dtype(object): "BYTES"}
# The content_type parameter each column type is described with (MLServer's codec names).
CONTENT_TYPES = {
    "boolean": "np",
    "integer": "np",
    "long": "np",
    "float": "np",
    "double": "np",
    "string": "str",
    "binary": "base64",
    "datetime": "datetime",
}
KNOWN_CONTENT_TYPES = frozenset({"np", "pd", "str", "base64", "datetime"})
# pandas dtype a column of each type is given to the model with (what MLflow's schema enforcement makes).
FRAME_DTYPES = {"boolean": "bool", "integer": "int32", "long": "int64", "float": "float32", "double": "float64"}
NUMERIC_MLFLOW = frozenset({"boolean", "integer", "long", "float", "double"})
INTEGRAL_MLFLOW = frozenset({"integer", "long"})


@dataclass(slots=True)
class V2Input:
    """One v2 input tensor as it arrives: ``data`` is a (possibly nested) list or a numpy array.

    Not frozen: one is made per input per request, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) showed in the request profile.
    """

    name: str
    shape: Sequence[int]
    datatype: str
    data: Any
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class InputSchema:
    """What a model takes: ``columns`` in signature order with their MLflow types, or one tensor.

    For a tensor signature, ``columns`` are synthetic (``input-0``...) only when the tensor's last
    dimension is known; ``tensor_dtype`` is set and ``n_features`` is the last dimension.
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]
    tensor_name: str | None = None
    tensor_dtype: str | None = None
    tensor_shape: tuple[int, ...] | None = None
    index: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    optional: tuple[bool, ...] = ()

    @cached_property
    def is_numeric(self) -> bool:
        """True when every column is a required number: requests decode to one float ``[N, F]`` array.

        Otherwise (strings, datetimes, binary, optional columns) they decode to a typed DataFrame.
        Computed once (every request asks).
        """
        return self.is_tensor or (all(t in NUMERIC_MLFLOW for t in self.types) and not any(self.optional))

    def is_optional(self, column: str) -> bool:
        return bool(self.optional) and self.optional[self.index[column]]

    @property
    def is_tensor(self) -> bool:
        return self.tensor_dtype is not None

    @property
    def n_features(self) -> int:
        return len(self.columns)

    @cached_property
    def integral(self) -> np.ndarray:
        """Boolean mask of columns whose values must be whole numbers (computed once; read-only)."""
        mask = np.array([t in INTEGRAL_MLFLOW for t in self.types], dtype=bool)
        mask.flags.writeable = False
        return mask

    @cached_property
    def has_integral(self) -> bool:
        """Whether any column takes only whole numbers."""
        return bool(self.integral.any())


def make_schema(
    columns: Sequence[str], types: Sequence[str] | None = None, optional: Sequence[bool] | None = None
) -> InputSchema:
    """A column schema (``double`` unless ``types`` says otherwise; every column required by default)."""
    cols = tuple(str(c) for c in columns)
    typs = tuple(types) if types is not None else ("double",) * len(cols)
    if len(set(cols)) != len(cols):
        raise InvalidInputError("signature has duplicate column names", field="signature")
    opt = tuple(bool(o) for o in optional) if optional is not None and any(optional) else ()
    return InputSchema(columns=cols, types=typs, index={c: i for i, c in enumerate(cols)}, optional=opt)


def input_schema(signature: Any) -> InputSchema:
    """Read the input schema of an MLflow ``ModelSignature``.

    Raises:
        InvalidInputError: no signature, or one this predictor cannot serve (non-numeric columns,
            unnamed columns, a tensor whose feature dimension is unknown); ``field`` is ``signature``.
    """
    if signature is None or signature.inputs is None:
        raise InvalidInputError(
            "the model has no input signature; log it with signature=infer_signature(X, y)",
            field="signature",
        )
    schema = signature.inputs
    if schema.is_tensor_spec():
        specs = schema.inputs
        if len(specs) != 1:
            raise InvalidInputError(
                f"the signature has {len(specs)} tensor inputs; this predictor serves exactly one",
                field="signature",
            )
        spec = specs[0]
        shape = tuple(int(d) for d in spec.shape)
        dtype = np.dtype(spec.type).name
        if dtype not in NUMPY_TO_V2 or len(shape) != 2 or shape[1] < 1:
            raise InvalidInputError(
                f"tensor input {spec.name or 'input-0'} has dtype {dtype} and shape {list(shape)}; "
                "this predictor serves a numeric [-1, F] tensor",
                field="signature",
            )
        cols = tuple(f"input-{i}" for i in range(shape[1]))
        return InputSchema(
            columns=cols,
            types=("double",) * shape[1],
            tensor_name=spec.name or "input-0",
            tensor_dtype=dtype,
            tensor_shape=shape,
            index={c: i for i, c in enumerate(cols)},
        )
    columns, types, optional = [], [], []
    for i, spec in enumerate(schema.inputs):
        if not spec.name:
            raise InvalidInputError(f"signature column {i} has no name", field="signature")
        type_name = spec.type.name if hasattr(spec.type, "name") else str(spec.type)
        if type_name not in MLFLOW_TO_V2:
            raise InvalidInputError(
                f"signature column {spec.name!r} has type {spec.type}; this predictor serves columns of "
                f"types {', '.join(sorted(MLFLOW_TO_V2))}",
                field="signature",
            )
        columns.append(spec.name)
        types.append(type_name)
        optional.append(not getattr(spec, "required", True))
    return make_schema(columns, types, optional)


def v2_metadata(
    schema: InputSchema,
    *,
    prediction_datatype: str = "INT64",
    classes: Sequence[Any] | None = None,
    output_columns: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """v2 model metadata ``inputs``/``outputs`` for ``schema`` (MLServer's MLflow runtime mapping).

    A column is an input of shape ``[-1, 1]`` with its datatype and ``content_type`` (``np`` for numbers
    and booleans, ``str`` for strings, ``base64`` for binary, ``datetime`` for datetimes sent as BYTES
    ISO-8601 strings); an optional column says ``"optional": true`` in its parameters. Outputs are
    ``output_columns`` when the model returns a DataFrame or dict (one output per column), otherwise
    ``predictions`` (shape ``[-1]``) and, for a classifier, ``probabilities`` (``[-1, n_classes]``,
    FP64, one column per class in ``classes`` order).
    """
    if schema.is_tensor:
        inputs = [
            {
                "name": schema.tensor_name,
                "datatype": NUMPY_TO_V2[schema.tensor_dtype],
                "shape": list(schema.tensor_shape),
                "parameters": {"content_type": "np"},
            }
        ]
    else:
        inputs = []
        for c, t in zip(schema.columns, schema.types, strict=True):
            item = {
                "name": c,
                "datatype": MLFLOW_TO_V2[t],
                "shape": [-1, 1],
                "parameters": {"content_type": CONTENT_TYPES[t]},
            }
            if schema.is_optional(c):
                item["parameters"]["optional"] = True
            inputs.append(item)
    if output_columns:
        return {"inputs": inputs, "outputs": [dict(o) for o in output_columns]}
    outputs = [{"name": "predictions", "datatype": prediction_datatype, "shape": [-1]}]
    if classes is not None:
        outputs.append(
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [-1, len(classes)],
                "parameters": {"classes": [_plain(c) for c in classes]},
            }
        )
    return {"inputs": inputs, "outputs": outputs}


def v2_datatype(array: np.ndarray) -> str:
    """The v2 datatype of a numpy array (BYTES for anything non-numeric)."""
    found = _V2_BY_DTYPE.get(array.dtype)
    return found if found is not None else NUMPY_TO_V2.get(array.dtype.name, "BYTES")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------------- decoding


def _check_rows(n: int, max_rows: int, field: str = "inputs") -> None:
    if n < 0:
        raise InvalidInputError(
            f"the request declares {n} rows; a row count must be 0 or more (-1 means 'any' only in metadata)",
            field=field,
        )
    if n == 0:
        raise InvalidInputError("the request has no rows (empty batch)", field=field)
    if n > max_rows:
        raise PayloadTooLargeError(
            f"the request has {n} rows; at most {max_rows} are allowed per request", field=field
        )


_INTEGER_TYPES = (int, np.integer)


def check_shape(name: str, shape: Sequence[Any], *, max_rows: int, n_features: int) -> list[int]:
    """The declared shape of input ``name`` as plain ints, checked before anything is allocated.

    Every dimension must be an integer >= 0 (``-1`` means "any" in model metadata, never in a
    request), and the number of values it declares must fit the row limit: a shape such as
    ``[10**12, 13]`` or ``[2**40, 2**40]`` is refused here, not by numpy after a huge allocation.

    Raises:
        InvalidInputError: a dimension that is not an integer, or is negative (``field`` is ``name``).
        PayloadTooLargeError: the shape declares more than ``max_rows`` rows of ``n_features`` values.
    """
    if type(shape) is list:  # the common cases, [N, F] and [N] of plain JSON ints: the same checks, inline
        limit = max_rows * max(n_features, 1)
        if len(shape) == 2:
            a, b = shape
            if type(a) is int and type(b) is int and a >= 0 and b >= 0 and a * b <= limit:
                return [a, b]
        elif len(shape) == 1:
            a = shape[0]
            if type(a) is int and 0 <= a <= limit:
                return [a]
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, bool) or not isinstance(d, _INTEGER_TYPES):
            raise InvalidInputError(f"input {name!r}: shape[{i}] is {d!r}; dimensions are integers", field=name)
        d = int(d)
        if d < 0:
            raise InvalidInputError(
                f"input {name!r} has shape {list(shape)}: dimension {i} is {d}; dimensions of a request must "
                "be 0 or more (-1 means 'any' only in model metadata)",
                field=name,
            )
        dims.append(d)
    values = 1
    for d in dims:
        values *= d  # Python ints: no overflow however large the client's numbers
    if values > max_rows * max(n_features, 1):
        raise PayloadTooLargeError(
            f"input {name!r} has shape {dims}: {values} values; at most {max_rows} rows of {n_features} "
            "values are allowed per request",
            field=name,
        )
    return dims


def _to_float(data: Any, what: str, datatype: str | None) -> np.ndarray:
    if datatype is not None and datatype.upper() not in NUMERIC_V2:
        raise InvalidInputError(
            f"{what} has datatype {datatype}; expected a numeric datatype such as FP64 or INT64",
            field=what,
        )
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "biuf":
            raise InvalidInputError(f"{what} holds {data.dtype} values; expected numbers", field=what)
        return data.astype(np.float64, copy=False)
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(
            f"{what} must hold only numbers (a flat or nested list of equal-length rows): {e}", field=what
        ) from e
    return arr


def _check_values(x: np.ndarray, schema: InputSchema, *, allow_nan: bool) -> None:
    if allow_nan:
        bad, problem = np.isinf(x), "infinite"
    else:  # the usual all-finite request costs one ufunc and one reduction, no inverted copy
        finite = np.isfinite(x)
        bad, problem = (None if finite.all() else ~finite), "NaN or infinite"
    if bad is not None and bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        name = schema.columns[col] if col < schema.n_features else str(col)
        raise InvalidInputError(
            f"column {name!r} has a {problem} value (first at row {row}); values must be finite numbers",
            field=name,
        )
    if schema.has_integral:
        mask = schema.integral
        sub = x[:, mask]
        frac = (sub != np.floor(sub)) & np.isfinite(sub)
        if frac.any():
            row, col = (int(v) for v in np.argwhere(frac)[0])
            name = str(np.asarray(schema.columns)[mask][col])
            raise InvalidInputError(
                f"column {name!r} takes whole numbers; row {row} has {float(sub[row, col])!r}", field=name
            )


def decode_v2(
    inputs: Sequence[V2Input],
    schema: InputSchema,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    allow_nan: bool = False,
) -> np.ndarray | Columns:
    """Decode v2 inputs into a C-contiguous float64 ``[N, F]`` array in signature column order.

    Accepts ONE numeric tensor ``[N, F]`` (any name that is not a column name), or one input per
    signature column, each of shape ``[N]`` or ``[N, 1]``. A mixed-type signature (strings, datetimes,
    optional columns, ...) decodes to :class:`Columns` instead: one typed array per column.

    Raises:
        InvalidInputError: wrong shape or datatype, missing/extra/duplicate columns, non-numbers,
            NaN/inf, non-integral values in an integer column, or no rows.
        PayloadTooLargeError: more than ``max_rows`` rows.
    """
    if not inputs:
        raise InvalidInputError("the request has no inputs", field="inputs")
    if not schema.is_numeric:
        return _decode_v2_columns(inputs, schema, max_rows=max_rows)
    f = schema.n_features
    # Every declared dimension is checked (>= 0, bounded product) before any array is allocated.
    shapes = [check_shape(i.name, i.shape, max_rows=max_rows, n_features=f) for i in inputs]
    first = inputs[0]
    if len(inputs) == 1 and (schema.is_tensor or first.name not in schema.index):
        shape = shapes[0]
        if len(shape) != 2 or shape[1] != f:
            raise InvalidInputError(
                f"input {first.name!r} has shape {shape}; expected [N, {f}] (one row per instance, "
                f"{f} features: {', '.join(schema.columns[:5])}{', ...' if f > 5 else ''}), or one input "
                "per column",
                field=first.name,
            )
        _check_rows(shape[0], max_rows, first.name)
        arr = _to_float(first.data, first.name, first.datatype)
        if arr.size != shape[0] * shape[1]:
            raise InvalidInputError(
                f"input {first.name!r} declares shape {shape} but holds {arr.size} values", field=first.name
            )
        x = np.ascontiguousarray(arr.reshape(shape))
        _check_values(x, schema, allow_nan=allow_nan)
        return x

    names = [i.name for i in inputs]
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]
    if dupes:
        raise InvalidInputError(f"input {dupes[0]!r} is given more than once", field=dupes[0])
    extra = [n for n in names if n not in schema.index]
    if extra:
        raise InvalidInputError(
            f"unknown input(s) {', '.join(map(repr, extra))}; the model takes columns "
            f"{', '.join(map(repr, schema.columns))}",
            field=extra[0],
        )
    missing = [c for c in schema.columns if c not in seen]
    if missing:
        raise InvalidInputError(f"missing input column(s) {', '.join(map(repr, missing))}", field=missing[0])
    x = _columns_at_once(inputs, shapes, schema, max_rows)
    if x is not None:
        _check_values(x, schema, allow_nan=allow_nan)
        return x
    n_rows = None
    for inp, shape in zip(inputs, shapes, strict=True):
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInputError(
                f"input {inp.name!r} has shape {shape}; a column input must be [N] or [N, 1]", field=inp.name
            )
        if n_rows is None:
            n_rows = shape[0]
            _check_rows(n_rows, max_rows, inp.name)
            x = np.empty((n_rows, f), dtype=np.float64)
        elif shape[0] != n_rows:
            raise InvalidInputError(
                f"input {inp.name!r} has {shape[0]} rows but {inputs[0].name!r} has {n_rows}", field=inp.name
            )
        arr = _to_float(inp.data, inp.name, inp.datatype).reshape(-1)
        if arr.size != n_rows:
            raise InvalidInputError(
                f"input {inp.name!r} declares shape {shape} but holds {arr.size} values", field=inp.name
            )
        x[:, schema.index[inp.name]] = arr
    _check_values(x, schema, allow_nan=allow_nan)
    return x


_V2_TENSOR = itemgetter("name", "shape", "datatype", "data")
_LISTS, _INTS = {list}, {int}


@lru_cache(maxsize=64)
def _in_order(n: int) -> list[int]:
    """``[0, ..., n-1]``: the column positions of a request that names them in signature order."""
    return list(range(n))


def decode_v2_json_columns(raw: Any, schema: InputSchema, *, max_rows: int = DEFAULT_MAX_ROWS) -> np.ndarray | None:
    """The usual v2 JSON request of a numeric column model, decoded in one pass over the parsed JSON.

    ``raw`` is the request's ``inputs`` as parsed: one ``{"name", "shape", "datatype", "data"}`` object per
    signature column, in the signature's order, all of one shape ``[N]`` or ``[N, 1]`` (plain ints,
    ``0 < N <= max_rows``), numeric datatypes and list data — what clients send. The result is the array
    :func:`decode_v2` gives for the same request, with the same value checks (their errors included).
    Anything else gives ``None`` and the request takes :func:`decode_v2`, which names what is wrong; no
    :class:`V2Input` is built on this path (13 columns: ~15 µs instead of ~100).
    """
    if type(raw) is not list or schema.is_tensor or not schema.is_numeric:
        return None
    columns = schema.columns
    if len(raw) != len(columns):
        return None
    try:  # C loops over the inputs, not a Python one: a 1-row request is mostly this bookkeeping
        names, shapes, datatypes, data = zip(*map(_V2_TENSOR, raw), strict=True)
    except (KeyError, TypeError):  # an input that is not an object, or lacks one of the four
        return None
    if names != columns or not NUMERIC_V2.issuperset(datatypes) or set(map(type, data)) != _LISTS:
        return None
    shape = shapes[0]
    if type(shape) is not list or not 1 <= len(shape) <= 2 or shapes.count(shape) != len(shapes):
        return None
    # [1, True] == [1, 1]: a bool dimension is caught by type, and goes on to decode_v2's 400
    if set(map(type, chain.from_iterable(shapes))) != _INTS:
        return None
    n = shape[0]
    if not 0 < n <= max_rows or (len(shape) == 2 and shape[1] != 1):
        return None
    x = _column_block(data, n, _in_order(len(columns)), schema)
    if x is not None:
        _check_values(x, schema, allow_nan=False)
    return x


def _columns_at_once(
    inputs: Sequence[V2Input], shapes: list[list[int]], schema: InputSchema, max_rows: int
) -> np.ndarray | None:
    """One input per column decoded by one numpy call when they are alike — the same ``[N]`` or ``[N, 1]``
    shape, numeric datatypes, JSON lists — as most clients send them; ``None`` when anything differs, and the
    column-by-column loop then finds and names the problem. The values are converted exactly as that loop
    converts them (``np.asarray(..., dtype=float64)``)."""
    shape = shapes[0]
    n = shape[0]
    if not 0 < n <= max_rows or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return None
    for inp, other in zip(inputs, shapes, strict=True):
        if other != shape or type(inp.data) is not list or type(inp.datatype) is not str:
            return None
        if inp.datatype not in NUMERIC_V2 and inp.datatype.upper() not in NUMERIC_V2:
            return None
    return _column_block([inp.data for inp in inputs], n, [schema.index[inp.name] for inp in inputs], schema)


def _column_block(data: Sequence[Any], n: int, positions: list[int], schema: InputSchema) -> np.ndarray | None:
    """Columns of ``n`` values each (JSON lists) as one C-contiguous float ``[n, F]`` array, column ``i`` at
    ``positions[i]``; ``None`` when they are not all numbers or not ``n`` each. One ``np.array`` call
    converts them, as ``np.asarray(..., dtype=float64)`` converts one column."""
    try:
        block = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if block.size != len(data) * n:
        return None
    block = block.reshape(len(data), n)
    if positions == _in_order(len(positions)):
        return block.reshape(1, -1) if n == 1 else np.ascontiguousarray(block.T)
    x = np.empty((n, schema.n_features), dtype=np.float64)
    x[:, positions] = block.T
    return x


def decode_v1(
    instances: Any,
    schema: InputSchema,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    allow_nan: bool = False,
) -> np.ndarray:
    """Decode v1 ``instances`` (rows as lists in signature order, or as ``{column: value}``).

    Raises:
        InvalidInputError / PayloadTooLargeError: as :func:`decode_v2`.
    """
    if not isinstance(instances, list):
        raise InvalidInputError('"instances" must be a list of rows', field="instances")
    _check_rows(len(instances), max_rows)
    if not schema.is_numeric:
        return _decode_v1_records(instances, schema)
    f = schema.n_features
    if isinstance(instances[0], Mapping):
        x = np.empty((len(instances), f), dtype=np.float64)
        for r, row in enumerate(instances):
            if not isinstance(row, Mapping):
                raise InvalidInputError(f"instance {r} is not an object like instance 0", field="instances")
            if len(row) != f or any(k not in schema.index for k in row):
                extra = [k for k in row if k not in schema.index]
                missing = [c for c in schema.columns if c not in row]
                what = (
                    f"unknown column(s) {', '.join(map(repr, extra))}"
                    if extra
                    else f"missing column(s) {', '.join(map(repr, missing))}"
                )
                raise InvalidInputError(f"instance {r}: {what}", field=(extra or missing or ["instances"])[0])
            try:
                x[r] = [row[c] for c in schema.columns]
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"instance {r} must hold only numbers: {e}", field="instances") from e
    else:
        x = _to_float(instances, "instances", None)
        if x.ndim != 2 or x.shape[1] != f:
            raise InvalidInputError(
                f"instances have shape {list(x.shape)}; expected [N, {f}] (each row a list of {f} numbers)",
                field="instances",
            )
        x = np.ascontiguousarray(x)
    _check_values(x, schema, allow_nan=allow_nan)
    return x


# ---------------------------------------------------------------------------------------- data frames


def check_rows(frame: Any, schema: InputSchema, *, allow_nan: bool = False) -> Any:
    """Per-row reasons why rows of a pandas DataFrame cannot be predicted (``""`` for a good row).

    Column-level problems (a signature column missing) raise instead, since no row could be used.
    Extra columns are ignored (batch inputs often carry ids and labels).

    Raises:
        InvalidInputError: a signature column is missing (``field`` is the column).
    """
    import pandas as pd

    missing = [c for c in schema.columns if c not in frame.columns and not schema.is_optional(c)]
    if missing:
        raise InvalidInputError(f"missing column(s) {', '.join(map(repr, missing))}", field=missing[0])
    if not schema.is_numeric:
        _, found = frame_to_input(frame, schema)
        return found if found is not None else pd.Series([""] * len(frame), index=frame.index, dtype=object)
    reasons = [[] for _ in range(len(frame))]
    for col, typ in zip(schema.columns, schema.types, strict=True):
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        not_number = values.isna() & raw.notna()
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        is_nan = np.isnan(values)
        for i in np.flatnonzero(not_number.to_numpy()):
            reasons[i].append(f"{col}: not a number ({raw.iloc[i]!r})")
        nn = not_number.to_numpy()
        if not allow_nan:
            for i in np.flatnonzero(is_nan & ~nn):
                reasons[i].append(f"{col}: missing (NaN)")
        for i in np.flatnonzero(np.isinf(values)):
            reasons[i].append(f"{col}: infinite")
        if typ in INTEGRAL_MLFLOW:
            fin = np.isfinite(values)
            for i in np.flatnonzero(fin & (values != np.floor(np.where(fin, values, 0)))):
                reasons[i].append(f"{col}: not a whole number ({values[i]!r})")
    return pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=object)


def frame_to_array(frame: Any, schema: InputSchema) -> np.ndarray:
    """The signature columns of a (checked) DataFrame as a C-contiguous float64 ``[N, F]`` array."""
    import pandas as pd

    cols = [
        pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in schema.columns
    ]
    return np.ascontiguousarray(np.column_stack(cols)) if cols else np.empty((len(frame), 0))


# ------------------------------------------------------------------------------ mixed-type columns


def _bad(column: str, row: int, problem: str) -> InvalidInputError:
    return InvalidInputError(f"column {column!r} row {row}: {problem}", field=column)


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


_INT32_MAX = np.iinfo(np.int32).max


def _plain_list(typ: str, values: list) -> np.ndarray | None:
    """A JSON list whose values are all of the column's own Python type (floats/ints for a number column,
    bools, strings) converted without looking at each value in Python, to exactly what the general path
    below makes of it; ``None`` for anything else (nulls, NaN, mixed types, bytes...), which that path then
    converts or names row by row."""
    types = set(map(type, values))
    if typ == "string":
        if types != {str}:
            return None
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    if typ == "boolean":
        return np.array(values, dtype=bool) if types == {bool} else None
    if typ not in NUMERIC_MLFLOW or not types <= {int, float}:
        return None
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        return None
    if typ in INTEGRAL_MLFLOW and ((x != np.floor(x)).any() or (typ == "integer" and (np.abs(x) > _INT32_MAX).any())):
        return None
    return x.astype(FRAME_DTYPES[typ], copy=False)


def convert_column(
    column: str, typ: str, values: Any, *, optional: bool = False, content_type: str | None = None
) -> tuple[Any, list[tuple[int, str]]]:
    """``values`` (a list, numpy array or Series) as the column the model takes, and its bad rows.

    Strings stay Python ``str`` (bytes from gRPC are decoded as UTF-8), binary becomes ``bytes``
    (``content_type`` ``base64`` decodes it), datetimes are ISO-8601 strings (or datetime values)
    parsed to ``datetime64[ns]``, booleans must be booleans, integers whole numbers, floats finite.
    A null is allowed only in an optional column. Returns ``(array, [(row, problem), ...])``; the array
    is only meaningful when there are no bad rows.
    """
    import pandas as pd

    if type(values) is list and values:
        plain = _plain_list(typ, values)
        if plain is not None:
            return plain, []
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    arr = arr.reshape(-1)
    bad: list[tuple[int, str]] = []
    if typ in NUMERIC_MLFLOW:
        if arr.dtype.kind == "O":
            for r, v in enumerate(arr.tolist()):
                if _is_null(v):
                    if not optional or typ not in ("float", "double"):
                        bad.append((r, "is null; the column is required" if not optional else "is null"))
                elif typ == "boolean" and not isinstance(v, bool | np.bool_):
                    bad.append((r, f"expected a boolean, got {v!r}"))
                elif typ != "boolean" and (
                    isinstance(v, bool | str | bytes) or not isinstance(v, int | float | np.number)
                ):
                    bad.append((r, f"expected a number, got {v!r}"))
            if bad:
                return arr, bad
            arr = np.asarray(
                [np.nan if v is None else v for v in arr.tolist()], dtype=bool if typ == "boolean" else np.float64
            )
        if typ == "boolean":
            if arr.dtype.kind != "b":
                nonbool = np.flatnonzero(~np.isin(arr, [0, 1])) if arr.dtype.kind in "iuf" else np.arange(len(arr))
                bad += [(int(r), f"expected a boolean, got {arr[r].item()!r}") for r in nonbool]
                if bad:
                    return arr, bad
                return arr.astype(bool), bad
            return arr, bad
        if arr.dtype.kind not in "biuf":
            return arr, [(r, f"expected a number, got {v!r}") for r, v in enumerate(arr.tolist())]
        x = arr.astype(np.float64, copy=False)
        nan = np.isnan(x)
        if not (optional and typ in ("float", "double")):
            bad += [(int(r), "is NaN or null; values must be finite numbers") for r in np.flatnonzero(nan)]
        bad += [(int(r), "is infinite; values must be finite numbers") for r in np.flatnonzero(np.isinf(x))]
        if typ in INTEGRAL_MLFLOW:
            fin = np.isfinite(x)
            frac = fin & (x != np.floor(np.where(fin, x, 0)))
            bad += [(int(r), f"takes whole numbers, got {x[r]!r}") for r in np.flatnonzero(frac)]
            if typ == "integer":
                big = fin & (np.abs(x) > np.iinfo(np.int32).max)
                bad += [(int(r), f"{x[r]!r} does not fit a 32-bit integer") for r in np.flatnonzero(big)]
        if bad:
            return x, sorted(bad)
        if arr.dtype.kind in "iu" and typ in INTEGRAL_MLFLOW:
            return arr.astype(FRAME_DTYPES[typ], copy=False), bad
        return x.astype(FRAME_DTYPES[typ], copy=False), bad
    if typ == "datetime":
        if arr.dtype.kind == "M":
            return arr.astype("datetime64[ns]"), bad
        out = []
        for r, v in enumerate(arr.tolist()):
            if _is_null(v):
                if not optional:
                    bad.append((r, "is null; the column is required"))
                out.append(None)
                continue
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            if not isinstance(v, str | pd.Timestamp):
                bad.append((r, f"expected an ISO-8601 date-time string, got {v!r}"))
                continue
            try:
                ts = pd.Timestamp(v)
            except (TypeError, ValueError) as e:
                bad.append((r, f"is not an ISO-8601 date-time ({v!r}: {e})"))
                continue
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            out.append(ts)
        return (pd.to_datetime(pd.Series(out, dtype=object)).to_numpy() if not bad else arr), bad
    # string / binary
    out = []
    b64 = content_type == "base64"
    for r, v in enumerate(arr.tolist()):
        if _is_null(v):
            if not optional:
                bad.append((r, "is null; the column is required"))
            out.append(None)
        elif typ == "string":
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    bad.append((r, "is not valid UTF-8"))
                    continue
            if not isinstance(v, str):
                bad.append((r, f"expected a string, got {v!r}"))
            out.append(v)
        else:
            if isinstance(v, str):
                if b64:
                    import base64
                    import binascii

                    try:
                        v = base64.b64decode(v, validate=True)
                    except (binascii.Error, ValueError):
                        bad.append((r, "is not valid base64"))
                        continue
                else:
                    v = v.encode("utf-8")
            if not isinstance(v, bytes):
                bad.append((r, f"expected bytes, got {v!r}"))
            out.append(v)
    result = np.empty(len(out), dtype=object)
    result[:] = out
    return result, bad


_DATATYPES_FOR = {
    "string": frozenset({"BYTES"}),
    "binary": frozenset({"BYTES"}),
    "datetime": frozenset({"BYTES"}),
    "boolean": frozenset({"BOOL"}),
    "integer": frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}),
    "long": frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}),
    "float": NUMERIC_V2 - {"BOOL"},
    "double": NUMERIC_V2 - {"BOOL"},
}


def _frame(columns: dict[str, Any], n: int, *, copy: bool = False) -> Any:
    """One DataFrame over freshly converted arrays: ``copy=False`` by default (pandas copies a dict's arrays
    into consolidated blocks otherwise, 2-4x the construction's cost, for arrays nothing else holds)."""
    import pandas as pd

    return pd.DataFrame(columns, index=pd.RangeIndex(n), copy=copy)


class Columns:
    """A decoded mixed-type request: one typed NumPy array per signature column, ``n`` rows each.

    The request path keeps rows this way instead of as a DataFrame: building a DataFrame costs more than
    decoding a 1-row request, and the micro-batcher would otherwise join many small DataFrames with
    ``pd.concat``. :meth:`concat` joins requests column by column and the model's DataFrame is built
    once per model call (:meth:`frame`, in :func:`mlcycle.serving.predict.predict`); the payload
    logger writes the arrays as they are.
    """

    __slots__ = ("data", "n")

    def __init__(self, data: dict[str, Any], n: int) -> None:
        self.data = data
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Columns({self.n} rows: {', '.join(f'{c} {a.dtype}' for c, a in self.data.items())})"

    @property
    def columns(self) -> list[str]:
        return list(self.data)

    def frame(self) -> Any:
        """The DataFrame a model is given (the arrays themselves, not copies)."""
        return _frame(self.data, self.n)

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Any:
        """Several requests' rows as one input, in order.

        Requests with the same columns of the same dtypes (the usual case) are joined array by array;
        otherwise (an optional column sent by some requests only, a null turning a column's type) the
        DataFrames are joined by ``pd.concat``, which fills and promotes as pandas does.
        """
        first = parts[0].data
        names = list(first)
        dtypes = [a.dtype for a in first.values()]
        if all(
            type(a) is np.ndarray for p in parts for a in p.data.values()
        ) and all(list(p.data) == names and [a.dtype for a in p.data.values()] == dtypes for p in parts[1:]):
            return cls({c: np.concatenate([p.data[c] for p in parts]) for c in names}, sum(p.n for p in parts))
        import pandas as pd

        return pd.concat([p.frame() for p in parts], ignore_index=True)


def _decode_v2_columns(inputs: Sequence[V2Input], schema: InputSchema, *, max_rows: int) -> Any:
    """Mixed-type signature: one input per column, each ``[N]`` or ``[N, 1]``, into a typed DataFrame."""
    names = [i.name for i in inputs]
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]
    if dupes:
        raise InvalidInputError(f"input {dupes[0]!r} is given more than once", field=dupes[0])
    extra = [n for n in names if n not in schema.index]
    if extra:
        raise InvalidInputError(
            f"unknown input(s) {', '.join(map(repr, extra))}; the model takes one input per column: "
            f"{', '.join(map(repr, schema.columns))}",
            field=extra[0],
        )
    missing = [c for c in schema.columns if c not in seen and not schema.is_optional(c)]
    if missing:
        raise InvalidInputError(f"missing input column(s) {', '.join(map(repr, missing))}", field=missing[0])
    by_name = {i.name: i for i in inputs}
    n_rows = None
    columns: dict[str, Any] = {}
    for col, typ in zip(schema.columns, schema.types, strict=True):
        inp = by_name.get(col)
        if inp is None:
            continue
        shape = [int(d) for d in inp.shape]
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInputError(f"input {col!r} has shape {shape}; a column input must be [N] or [N, 1]", field=col)
        if n_rows is None:
            n_rows = shape[0]
            _check_rows(n_rows, max_rows)
        elif shape[0] != n_rows:
            raise InvalidInputError(f"input {col!r} has {shape[0]} rows but others have {n_rows}", field=col)
        datatype = str(inp.datatype).upper()
        if datatype not in _DATATYPES_FOR[typ]:
            raise InvalidInputError(
                f"input {col!r} has datatype {inp.datatype}; column {col!r} is {typ}: send "
                f"{'BYTES (ISO-8601 strings)' if typ == 'datetime' else ' or '.join(sorted(_DATATYPES_FOR[typ])[:2])}",
                field=col,
            )
        content_type = (inp.parameters or {}).get("content_type") if isinstance(inp.parameters, Mapping) else None
        if content_type is not None and content_type not in KNOWN_CONTENT_TYPES:
            raise InvalidInputError(
                f"input {col!r} has content_type {content_type!r}; known: {', '.join(sorted(KNOWN_CONTENT_TYPES))}",
                field=col,
            )
        data = inp.data
        if not isinstance(data, np.ndarray | list):
            raise InvalidInputError(f"input {col!r}: data must be a list", field=col)
        if isinstance(data, list) and data and isinstance(data[0], list):
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        size = data.size if isinstance(data, np.ndarray) else len(data)
        if size != n_rows:
            raise InvalidInputError(f"input {col!r} declares shape {shape} but holds {size} values", field=col)
        values, bad = convert_column(col, typ, data, optional=schema.is_optional(col), content_type=content_type)
        if bad:
            raise _bad(col, *bad[0])
        columns[col] = values
    return Columns(columns, n_rows)


def _decode_v1_records(instances: list, schema: InputSchema) -> Any:
    """Mixed-type signature: v1 instances as records (``{column: value}``) or rows in signature order."""
    n = len(instances)
    known = schema.index
    values: dict[str, list] = {c: [None] * n for c in schema.columns}
    present = dict.fromkeys(schema.columns, False)
    for r, row in enumerate(instances):
        if isinstance(row, Mapping):
            extra = [k for k in row if k not in known]
            if extra:
                raise InvalidInputError(
                    f"instance {r}: unknown column(s) {', '.join(map(repr, extra))}", field=extra[0]
                )
            for c in schema.columns:
                if c in row:
                    values[c][r] = row[c]
                    present[c] = True
                elif not schema.is_optional(c):
                    raise InvalidInputError(f"instance {r}: missing column {c!r}", field=c)
        elif isinstance(row, list):
            if len(row) != schema.n_features:
                raise InvalidInputError(
                    f"instance {r} has {len(row)} values; expected {schema.n_features} in signature order "
                    f"({', '.join(schema.columns)}) or an object",
                    field="instances",
                )
            for c, v in zip(schema.columns, row, strict=True):
                values[c][r] = v
                present[c] = True
        else:
            raise InvalidInputError(f"instance {r} must be an object or a list", field="instances")
    columns = {}
    for c, typ in zip(schema.columns, schema.types, strict=True):
        if not present[c] and schema.is_optional(c):
            continue
        arr, bad = convert_column(c, typ, values[c], optional=schema.is_optional(c))
        if bad:
            raise _bad(c, *bad[0])
        columns[c] = arr
    return Columns(columns, n)


def frame_to_input(frame: Any, schema: InputSchema) -> tuple[Any, Any]:
    """A DataFrame as the model's input (as :func:`decode_v2` would give it), and per-row reasons.

    Returns ``(x, reasons)``: ``x`` is the float ``[N, F]`` array of a numeric schema or the typed
    DataFrame of a mixed one; ``reasons`` is ``None`` when every row is good, else a Series of
    per-row reasons (``""`` for a good row), as :func:`check_rows` gives them.

    Raises:
        InvalidInputError: a required signature column is missing.
    """
    import pandas as pd

    if schema.is_numeric:
        x = frame_to_array(frame, schema)
        return x, None
    missing = [c for c in schema.columns if c not in frame.columns and not schema.is_optional(c)]
    if missing:
        raise InvalidInputError(f"missing column(s) {', '.join(map(repr, missing))}", field=missing[0])
    reasons = [[] for _ in range(len(frame))]
    columns = {}
    for c, typ in zip(schema.columns, schema.types, strict=True):
        if c not in frame.columns:
            continue
        arr, bad = convert_column(c, typ, frame[c], optional=schema.is_optional(c))
        for r, problem in bad:
            reasons[r].append(f"{c}: {problem}")
        columns[c] = arr
    any_bad = any(reasons)
    if any_bad:
        return None, pd.Series(["; ".join(r) for r in reasons], index=frame.index, dtype=object)
    return _frame(columns, len(frame)), None


def to_model_frame(x: Any, schema: InputSchema) -> Any:
    """What a pyfunc model is given: a DataFrame with the signature's column types (a tensor stays an array).

    ``x`` is a decoded request: the float array of a numeric schema (cast back per column: ``long`` to
    int64, ``boolean`` to bool, ...), the :class:`Columns` of a mixed one (made a DataFrame over the same
    arrays), or a typed DataFrame (returned as it is).
    """
    if type(x) is Columns:
        return x.frame()
    if schema.is_tensor or not isinstance(x, np.ndarray):
        return x
    columns = {
        c: x[:, i].astype(FRAME_DTYPES[t], copy=False)
        for i, (c, t) in enumerate(zip(schema.columns, schema.types, strict=True))
    }
    # copied: these are views of the request's array, which the payload log writes after the model ran
    return _frame(columns, len(x), copy=True)
