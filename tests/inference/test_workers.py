"""Several REST workers: requests spread over processes, and /metrics adds them all up."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.inference.conftest import start_predictor, stop_predictor

ROW = {
    "inputs": [
        {
            "name": "input-0",
            "shape": [1, 13],
            "datatype": "FP64",
            "data": [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
        }
    ]
}
N = 40


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


@pytest.mark.slow  # two worker processes each import KServe, MLflow and scikit-learn before they answer
def test_two_workers_metrics_add_up(wine, tmp_path):
    env = {**wine.env, "MLCYCLE_SERVING_PAYLOAD_LOG": "false"}
    p = start_predictor(["models:/wine/1", "--workers", "2"], env, tmp_path / "workers.log", grpc=False)
    try:
        deadline = time.monotonic() + 60  # both workers import everything before they accept
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [
                c
                for c in _children(p.proc.pid)
                if "inference" in Path(f"/proc/{c}/cmdline").read_text()
                or "multiprocessing" in Path(f"/proc/{c}/cmdline").read_text()
            ]
            time.sleep(0.5)
        assert len(workers) >= 2, workers
        for _ in range(N):  # a fresh connection each time, so the kernel may hand it to either worker
            r = httpx.post(f"{p.url}/v2/models/wine/infer", json=ROW, timeout=30)
            assert r.status_code == 200, r.text
        for _ in range(6):  # every scrape, whichever worker answers it, sees all workers' requests
            text = httpx.get(f"{p.url}/metrics", timeout=30).text
            line = next(x for x in text.splitlines() if x.startswith("mlcycle_requests_total{") and 'status="200"' in x)
            assert float(line.rsplit(" ", 1)[1]) == N, line
    finally:
        stop_predictor(p.proc)


def test_workers_auto_is_one_per_core_and_a_bad_value_is_refused(capsys):
    import os

    from inference.__main__ import parse_args

    assert parse_args(["models:/wine/1", "--workers", "auto"]).workers == len(os.sched_getaffinity(0))
    assert parse_args(["models:/wine/1", "--workers", "3"]).workers == 3
    assert parse_args(["models:/wine/1"]).workers == 1
    for bad in ("many", "0"):
        with pytest.raises(SystemExit):
            parse_args(["models:/wine/1", "--workers", bad])
    assert "--workers takes a number or 'auto', not 'many'" in capsys.readouterr().err
