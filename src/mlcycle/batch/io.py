"""Streaming tables in and out of a batch job: chunked reads, and Parquet written to a staging file.

Inputs are CSV (pyarrow's streaming CSV reader, numbers parsed exactly) or Parquet
(``pyarrow.parquet.ParquetFile.iter_batches``; memory follows the chunk size and the file's row-group
size), from a local path or an ``s3://`` URI. An ``s3://`` object is first copied to a local temporary file by
boto3 (streamed to disk with the endpoint from settings, MinIO on a cluster), so memory stays bounded by
the chunk size whatever the file's size.

Outputs are Parquet written one chunk at a time (``pyarrow.parquet.ParquetWriter``) to a staging file
next to the destination; :meth:`StagedParquet.commit` renames it into place (or uploads it, for
``s3://``) only when the whole job succeeded, so a failed job leaves no partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcycle.data.io import is_s3, s3_client, split_s3, table_format
from mlcycle.errors import InvalidInputError


@dataclass(frozen=True)
class InputTable:
    """An input table opened for chunked reading.

    Attributes:
        uri: what the caller named (path or ``s3://`` URI).
        path: the local file read (a temporary copy for ``s3://``).
        kind: ``csv`` or ``parquet``.
        columns: the table's column names, in file order.
        num_rows: the row count when the format records it (Parquet), else ``None``.
    """

    uri: str
    path: Path
    kind: str
    columns: tuple[str, ...]
    num_rows: int | None


@contextlib.contextmanager
def open_input(uri: str, *, endpoint_url: str | None = None) -> Iterator[InputTable]:
    """Open a CSV or Parquet table (local or ``s3://``) for :func:`iter_chunks`.

    Raises:
        InvalidInputError: unknown format, missing file or object, or a file that does not parse.
    """
    kind = table_format(uri)
    tmp_dir = None
    try:
        if is_s3(uri):
            tmp_dir = Path(tempfile.mkdtemp(prefix="mlcycle-batch-in-"))
            path = tmp_dir / Path(split_s3(uri)[1]).name
            _download(uri, path, endpoint_url)
        else:
            path = Path(uri)
            if not path.is_file():
                raise InvalidInputError(f"no such file: {uri}", field="input")
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                meta = pq.ParquetFile(path)
                columns, num_rows = tuple(meta.schema_arrow.names), meta.metadata.num_rows
            else:
                columns, num_rows = tuple(str(c) for c in pd.read_csv(path, nrows=0).columns), None
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise InvalidInputError(f"cannot read {uri}: {e}", field="input") from e
        yield InputTable(uri=uri, path=path, kind=kind, columns=columns, num_rows=num_rows)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _download(uri: str, path: Path, endpoint_url: str | None) -> None:
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        s3_client(endpoint_url).download_file(bucket, key, str(path))
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise InvalidInputError(f"no such object: {uri}", field="input") from e
        raise


def iter_chunks(table: InputTable, columns: Sequence[str], chunk_rows: int, *,
                numeric: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
    """The table's ``columns`` as DataFrames of at most ``chunk_rows`` rows, each indexed from 0.

    ``numeric`` columns of a CSV are parsed exactly (correctly rounded, as Python's ``float`` parses the
    same text): a row must reach the model with the bits an online client would send. A value that is
    not a number stays text, for the caller's row checks to name. The next chunk is read on a background
    thread while the caller works on this one (one chunk ahead, so memory stays bounded).

    Raises:
        InvalidInputError: the file stops parsing part-way (the message names the file).
    """
    chunks = _read_chunks(table, columns, chunk_rows, numeric)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcycle-batch-read") as pool:
        ahead = pool.submit(next, chunks, None)
        try:
            while (chunk := ahead.result()) is not None:
                ahead = pool.submit(next, chunks, None)
                yield chunk
        finally:
            ahead.cancel()
            with contextlib.suppress(Exception):
                ahead.result()
            chunks.close()


def _read_chunks(table: InputTable, columns: Sequence[str], chunk_rows: int,
                 numeric: Sequence[str]) -> Iterator[pd.DataFrame]:
    try:
        if table.kind == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(table.path) as f:
                for batch in f.iter_batches(batch_size=chunk_rows, columns=list(columns)):
                    yield batch.to_pandas()
        else:
            yield from _csv_chunks(table.path, columns, chunk_rows, set(numeric) & set(columns))
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"cannot read {table.uri}: {e}", field="input") from e


def _csv_chunks(path: Path, columns: Sequence[str], chunk_rows: int, numeric: set[str]) -> Iterator[pd.DataFrame]:
    """CSV through pyarrow's streaming reader, re-cut into ``chunk_rows``-row frames.

    Numeric columns are read as text and cast with Arrow (correctly rounded; pandas' fast float parser
    can be a unit in the last place off, its exact one is five times slower). A chunk whose column does
    not cast (a word among numbers) converts that column value by value instead: numbers as floats,
    the rest left as text. Empty fields are missing values, as in pandas.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.string() for c in numeric},
                                  strings_can_be_null=True)
    pending: list = []
    rows = 0
    with pcsv.open_csv(path, convert_options=convert) as reader:
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            while rows >= chunk_rows:
                joined = pa.Table.from_batches(pending)
                yield _csv_frame(joined.slice(0, chunk_rows), numeric)
                rest = joined.slice(chunk_rows)
                pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield _csv_frame(pa.Table.from_batches(pending), numeric)


def _csv_frame(table, numeric: set[str]) -> pd.DataFrame:
    import pyarrow as pa

    texts = {}
    columns = []
    for name in table.column_names:
        column = table.column(name)
        if name in numeric:
            try:
                column = column.cast(pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                texts[name] = pd.Series([_number_or_text(v) for v in column.to_pylist()], dtype=object)
        columns.append(column)
    frame = pa.Table.from_arrays(columns, names=table.column_names).to_pandas()
    for name, values in texts.items():
        frame[name] = values
    return frame


def _number_or_text(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def check_output_uri(uri: str, what: str = "output") -> None:
    """Outputs are Parquet: ``.parquet`` or ``.pq`` (local path or ``s3://``)."""
    if table_format(uri) != "parquet":
        raise InvalidInputError(f"{what} {uri!r} must be a .parquet file", field=what)
    if is_s3(uri):
        split_s3(uri)


class StagedParquet:
    """A Parquet file written chunk by chunk to a staging file; in place only after :meth:`commit`.

    The first table written fixes the file's schema; later tables are cast to it (a CSV column that is
    empty in one chunk and filled in the next still lands in one column type).
    """

    def __init__(self, uri: str, *, endpoint_url: str | None = None) -> None:
        self.uri = uri
        self._endpoint_url = endpoint_url
        self._tmp_dir: Path | None = None
        if is_s3(uri):
            self._tmp_dir = Path(tempfile.mkdtemp(prefix="mlcycle-batch-out-"))
            self.staging = self._tmp_dir / "part.parquet"
        else:
            dest = Path(uri)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.staging = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        self._writer = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self.schema = None
        self.rows = 0

    def write(self, table) -> None:  # table: pyarrow.Table
        """Queue ``table`` for writing; it is encoded and written on a background thread (pyarrow
        releases the GIL) while the caller predicts the next chunk. At most one table waits, so memory
        stays bounded; a write error surfaces on the next call."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
            self.schema = pa.schema(fields)
            self._writer = pq.ParquetWriter(self.staging, self.schema)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlcycle-batch-write")
        if table.schema != self.schema:
            table = self._cast(table)
        self._wait()
        self._pending = self._pool.submit(self._writer.write_table, table)
        self.rows += table.num_rows

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _cast(self, table):
        import pyarrow as pa

        columns = []
        for f in self.schema:
            column = table.column(f.name)
            try:
                columns.append(column.cast(f.type) if column.type != f.type else column)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise InvalidInputError(
                    f"column {f.name!r} changes type within the input ({f.type} earlier, {column.type} "
                    f"later) and cannot be written as one Parquet column: {e}",
                    field=f.name,
                ) from e
        return pa.Table.from_arrays(columns, schema=self.schema)

    def commit(self) -> None:
        """Finish the file and move it into place (upload it, for ``s3://``)."""
        self._close()
        try:
            if self._tmp_dir is not None:
                bucket, key = split_s3(self.uri)
                s3_client(self._endpoint_url).upload_file(str(self.staging), bucket, key)
            else:
                os.replace(self.staging, self.uri)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the staging file: nothing appears at the destination."""
        with contextlib.suppress(Exception):  # a failed write is why we are discarding; it was raised
            self._close()
        self.staging.unlink(missing_ok=True)
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)

    def _close(self) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None
