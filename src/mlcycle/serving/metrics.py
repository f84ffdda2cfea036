"""The predictor's Prometheus metrics (names and labels as in docs/contracts.md, "Prometheus metrics").

One :class:`ServingMetrics` per server process. The hot path (:meth:`ServingMetrics.observe_request`,
:meth:`ServingMetrics.count_predictions`) looks labelled children up in a dict, so a request costs a
dict hit and an increment, not prometheus-client's label validation.

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory *before* any process
imports ``prometheus_client`` (prometheus-client picks its value store at import). Each worker then
writes its samples to memory-mapped files there, and :meth:`ServingMetrics.render_latest` aggregates
all workers' files with ``MultiProcessCollector``: counters and histograms add up; ``model_info`` is the
maximum over live workers (1 while any worker serves that version) and ``canary_traffic_percent`` the
most recently set value. A server that reaps a worker should call :func:`mark_process_dead` with its pid.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. The predictor answers in ~1 ms unloaded, so the default buckets (from 5 ms) would hide it.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

ROLES = ("champion", "canary")
# Predicted values of regressors (symmetric, log-spaced): a fixed set of buckets bounds the cardinality.
_POSITIVE = (0.01, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 1e4, 1e5, 1e6)
VALUE_BUCKETS = (*(-b for b in reversed(_POSITIVE)), 0.0, *_POSITIVE)
# At most this many distinct predicted labels per model version; any further label counts as OTHER_LABEL.
MAX_CLASS_LABELS = 100
OTHER_LABEL = "__other__"


def multiprocess_dir() -> str | None:
    """The prometheus-client multiprocess directory, or None in single-process mode."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess directory (no-op in single-process mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class ServingMetrics:
    """The predictor's metrics, registered in ``registry`` (a fresh private one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self.requests = Counter(
            "mlcycle_requests",
            "Inference requests answered, by model, version, protocol and HTTP status.",
            ["model", "version", "protocol", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlcycle_request_duration_seconds",
            "Time to answer an inference request.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlcycle_predictions",
            "Predicted rows by predicted class.",
            ["model", "version", "class"],
            registry=self.registry,
        )
        self.prediction_values = Histogram(
            "mlcycle_prediction_value",
            "Predicted values of regressors (numeric predictions of a model without classes).",
            ["model", "version"],
            buckets=VALUE_BUCKETS,
            registry=self.registry,
        )
        self.payload_drops = Counter(
            "mlcycle_payload_log_dropped",
            "Payload-log rows dropped (queue full or storage unwritable).",
            ["model"],
            registry=self.registry,
        )
        self.refused = Counter(
            "mlcycle_requests_refused",
            "Requests refused before their body was read (401/403: credentials), by model and status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "mlcycle_model_load_failures",
            "Model loads that failed (the previous version kept serving).",
            ["model"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlcycle_model_info",
            "1 for each model version being served, with its role (champion or canary).",
            ["model", "version", "role"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.canary_percent = Gauge(
            "mlcycle_canary_traffic_percent",
            "Percent of a model's traffic sent to its canary version.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemostrecent",
        )
        self._request_children: dict[tuple[str, str, str, str], object] = {}
        self._latency_children: dict[tuple[str, str, str], object] = {}
        self._class_children: dict[tuple[str, str, str], object] = {}
        self._value_children: dict[tuple[str, str], object] = {}
        self._labels_seen: dict[tuple[str, str], set[str]] = {}
        self._served: dict[tuple[str, str], str] = {}  # (model, role) -> version

    # -- hot path ---------------------------------------------------------------------------------

    def observe_request(self, model: str, version: str, protocol: str, status: int | str, seconds: float) -> None:
        """Count one answered request and record how long it took."""
        key = (model, version, protocol, str(status))
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._child(self._request_children, key, self.requests)
        counter.inc()
        latency_key = key[:3]
        histogram = self._latency_children.get(latency_key)
        if histogram is None:
            histogram = self._child(self._latency_children, latency_key, self.latency)
        histogram.observe(seconds)

    def count_predictions(
        self, model: str, version: str, predictions: Iterable[object], *, regression: bool = False
    ) -> None:
        """Count predicted rows per predicted class, or observe a regressor's predicted values.

        ``regression``: the values go to the ``mlcycle_prediction_value`` histogram (fixed buckets).
        Otherwise each label is counted, at most :data:`MAX_CLASS_LABELS` distinct ones per version
        (further labels count as :data:`OTHER_LABEL`), so the series stay bounded whatever the model.
        """
        if regression:
            vkey = (model, version)
            child = self._value_children.get(vkey)
            if child is None:
                child = self._child(self._value_children, vkey, self.prediction_values)
            if type(predictions) is np.ndarray and predictions.dtype.kind == "f":
                observe_many(child, predictions)
                return
            for v in _as_list(predictions):
                if isinstance(v, int | float) and v == v:
                    child.observe(v)
            return
        counts: dict[str, int] = {}
        seen = self._labels_seen.setdefault((model, version), set())
        for value, n in Tally(_as_list(predictions)).items():
            name = _class_name(value)
            if name not in seen:
                if len(seen) >= MAX_CLASS_LABELS:
                    name = OTHER_LABEL
                else:
                    seen.add(name)
            counts[name] = counts.get(name, 0) + n
        for name, n in counts.items():
            key = (model, version, name)
            counter = self._class_children.get(key)
            if counter is None:
                counter = self._child(self._class_children, key, self.predictions)
            counter.inc(n)

    # -- rare events ------------------------------------------------------------------------------

    def payload_dropped(self, model: str, n: int = 1) -> None:
        """Count ``n`` payload-log rows that were dropped."""
        if n > 0:
            self.payload_drops.labels(model=model).inc(n)

    def refuse(self, model: str, status: int) -> None:
        """Count one request refused before its body was read."""
        self.refused.labels(model=model, status=str(status)).inc()

    def load_failure(self, model: str) -> None:
        """Count one failed model load."""
        self.load_failures.labels(model=model).inc()

    def set_model_info(self, model: str, version: str, role: str) -> None:
        """Say that ``version`` of ``model`` now serves as ``role``; the version it replaces is cleared."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self._lock:
            previous = self._served.get((model, role))
            if previous is not None and previous != version:
                self._clear_info(model, previous, role)
            self._served[(model, role)] = version
        self.model_info.labels(model=model, version=str(version), role=role).set(1)

    def clear_model_info(self, model: str, role: str) -> None:
        """Say that ``model`` has no version in ``role`` any more (e.g. the canary was removed)."""
        with self._lock:
            previous = self._served.pop((model, role), None)
            if previous is not None:
                self._clear_info(model, previous, role)

    def set_canary_percent(self, model: str, pct: float) -> None:
        """Record the share of ``model``'s traffic that goes to its canary (0–100)."""
        self.canary_percent.labels(model=model).set(pct)

    # -- exposition -------------------------------------------------------------------------------

    def render_latest(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type; all workers' samples in multiprocess mode."""
        path = multiprocess_dir()
        if path:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- internals --------------------------------------------------------------------------------

    def _child(self, cache: dict, key: tuple, metric):
        with self._lock:
            child = cache.get(key)
            if child is None:
                child = metric.labels(*key)
                cache[key] = child
            return child

    def _clear_info(self, model: str, version: str, role: str) -> None:
        if multiprocess_dir():
            # A removed child's value would live on in this worker's file: write 0 instead.
            self.model_info.labels(model=model, version=str(version), role=role).set(0)
        else:
            with contextlib.suppress(KeyError):
                self.model_info.remove(model, str(version), role)


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for each value of a float array except NaN, in a few calls.

    prometheus_client observes one value at a time (a Python loop over the buckets each, ~3 µs here):
    for a 64-row regression request that cost more than decoding it. Here the buckets are counted with
    NumPy and each bucket and the sum incremented once, through the same child attributes ``observe``
    itself uses (``_upper_bounds``, ``_buckets``, ``_sum``; pinned by ``tests/unit/serving/test_metrics.py``).
    If they are not there, the values are observed one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    values = values.reshape(-1)
    values = values[~np.isnan(values)]
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values.tolist():
            histogram.observe(v)
        return
    if not len(values):
        return
    # observe() puts a value in the first bucket whose bound is >= it: searchsorted's "left" side
    counts = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), values, side="left"),
                         minlength=len(bounds))
    total.inc(float(values.sum()))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))


def _as_list(predictions: Iterable[object]) -> list[object]:
    tolist = getattr(predictions, "tolist", None)
    if tolist is not None:
        values = tolist()
        return values if isinstance(values, list) else [values]
    return list(predictions)


def _class_name(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
