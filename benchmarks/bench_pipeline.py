"""Benchmark: the local training pipeline (kfp.local) versus the same functions in one process.

Both start from a fresh interpreter with an empty MLCYCLE_HOME, on the wine data, alternating, so the
comparison is fair: the in-process run pays its imports once; the pipeline pays them in every step.
It prints the wall times, their ratio against the target (pipeline within 2x of in-process), and where
the difference goes: per step, the pipeline's time against the function's, and the bare cost of
starting a step's interpreter with its imports.

It also runs the pipeline with a user's trainer (``benchmarks/wine_trainer.py``, the same forest through
``--trainer``) beside the built-in estimator and prints both: the trainer path must stay within 10%.

    python benchmarks/bench_pipeline.py [--repeats 2] [--trainer-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0
TRAINER_TARGET = 1.10  # a user's trainer within 10% of the built-in estimator

IN_PROCESS = r"""
import json, time
t0 = time.perf_counter()
from mlcycle.tracking import configured_settings
from mlcycle import lifecycle
from mlcycle.registry.gate import GatePolicy
settings = configured_settings()
steps = {"imports": time.perf_counter() - t0}
def timed(step, fn, *a, **k):
    t = time.perf_counter(); out = fn(*a, **k); steps[step] = time.perf_counter() - t; return out
home = settings.home_dir
name = timed("load-data", lifecycle.resolve_registered_name, "wine", "", "", settings)
prepared = timed("load-data+", lifecycle.prepare_data, "wine", None, home / "train.parquet", home / "test.parquet")
steps["load-data"] += steps.pop("load-data+")
trained = timed("train-model", lifecycle.run_training, home / "train.parquet", prepared.target, settings,
                registered_name=name, dataset="wine", data_hash=prepared.data_hash)
timed("evaluate-model", lifecycle.run_evaluation, trained.run_id, home / "test.parquet", prepared.target, name)
outcome = timed("register-model", lifecycle.register_and_gate, trained.run_id, name, GatePolicy(), settings)
if outcome.promote:
    timed("promote-model", lifecycle.promote_run_version, name, trained.run_id)
steps["total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(steps))
"""

PIPELINE = r"""
import json, time
t0 = time.perf_counter()
from mlcycle.tracking import configured_settings
from pipelines.local import run_pipeline
from pipelines.training_pipeline import training_pipeline
settings = configured_settings()
steps = {"imports": time.perf_counter() - t0}
last = [time.perf_counter()]
def on_step(step, status):
    now = time.perf_counter(); steps[step] = now - last[0]; last[0] = now
run_pipeline(training_pipeline, settings, log_file=settings.home_dir / "kfp.log", on_step=on_step, dataset="wine",
             trainer=TRAINER)
steps["total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(steps))
"""

STEP_IMPORTS = ("import kfp, mlflow, sklearn, pandas, mlcycle.lifecycle, mlcycle.tracking; "
                "from mlflow.tracking import MlflowClient")


def run(script: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-") as home:
        env = {**os.environ, "MLCYCLE_HOME": home, "MLFLOW_DISABLE_TELEMETRY": "true",
               # the steps import the user's trainer module from here, as they would from a user image
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))}
        for key in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLCYCLE_REGISTRY_URI"):
            env.pop(key, None)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=600)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    return wall, json.loads(line.removeprefix("RESULT "))


def bare_step_cost(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STEP_IMPORTS], check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating (median reported)")
    parser.add_argument("--trainer-only", action="store_true",
                        help="only the built-in estimator against the user's trainer, both through the pipeline")
    args = parser.parse_args()

    kinds = [("pipeline", PIPELINE.replace("TRAINER", '""')),
             ("trainer", PIPELINE.replace("TRAINER", '"wine_trainer:fit"'))]
    if not args.trainer_only:
        kinds.insert(0, ("in-process", IN_PROCESS))
    results: dict[str, list[tuple[float, dict]]] = {kind: [] for kind, _ in kinds}
    for i in range(args.repeats):
        for kind, script in kinds:
            wall, steps = run(script)
            results[kind].append((wall, steps))
            print(f"  run {i + 1}/{args.repeats} {kind:<10} {wall:6.1f} s", flush=True)

    def median_wall(kind: str) -> float:
        return statistics.median(w for w, _ in results[kind])

    def median_step(kind: str, step: str) -> float:
        return statistics.median(s.get(step, 0.0) for _, s in results[kind])

    steps = ["load-data", "train-model", "evaluate-model", "register-model", "promote-model"]
    builtin, trainer = median_wall("pipeline"), median_wall("trainer")
    print()
    print(f"{'step':<16}{'built-in s':>12}{'trainer s':>12}")
    for step in ["imports", *steps]:
        print(f"{step:<16}{median_step('pipeline', step):>12.2f}{median_step('trainer', step):>12.2f}")
    print(f"{'wall (process)':<16}{builtin:>12.2f}{trainer:>12.2f}")
    ratio = trainer / builtin
    verdict = "meets" if ratio <= TRAINER_TARGET else "misses"
    print(f"training pipeline with a trainer / with the built-in estimator = {ratio:.2f}x  "
          f"({verdict} the target of <= {TRAINER_TARGET:.2f}x)")
    if args.trainer_only:
        return
    bare = bare_step_cost(3)
    inproc, pipe = median_wall("in-process"), builtin
    print()
    print(f"{'step':<16}{'in-process s':>14}{'pipeline s':>12}{'difference s':>14}")
    for step in ["imports", *steps]:
        a, b = median_step("in-process", step), median_step("pipeline", step)
        print(f"{step:<16}{a:>14.2f}{b:>12.2f}{b - a:>14.2f}")
    print(f"{'wall (process)':<16}{inproc:>14.2f}{pipe:>12.2f}{pipe - inproc:>14.2f}")
    print()
    print(f"bare cost of one step's interpreter + imports (median of 3): {bare:.2f} s "
          f"x {len(steps)} steps = {bare * len(steps):.1f} s")
    ratio = pipe / inproc
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"pipeline / in-process = {ratio:.2f}x  ({verdict} the target of <= {TARGET_RATIO:.1f}x)")


if __name__ == "__main__":
    main()
