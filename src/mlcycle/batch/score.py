"""Score a table with a registered model, chunk by chunk, using exactly the predictor's code.

:func:`score_batch` loads the model with :func:`mlcycle.serving.load_model`, turns every chunk into the
feature matrix with :func:`mlcycle.serving.frame_to_array`, validates it with :func:`mlcycle.serving.decode_v2` (the
predictor's own request validation); a chunk it refuses is split by :func:`mlcycle.serving.check_rows`
(the same rules, with a reason per row). The good rows are predicted with
:func:`mlcycle.serving.predict`: the same functions, the same estimator call, so batch and online answers
are the same bits. Nothing here re-implements loading, validation or prediction.

Output (Parquet, one row per scored input row, in input order): the key columns, ``row`` (the row's
0-based position in the input, header excluded), ``prediction`` (a class label, a regressor's number,
whatever the model returns per row) or, for a model that returns a DataFrame or dict,
``prediction_<column>`` per returned column, ``proba_<class>`` per class for a classifier,
``model_name``, ``model_version`` and ``run_id`` (the MLflow run of this batch job).

Bad rows follow one rule, ``on_bad_rows``:

- ``fail``: nothing is written; :class:`BadRowsError` lists the row numbers and reasons.
- ``quarantine``: bad rows go to a separate Parquet file (their input columns as text, ``row`` and
  ``reason``; written, empty, even when no row is bad) and the rest is scored.

Every job is an MLflow run in experiment ``mlcycle-batch``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.batch.io import StagedParquet, check_output_uri, iter_chunks, open_input
from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError
from mlcycle.registry.uris import team_experiment
from mlcycle.serving import LoadedModel, V2Input, check_rows, decode_v2, frame_to_array, load_model, predict
from mlcycle.serving.schema import frame_to_input

log = logging.getLogger(__name__)

EXPERIMENT = "mlcycle-batch"
DEFAULT_CHUNK_ROWS = 50_000
BAD_ROW_RULES = ("fail", "quarantine")
# How many bad rows a BadRowsError keeps (all are counted) and how many its message lists.
KEPT_BAD_ROWS = 1_000
LISTED_BAD_ROWS = 20
RESERVED = ("row", "prediction", "model_name", "model_version", "run_id")


class BadRowsError(InvalidInputError):
    """Rows of a batch input cannot be scored and the rule is ``fail``; no output was written.

    Attributes:
        rows: ``(row, reason)`` for the first :data:`KEPT_BAD_ROWS` bad rows (0-based input positions).
        count: how many rows are bad in all.
    """

    def __init__(self, message: str, *, rows: list[tuple[int, str]], count: int) -> None:
        super().__init__(message, field="input")
        self.rows = rows
        self.count = count


@dataclass(frozen=True)
class BatchResult:
    """What a batch job did; ``rows_per_second`` counts every row read over the scoring time.

    ``seconds`` is the wall time of the scoring loop (read, check, predict, write), ``cpu_seconds`` the
    CPU time this process spent in it (every thread): on a shared machine the steadier of the two.
    """

    run_id: str
    model_name: str
    model_version: str
    model_uri: str
    input_uri: str
    output_uri: str
    quarantine_uri: str | None
    rows_read: int
    rows_scored: int
    rows_quarantined: int
    seconds: float
    cpu_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "rows_read": float(self.rows_read),
            "rows_scored": float(self.rows_scored),
            "rows_quarantined": float(self.rows_quarantined),
            "rows_per_second": self.rows_per_second,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def default_quarantine_uri(output_uri: str) -> str:
    """``scores.parquet`` → ``scores.quarantine.parquet`` (same directory or prefix)."""
    stem, dot, suffix = output_uri.rpartition(".")
    return f"{stem}.quarantine.{suffix}" if dot else f"{output_uri}.quarantine.parquet"


def score_batch(
    model: str,
    input_uri: str,
    output_uri: str,
    settings: Settings,
    *,
    keys: Sequence[str] | None = None,
    on_bad_rows: str = "fail",
    quarantine_uri: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
) -> BatchResult:
    """Score ``input_uri`` with ``model`` into ``output_uri``, streaming ``chunk_rows`` rows at a time.

    Args:
        model: model reference (``models:/wine@champion``, ``wine/3``, ``runs:/...``, a model directory).
        input_uri: CSV or Parquet, local path or ``s3://`` URI.
        output_uri: Parquet destination, local path or ``s3://`` URI; replaced only when the job succeeds.
        settings: MLflow and S3 settings (MLflow already configured, see :func:`mlcycle.tracking.configure`).
        keys: input columns copied to the output; default: every column that is not a model feature.
        on_bad_rows: ``fail`` (no output; :class:`BadRowsError` lists the rows) or ``quarantine``.
        quarantine_uri: where quarantined rows go; default :func:`default_quarantine_uri` of the output.
        chunk_rows: rows per chunk; memory use is bounded by this, not by the input's size.
        progress: called with ``(rows_done, total_rows or None)`` after every chunk.

    Raises:
        BadRowsError: rule ``fail`` and some rows are bad.
        InvalidInputError: bad arguments, unreadable input, missing feature or key columns.
        ModelNotFoundError: the model does not exist.
    """
    if on_bad_rows not in BAD_ROW_RULES:
        raise InvalidInputError(
            f"on_bad_rows is {on_bad_rows!r}; use one of {', '.join(BAD_ROW_RULES)}", field="on_bad_rows"
        )
    if chunk_rows < 1:
        raise InvalidInputError(f"chunk_rows must be at least 1, got {chunk_rows}", field="chunk_rows")
    check_output_uri(output_uri)
    if on_bad_rows == "quarantine":
        quarantine_uri = quarantine_uri or default_quarantine_uri(output_uri)
        check_output_uri(quarantine_uri, "quarantine")
    else:
        quarantine_uri = None
    if len({input_uri, output_uri, quarantine_uri} - {None}) < (3 if quarantine_uri else 2):
        raise InvalidInputError("input, output and quarantine must be different files", field="output")

    loaded = load_model(model, settings)
    if settings.serving_compile:  # the predictor's path exactly: compiled where it reproduces the model
        from mlcycle.serving.compiled import compile_loaded

        compile_loaded(loaded)
    endpoint = settings.s3_endpoint_url
    with open_input(input_uri, endpoint_url=endpoint) as table:
        # The predictor's own column check, on the header alone: a missing feature fails before any work.
        check_rows(pd.DataFrame(columns=list(table.columns)), loaded.schema)
        keys = _keys(keys, table.columns, loaded)
        wanted = set(loaded.schema.columns) | set(keys)
        read = [c for c in table.columns if c in wanted]
        return _run(loaded, table, read, keys, output_uri, quarantine_uri, on_bad_rows, chunk_rows,
                    settings, progress)


def _keys(keys: Sequence[str] | None, columns: Sequence[str], loaded: LoadedModel) -> list[str]:
    if keys is None:
        keys = [c for c in columns if c not in loaded.schema.index]
    keys = list(dict.fromkeys(keys))
    missing = [k for k in keys if k not in columns]
    if missing:
        raise InvalidInputError(
            f"key column(s) {', '.join(map(repr, missing))} not in the input (columns: {', '.join(columns)})",
            field="key",
        )
    reserved = set(RESERVED) | {f"proba_{c}" for c in (loaded.classes if loaded.classes is not None else [])}
    clash = [k for k in keys if k in reserved]
    if clash:
        raise InvalidInputError(
            f"key column(s) {', '.join(map(repr, clash))} would clash with output columns; pass --key to "
            "choose the key columns",
            field="key",
        )
    return keys


def _run(loaded, table, read, keys, output_uri, quarantine_uri, on_bad_rows, chunk_rows, settings, progress):
    import mlflow

    from mlcycle.tracking import ensure_experiment

    name = loaded.registered_name or loaded.served_name
    version = loaded.version or ""
    tags = {"mlcycle.team": settings.team, "mlcycle.batch.model": name, "mlcycle.batch.model_version": version}
    experiment_id = ensure_experiment(team_experiment(EXPERIMENT, name), settings)
    run_name = f"batch-{loaded.served_name}-v{version or 'uri'}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params({
            "model_uri": loaded.ref, "model_version": version, "model_resolved_uri": loaded.uri,
            "model_run_id": loaded.run_id or "", "input": table.uri, "output": output_uri,
            "quarantine": quarantine_uri or "", "on_bad_rows": on_bad_rows, "chunk_rows": chunk_rows,
            "keys": ",".join(keys),
        })
        constants = (name, version, run.info.run_id)
        output = StagedParquet(output_uri, endpoint_url=settings.s3_endpoint_url)
        quarantine = StagedParquet(quarantine_uri, endpoint_url=settings.s3_endpoint_url) if quarantine_uri else None
        try:
            counts, seconds, cpu_seconds = _score_chunks(loaded, table, read, keys, on_bad_rows, chunk_rows, constants,
                                            output, quarantine, progress)
            if quarantine is not None:
                quarantine.commit()
            output.commit()
        except BaseException:
            output.discard()
            if quarantine is not None:
                quarantine.discard()
            raise
        result = BatchResult(
            run_id=run.info.run_id, model_name=name, model_version=version, model_uri=loaded.uri,
            input_uri=table.uri, output_uri=output_uri,
            quarantine_uri=quarantine_uri,
            rows_read=counts["read"], rows_scored=counts["scored"], rows_quarantined=counts["quarantined"],
            seconds=seconds, cpu_seconds=cpu_seconds,
        )
        mlflow.log_metrics(result.metrics())
    log.info("scored %d rows of %s with %s (%d quarantined) in %.1fs", result.rows_scored, table.uri,
             loaded.label, result.rows_quarantined, seconds)
    return result


def _score_chunks(loaded, table, read, keys, on_bad_rows, chunk_rows, constants, output, quarantine, progress, *,
                  first_row: int = 0):
    """Score ``table`` chunk by chunk into ``output`` (and ``quarantine``); ``row`` counts from ``first_row``
    (a shard's position in the whole input). Returns the counts, wall and CPU seconds."""
    counts = {"read": 0, "scored": 0, "quarantined": 0}
    bad_rows: list[tuple[int, str]] = []
    bad_count = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    schema = loaded.schema
    numeric = [c for c, t in zip(schema.columns, schema.types, strict=True) if t in NUMERIC_COLUMN_TYPES]
    for chunk in iter_chunks(table, read, chunk_rows, numeric=numeric):
        n = len(chunk)
        offset = first_row + counts["read"]
        x, reasons = _validate(chunk, loaded.schema)
        if x is None:  # a mixed-type chunk with bad rows: decode the good ones on their own
            keep = np.flatnonzero(reasons == "")
            x, _ = frame_to_input(chunk.iloc[keep].reset_index(drop=True), loaded.schema)
            x = _Rows(x, keep, len(chunk))
        bad = reasons != "" if reasons is not None else None
        if bad is not None:
            where = np.flatnonzero(bad)
            if on_bad_rows == "fail":
                bad_count += len(where)
                room = KEPT_BAD_ROWS - len(bad_rows)
                bad_rows += [(offset + int(i), str(reasons[i])) for i in where[:room]]
            else:
                quarantine.write(_quarantine_table(chunk.iloc[where], offset + where, reasons[where]))
                counts["quarantined"] += len(where)
            good = np.flatnonzero(~bad)
            chunk, x, rows = chunk.iloc[good], x[good], offset + good
        else:
            rows = np.arange(offset, offset + n)
        # Once a row failed under the "fail" rule nothing more is scored, but every row is still checked
        # so the error can say how many rows are bad.
        if not bad_count:
            output.write(_output_table(loaded, chunk, x, rows, keys, constants))
            counts["scored"] += len(chunk)
        counts["read"] += n
        if progress is not None:
            progress(counts["read"], table.num_rows)
    if bad_count:
        raise BadRowsError(_bad_rows_message(bad_count, counts["read"], bad_rows, table.uri),
                           rows=bad_rows, count=bad_count)
    # Every file the rule promises exists afterwards, with its columns, even when it has no rows: a
    # downstream step can rely on it, and a stale file from an earlier run is replaced.
    empty = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in read})
    if output.schema is None:
        output.write(_output_table(loaded, empty, None, np.arange(0), keys, constants))
    if quarantine is not None and quarantine.schema is None:
        quarantine.write(_quarantine_table(empty, np.arange(0), np.array([], dtype=object)))
    return counts, time.perf_counter() - started, time.process_time() - cpu_started


NUMERIC_COLUMN_TYPES = frozenset({"integer", "long", "float", "double"})


class _Rows:
    """The decoded good rows of a chunk, indexed by their positions in the chunk (``x[good]``)."""

    def __init__(self, x, positions: np.ndarray, n: int) -> None:
        self.x, self.positions, self.n = x, positions, n

    def __getitem__(self, good: np.ndarray):
        assert np.array_equal(good, self.positions)
        return self.x


def _validate(frame: pd.DataFrame, schema) -> tuple[Any, np.ndarray | None]:
    """The chunk's feature matrix, and every row's reason (``""`` if good) when any row is bad.

    The whole chunk first goes through the predictor's own request validation (:func:`decode_v2`, as a
    v2 tensor request of these rows would); only a chunk it refuses pays for :func:`check_rows`' per-row
    reasons. Both apply the same rules, so a refused chunk always has a bad row; if not, the predictor's
    error is raised rather than scoring rows it would refuse.
    """
    if not schema.is_numeric:
        frame = frame.reset_index(drop=True)
        for c, t in zip(schema.columns, schema.types, strict=True):
            if t == "string" and c in frame.columns and frame[c].dtype.kind != "O":
                # a CSV reader types a column of digits as numbers; the signature says text
                frame[c] = frame[c].map(lambda v: v if v is None or v != v else str(v))
        x, reasons = frame_to_input(frame, schema)
        return x, (reasons.to_numpy() if reasons is not None else None)
    x = frame_to_array(frame, schema)
    if len(x) == 0:
        return x, None
    tensor = next(n for n in ("batch", "batch-rows", "__batch__") if n not in schema.index)
    try:
        decode_v2([V2Input(tensor, x.shape, "FP64", x)], schema, max_rows=len(x))
    except InvalidInputError as e:
        reasons = check_rows(frame, schema).to_numpy()
        if not (reasons != "").any():
            raise
        log.debug("chunk refused (%s); per-row reasons follow", e.message)
        return x, reasons
    return x, None


def _output_table(loaded: LoadedModel, frame: pd.DataFrame, x: np.ndarray | None, rows: np.ndarray, keys,
                  constants):
    import pyarrow as pa

    n = len(frame)
    outputs = None
    if n:
        prediction = predict(loaded, x)
        predictions, probabilities, outputs = prediction.predictions, prediction.probabilities, prediction.columns
    else:
        dtype = loaded.classes.dtype if loaded.classes is not None else np.float64
        predictions = np.empty(0, dtype=dtype)
        probabilities = np.empty((0, len(loaded.classes))) if loaded.classes is not None else None
        if loaded.output_columns:
            outputs = {o["name"]: np.empty(0, dtype=_EMPTY_DTYPES.get(o["datatype"], object))
                       for o in loaded.output_columns}
    columns = {k: pa.array(frame[k], from_pandas=True) for k in keys}
    columns["row"] = pa.array(np.asarray(rows, dtype=np.int64))
    if outputs is not None:  # a DataFrame/dict output: one prediction_<column> per output column
        for name_, values in outputs.items():
            columns[f"prediction_{name_}"] = pa.array(_list_if_2d(values), type=pa.string() if
                                                      values.dtype == object and not len(values) else None)
    else:
        columns["prediction"] = pa.array(_list_if_2d(predictions))
    if probabilities is not None:
        for j, cls in enumerate(loaded.classes):
            columns[f"proba_{_plain(cls)}"] = pa.array(np.ascontiguousarray(probabilities[:, j]))
    repeat = np.zeros(n, dtype=np.int64)
    for column, value in zip(("model_name", "model_version", "run_id"), constants, strict=True):
        columns[column] = pa.array([value], type=pa.string()).take(repeat)
    return pa.table(columns)


_EMPTY_DTYPES = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "BOOL": bool}


def _list_if_2d(values: np.ndarray):
    return list(values) if values.ndim > 1 else values


def _quarantine_table(frame: pd.DataFrame, rows: np.ndarray, reasons: np.ndarray):
    import pyarrow as pa

    # Bad rows keep their input values as text: what made them bad (a word in a number column, say) must
    # survive, and their types vary from chunk to chunk.
    columns = {c: pa.array(frame[c].astype("string"), type=pa.string(), from_pandas=True) for c in frame.columns}
    columns["row"] = pa.array(np.asarray(rows, dtype=np.int64))
    columns["reason"] = pa.array(list(reasons), type=pa.string())
    return pa.table(columns)


def _bad_rows_message(count: int, read: int, rows: list[tuple[int, str]], uri: str) -> str:
    listed = "; ".join(f"row {r}: {reason}" for r, reason in rows[:LISTED_BAD_ROWS])
    more = f" (and {count - LISTED_BAD_ROWS} more)" if count > LISTED_BAD_ROWS else ""
    return (
        f"{count} of {read} rows of {uri} cannot be scored, so nothing was written (rows count from 0, "
        f"header excluded): {listed}{more}. Fix them, or pass --on-bad-rows quarantine to score the rest"
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
