"""Payload logging: what the predictor was asked and what it answered, as rolling Parquet files.

Layout and columns are the contract in docs/contracts.md ("Payload logs")::

    <destination>/<base_name>/part-<utc-timestamp>-<pid>-<seq>.parquet

with one row per predicted row: ``request_id``, ``row``, ``timestamp`` (UTC), ``model_name``,
``model_version``, ``protocol``, the signature's input columns, ``prediction`` and, for classifiers,
``proba_<class>``. ``destination`` is a local directory (``MLCYCLE_HOME/payloads``) or an
``s3://bucket/prefix`` (MinIO on a cluster; endpoint from ``MLCYCLE_S3_ENDPOINT_URL``).

:class:`PayloadLogger` never blocks or fails a request: :meth:`PayloadLogger.log` only copies the
request's rows into a queue bounded in rows, and a background thread turns the queue into Parquet files
every ``flush_rows`` rows or ``flush_seconds`` seconds — itself (``writer="thread"``) or, as the predictor
does by default, by handing each batch to a writer process of its own (``writer="process"``), so that
building and writing files never holds the serving process's GIL. A write that fails is
retried (tenacity, exponential backoff, ``write_attempts`` in all) before its rows are dropped and
counted (:attr:`PayloadLogger.dropped`, ``on_drop``); the logger recovers by itself when storage is
writable again. :func:`read_payloads` reads the files back for monitoring and delayed-label joins.

Durability: every file is complete when it appears (a local file is renamed into place, an S3 object
is one PUT), so a row is either in the store or still in memory. :meth:`PayloadLogger.close` (called
when a server process stops, every REST worker included) writes everything queued; a process killed
with SIGKILL loses at most the rows of its last ``flush_seconds`` (the predictor's default is 0.5 s).
The queue is written straight to the store rather than to a local spool replayed at the next start:
on Kubernetes a pod's local disk (``emptyDir``) is deleted with the pod, so a spool would only help a
restart in place, and a crash between a replayed write and the spool's deletion would write rows twice.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.registry.uris import split_name
from mlcycle.serving.schema import Columns

log = logging.getLogger(__name__)

FILE_PREFIX = "part-"
FILE_SUFFIX = ".parquet"
_TS_FORMAT = "%Y%m%dT%H%M%S%fZ"
META_COLUMNS = ("request_id", "row", "timestamp", "model_name", "model_version", "protocol")
PROTOCOLS = ("v1", "v2-rest", "v2-grpc")
WRITERS = ("thread", "process")

DropCallback = Callable[..., None]


# While a writer thread builds and writes a file, the interpreter switches threads every 0.5 ms instead of
# every 5 ms (CPython's default): the event loop waiting for the GIL then waits for at most that, or for
# the longest single C call of the writer, not for the whole Python part of a flush (measured here with a
# thread that wakes every 0.1 ms: its longest wait during a 2,000-request flush fell from ~4-6 ms to ~1.5 ms).
WRITER_SWITCH_INTERVAL_S = 0.0005
_switch_lock = threading.Lock()
_writers_active = 0
_switch_interval_before = 0.0


@contextlib.contextmanager
def _short_switch_interval():
    global _writers_active, _switch_interval_before
    with _switch_lock:
        if _writers_active == 0:
            _switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(WRITER_SWITCH_INTERVAL_S, _switch_interval_before))
        _writers_active += 1
    try:
        yield
    finally:
        with _switch_lock:
            _writers_active -= 1
            if _writers_active == 0:
                sys.setswitchinterval(_switch_interval_before)


class _Rows:
    """A growing array of rows (doubling): the request path copies each request's rows in, so the writer
    hands Arrow a few whole arrays and frees a few large blocks — not one small array per request, which
    cost the writer (holding the GIL) time in proportion to the traffic."""

    __slots__ = ("data", "n")

    def __init__(self, first: np.ndarray) -> None:
        self.data = np.empty((max(256, len(first)), *first.shape[1:]), dtype=first.dtype)
        self.n = 0

    def append(self, rows: np.ndarray) -> None:
        n, end = self.n, self.n + len(rows)
        if end > len(self.data):
            grown = np.empty((max(2 * len(self.data), end), *self.data.shape[1:]), dtype=self.data.dtype)
            grown[:n] = self.data[:n]
            self.data = grown
        self.data[n:end] = rows
        self.n = end

    def values(self) -> np.ndarray:
        return self.data[: self.n]

    def __reduce__(self):  # to a writer process: the rows only, not the spare room of the doubling
        return _rows_of, (self.values(),)


def _rows_of(values: np.ndarray) -> _Rows:
    rows = _Rows.__new__(_Rows)
    rows.data, rows.n = values, len(values)
    return rows


class _Group:
    """The queued requests of one model version, protocol, set of column/class names and array types, held
    column by column: :meth:`PayloadLogger.log` appends each request's rows to the group's arrays (and its
    id and time to two lists), and the writer turns each into a column with one call."""

    __slots__ = (
        "model_name",
        "model_version",
        "protocol",
        "columns",
        "classes",
        "frames",
        "request_ids",
        "timestamps",
        "counts",
        "inputs",
        "predictions",
        "probabilities",
    )

    def __init__(
        self,
        model_name: str,
        model_version: str,
        protocol: str,
        columns: Any,
        classes: Any,
        inputs: pd.DataFrame | Columns | np.ndarray,
        predictions: np.ndarray,
        probabilities: np.ndarray | None,
    ) -> None:
        self.model_name, self.model_version, self.protocol = model_name, model_version, protocol
        self.columns, self.classes = columns, classes  # raw names: made strings when written
        self.frames = isinstance(inputs, pd.DataFrame | Columns)
        self.request_ids: list[str] = []
        self.timestamps: list[int] = []
        self.counts: list[int] = []
        # DataFrames (typed columns) are kept as they are; arrays are copied into one growing array.
        self.inputs: list[pd.DataFrame] | _Rows = [] if self.frames else _Rows(inputs)
        self.predictions = _Rows(predictions)
        self.probabilities = None if probabilities is None else _Rows(probabilities)

    def add(
        self,
        request_id: str,
        timestamp_ns: int,
        rows: int,
        inputs: Any,
        predictions: np.ndarray,
        probabilities: np.ndarray | None,
    ) -> None:
        self.request_ids.append(request_id)
        self.timestamps.append(timestamp_ns)
        self.counts.append(rows)
        self.inputs.append(inputs)
        self.predictions.append(predictions)
        if self.probabilities is not None:
            self.probabilities.append(probabilities)


class PayloadLogger:
    """Appends predictions to rolling Parquet files from a background thread.

    Args:
        destination: the payloads root: a local directory or ``s3://bucket/prefix``.
        max_queued_rows: rows held in memory at most; beyond that :meth:`log` drops and counts.
        flush_rows: write as soon as this many rows are queued.
        flush_seconds: write at least this often while rows are queued.
        on_drop: called as ``on_drop(n)`` — or ``on_drop(n, model_name)`` if it takes two arguments —
            whenever ``n`` rows are dropped (e.g. ``ServingMetrics.payload_dropped``). Called from the
            caller's thread (queue full) or the writer thread (storage failure); it must not raise.
        s3_endpoint_url: endpoint for an ``s3://`` destination; default: ``MLCYCLE_S3_ENDPOINT_URL``.
        write_attempts: tries per file before its rows count as dropped (exponential backoff from
            ``retry_wait_s``, at most 2 s between tries).
        writer: ``"thread"``: the background thread builds and writes the files itself (holding this
            process's GIL for about 1.5 ms per 2,700-row file); ``"process"``: the thread hands each batch
            to a writer process of its own (started with the thread, one per serving process) that builds
            and writes the files, so the serving process spends only a pickle and a pipe write on it.
    """

    def __init__(
        self,
        destination: str | Path,
        *,
        max_queued_rows: int = 100_000,
        flush_rows: int = 5_000,
        flush_seconds: float = 1.0,
        on_drop: DropCallback | None = None,
        s3_endpoint_url: str | None = None,
        write_attempts: int = 3,
        retry_wait_s: float = 0.1,
        writer: str = "thread",
    ) -> None:
        if max_queued_rows < 1 or flush_rows < 1 or flush_seconds <= 0 or write_attempts < 1:
            raise ValueError("max_queued_rows, flush_rows and write_attempts must be >= 1 and flush_seconds > 0")
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {', '.join(WRITERS)}, not {writer!r}")
        self.writer = writer
        self.write_attempts = write_attempts
        self.retry_wait_s = retry_wait_s
        self._store = _store_for(destination, s3_endpoint_url)
        self.destination = str(destination)
        self._files = _FileWriter(self._store, self.destination, write_attempts, retry_wait_s)
        # What a writer process needs to write as this logger would (the S3 endpoint as resolved here).
        self._config = {
            "destination": self.destination,
            "s3_endpoint_url": getattr(self._store, "endpoint_url", None),
            "write_attempts": write_attempts,
            "retry_wait_s": retry_wait_s,
        }
        self.max_queued_rows = max_queued_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._on_drop = on_drop
        self._on_drop_takes_model = _takes_two_args(on_drop)
        self.dropped = 0
        self.written = 0
        self.files_written = 0
        self._init_state()
        # Imported now, at server start, not by the first flush while requests are being served (it takes
        # tens of milliseconds with the GIL held).
        import pyarrow.parquet  # noqa: F401

    def _init_state(self) -> None:
        inherited = getattr(self, "_process", None)
        if inherited is not None:  # forked: the writer process is the parent's; let go of its pipes here
            inherited.release()
        self._process: _WriterProcess | None = None
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._queue: dict[tuple, _Group] = {}
        self._queued_rows = 0
        self._flush_wanted = 0  # generation counters: flush() waits until written >= wanted
        self._flush_done = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the hot path -----------------------------------------------------------------------------

    def log(
        self,
        *,
        model_name: str,
        model_version: str,
        protocol: str,
        request_id: str,
        inputs: pd.DataFrame | Columns | np.ndarray,
        predictions: Any,
        probabilities: Any = None,
        classes: Sequence[Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> bool:
        """Queue one request's rows; True if queued, False if dropped (queue full or logger closed).

        ``inputs`` is a DataFrame, a decoded request's :class:`~mlcycle.serving.schema.Columns`, or a 2-D
        array in signature order with its names in ``columns`` (cheaper on the request path: the columns
        are only split out in the writer thread).

        The logger keeps references to ``inputs``, ``predictions`` and ``probabilities`` until they
        are written: the caller must not modify them afterwards. Never blocks on I/O, never raises
        for storage problems.
        """
        rows = len(inputs)
        frames = isinstance(inputs, pd.DataFrame | Columns)
        if frames:
            columns = inputs.columns
        else:  # a 2-D array in signature order: no DataFrame to build on the request path
            shape = getattr(inputs, "shape", None)
            if columns is None or shape is None or len(shape) != 2 or shape[1] != len(columns):
                raise ValueError("an array of inputs needs 2 dimensions and one name per column in columns=")
        if rows == 0:
            return True
        if os.getpid() != self._pid:  # forked into a worker: the writer thread did not come along
            self._init_state()
        preds = predictions if type(predictions) is np.ndarray else np.asarray(predictions)
        if preds.ndim == 2 and preds.shape[1] == 1:
            preds = preds[:, 0]
        elif preds.ndim != 2:  # [N, k]: one list of k values per row (a model answering several per row)
            preds = preds.reshape(-1)
        proba = None
        if probabilities is not None:
            proba = probabilities if type(probabilities) is np.ndarray else np.asarray(probabilities, dtype=float)
            if proba.ndim != 2:
                proba = proba.reshape(rows, -1)
        else:
            classes = None
        if len(preds) != rows or (proba is not None and len(proba) != rows):
            raise ValueError(f"{rows} rows of inputs need one prediction (and one row of probabilities) each")
        # Column names: a DataFrame's own (new objects per request, so keyed by value), else the caller's
        # list, usually the same object for every request of a version (keyed by identity: no hashing of
        # names on the request path; the writer merges groups whose names are equal). Array types are part
        # of the key: a group's arrays hold one type.
        names = tuple(columns) if frames else columns
        key = (
            model_name,
            model_version,
            protocol,
            names if frames else id(columns),
            id(classes),
            None if frames else inputs.dtype,
            preds.dtype,
            None if proba is None else (proba.dtype, proba.shape[1:]),
        )
        timestamp_ns = time.time_ns()
        with self._cond:
            if self._closed or self._queued_rows + rows > self.max_queued_rows:
                accepted = False
            else:
                group = self._queue.get(key)
                if group is None:
                    group = self._queue[key] = _Group(
                        model_name, str(model_version), protocol, names, classes, inputs, preds, proba
                    )
                group.add(str(request_id), timestamp_ns, rows, inputs, preds, proba)
                self._queued_rows += rows
                accepted = True
                if self._thread is None:
                    self._start()
                if self._queued_rows >= self.flush_rows:
                    self._cond.notify_all()
        if not accepted:
            self._drop(rows, model_name)
        return accepted

    # -- control ----------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 60.0) -> None:
        """Block until everything queued before this call is written (or dropped)."""
        with self._cond:
            if self._thread is None:
                return
            self._flush_wanted += 1
            wanted = self._flush_wanted
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._flush_done >= wanted, timeout=timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Write what is queued, stop the writer thread; later :meth:`log` calls drop. Idempotent."""
        self.flush(timeout=timeout)
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)

    def start(self) -> None:
        """Start the writer now (the thread, and its writer process) instead of with the first request.

        A writer process imports for a second or more (several on a loaded machine); started by the first
        request, the rows queued meanwhile wait in this process, where a SIGKILL loses them. Each
        serving process calls this as it starts serving (not a parent that only hands models over).
        """
        if os.getpid() != self._pid:  # forked into a worker: the writer thread did not come along
            self._init_state()
        with self._cond:
            if self._thread is None and not self._closed:
                self._start()

    @property
    def queued(self) -> int:
        """Rows waiting to be written."""
        return self._queued_rows

    # -- the writer thread ------------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mlcycle-payload-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.writer == "process":  # started here, not on the request path; it imports while rows queue
            try:
                self._process = _WriterProcess(self._config)
            except Exception as e:  # noqa: BLE001 - no writer process: this thread writes, as writer="thread"
                log.warning("payload log: cannot start a writer process (%s); writing from a thread", e)
        deadline = time.monotonic() + self.flush_seconds
        while True:
            with self._cond:
                while not (
                    self._closed
                    or self._queued_rows >= self.flush_rows
                    or self._flush_wanted > self._flush_done
                    or (self._queue and time.monotonic() >= deadline)
                ):
                    wait = deadline - time.monotonic() if self._queue else self.flush_seconds
                    self._cond.wait(timeout=max(wait, 0.001))
                batch, self._queue, self._queued_rows = list(self._queue.values()), {}, 0
                wanted = self._flush_wanted
                closing = self._closed
            if batch:
                self._write(batch)
            deadline = time.monotonic() + self.flush_seconds
            with self._cond:
                self._flush_done = max(self._flush_done, wanted)
                self._cond.notify_all()
                if closing and not self._queue:
                    self._thread = None
                    process, self._process = self._process, None
                    break
        if process is not None:
            process.stop(timeout=self.flush_seconds + 30.0)

    def _write(self, batch: list[_Group]) -> None:
        result = None
        if self._process is not None:
            try:
                result = self._process.write(batch)
            except Exception as e:  # noqa: BLE001 - e.g. an input that cannot be pickled: written here instead
                log.warning("payload log: cannot hand a batch to the writer process (%s); writing it here", e)
        if result is None:
            with _short_switch_interval():
                result = self._files.write(batch)
        written, files, drops = result
        self.written += written
        self.files_written += files
        for rows, model_name in drops:
            self._drop(rows, model_name)

    def _drop(self, rows: int, model_name: str) -> None:
        self.dropped += rows
        if self._on_drop is None:
            return
        try:
            if self._on_drop_takes_model:
                self._on_drop(rows, model_name)
            else:
                self._on_drop(rows)
        except Exception:  # noqa: BLE001 - a metrics hiccup must not break logging
            log.exception("payload log: on_drop callback failed")


def _takes_two_args(fn: DropCallback | None) -> bool:
    if fn is None:
        return False
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class _FileWriter:
    """Turns a batch of groups into files in the store: one file per model, column and class names, each
    tried ``write_attempts`` times. Used by the writer thread itself or inside a writer process."""

    def __init__(self, store, destination: str, write_attempts: int, retry_wait_s: float) -> None:
        self.store, self.destination = store, destination
        self.write_attempts, self.retry_wait_s = write_attempts, retry_wait_s
        self._seq = itertools.count()
        self._failing = False

    def write(self, batch: list[_Group]) -> tuple[int, int, list[tuple[int, str]]]:
        """Rows written, files written, and ``(rows, model_name)`` per file whose rows were dropped."""
        # Groups differing only by version or protocol share a file. Groups hold their names alive for the
        # whole batch, so id() is a safe memo.
        names: dict[int, tuple[str, ...] | None] = {id(None): None}
        files: dict[tuple, list[_Group]] = {}
        for group in batch:
            for obj in (group.columns, group.classes):
                if id(obj) not in names:
                    names[id(obj)] = tuple(str(c) for c in obj)
            key = (split_name(group.model_name)[1], names[id(group.columns)], names[id(group.classes)])
            files.setdefault(key, []).append(group)
        written, written_files, drops = 0, 0, []
        for (base_name, columns, classes), groups in files.items():
            rows = sum(sum(g.counts) for g in groups)
            try:
                table = _to_table(groups, columns, classes)
                name = (
                    f"{FILE_PREFIX}{datetime.now(UTC).strftime(_TS_FORMAT)}-{os.getpid()}-"
                    f"{next(self._seq):06d}{FILE_SUFFIX}"
                )
                self._write_with_retries(base_name, name, table)
            except Exception as e:  # noqa: BLE001 - storage of any kind failing must not stop serving
                if not self._failing:
                    log.warning(
                        "payload log: cannot write to %s (%s); dropping rows until it recovers",
                        self.destination,
                        e,
                    )
                self._failing = True
                drops.append((rows, groups[0].model_name))
                continue
            if self._failing:
                log.warning("payload log: writing to %s again", self.destination)
                self._failing = False
            written += rows
            written_files += 1
        return written, written_files, drops

    def _write_with_retries(self, base_name: str, name: str, table) -> None:
        from tenacity import Retrying, stop_after_attempt, wait_exponential

        for attempt in Retrying(
            stop=stop_after_attempt(self.write_attempts),
            wait=wait_exponential(multiplier=self.retry_wait_s, max=2.0),
            reraise=True,
        ):
            with attempt:
                self.store.write(base_name, name, table)


# -- the writer process -------------------------------------------------------------------------
#
# Why a process: building an Arrow table and a Parquet file holds the GIL (about 1.5 ms per 2,700-row
# file, measured here), and every request arriving meanwhile waits for it — the p99 cost of logging at 32
# connections. The serving process now only pickles a batch (protocol 5: the row arrays go out of band,
# no copy) and writes it to a pipe (the GIL is released during the write); the writer process does the
# rest. It ignores SIGINT and SIGTERM and stops at the end of its input: when its serving process stops
# or is killed, it still writes every batch it has received completely, then exits — so a SIGKILL of a
# serving process loses no more than its queue (at most ``flush_seconds`` of rows), as with the thread.


class _WriterProcess:
    """The serving-process end of one writer process (used only from the logger's writer thread)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._proc: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])  # the mlcycle this process runs
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(  # noqa: S603 (argv fixed: this interpreter, this module)
                [
                    sys.executable,
                    "-c",
                    "from mlcycle.serving.payload_log import writer_main; writer_main()",
                    str(to_child_r),
                    str(from_child_w),
                ],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        self._out.send_bytes(pickle.dumps(self._config))

    def write(self, batch: list[_Group]) -> tuple[int, int, list[tuple[int, str]]]:
        """Hand ``batch`` over and wait for the writer's account of it; a writer process that died is
        started again and the batch sent once more before its rows count as dropped."""
        buffers: list[pickle.PickleBuffer] = []
        header = pickle.dumps(batch, protocol=5, buffer_callback=buffers.append)
        for attempt in (1, 2):
            try:
                if self._proc is None:
                    self._start()
                self._out.send_bytes(struct.pack("<I", len(buffers)))
                self._out.send_bytes(header)
                for buffer in buffers:
                    self._out.send_bytes(buffer.raw())
                return pickle.loads(self._in.recv_bytes())  # noqa: S301 (our own child, a private pipe)
            except (OSError, EOFError) as e:
                log.warning(
                    "payload log: the writer process failed (%s)%s", e, "; starting another" if attempt == 1 else ""
                )
                self._kill()
        rows_by_model: dict[str, int] = {}
        for group in batch:
            rows_by_model[group.model_name] = rows_by_model.get(group.model_name, 0) + sum(group.counts)
        return 0, 0, [(rows, model) for model, rows in rows_by_model.items()]

    def stop(self, timeout: float) -> None:
        """Close its input (it writes what it has and exits) and wait for it."""
        if self._proc is None:
            return
        self.release()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("payload log: the writer process did not stop within %.0f s; killing it", timeout)
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def release(self) -> None:
        """Close this process's ends of the pipes (a forked child lets go of its parent's writer)."""
        for conn in (self._out, self._in):
            with contextlib.suppress(OSError):
                conn.close()

    def _kill(self) -> None:
        self.release()
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            self._proc.wait()
            self._proc = None


def writer_main() -> None:
    """The writer process: batches in from its serving process, files out to the store, an account back."""
    import signal
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it stops when its input ends, after the last batch
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source, sink = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    try:
        config = pickle.loads(source.recv_bytes())  # noqa: S301 (from the parent, over a private pipe)
    except EOFError:
        return
    files = _FileWriter(
        _store_for(config["destination"], config["s3_endpoint_url"]),
        config["destination"],
        config["write_attempts"],
        config["retry_wait_s"],
    )
    while True:
        try:
            (count,) = struct.unpack("<I", source.recv_bytes())
            header = source.recv_bytes()
            buffers = [source.recv_bytes() for _ in range(count)]
        except EOFError:  # the serving process stopped (or died): everything received is written
            return
        result = files.write(pickle.loads(header, buffers=buffers))  # noqa: S301 (as above)
        with contextlib.suppress(OSError):  # nobody waits for the account any more; the files are written
            sink.send_bytes(pickle.dumps(result))


def _to_table(groups: list[_Group], input_columns: tuple[str, ...], classes: tuple[str, ...] | None):
    """One Arrow table from the groups of one file: each column is built by a few calls over whole arrays
    and lists (``pa.array``, ``np.concatenate`` of one array per group), so the writer holds the GIL briefly
    however many requests it writes — requests queued behind a flush wait less (the p99 cost of logging)."""
    import pyarrow as pa

    def joined(attribute: str) -> list[Any]:  # one group's list as it is, several chained
        lists = [getattr(g, attribute) for g in groups]
        return lists[0] if len(lists) == 1 else [item for items in lists for item in items]

    counts = np.asarray(joined("counts"), dtype=np.int64)
    total = int(counts.sum())
    one_row_each = total == len(counts)

    def per_row(values: np.ndarray) -> np.ndarray:  # one value per request -> one per row
        return values if one_row_each else np.repeat(values, counts)

    request_ids = joined("request_ids")
    rows = np.zeros(total, dtype=np.int64)
    if not one_row_each:
        rows = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    columns: dict[str, Any] = {
        "request_id": pa.array(
            request_ids if one_row_each else per_row(np.array(request_ids, dtype=object)), type=pa.string()
        ),
        "row": pa.array(rows),
        "timestamp": pa.array(
            per_row(np.asarray(joined("timestamps"), dtype=np.int64) // 1000), type=pa.timestamp("us", tz="UTC")
        ),
    }
    group_rows = [sum(g.counts) for g in groups]
    for column in ("model_name", "model_version", "protocol"):  # constant within a group
        values = np.array([getattr(g, column) for g in groups], dtype=object)
        columns[column] = pa.array(np.repeat(values, group_rows), type=pa.string())
    if not any(g.frames for g in groups):
        stacked = _concat([g.inputs.values() for g in groups])  # 2-D arrays in signature order
        for i, column in enumerate(input_columns):
            columns[column] = stacked[:, i]
    else:  # DataFrames (typed columns): one concatenation, then column by column
        parts = [x for g in groups for x in (g.inputs if g.frames else [g.inputs.values()])]
        joined = Columns.concat(parts) if all(type(x) is Columns for x in parts) else None
        if type(joined) is Columns and tuple(joined.columns) == tuple(input_columns):
            columns.update(joined.data)  # decoded requests: array by array, no DataFrame
        else:
            frame = pd.concat([_frame(x, input_columns) for x in parts], ignore_index=True)
            for i, column in enumerate(input_columns):
                columns[column] = frame.iloc[:, i].to_numpy()
    predictions = _concat([g.predictions.values() for g in groups])
    if predictions.ndim == 2:  # several values per row: a fixed-size list per row
        flat = pa.array(np.ascontiguousarray(predictions).reshape(-1))
        columns["prediction"] = pa.FixedSizeListArray.from_arrays(flat, predictions.shape[1])
    else:
        columns["prediction"] = predictions
    if classes is not None:
        proba = _concat([g.probabilities.values() for g in groups]).astype(np.float64, copy=False)
        for i, name in enumerate(classes):
            columns[f"proba_{name}"] = proba[:, i]
    return pa.table(columns)


def _frame(inputs: pd.DataFrame | Columns | np.ndarray, columns: tuple[str, ...]) -> pd.DataFrame:
    if type(inputs) is Columns:
        inputs = inputs.frame()
    if isinstance(inputs, pd.DataFrame):
        return inputs.set_axis(list(columns), axis=1) if tuple(inputs.columns) != columns else inputs
    return pd.DataFrame(np.asarray(inputs), columns=list(columns))


# Parquet options of every payload file: dictionary encoding for the per-file constants only and statistics
# for the timestamp only. Dictionaries and statistics of every column cost the writer about twice the CPU
# (measured here: 2.1 vs 1.1 ms for 2,000 rows) for a larger file, and the request, input and prediction
# columns hardly repeat.
_PARQUET_OPTIONS = {"use_dictionary": ["model_name", "model_version", "protocol"], "write_statistics": ["timestamp"]}


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.asarray(arrays[0]) if len(arrays) == 1 else np.concatenate(arrays)


# -- storage ------------------------------------------------------------------------------------


class _LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, base_name: str, name: str, table) -> None:
        import pyarrow.parquet as pq

        directory = self.root / base_name
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{name}.tmp"
        try:
            pq.write_table(table, tmp, **_PARQUET_OPTIONS)
            os.replace(tmp, directory / name)  # readers never see a half-written file
        finally:
            tmp.unlink(missing_ok=True)

    def list(self, base_name: str) -> list[str]:
        directory = self.root / base_name
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if _is_part(p.name))

    def read(self, base_name: str, name: str):
        import pyarrow.parquet as pq

        return pq.read_table(self.root / base_name / name)


class _S3Store:
    def __init__(self, uri: str, endpoint_url: str | None) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def _key(self, base_name: str, name: str = "") -> str:
        return "/".join(p for p in (self.prefix, base_name, name) if p) + ("" if name else "/")

    def write(self, base_name: str, name: str, table) -> None:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(table, buffer, **_PARQUET_OPTIONS)
        self.client.put_object(Bucket=self.bucket, Key=self._key(base_name, name), Body=buffer.getvalue())

    def list(self, base_name: str) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(base_name)):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if _is_part(name):
                    names.append(name)
        return sorted(names)

    def read(self, base_name: str, name: str):
        import pyarrow.parquet as pq

        body = self.client.get_object(Bucket=self.bucket, Key=self._key(base_name, name))["Body"].read()
        return pq.read_table(io.BytesIO(body))


def _store_for(destination: str | Path, endpoint_url: str | None):
    text = str(destination)
    if text.startswith("s3://"):
        if not text.removeprefix("s3://").split("/", 1)[0]:
            raise ValueError(f"payload log destination {text!r} names no bucket")
        if endpoint_url is None:
            from mlcycle.config import load_settings

            endpoint_url = load_settings().s3_endpoint_url
        return _S3Store(text, endpoint_url)
    if "://" in text:
        raise ValueError(f"payload log destination {text!r} must be a local directory or an s3:// URI")
    return _LocalStore(Path(text).expanduser())


def _is_part(name: str) -> bool:
    return name.startswith(FILE_PREFIX) and name.endswith(FILE_SUFFIX)


def _file_time(name: str) -> datetime | None:
    stamp = name.removeprefix(FILE_PREFIX).split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _utc(moment: datetime | None) -> pd.Timestamp | None:
    if moment is None:
        return None
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_payloads(
    source: str | Path,
    model_name: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    s3_endpoint_url: str | None = None,
) -> pd.DataFrame:
    """Read the payload log of ``model_name`` (registered or base name) written under ``source``.

    Rows with ``since <= timestamp < until`` (naive datetimes are UTC), ordered by time, request and
    row. With a team-qualified ``model_name`` only that team's rows are returned. An empty frame with
    the metadata columns when nothing was logged.
    """
    store = _store_for(source, s3_endpoint_url)
    base_name = split_name(model_name)[1]
    start, end = _utc(since), _utc(until)
    tables = []
    for name in store.list(base_name):
        written = _file_time(name)
        if start is not None and written is not None and written < start:
            continue  # every row in a file was logged before the file was written
        tables.append(store.read(base_name, name).to_pandas())
    if not tables:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in META_COLUMNS})
        frame["row"] = frame["row"].astype("int64")
        frame["timestamp"] = pd.Series(dtype="datetime64[us, UTC]")
        return frame
    frame = pd.concat(tables, ignore_index=True)
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["timestamp"] >= start).to_numpy()
    if end is not None:
        keep &= (frame["timestamp"] < end).to_numpy()
    if "." in model_name:
        keep &= (frame["model_name"] == model_name).to_numpy()
    frame = frame[keep]
    return frame.sort_values(["timestamp", "request_id", "row"], kind="stable").reset_index(drop=True)
