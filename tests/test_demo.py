"""`make demo` runs `mlcycle demo`: run it end to end and check what it claims."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow


def test_demo_tells_the_whole_lifecycle_and_cleans_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLCYCLE_", "MLFLOW_"))}
    env["MLCYCLE_HOME"] = str(tmp_path)
    mlcycle = Path(sys.executable).parent / "mlcycle"
    done = subprocess.run([str(mlcycle), "demo", "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    home = Path(report["home"])
    assert home == tmp_path / "demo"

    # 1-2: a champion, then a challenger that passed the gate but was held for the canary.
    assert report["champion_version"] == "1" and report["challenger_version"] == "2"
    assert report["challenger_action"] == "promote"
    # 3: both versions answered during the canary, the challenger near its share (20 requests at 30%:
    # binomial sd 2.05; 4 sd either side still leaves at least one answer each).
    answered = report["answered_by"]
    assert set(answered) == {"1", "2"} and sum(answered.values()) == 20
    assert abs(answered["2"] - 6) <= 8
    # 4: after `promote` the server followed the alias without a restart.
    assert report["after_promotion_version"] == "2"
    assert report["aliases"] == {"champion": "2", "challenger": "2"}
    # 5-6: the shifted traffic was logged and drift found on exactly the shifted features.
    assert report["payload_rows"] >= 400
    assert sorted(report["drift"]["drifted_columns"]) == ["alcohol", "color_intensity"]
    assert report["drift"]["dataset_drift"] is True
    assert Path(report["report_path"]).is_file() and Path(report["report_path"]).suffix == ".html"
    assert any(line.startswith("mlcycle_requests_total") for line in report["metrics_sample"])
    # The story was told on stderr (with --json), chapter by chapter.
    for chapter in ("1. Train", "2. Train a challenger", "3. Serve", "4. Promote", "5. A shifted", "6. Drift"):
        assert chapter in done.stderr
    # Every process the demo started has stopped: none is left with the demo's home in its environment.
    leftovers = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("MLCYCLE_HOME") == str(home):
                leftovers.append(process.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    assert not leftovers, f"processes left running: {leftovers}"
