"""What one server process shares between its models: metrics, the payload logger, the authenticator.

Built once per process (KServe's REST workers each get their own, so files and counters never cross
processes; ``/metrics`` adds the workers up through prometheus-client's multiprocess mode). Also the
process's heap freezing (:func:`freeze_heap`), which the server calls once loaded and again after a swap.
"""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass

from mlcycle.config import Settings
from mlcycle.serving.auth import Authenticator
from mlcycle.serving.metrics import ServingMetrics
from mlcycle.serving.payload_log import PayloadLogger


@dataclass
class Runtime:
    metrics: ServingMetrics
    payloads: PayloadLogger | None
    auth: Authenticator | None
    pid: int


_lock = threading.Lock()
_current: dict[int, Runtime] = {}


def runtime(settings: Settings) -> Runtime:
    """This process's runtime, created on first use from ``settings``."""
    pid = os.getpid()
    with _lock:
        rt = _current.get(pid)
        if rt is None:
            metrics = ServingMetrics()
            payloads = None
            if settings.serving_payload_log:
                destination = settings.serving_payload_destination or settings.payload_dir
                payloads = PayloadLogger(
                    destination,
                    on_drop=lambda n, model: metrics.payload_dropped(model, n),
                    s3_endpoint_url=settings.s3_endpoint_url,
                    max_queued_rows=settings.serving_payload_max_queued_rows,
                    flush_rows=settings.serving_payload_flush_rows,
                    flush_seconds=settings.serving_payload_flush_seconds,
                    write_attempts=settings.serving_payload_write_attempts,
                    writer=settings.serving_payload_writer,
                )
            rt = Runtime(metrics, payloads, Authenticator.from_settings(settings), pid)
            _current.clear()
            _current[pid] = rt
        return rt


def current() -> Runtime | None:
    """This process's runtime if a model has created it."""
    return _current.get(os.getpid())


def close_payloads(timeout: float = 30.0) -> None:
    """Write every payload row this process has queued (a server process calls it as it stops)."""
    rt = current()
    if rt is not None and rt.payloads is not None:
        rt.payloads.close(timeout=timeout)


def metrics_body() -> tuple[bytes, str]:
    """The ``/metrics`` body and content type of this process (every worker's in multiprocess mode)."""
    rt = current()
    if rt is None:
        return b"", "text/plain"
    return rt.metrics.render_latest()


def freeze_heap() -> None:
    """Move everything loaded so far (MLflow, KServe, scikit-learn, the models) out of the cyclic GC.

    Otherwise every full collection walks millions of long-lived objects while requests wait: measured
    here under 32 connections, p99 fell from 256-358 ms to 44-100 ms with the heap frozen.
    """
    gc.collect()
    gc.freeze()


def refreeze_heap() -> None:
    """After a hot swap: unfreeze so a collection can free the old version's cycles, then freeze again."""
    gc.unfreeze()
    freeze_heap()
