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
NUMERIC_MLFLOW = frozenset({"boolean", "integer", "long", "float", "double"})
INTEGRAL_MLFLOW = frozenset({"integer", "long"})


@dataclass(frozen=True)
class V2Input:
    """One v2 input tensor as it arrives: ``data`` is a (possibly nested) list or a numpy array."""

    name: str
    shape: Sequence[int]
    datatype: str
    data: Any


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

    @property
    def is_tensor(self) -> bool:
        return self.tensor_dtype is not None

    @property
    def n_features(self) -> int:
        return len(self.columns)

    @property
    def integral(self) -> np.ndarray:
        """Boolean mask of columns whose values must be whole numbers."""
        return np.array([t in INTEGRAL_MLFLOW for t in self.types], dtype=bool)


def make_schema(columns: Sequence[str], types: Sequence[str] | None = None) -> InputSchema:
    """An all-numeric column schema (``double`` unless ``types`` says otherwise)."""
    cols = tuple(str(c) for c in columns)
    typs = tuple(types) if types is not None else ("double",) * len(cols)
    if len(set(cols)) != len(cols):
        raise InvalidInputError("signature has duplicate column names", field="signature")
    return InputSchema(columns=cols, types=typs, index={c: i for i, c in enumerate(cols)})


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
    columns, types = [], []
    for i, spec in enumerate(schema.inputs):
        if not spec.name:
            raise InvalidInputError(f"signature column {i} has no name", field="signature")
        type_name = spec.type.name if hasattr(spec.type, "name") else str(spec.type)
        if type_name not in NUMERIC_MLFLOW:
            raise InvalidInputError(
                f"signature column {spec.name!r} has type {type_name}; this predictor serves numeric columns only",
                field="signature",
            )
        columns.append(spec.name)
        types.append(type_name)
    return make_schema(columns, types)


def v2_metadata(
    schema: InputSchema, *, prediction_datatype: str = "INT64", classes: Sequence[Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """v2 model metadata ``inputs``/``outputs`` for ``schema`` (MLServer's MLflow runtime mapping).

    Outputs are ``predictions`` (shape ``[-1]``) and, for a classifier, ``probabilities``
    (``[-1, n_classes]``, FP64, one column per class in ``classes`` order).
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
        inputs = [
            {"name": c, "datatype": MLFLOW_TO_V2[t], "shape": [-1, 1], "parameters": {"content_type": "np"}}
            for c, t in zip(schema.columns, schema.types, strict=True)
        ]
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
    return NUMPY_TO_V2.get(array.dtype.name, "BYTES")


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


def check_shape(name: str, shape: Sequence[Any], *, max_rows: int, n_features: int) -> list[int]:
    """The declared shape of input ``name`` as plain ints, checked before anything is allocated.

    Every dimension must be an integer >= 0 (``-1`` means "any" in model metadata, never in a
    request), and the number of values it declares must fit the row limit: a shape such as
    ``[10**12, 13]`` or ``[2**40, 2**40]`` is refused here, not by numpy after a huge allocation.

    Raises:
        InvalidInputError: a dimension that is not an integer, or is negative (``field`` is ``name``).
        PayloadTooLargeError: the shape declares more than ``max_rows`` rows of ``n_features`` values.
    """
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, bool) or not isinstance(d, int | np.integer):
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
        bad = np.isinf(x)
        problem = "infinite"
    else:
        bad = ~np.isfinite(x)
        problem = "NaN or infinite"
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        name = schema.columns[col] if col < schema.n_features else str(col)
        raise InvalidInputError(
            f"column {name!r} has a {problem} value (first at row {row}); values must be finite numbers",
            field=name,
        )
    mask = schema.integral
    if mask.any():
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
) -> np.ndarray:
    """Decode v2 inputs into a C-contiguous float64 ``[N, F]`` array in signature column order.

    Accepts ONE numeric tensor ``[N, F]`` (any name that is not a column name), or one input per
    signature column, each of shape ``[N]`` or ``[N, 1]``.

    Raises:
        InvalidInputError: wrong shape or datatype, missing/extra/duplicate columns, non-numbers,
            NaN/inf, non-integral values in an integer column, or no rows.
        PayloadTooLargeError: more than ``max_rows`` rows.
    """
    if not inputs:
        raise InvalidInputError("the request has no inputs", field="inputs")
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
    n_rows = None
    x = None
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

    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"missing column(s) {', '.join(map(repr, missing))}", field=missing[0])
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
