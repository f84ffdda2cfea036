"""Adaptive micro-batching: concurrent requests combined into one ``predict`` call, split back per request.

A forest costs nearly the same for 1 row as for 64, so under concurrency one call for many requests
multiplies throughput. :class:`AdaptiveBatcher` runs at most one model call at a time: while a call
runs, new requests queue; when it finishes, everything queued (up to ``max_rows`` rows) goes into the
next call. An idle server therefore answers a lone request at once (no fixed wait), and a loaded one
batches as much as the load provides. ``max_wait_s`` > 0 additionally holds a non-full batch open for
up to that long, trading latency for bigger batches (the KServe/MLServer ``max_latency`` knob) — but
only under load: when the previous call served a single request (the server is idle, or requests come
one at a time), the next one goes at once, so the knob adds no latency to an idle server.

The model call runs on a single worker thread so the event loop keeps accepting and decoding requests
meanwhile, unless calls are so cheap (``inline_below_s``) that the hand-off would cost more. The cost
is the model call's own time, measured in whichever thread runs it (not the hand-off and the wait for
the event loop, which grow with load and would keep a 20 µs compiled model on the thread forever). A failing
call fails only the requests in that batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# 16 requests of 64 rows: a PythonModel's pandas work costs ~0.4 ms a call whatever its rows, so at 256
# (4 such requests a call) the model thread held a third of the GIL; at 1024 the 64-row benchmark served
# 1.4x the requests at a lower p99. One-row requests never fill it.
DEFAULT_MAX_ROWS = 1024
DEFAULT_MAX_WAIT_S = 0.0
DEFAULT_INLINE_BELOW_S = 0.0005


class AdaptiveBatcher:
    """Combine concurrent ``submit(x)`` calls into calls of ``fn`` on the concatenated rows.

    Args:
        fn: takes a float ``[N, F]`` array and returns an object with ``slice(start, stop)`` (such as
            :class:`mlcycle.serving.predict.Prediction`) covering the same N rows.
        max_rows: most rows per call (a single request larger than this still goes alone).
        max_wait_s: how long a non-full batch waits for more requests (0: never wait).
        inline_below_s: a model whose calls average less than this runs on the event loop itself:
            handing a 0.1 ms call to a thread and back costs more than the call (0: always a thread).
        name: for the worker thread's name and logs.
        after: called with each successful call's whole result (see below).

    Must be used from one event loop. ``calls`` and ``rows`` count model calls and rows served.
    ``after``, when given, is called with each successful call's whole result in the thread that made the
    call (once per batch, not per request: the predictor counts predictions there); what it raises is
    logged, never delivered to a request.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        inline_below_s: float = DEFAULT_INLINE_BELOW_S,
        name: str = "model",
        after: Callable[[Any], None] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must not be negative")
        self._fn = fn
        self.name = name
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.inline_below_s = inline_below_s
        self._cost_s: float | None = None  # moving average of one model call
        self._queue: deque[tuple[np.ndarray, asyncio.Future]] = deque()
        self._queued_rows = 0
        self._worker: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._last_batch = 1  # requests combined in the previous call: > 1 means the server is under load
        self.after = after
        self.calls = 0
        self.rows = 0

    async def submit(self, x: np.ndarray) -> Any:
        """Predict ``x`` as part of the next batch; returns ``fn``'s result for exactly these rows."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((x, fut))
        self._queued_rows += len(x)
        if self._arrived is not None:
            self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await fut

    async def _wait_for_more(self) -> None:
        deadline = time.monotonic() + self.max_wait_s
        self._arrived = asyncio.Event()
        try:
            while self._queued_rows < self.max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
        finally:
            self._arrived = None

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch = [self._queue.popleft()]
        rows = len(batch[0][0])
        while self._queue and rows + len(self._queue[0][0]) <= self.max_rows:
            item = self._queue.popleft()
            batch.append(item)
            rows += len(item[0])
        self._queued_rows -= rows
        return batch

    def _timed(self, x: np.ndarray) -> tuple[Any, float]:
        started = time.perf_counter()
        result = self._fn(x)
        took = time.perf_counter() - started
        self._after(result)
        return result, took

    def _call(self, x: Any) -> Any:
        result = self._fn(x)
        self._after(result)
        return result

    def _after(self, result: Any) -> None:
        after = self.after
        if after is not None:
            try:
                after(result)
            except Exception:  # noqa: BLE001 - bookkeeping never fails the requests it answers
                log.warning("batcher %s: the after-call hook failed", self.name, exc_info=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.max_wait_s > 0 and self._last_batch > 1 and self._queued_rows < self.max_rows:
                await self._wait_for_more()
            batch = [(x, f) for x, f in self._take() if not f.cancelled()]
            if not batch:
                continue
            xs = [x for x, _ in batch]
            x = xs[0] if len(xs) == 1 else _concat(xs)
            self._last_batch = len(batch)
            try:
                if self._cost_s is not None and self._cost_s < self.inline_below_s:
                    result, took = self._timed(x)  # cheaper than two thread hand-offs
                else:
                    result, took = await loop.run_in_executor(self._executor, self._timed, x)
            except Exception as e:  # noqa: BLE001 - delivered to each waiting request, not swallowed
                if len(batch) == 1:
                    if not batch[0][1].done():
                        batch[0][1].set_exception(e)
                    continue
                # One request's bad input must not fail its neighbours: answer each on its own.
                for part, fut in batch:
                    try:
                        one = self._call(part)
                    except Exception as err:  # noqa: BLE001 - delivered to that request
                        if not fut.done():
                            fut.set_exception(err)
                        continue
                    if not fut.done():
                        fut.set_result(one)
                continue
            self._cost_s = took if self._cost_s is None else 0.8 * self._cost_s + 0.2 * took
            self.calls += 1
            self.rows += len(x)
            start = 0
            for part, fut in batch:
                stop = start + len(part)
                if not fut.done():
                    fut.set_result(result.slice(start, stop) if len(batch) > 1 else result)
                start = stop

    async def close(self) -> None:
        """Finish what is queued, then stop the worker thread."""
        self._closed = True
        if self._worker is not None:
            await asyncio.shield(self._worker)
        self._executor.shutdown(wait=False)

    def close_from_thread(self, timeout: float = 30.0) -> None:
        """:meth:`close` from another thread (the alias poller retiring a swapped-out version).

        The close runs on the batcher's event loop, so a request that was routed to this batcher
        before the swap has already queued its rows (routing and ``submit`` run in one step) and is
        answered before the executor stops. A batcher that never served is closed at once.
        """
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._closed = True
            self._executor.shutdown(wait=False)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # on the loop's own thread (a signal handler): close without waiting for it
            loop.create_task(self.close())
            return
        try:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(timeout=timeout)
        except (TimeoutError, RuntimeError):  # the loop stopped meanwhile: nothing is left to answer
            self._executor.shutdown(wait=False)


def _concat(xs: list) -> Any:
    """Rows of several requests as one input: float arrays stacked, typed columns (an input type with a
    ``concat`` of its own, such as :class:`mlcycle.serving.schema.Columns`) joined by it, DataFrames
    concatenated."""
    if isinstance(xs[0], np.ndarray):
        return np.concatenate(xs)
    join = getattr(type(xs[0]), "concat", None)
    if join is not None and all(type(x) is type(xs[0]) for x in xs):
        return join(xs)
    import pandas as pd

    return pd.concat([x.frame() if hasattr(x, "frame") else x for x in xs], ignore_index=True)
