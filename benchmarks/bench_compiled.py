"""In-process micro-benchmark (issue 19): a compiled forest's predict vs scikit-learn's, side by side.

``make bench-compiled`` (about a minute). The wine random forest of the serving benchmark (100 trees,
max depth 8) and a 100-tree regressor on the same data; for 1 and 64 rows, the best of ``--repeats``
timings of ``--calls`` calls each, for:

- scikit-learn ``predict_proba`` / ``predict`` (the proven path),
- mlcycle's joblib-free forest loop (``mlcycle.serving.predict.forest_predict_proba``, bit-identical),
- each compiled backend of ``mlcycle.serving.compiled`` (ONNX Runtime, Treelite), when it reproduces the
  model (the same check as at load time) — or the reason it does not.

Prints µs per call, each as a ratio to scikit-learn, the compile time and the target (≤ 50 µs for the
compiled forest, 1 row), with the load average it ran under. A benchmark, not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from mlcycle.serving.compiled import CompiledPredictor, compile_for_serving
from mlcycle.serving.predict import forest_predict_proba

TARGET_US = 50.0


def best_us(fn: Callable[[np.ndarray], object], x: np.ndarray, calls: int, repeats: int) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def force(runtime: str, model, frames) -> CompiledPredictor | str:
    """Compile with one backend only (the serving path tries ONNX Runtime, then Treelite)."""
    result = compile_for_serving(model, frames, backends=(runtime,))
    return result if isinstance(result, CompiledPredictor) else result.reason


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200, help="calls per timing (scikit-learn: a tenth)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    load = os.getloadavg()
    x, y = load_wine(return_X_y=True)
    clf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=1).fit(x, y)
    reg = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=0, n_jobs=1).fit(x[:, 1:], x[:, 0])
    rows = {1: x[:1], 64: x[:64]}
    print(f"in-process predict, wine, 100 trees depth 8; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'model':<11}{'path':<28}{'1 row µs':>10}{'×sk':>8}{'64 rows µs':>12}{'×sk':>8}{'compile s':>11}")
    verdicts = []
    for label, model, frames_x in (("classifier", clf, x), ("regressor", reg, x[:, 1:])):
        frames = [frames_x[:5], frames_x[::2]]
        sk_fn = model.predict_proba if label == "classifier" else model.predict
        slow = max(1, args.calls // 10)
        sk = {n: best_us(sk_fn, frames_x[: len(r)], slow, args.repeats) for n, r in rows.items()}
        paths: list[tuple[str, Callable | None, float | None, str]] = [("scikit-learn", sk_fn, None, "")]
        if label == "classifier":
            paths.append(("mlcycle forest loop", lambda a: forest_predict_proba(clf, a), None, ""))
        for runtime in ("onnxruntime", "treelite"):
            started = time.perf_counter()
            result = force(runtime, model, frames)
            took = time.perf_counter() - started
            if isinstance(result, str):
                paths.append((f"compiled {runtime}", None, None, result))
                continue
            fn = result.predict_proba if label == "classifier" else result.predict
            paths.append((f"compiled {runtime}", fn, took, ""))
        for name, fn, took, why in paths:
            if fn is None:
                print(f"{label:<11}{name:<28}  not used: {why[:90]}")
                continue
            us = {
                n: sk[n] if name == "scikit-learn" else best_us(fn, frames_x[: len(r)], args.calls, args.repeats)
                for n, r in rows.items()
            }
            c = f"{took:.2f}" if took is not None else ""
            ratios = f"{us[1]:>10.1f}{sk[1] / us[1]:>7.0f}×{us[64]:>12.1f}{sk[64] / us[64]:>7.0f}×"
            print(f"{label:<11}{name:<28}{ratios}{c:>11}")
            if name.startswith("compiled") and label == "classifier":
                verdicts.append((name, us[1]))
    for name, us in verdicts:
        met = "met" if us <= TARGET_US else "NOT met"
        print(f"target: {name} forest, 1 row ≤ {TARGET_US:.0f} µs: {us:.1f} µs ({met})")
    end = os.getloadavg()
    print(f"load average at the end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} (shared machine: indicative only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
