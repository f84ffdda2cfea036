"""The adaptive micro-batcher: concurrent requests share one call and get exactly their own rows back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from mlcycle.serving.batching import AdaptiveBatcher
from mlcycle.serving.predict import Prediction


class Recorder:
    """A 'model' that returns row sums and records the size of every call; the first call is slow."""

    def __init__(self, fail_on: float | None = None):
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray) -> Prediction:
        if not self.sizes:
            self.gate.wait(5)  # hold the first call so the others queue up behind it
        self.sizes.append(len(x))
        if self.fail_on is not None and (x == self.fail_on).any():
            raise ValueError("boom")
        return Prediction(x.sum(axis=1))


async def _run(batcher: AdaptiveBatcher, recorder: Recorder, xs: list[np.ndarray]):
    tasks = [asyncio.create_task(batcher.submit(xs[0]))]
    await asyncio.sleep(0.02)  # the first request is alone: it goes at once, and is held in the model
    tasks += [asyncio.create_task(batcher.submit(x)) for x in xs[1:]]
    await asyncio.sleep(0.02)
    recorder.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_concurrent_requests_are_combined_and_split_back():
    rec = Recorder()
    batcher = AdaptiveBatcher(rec, max_rows=8)
    xs = [np.full((i % 3 + 1, 2), float(i)) for i in range(10)]  # 1..3 rows each, 19 rows in all
    results = asyncio.run(_run(batcher, rec, xs))
    for x, r in zip(xs, results, strict=True):
        np.testing.assert_array_equal(r.predictions, x.sum(axis=1))
    assert rec.sizes[0] == 1  # the lone first request was not held back
    assert sum(rec.sizes) == 19 and max(rec.sizes) <= 8
    assert len(rec.sizes) < 10  # fewer calls than requests
    assert batcher.calls == len(rec.sizes)


def test_a_failing_batch_fails_only_its_requests():
    rec = Recorder(fail_on=7.0)
    batcher = AdaptiveBatcher(rec, max_rows=2)
    xs = [np.full((1, 2), float(i)) for i in range(10)]
    results = asyncio.run(_run(batcher, rec, xs))
    failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert 7 in failed and len(failed) <= 2
    assert all(isinstance(results[i], Prediction) for i in range(10) if i not in failed)


def test_max_wait_holds_a_batch_open_under_load_only():
    calls: list[int] = []
    gate = threading.Event()

    def fn(x):
        if not calls:
            gate.wait(5)  # the first call is slow: two requests queue behind it (load)
        calls.append(len(x))
        return Prediction(x[:, 0])

    async def main():
        batcher = AdaptiveBatcher(fn, max_rows=100, max_wait_s=0.2, inline_below_s=0.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.create_task(batcher.submit(np.ones((1, 1))))  # idle: goes at once
        await asyncio.sleep(0.02)
        queued = [asyncio.create_task(batcher.submit(np.ones((1, 1)))) for _ in range(2)]
        await asyncio.sleep(0.02)
        gate.set()
        await asyncio.gather(first, *queued)  # the 2 queued ones are one call: the server is now loaded
        assert loop.time() - started < 0.15  # nobody waited max_wait_s so far
        t0 = loop.time()
        held = asyncio.create_task(batcher.submit(np.ones((1, 1))))  # under load: held open for more
        await asyncio.sleep(0.05)
        late = asyncio.create_task(batcher.submit(np.ones((1, 1))))
        await asyncio.gather(held, late)
        assert loop.time() - t0 >= 0.05
        t1 = loop.time()
        await batcher.submit(np.ones((1, 1)))  # the last call combined 2: still waits, alone, then
        assert loop.time() - t1 >= 0.15
        t2 = loop.time()
        await batcher.submit(np.ones((1, 1)))  # ... the previous call served 1 request: idle again
        assert loop.time() - t2 < 0.1
        await batcher.close()

    asyncio.run(main())
    assert calls == [1, 2, 2, 1, 1]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        AdaptiveBatcher(lambda x: x, max_rows=0)
    with pytest.raises(ValueError):
        AdaptiveBatcher(lambda x: x, max_wait_s=-1)


def test_cheap_calls_run_on_the_event_loop_and_slow_ones_on_a_thread():
    threads: list[str] = []

    def fn(x):
        threads.append(threading.current_thread().name)
        return Prediction(x[:, 0])

    async def main(batcher):
        for _ in range(3):
            await batcher.submit(np.ones((1, 1)))

    asyncio.run(main(AdaptiveBatcher(fn, inline_below_s=1.0, name="cheap")))
    assert threads[0].startswith("predict-cheap") and threads[1:] == ["MainThread", "MainThread"]
    threads.clear()
    asyncio.run(main(AdaptiveBatcher(fn, inline_below_s=0.0, name="slow")))
    assert all(t.startswith("predict-slow") for t in threads)


def test_the_cost_that_decides_is_the_calls_own_not_the_hand_off():
    """A cheap model whose first call went to the thread moves to the event loop even when the loop is
    busy as the call returns: the hand-off and the loop's delay (which grow with load) are not its cost."""
    threads: list[str] = []
    loops: list[asyncio.AbstractEventLoop] = []

    def fn(x):
        threads.append(threading.current_thread().name)
        loops[0].call_soon_threadsafe(time.sleep, 0.02)  # the loop is busy for 20 ms as this call returns
        return Prediction(x[:, 0])

    async def main(batcher):
        loops.append(asyncio.get_running_loop())
        for _ in range(3):
            await batcher.submit(np.ones((1, 1)))

    asyncio.run(main(AdaptiveBatcher(fn, inline_below_s=0.005, name="cheap")))
    assert threads[0].startswith("predict-cheap") and threads[1:] == ["MainThread", "MainThread"]


def test_after_sees_each_call_once_and_its_failure_fails_no_request(caplog):
    rec = Recorder()
    seen: list[int] = []

    def after(result):
        seen.append(len(result.predictions))
        if len(seen) == 2:
            raise RuntimeError("bookkeeping broke")

    batcher = AdaptiveBatcher(rec, max_rows=8, after=after)
    xs = [np.full((i % 3 + 1, 2), float(i)) for i in range(10)]
    results = asyncio.run(_run(batcher, rec, xs))
    assert all(isinstance(r, Prediction) for r in results)  # the hook's failure reached no request
    assert seen == rec.sizes and sum(seen) == 19  # once per model call, with the whole batch's rows
    assert "after-call hook failed" in caplog.text


def test_after_counts_the_parts_a_failing_batch_is_split_into():
    rec = Recorder(fail_on=7.0)
    seen: list[int] = []
    batcher = AdaptiveBatcher(rec, max_rows=4, after=lambda result: seen.append(len(result.predictions)))
    xs = [np.full((1, 2), float(i)) for i in range(10)]
    results = asyncio.run(_run(batcher, rec, xs))
    answered = sum(isinstance(r, Prediction) for r in results)
    assert answered == 9 and sum(seen) == answered  # the failed request's rows were never predicted
