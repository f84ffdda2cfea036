"""Payload logs survive stops, on real predictor processes: SIGTERM of 1 or 2 REST workers writes every
acknowledged request; SIGKILL loses at most the last flush interval (0.5 s by default, so every request
acknowledged more than 1 s before the kill is in the store)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from mlcycle.serving.payload_log import read_payloads
from tests.inference.conftest import start_predictor, stop_predictor

pytestmark = pytest.mark.slow  # each test starts its own predictor (and the 2-worker one imports twice)

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
N = 300
MAX_SECONDS = 60


def _predictor(wine, tmp_path, workers: int):
    env = {**wine.env, "MLCYCLE_SERVING_PAYLOAD_DESTINATION": str(tmp_path / "payloads")}
    args = ["models:/wine/1", "--workers", str(workers)]
    return start_predictor(args, env, tmp_path / "predictor.log", grpc=False)


def _send(p, ids, deadline: float) -> list[tuple[str, float]]:
    """One-row requests on fresh connections (so the kernel spreads them over the workers)."""
    acked = []
    with p.client(limits=httpx.Limits(max_keepalive_connections=0)) as c:
        for rid in ids:
            if time.monotonic() > deadline:
                break
            r = c.post("/v2/models/wine/infer", json=ROW, headers={"x-request-id": rid})
            assert r.status_code == 200, r.text
            acked.append((rid, time.monotonic()))
    return acked


def _logged(tmp_path) -> set[str]:
    return set(read_payloads(tmp_path / "payloads", "wine")["request_id"])


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_writes_every_acknowledged_request(wine, tmp_path, workers):
    p = _predictor(wine, tmp_path, workers)
    try:
        acked = _send(p, [f"term-{i}" for i in range(N)], time.monotonic() + MAX_SECONDS)
    finally:
        stop_predictor(p.proc)  # SIGTERM to the process group: the parent and every worker
    assert len(acked) == N
    missing = {rid for rid, _ in acked} - _logged(tmp_path)
    assert not missing, f"{len(missing)} of {N} acknowledged requests were not logged ({p.log.read_text()[-2000:]})"
    assert "Segmentation fault" not in p.log.read_text()


def test_sigkill_loses_at_most_the_last_second(wine, tmp_path):
    p = _predictor(wine, tmp_path, 1)
    try:
        # Traffic for 3 s (bounded in count too), then the kill while requests are still arriving.
        acked = _send(p, [f"kill-{i}" for i in range(3000)], time.monotonic() + 3.0)
        killed_at = time.monotonic()
        os.killpg(p.proc.pid, signal.SIGKILL)
        p.proc.wait(timeout=10)
    finally:
        stop_predictor(p.proc)
    logged = _logged(tmp_path)
    old_enough = {rid for rid, t in acked if t < killed_at - 1.0}
    assert len(old_enough) >= 20, f"only {len(old_enough)} requests in the first 2 s: nothing to test"
    assert old_enough <= logged, f"{len(old_enough - logged)} requests acknowledged >1 s before SIGKILL were lost"
    print(f"\nSIGKILL: {len(logged)}/{len(acked)} logged; all {len(old_enough)} acknowledged >1 s before the kill")
