"""Payload logging: contract layout and columns, bounded memory, storage failures and recovery, S3."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlcycle.serving.payload_log import PayloadLogger, read_payloads

CLASSES = ["class_0", "class_1", "class_2"]


@pytest.fixture(params=["thread", "process"])
def writer(request) -> str:
    """Who builds and writes the files: the logger's thread, or a writer process of its own."""
    return request.param


def request(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = pd.DataFrame(
        {
            "alcohol": rng.normal(13, 1, n),
            "malic_acid": rng.normal(2, 1, n),
            "magnesium": rng.integers(70, 160, n),
        }
    )
    proba = rng.dirichlet(np.ones(3), n)
    predictions = np.array(CLASSES)[proba.argmax(axis=1)]
    return inputs, predictions, proba


def log_one(
    logger: PayloadLogger,
    request_id: str,
    n: int,
    *,
    model="team-a.wine",
    version="3",
    protocol="v2-rest",
    seed=0,
) -> bool:
    inputs, predictions, proba = request(n, seed)
    return logger.log(
        model_name=model,
        model_version=version,
        protocol=protocol,
        request_id=request_id,
        inputs=inputs,
        predictions=predictions,
        probabilities=proba,
        classes=CLASSES,
    )


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_round_trip_follows_the_contract(tmp_path, writer):
    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=60)
    before = datetime.now(UTC)
    assert log_one(logger, "req-1", 3, seed=1)
    assert log_one(logger, "req-2", 1, seed=2, protocol="v1", version="4")
    logger.flush()
    files = sorted((tmp_path / "wine").iterdir())
    assert len(files) == 1 and files[0].name.startswith("part-") and files[0].suffix == ".parquet"
    assert logger.written == 4 and logger.dropped == 0

    frame = read_payloads(tmp_path, "team-a.wine")
    assert list(frame.columns) == [
        "request_id",
        "row",
        "timestamp",
        "model_name",
        "model_version",
        "protocol",
        "alcohol",
        "malic_acid",
        "magnesium",
        "prediction",
        "proba_class_0",
        "proba_class_1",
        "proba_class_2",
    ]
    assert frame["request_id"].tolist() == ["req-1"] * 3 + ["req-2"]
    assert frame["row"].tolist() == [0, 1, 2, 0]
    assert frame["model_version"].tolist() == ["3", "3", "3", "4"]
    assert frame["protocol"].tolist() == ["v2-rest"] * 3 + ["v1"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert (frame["timestamp"] >= before - timedelta(milliseconds=1)).all()
    inputs, predictions, proba = request(3, seed=1)
    pd.testing.assert_frame_equal(frame.loc[:2, list(inputs.columns)], inputs, check_dtype=False)
    assert frame.loc[:2, "prediction"].tolist() == predictions.tolist()
    np.testing.assert_allclose(frame.loc[:2, ["proba_class_0", "proba_class_1", "proba_class_2"]], proba)
    logger.close()


def test_array_inputs_with_column_names(tmp_path, writer):
    logger = PayloadLogger(writer=writer, destination=tmp_path)
    inputs, predictions, proba = request(2, seed=3)
    logger.log(
        model_name="wine",
        model_version="1",
        protocol="v2-rest",
        request_id="array",
        inputs=inputs.to_numpy(dtype=float),
        columns=list(inputs.columns),
        predictions=predictions,
        probabilities=proba,
        classes=CLASSES,
    )
    logger.log(
        model_name="wine",
        model_version="1",
        protocol="v2-rest",
        request_id="frame",
        inputs=inputs,
        predictions=predictions,
        probabilities=proba,
        classes=CLASSES,
    )
    with pytest.raises(ValueError, match="columns"):
        logger.log(
            model_name="wine",
            model_version="1",
            protocol="v1",
            request_id="bad",
            inputs=inputs.to_numpy(),
            predictions=predictions,
        )
    logger.close()
    frame = read_payloads(tmp_path, "wine")
    assert logger.files_written == 1  # same columns, same file
    np.testing.assert_allclose(frame.loc[frame.request_id == "array", list(inputs.columns)], inputs)
    np.testing.assert_allclose(frame.loc[frame.request_id == "frame", list(inputs.columns)], inputs)


def test_read_filters_by_time_and_team(tmp_path):
    logger = PayloadLogger(tmp_path, flush_seconds=60)
    log_one(logger, "early", 2)
    logger.flush()
    time.sleep(0.01)
    middle = datetime.now(UTC)
    log_one(logger, "late", 2)
    log_one(logger, "other-team", 1, model="team-b.wine")
    logger.close()
    assert read_payloads(tmp_path, "team-a.wine", since=middle)["request_id"].unique().tolist() == ["late"]
    assert read_payloads(tmp_path, "team-a.wine", until=middle)["request_id"].unique().tolist() == ["early"]
    naive = middle.astimezone(UTC).replace(tzinfo=None)
    assert set(read_payloads(tmp_path, "team-a.wine", since=naive)["request_id"]) == {"late"}
    assert set(read_payloads(tmp_path, "wine")["request_id"]) == {"early", "late", "other-team"}


def test_nothing_logged_reads_as_an_empty_frame(tmp_path):
    frame = read_payloads(tmp_path / "nowhere", "wine")
    assert frame.empty and {"request_id", "row", "timestamp", "model_version"} <= set(frame.columns)


def test_regressor_without_probabilities(tmp_path):
    logger = PayloadLogger(tmp_path)
    logger.log(
        model_name="price",
        model_version="1",
        protocol="v2-grpc",
        request_id="r",
        inputs=pd.DataFrame({"x": [1.0, 2.0]}),
        predictions=np.array([[0.5], [1.5]]),
    )
    logger.close()
    frame = read_payloads(tmp_path, "price")
    assert frame["prediction"].tolist() == [0.5, 1.5]
    assert not [c for c in frame.columns if c.startswith("proba_")]


def test_writes_by_itself_when_enough_rows_are_queued(tmp_path):
    logger = PayloadLogger(tmp_path, flush_rows=10, flush_seconds=3600)
    for i in range(5):
        log_one(logger, f"r{i}", 2)
    assert wait_until(lambda: logger.written == 10)
    logger.close()


def test_writes_by_itself_after_flush_seconds(tmp_path):
    logger = PayloadLogger(tmp_path, flush_rows=1000, flush_seconds=0.05)
    log_one(logger, "r", 1)
    assert wait_until(lambda: logger.written == 1)
    logger.close()


def test_full_queue_drops_counts_and_never_blocks(tmp_path, writer):
    drops: list[tuple] = []
    logger = PayloadLogger(
        writer=writer,
        destination=tmp_path,
        max_queued_rows=10,
        flush_rows=1000,
        flush_seconds=3600,
        on_drop=lambda n, model: drops.append((n, model)),
    )
    assert log_one(logger, "a", 6)
    assert log_one(logger, "b", 4)
    assert not log_one(logger, "c", 1)  # 10 rows queued: the queue is full
    assert not log_one(logger, "d", 5, model="team-a.other")
    assert logger.dropped == 6 and drops == [(1, "team-a.wine"), (5, "team-a.other")]
    assert logger.queued == 10
    logger.flush()
    assert logger.written == 10 and logger.queued == 0
    assert log_one(logger, "e", 10)  # room again
    logger.close()
    assert not log_one(logger, "after-close", 1)
    assert set(read_payloads(tmp_path, "wine")["request_id"]) == {"a", "b", "e"}


def test_unwritable_storage_keeps_serving_counts_and_recovers(tmp_path, writer):
    counted: list[int] = []
    # a one-argument callback
    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=3600, on_drop=counted.append)
    (tmp_path / "wine").write_text("a file where the model's directory should be")
    assert log_one(logger, "lost", 3)  # the caller is never told: storage trouble is not its problem
    logger.flush()
    assert logger.dropped == 3 and counted == [3] and logger.written == 0
    assert log_one(logger, "lost-too", 2)
    logger.flush()
    assert logger.dropped == 5

    (tmp_path / "wine").unlink()  # storage is back
    assert log_one(logger, "kept", 2)
    logger.close()
    assert logger.written == 2 and logger.dropped == 5
    assert set(read_payloads(tmp_path, "wine")["request_id"]) == {"kept"}
    assert not [p for p in (tmp_path / "wine").iterdir() if not p.name.startswith("part-")]


def test_s3_destination(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("MLCYCLE_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="payloads")
        logger = PayloadLogger("s3://payloads/prod/team-a")
        log_one(logger, "r1", 2)
        log_one(logger, "r2", 1)
        logger.close()
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="payloads")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("prod/team-a/wine/part-")
        frame = read_payloads("s3://payloads/prod/team-a", "team-a.wine")
        assert frame["request_id"].tolist() == ["r1", "r1", "r2"]
        assert logger.written == 3

        broken = PayloadLogger("s3://no-such-bucket/x")
        log_one(broken, "r", 2)
        broken.close()
        assert broken.dropped == 2 and broken.written == 0


def test_bad_destinations_fail_at_start(tmp_path):
    with pytest.raises(ValueError, match="local directory or an s3"):
        PayloadLogger("gs://bucket/x")
    with pytest.raises(ValueError, match="names no bucket"):
        PayloadLogger("s3:///x")
    with pytest.raises(ValueError):
        PayloadLogger(tmp_path, max_queued_rows=0)


def test_a_stuck_store_never_blocks_the_caller(tmp_path):
    logger = PayloadLogger(tmp_path, max_queued_rows=4, flush_rows=1, flush_seconds=3600)
    release, entered = threading.Event(), threading.Event()
    real_write = logger._store.write

    def stuck_write(*args):
        entered.set()
        release.wait(timeout=30)  # storage hangs (a slow S3, a stalled NFS) until released
        real_write(*args)

    logger._store.write = stuck_write
    try:
        assert log_one(logger, "first", 1)
        assert entered.wait(timeout=10)  # the writer thread is now stuck inside write()
        results = [log_one(logger, f"r{i}", 1) for i in range(6)]  # returns at once, no waiting
        assert results == [True] * 4 + [False] * 2
        assert logger.dropped == 2
    finally:
        release.set()
    logger.close()
    assert logger.written == 5


def test_a_failed_write_is_retried_before_its_rows_count_as_dropped(tmp_path):
    logger = PayloadLogger(tmp_path, flush_seconds=3600, write_attempts=3, retry_wait_s=0.01)
    real_write, calls = logger._store.write, []

    def flaky_write(*args):
        calls.append(args[1])
        if len(calls) < 3:
            raise OSError("storage hiccup")
        real_write(*args)

    logger._store.write = flaky_write
    assert log_one(logger, "r", 2)
    logger.close()
    assert len(calls) == 3 and len(set(calls)) == 1  # the same file, tried three times
    assert logger.written == 2 and logger.dropped == 0


def test_interleaved_requests_keep_every_row_and_its_values(tmp_path, writer):
    """Requests of two versions, one-row and multi-row, interleaved: queued column by column per version,
    written to one file, and read back row for row with their own ids, versions and values."""
    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=60)
    names = ["alcohol", "malic_acid", "magnesium"]  # one list for every request, as the predictor passes it
    expected = []
    for i in range(60):
        n = 1 if i % 3 else 4
        x = np.arange(n * 3, dtype=float).reshape(n, 3) + 100 * i
        proba = np.full((n, 3), 1 / 3)
        version = "3" if i % 2 else "4"
        assert logger.log(
            model_name="wine",
            model_version=version,
            protocol="v2-rest",
            request_id=f"r{i:02d}",
            inputs=x,
            columns=names,
            predictions=np.array([CLASSES[i % 3]] * n),
            probabilities=proba,
            classes=CLASSES,
        )
        expected += [(f"r{i:02d}", row, version, *x[row], CLASSES[i % 3]) for row in range(n)]
    logger.close()
    assert logger.files_written == 1 and logger.written == len(expected)
    frame = read_payloads(tmp_path, "wine").sort_values(["request_id", "row"])
    got = list(frame[["request_id", "row", "model_version", *names, "prediction"]].itertuples(index=False, name=None))
    assert got == expected


def test_writers_shorten_the_switch_interval_only_while_they_write(tmp_path, monkeypatch):
    """Two loggers writing at once: the interval is short during their writes and restored after both."""
    import sys

    from mlcycle.serving import payload_log

    seen = []
    both_writing = threading.Barrier(2, timeout=10)
    store_write = payload_log._LocalStore.write

    def write(self, base_name, name, table):
        seen.append(sys.getswitchinterval())
        both_writing.wait()  # each writer waits inside its write until the other is in its own
        store_write(self, base_name, name, table)

    monkeypatch.setattr(payload_log._LocalStore, "write", write)
    before = sys.getswitchinterval()
    loggers = [PayloadLogger(tmp_path / str(i), flush_seconds=60) for i in range(2)]
    for i, logger in enumerate(loggers):
        log_one(logger, f"req-{i}", 2)
    flushes = [threading.Thread(target=logger.flush) for logger in loggers]
    for t in flushes:
        t.start()
    for t in flushes:
        t.join(timeout=20)
    assert seen == [payload_log.WRITER_SWITCH_INTERVAL_S] * 2
    assert sys.getswitchinterval() == before
    assert [logger.written for logger in loggers] == [2, 2]
    for logger in loggers:
        logger.close()


def test_requests_whose_arrays_differ_in_type_keep_their_values(tmp_path, writer):
    """Each request's rows are copied into its group's arrays: a version answering floats after ints, or
    float32 probabilities after float64 ones, gets its own arrays (no value cast to another's type), and a
    group grows past its first allocation."""
    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=60, flush_rows=10**6)
    names = ["alcohol", "malic_acid", "magnesium"]
    for i in range(300):  # past the first 256 rows of a group's arrays
        x = np.full((1, 3), float(i))
        pred = np.array([i]) if i % 2 else np.array([i + 0.5])
        proba = np.full((1, 3), 1 / 3, dtype=np.float32 if i % 3 else np.float64)
        assert logger.log(
            model_name="wine",
            model_version="1",
            protocol="v1",
            request_id=f"r{i:03d}",
            inputs=x,
            columns=names,
            predictions=pred,
            probabilities=proba,
            classes=CLASSES,
        )
    logger.close()
    frame = read_payloads(tmp_path, "wine").sort_values("request_id").reset_index(drop=True)
    assert len(frame) == 300
    np.testing.assert_array_equal(frame["alcohol"], np.arange(300, dtype=float))
    np.testing.assert_array_equal(frame["prediction"], [i if i % 2 else i + 0.5 for i in range(300)])
    expected = [float(np.float32(1 / 3)) if i % 3 else 1 / 3 for i in range(300)]
    np.testing.assert_array_equal(frame["proba_class_0"], expected)


def test_several_predictions_per_row_are_logged_as_a_list_per_row(tmp_path, writer):
    """A model answering [N, k] (several values per row): each row's k values, not k rows per row."""
    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=60)
    names = ["alcohol", "malic_acid", "magnesium"]
    for i in range(3):
        assert logger.log(
            model_name="wine",
            model_version="1",
            protocol="v2-rest",
            request_id=f"r{i}",
            inputs=np.full((2, 3), float(i)),
            columns=names,
            predictions=np.array([[i, i + 0.5], [i + 1, i + 1.5]]),
        )
    logger.close()
    assert logger.dropped == 0 and logger.written == 6
    frame = read_payloads(tmp_path, "wine").sort_values(["request_id", "row"])
    assert [list(v) for v in frame["prediction"]] == [[0, 0.5], [1, 1.5], [1, 1.5], [2, 2.5], [2, 2.5], [3, 3.5]]


def _writer_pid(logger: PayloadLogger) -> int:
    assert wait_until(lambda: logger._process is not None and logger._process._proc is not None)
    return logger._process._proc.pid


def test_a_writer_process_ignores_stop_signals_and_ends_with_its_logger(tmp_path):
    """SIGTERM or SIGINT to the whole process group (a terminal's Ctrl-C, a container runtime) must not end
    the writer before its serving process has handed over its last rows: it ends when its input does."""
    import os
    import signal

    logger = PayloadLogger(tmp_path, writer="process", flush_seconds=60)
    assert log_one(logger, "before", 2)
    logger.flush()
    pid = _writer_pid(logger)
    proc = logger._process._proc
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None
    assert log_one(logger, "after", 3)
    logger.close()
    assert proc.returncode == 0 and logger._process is None
    assert logger.written == 5 and logger.dropped == 0 and logger.files_written == 2
    assert sorted(read_payloads(tmp_path, "wine")["request_id"]) == ["after"] * 3 + ["before"] * 2


def test_a_writer_process_that_died_is_replaced_and_nothing_is_lost(tmp_path):
    import os
    import signal

    logger = PayloadLogger(tmp_path, writer="process", flush_seconds=60)
    assert log_one(logger, "first", 1)
    logger.flush()
    pid = _writer_pid(logger)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # dead before the next batch is handed over
    assert log_one(logger, "second", 4)
    logger.flush()
    assert logger.written == 5 and logger.dropped == 0
    assert _writer_pid(logger) != pid
    logger.close()
    assert sorted(set(read_payloads(tmp_path, "wine")["request_id"])) == ["first", "second"]


class _Unpicklable(str):
    def __reduce__(self):
        raise TypeError("this note stays in its process")


def test_a_batch_the_writer_process_cannot_take_is_written_by_the_thread(tmp_path):
    """An input the writer process cannot be handed (it refuses pickling) is written by the thread."""
    logger = PayloadLogger(tmp_path, writer="process", flush_seconds=60)
    odd = pd.DataFrame({"alcohol": [13.0], "note": [_Unpicklable("kept")]})
    assert logger.log(
        model_name="wine",
        model_version="1",
        protocol="v1",
        request_id="odd",
        inputs=odd,
        predictions=np.array(["class_0"]),
    )
    logger.flush()
    assert logger.written == 1 and logger.dropped == 0
    assert logger._process is not None  # still there for the next batch
    logger.close()
    assert read_payloads(tmp_path, "wine")["note"].tolist() == ["kept"]


def test_without_a_writer_process_the_thread_writes(tmp_path, monkeypatch):
    """The writer process cannot start (here: no interpreter at that path): rows are written all the same."""
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    logger = PayloadLogger(tmp_path / "payloads", writer="process", flush_seconds=60)
    assert log_one(logger, "r", 2)
    logger.flush()
    assert logger._process is None and logger.written == 2 and logger.dropped == 0
    logger.close()


def test_a_writer_process_that_cannot_start_leaves_no_open_pipes(tmp_path, monkeypatch):
    import os
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        logger = PayloadLogger(tmp_path / "payloads", writer="process", flush_seconds=60)
        assert log_one(logger, f"r{i}", 1)
        logger.close()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_decoded_columns_are_logged_as_their_arrays(tmp_path, writer):
    """The predictor logs a mixed-type request as decoded (``Columns``, no DataFrame on the request path):
    the file holds each value and type; requests whose columns differ (an optional column sent by some)
    still keep every value."""
    from mlcycle.serving.schema import Columns

    logger = PayloadLogger(writer=writer, destination=tmp_path, flush_seconds=60, flush_rows=10**6)
    sent = []
    for i in range(5):
        data = {"color": np.array(["red", f"c{i}"], dtype=object), "x": np.array([i, i + 0.5]),
                "k": np.array([i, -i], dtype=np.int64)}
        if i == 4:  # a request without the optional column
            del data["k"]
        sent.append(data)
        assert logger.log(model_name="mixed", model_version="1", protocol="v2-rest", request_id=f"r{i}",
                          inputs=Columns(data, 2), predictions=np.array([1.0, 2.0]))
    logger.close()
    frame = read_payloads(tmp_path, "mixed").sort_values(["request_id", "row"]).reset_index(drop=True)
    assert frame["color"].tolist() == [v for d in sent for v in d["color"]]
    np.testing.assert_array_equal(frame["x"], np.concatenate([d["x"] for d in sent]))
    assert frame["k"].iloc[:8].astype(np.int64).tolist() == [v for d in sent[:4] for v in d["k"].tolist()]
    assert frame["k"].iloc[8:].isna().all()


def test_a_started_logger_has_its_writer_process_before_the_first_request(tmp_path):
    """The predictor starts the writer as it starts serving: the writer process imports while the model
    loads, so the first rows do not wait in the serving process (where a SIGKILL would lose them)."""
    logger = PayloadLogger(writer="process", destination=tmp_path)
    try:
        logger.start()
        assert wait_until(lambda: logger._process is not None and logger._process._proc.poll() is None)
        first = logger._process._proc
        assert log_one(logger, "req-1", 2)
        logger.flush()
        assert logger.written == 2 and logger._process._proc is first  # the same process wrote them
        logger.start()  # again: nothing new
        assert logger._process._proc is first
    finally:
        logger.close()
