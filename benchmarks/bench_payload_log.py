"""Payload logging's p99 cost, and a change's non-regression, measured side by side in one run (issue 16).

Run with ``make bench-payload-log`` or ``.venv/bin/python benchmarks/bench_payload_log.py [--baseline main]``.
A benchmark, not a test: it prints figures and ratios, it asserts nothing.

What it does, on one machine in one run:

1. Trains and registers the serving benchmark's wine models (``bench_serving.train_and_log``: a random
   forest of 100 trees, depth 8) into a temporary ``MLCYCLE_HOME``.
2. Starts on 127.0.0.1 (free ports) this checkout's predictor twice: payload logging **on** (the default,
   into a local directory) and **off** (``MLCYCLE_SERVING_PAYLOAD_LOG=false``). With ``--baseline REF``
   it also starts the same two from a temporary ``git worktree`` of ``REF`` (same virtualenv, the
   worktree's ``src`` first on ``PYTHONPATH``), so "does this branch regress serving?" is answered by
   the same run.
3. For each cell (1-row v2 requests at 32 and at 1 connection) loads every server in turn with wrk,
   ``--rounds`` interleaved rounds of ``--duration`` seconds each (after a 1 s warm-up), so drifting
   machine load hits all servers alike; a cell's p50/p99 are the medians over its rounds.
4. Prints req/s, p50, p99 per server and cell, then the ratios: p99 with logging on / off (the issue's
   bound: at most 1.10 at 32 connections) and, with a baseline, this checkout / baseline. The load
   average before and after is printed with them: on a shared machine, read the ratios, not the
   absolute figures.

Every process it starts is stopped in a ``finally``; the worktree is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_serving import (  # noqa: E402 - benchmarks/ is not a package
    RESULTS_DIR,
    ROOT,
    WRK_SCRIPT,
    Processes,
    Run,
    Server,
    combine,
    free_port,
    measure,
    train_and_log,
    wait_ready,
)

CELLS = ((1, 32), (1, 1))  # (rows per request, connections)
P99_BOUND = 1.10


def log(message: str) -> None:
    print(f"[bench-payload-log {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_predictor(
    procs: Processes, name: str, uri: str, home: Path, work: Path, *, logging_on: bool, code: Path, timeout: float
) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "MLCYCLE_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLCYCLE_SERVING_PAYLOAD_LOG": "true" if logging_on else "false",
        "MLCYCLE_SERVING_PAYLOAD_DESTINATION": str(work / f"payloads-{name}"),
        "MLCYCLE_SERVING_DOWNLOAD_DIR": str(work / f"downloads-{name}"),
        "MLCYCLE_SERVING_POLL_SECONDS": "0",
        "PYTHONPATH": os.pathsep.join([str(code / "src"), str(code)]),
    }
    args = [sys.executable, "-m", "inference", uri, "--host", "127.0.0.1", "--http-port", str(port)]
    log_path = work / f"{name}.log"
    proc = procs.start(args, log_path=log_path, env=env, cwd=code)
    base = f"http://127.0.0.1:{port}"
    served = uri.removeprefix("models:/").split("@")[0]
    wait_ready(base, [served], proc, log_path, timeout)
    return Server(name, base, {"forest": served}, proc, note=f"{code.name} payload log {'on' if logging_on else 'off'}")


def add_worktree(ref: str, work: Path) -> Path:
    path = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref], check=True,
                   capture_output=True)
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False,
                   capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per server, cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell (medians are kept)")
    parser.add_argument("--baseline", default=None, help="a git ref to compare with (e.g. main), same run")
    parser.add_argument("--ready-timeout", type=float, default=240.0)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-payload-log-"))
    procs = Processes()
    baseline = None
    try:
        models = train_and_log(work / "home")
        forest = models["forest"]
        script = work / "wrk.lua"
        script.write_text(WRK_SCRIPT)
        codes = {"this": ROOT}
        if args.baseline:
            baseline = add_worktree(args.baseline, work)
            codes[f"baseline({args.baseline})"] = baseline
        servers = []
        for label, code in codes.items():
            for on in (True, False):
                name = f"{label}:log-{'on' if on else 'off'}"
                log(f"starting {name}")
                servers.append(start_predictor(procs, name, forest.uri, work / "home", work, logging_on=on, code=code,
                                               timeout=args.ready_timeout))
        results: dict[tuple[str, int], Run] = {}
        for rows, connections in CELLS:
            parts: dict[str, list[Run]] = {s.name: [] for s in servers}
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else list(reversed(servers))
                for server in order:
                    measure(server, forest, rows, connections, 1, work, script)  # warm-up
                    parts[server.name].append(measure(server, forest, rows, connections, args.duration, work, script))
                    log(f"{server.name} c={connections} round {round_ + 1}: p99 {parts[server.name][-1].p99_ms:.2f} ms")
            for name, runs in parts.items():
                results[(name, connections)] = combine(runs)
        load_after = os.getloadavg()
        print_report(results, codes, load_before, load_after, args)
        RESULTS_DIR.mkdir(exist_ok=True)
        out = RESULTS_DIR / f"payload-log-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps({"load_before": load_before, "load_after": load_after,
                                   "runs": [asdict(r) for r in results.values()]}, indent=2))
        log(f"results written to {out}")
        return 0
    finally:
        procs.stop_all()
        if baseline is not None:
            remove_worktree(baseline)


def print_report(results, codes, load_before, load_after, args) -> None:
    print(f"\nPayload logging on vs off, 1-row v2 requests, {args.rounds} x {args.duration} s rounds per cell "
          f"(medians), load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min), "
          f"{os.cpu_count()} CPUs")
    print(f"{'server':<34} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for (name, connections), r in results.items():
        print(f"{name:<34} {connections:>5} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6}")
    print()
    for label in codes:
        for _, connections in CELLS:
            on, off = results[(f"{label}:log-on", connections)], results[(f"{label}:log-off", connections)]
            ratio = on.p99_ms / off.p99_ms if off.p99_ms else float("nan")
            verdict = "met" if ratio <= P99_BOUND else "NOT met"
            goal = f" (goal <= {P99_BOUND:.2f}: {verdict})" if connections == 32 else ""
            rps = on.rps / off.rps if off.rps else float("nan")
            print(f"{label}: p99 logging on/off at {connections} conns = {ratio:.2f}{goal}; req/s on/off = {rps:.2f}")
    base = next((label for label in codes if label != "this"), None)
    if base:
        for mode in ("on", "off"):
            for _, connections in CELLS:
                this, other = results[(f"this:log-{mode}", connections)], results[(f"{base}:log-{mode}", connections)]
                print(f"this / {base}, logging {mode}, {connections} conns: p99 {this.p99_ms / other.p99_ms:.2f}, "
                      f"req/s {this.rps / other.rps:.2f}")
    print("p99 per round (ms): " + "; ".join(
        f"{name} c={c}: " + ",".join(f"{x['p99_ms']:.1f}" for x in r.rounds) for (name, c), r in results.items()))


if __name__ == "__main__":
    sys.exit(main())
