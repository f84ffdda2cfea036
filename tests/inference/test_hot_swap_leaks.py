"""50 hot swaps on a real predictor: the download root and the RSS stay flat; a broken version is
retried with exponential backoff, not downloaded again on every poll."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests.inference.conftest import start_predictor, stop_predictor
from tests.inference.wine_models import build_wine_models, log_wine_model

pytestmark = pytest.mark.slow

ROW = {"inputs": [{"name": "input-0", "shape": [1, 13], "datatype": "FP64",
                   "data": [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0]}]}
SWAPS = 50
POLL = 0.05


def _disk(root: Path) -> tuple[int, int]:
    """(directories directly under root, bytes of all files under it)."""
    dirs = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    return len(dirs), size


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    saved = dict(os.environ)
    models = build_wine_models(tmp_path_factory.mktemp("swap50-home"))
    os.environ.clear()
    os.environ.update(saved)
    return models


def test_fifty_swaps_keep_disk_and_memory_flat(registry, tmp_path):
    from mlflow.tracking import MlflowClient

    from mlcycle import tracking

    root = tmp_path / "downloads"
    env = {**registry.env, "MLCYCLE_SERVING_POLL_SECONDS": str(POLL), "MLCYCLE_SERVING_DOWNLOAD_DIR": str(root),
           "MLCYCLE_SERVING_PAYLOAD_LOG": "false"}
    p = start_predictor(["models:/wine@champion"], env, tmp_path / "swap.log", grpc=False)
    tracking.configure(registry.settings)
    client = MlflowClient()
    proc = psutil.Process(p.proc.pid)

    def swap_to(version: str) -> None:
        client.set_registered_model_alias("wine", "champion", version)
        deadline = time.monotonic() + 30
        with p.client() as c:
            while time.monotonic() < deadline:
                r = c.post("/v2/models/wine/infer", json=ROW)
                assert r.status_code == 200, r.text
                if r.json()["model_version"] == version:
                    return
                time.sleep(0.02)
        raise AssertionError(f"never swapped to {version}: {p.log.read_text()[-2000:]}")

    try:
        for i in range(6):  # warm up: both versions loaded a few times, allocator pools filled
            swap_to("2" if i % 2 == 0 else "1")
        rss_before, disk_before = proc.memory_info().rss, _disk(root)
        for i in range(SWAPS):
            swap_to("2" if i % 2 == 0 else "1")
        time.sleep(0.5)
        rss_after, disk_after = proc.memory_info().rss, _disk(root)

        # A version that cannot be loaded: retried with backoff, not downloaded on every 50 ms poll.
        _, broken = log_wine_model("random_forest", "wine", registry.X, registry.y, {"n_estimators": 3},
                                   registry.experiment_id)
        from mlcycle.serving.loading import load_model

        (Path(load_model(f"models:/wine/{broken}", registry.settings).local_path) / "model.skops").unlink()
        client.set_registered_model_alias("wine", "champion", broken)
        time.sleep(3.0)
        with p.client() as c:
            metrics = c.get("/metrics").text
            assert c.post("/v2/models/wine/infer", json=ROW).json()["model_version"] == "1"
        failures = next(float(x.rsplit(" ", 1)[1]) for x in metrics.splitlines()
                        if x.startswith('mlcycle_model_load_failures_total{model="wine"}'))
        disk_broken = _disk(root)
    finally:
        stop_predictor(p.proc)
    print(f"\n{SWAPS} swaps: RSS {rss_before / 1e6:.1f} -> {rss_after / 1e6:.1f} MB; download root "
          f"{disk_before} -> {disk_after} (dirs, bytes); broken version: {failures:.0f} load attempts in 3 s "
          f"at a {POLL} s poll")
    assert disk_after == disk_before and disk_after[0] == 1, (disk_before, disk_after)
    assert rss_after - rss_before < 20 * 1024 * 1024, (rss_before, rss_after)
    assert 1 <= failures <= 4, failures  # 0.5 s, 1 s, 2 s apart: not 60 downloads in 3 s
    assert disk_broken == disk_after  # the failed downloads were removed too
    assert _disk(root)[0] == 0, "the served version's directory outlived the server"
