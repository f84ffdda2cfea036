"""Sharded batch benchmark (issue 20): ``mlcycle batch --shards 1`` vs ``--shards 2 --parallelism 2`` on kfp.local.

Run with ``make bench-batch`` (after the unsharded benchmark) or ``python benchmarks/bench_batch_shards.py
[--rows N]``. Both runs score the same Parquet input (row groups of 10,000 rows) with the training default
forest, each as the whole command (plan, the ParallelFor of shard steps, collect: every step a subprocess).
Printed side by side: the wall time of each, the speed-up of 2 shards over 1, and the fixed cost of one
kfp.local step, estimated from a third run of 1 shard over 1,000 rows (3 steps, scoring negligible). The machine's
load average is printed: on a shared 2-core machine the speed-up moves with everyone else's work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import register_model, run_child, wine_like  # noqa: E402


def run(env, source: Path, out: Path, shards: int) -> float:
    cmd = [str(Path(sys.executable).with_name("mlcycle")), "batch", "models:/wine@champion", "--input", str(source),
           "--output", str(out), "--shards", str(shards), "--parallelism", str(shards), "--json"]
    _, wall, _ = run_child(cmd, env)
    return wall


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=400_000)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mlcycle-bench-shards-"))
    env = {**os.environ, "MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    register_model({k: v for k, v in env.items() if k.startswith(("MLCYCLE_", "MLFLOW_"))})
    frame = wine_like(args.rows)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), home / "in.parquet", row_group_size=10_000)
    pq.write_table(pa.Table.from_pandas(frame.head(1000), preserve_index=False), home / "tiny.parquet")
    load_before = os.getloadavg()[0]
    started = time.time()
    tiny = run(env, home / "tiny.parquet", home / "out-tiny", 1)
    one = run(env, home / "in.parquet", home / "out-1", 1)
    two = run(env, home / "in.parquet", home / "out-2", 2)
    load_after = os.getloadavg()[0]
    print(f"\n{args.rows:,} rows, forest (100 trees), Parquet row groups of 10,000; kfp.local, each a whole command\n")
    print(f"{'run':<36}{'wall s':>10}{'rows/s':>12}")
    print(f"{'1 shard, 1,000 rows (overhead)':<36}{tiny:>10.1f}{1000 / tiny:>12,.0f}")
    print(f"{'1 shard':<36}{one:>10.1f}{args.rows / one:>12,.0f}")
    print(f"{'2 shards, parallelism 2':<36}{two:>10.1f}{args.rows / two:>12,.0f}")
    print(f"\nspeed-up of 2 shards over 1: {one / two:.2f}x; fixed cost per kfp.local step ~{tiny / 3:.1f} s "
          f"(3 steps in the tiny run); load average {load_before:.1f} before / {load_after:.1f} after on "
          f"{os.cpu_count()} CPUs; {time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
