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
import io
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
    path: Path | None
    kind: str
    columns: tuple[str, ...]
    num_rows: int | None
    pieces: tuple[Piece, ...] = ()
    endpoint_url: str | None = None


@dataclass(frozen=True)
class Piece:
    """Part of one input file that a shard reads: Parquet row groups, or a CSV byte range.

    Attributes:
        uri: the file (local path or ``s3://`` URI).
        row_groups: Parquet row-group indices, in order.
        byte_range: CSV ``[start, end)``: the shard reads the lines that *start* in this range (a line
            crossing ``end`` is read whole; one starting before ``start`` belongs to the shard before).
            The header line is read from the top of the file for every shard.
    """

    uri: str
    row_groups: tuple[int, ...] | None = None
    byte_range: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.row_groups is not None:
            groups = self.row_groups
            span = f"{groups[0]}-{groups[-1]}" if len(groups) > 1 else f"{groups[0]}" if groups else "none"
            return f"{self.uri} row groups {span}"
        if self.byte_range is not None:
            return f"{self.uri} bytes {self.byte_range[0]}-{self.byte_range[1]}"
        return self.uri


@contextlib.contextmanager
def open_pieces(pieces: Sequence[Piece], *, endpoint_url: str | None = None) -> Iterator[InputTable]:
    """Open a shard's pieces (all one format, one set of columns) for :func:`iter_chunks`.

    Nothing is downloaded: an ``s3://`` piece is read with ranged GETs (a Parquet footer and the shard's row
    groups, or a CSV's header and the shard's byte range), so a shard's I/O follows its own size.

    Raises:
        InvalidInputError: no pieces, mixed formats, a missing file or object, or a file that does not parse.
    """
    if not pieces:
        raise InvalidInputError("a shard has no input pieces", field="input")
    kinds = {table_format(p.uri) for p in pieces}
    if len(kinds) != 1:
        raise InvalidInputError(f"a shard mixes formats {sorted(kinds)}", field="input")
    kind = kinds.pop()
    first = pieces[0]
    try:
        with open_binary(first.uri, endpoint_url) as fh:
            if kind == "parquet":
                import pyarrow.parquet as pq

                columns = tuple(pq.ParquetFile(fh).schema_arrow.names)
            else:
                columns = tuple(str(c) for c in pd.read_csv(io.BytesIO(read_header(fh)), nrows=0).columns)
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"cannot read {first.uri}: {e}", field="input") from e
    label = first.describe() if len(pieces) == 1 else f"{first.describe()} and {len(pieces) - 1} more"
    yield InputTable(uri=label, path=None, kind=kind, columns=columns, num_rows=None, pieces=tuple(pieces),
                     endpoint_url=endpoint_url)


class _S3Object(io.RawIOBase):
    """A seekable, read-only view of one S3 object, each read a ranged GET (wrapped in a buffer)."""

    def __init__(self, client, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        end = min(self._pos + len(buffer), self._size) - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")
        data = body["Body"].read()
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def object_size(uri: str, endpoint_url: str | None = None) -> int:
    """The size in bytes of a local file or an ``s3://`` object.

    Raises:
        InvalidInputError: no such file or object.
    """
    if not is_s3(uri):
        path = Path(uri)
        if not path.is_file():
            raise InvalidInputError(f"no such file: {uri}", field="input")
        return path.stat().st_size
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        return int(s3_client(endpoint_url).head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NoSuchBucket"):
            raise InvalidInputError(f"no such object: {uri}", field="input") from e
        raise


@contextlib.contextmanager
def open_binary(uri: str, endpoint_url: str | None = None, *, buffer_size: int = 8 << 20) -> Iterator:
    """A seekable binary file: a local file, or an ``s3://`` object read by ranged GETs."""
    size = object_size(uri, endpoint_url)
    if is_s3(uri):
        bucket, key = split_s3(uri)
        fh = io.BufferedReader(_S3Object(s3_client(endpoint_url), bucket, key, size), buffer_size=buffer_size)
    else:
        fh = open(uri, "rb")  # noqa: SIM115 (closed below)
    try:
        yield fh
    finally:
        fh.close()


def read_header(fh) -> bytes:
    """A CSV's first line, newline included (the whole file if it has no newline)."""
    fh.seek(0)
    return fh.readline()


def line_start(fh, pos: int, header_end: int, size: int) -> int:
    """The first position ``>= pos`` where a CSV line starts (``size`` if none does).

    A line starts right after the header or right after a newline; so a shard boundary at ``pos`` gives
    the line that crosses it to the shard before, and both shards agree on it without talking.
    (Newlines inside quoted fields are not told apart: sharded CSV needs one record per line.)
    """
    if pos <= header_end:
        return header_end
    if pos >= size:
        return size
    fh.seek(pos - 1)
    at = pos - 1
    while block := fh.read(1 << 16):
        found = block.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(block)
    return size


class _CsvRange(io.RawIOBase):
    """The header line, then the lines starting in ``[start, end)`` of a CSV file: a CSV of its own."""

    def __init__(self, fh, start: int, end: int) -> None:
        size = fh.seek(0, io.SEEK_END)
        header = read_header(fh)
        header_end = len(header)
        if not header.endswith(b"\n"):
            header += b"\n"
        self._fh = fh
        self._head = header
        self._pos = line_start(fh, start, header_end, size)
        self._end = max(self._pos, line_start(fh, end, header_end, size))
        fh.seek(self._pos)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        want = min(len(buffer), self._end - self._pos)
        if want <= 0:
            return 0
        data = self._fh.read(want)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


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
    if table.pieces:
        for piece in table.pieces:
            yield from _read_piece(table, piece, columns, chunk_rows, numeric)
        return
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


def _read_piece(table: InputTable, piece: Piece, columns: Sequence[str], chunk_rows: int,
                numeric: Sequence[str]) -> Iterator[pd.DataFrame]:
    try:
        with open_binary(piece.uri, table.endpoint_url) as fh:
            if table.kind == "parquet":
                import pyarrow.parquet as pq

                f = pq.ParquetFile(fh)
                names = tuple(f.schema_arrow.names)
                if names != table.columns:
                    raise InvalidInputError(
                        f"{piece.uri} has columns {', '.join(names)}; the shard's first file has "
                        f"{', '.join(table.columns)}", field="input")
                groups = list(piece.row_groups) if piece.row_groups is not None else None
                if groups == []:
                    return
                for batch in f.iter_batches(batch_size=chunk_rows, columns=list(columns), row_groups=groups):
                    yield batch.to_pandas()
            else:
                start, end = piece.byte_range if piece.byte_range is not None else (0, fh.seek(0, io.SEEK_END))
                stream = io.BufferedReader(_CsvRange(fh, start, end), buffer_size=1 << 20)
                yield from _csv_chunks(stream, columns, chunk_rows, set(numeric) & set(columns))
    except InvalidInputError:
        raise
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"cannot read {piece.describe()}: {e}", field="input") from e


def _csv_chunks(path, columns: Sequence[str], chunk_rows: int, numeric: set[str]) -> Iterator[pd.DataFrame]:
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

    def checksum(self) -> str:
        """Finish the file and return its SHA-256 (hex); :meth:`commit` then moves these very bytes."""
        import hashlib

        self._close()
        digest = hashlib.sha256()
        with open(self.staging, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

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
