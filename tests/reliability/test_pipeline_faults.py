"""Pipeline faults: a register-and-gate step SIGKILLed after it registered its version, before any alias
moved, leaves the registry consistent, and the re-run completes; every lifecycle step is idempotent.

The kill is real: the step runs in its own ``python`` process against the same MLflow store; the test
polls the registry until the new version exists and then SIGKILLs the process (as a node losing a pod).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle
from mlcycle.registry import versions
from mlcycle.registry.gate import GatePolicy
from mlcycle.serving.servability import check_servability

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STEP = """
import sys
from mlcycle import lifecycle
from mlcycle.config import load_settings
from mlcycle import tracking
from mlcycle.registry.gate import GatePolicy

settings = load_settings()
tracking.configure(settings)
outcome = lifecycle.register_and_gate(sys.argv[1], "wine", GatePolicy(), settings)
if outcome.promote:
    lifecycle.promote_if_passed("wine", outcome.version)
print("completed", outcome.version, outcome.action)
"""


def assert_consistent(settings) -> str:
    """``champion`` points at an existing version that the predictor's code can serve; returns it."""
    champion = versions.alias_version("wine", "champion")
    assert champion is not None, "no champion"
    existing = {str(v.version) for v in MlflowClient().search_model_versions("name='wine'")}
    assert champion in existing
    report = check_servability("models:/wine@champion", settings)
    assert report.ok, report.reasons
    return champion


def test_a_step_killed_after_registering_leaves_the_champion_servable_and_a_rerun_completes(home, tmp_path):
    settings = home
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    train, test, target = tmp_path / "train.parquet", tmp_path / "test.parquet", prepared.target
    first = lifecycle.run_training(train, target, settings, registered_name="wine", model_type="logistic_regression",
                                   params={"C": 0.001})
    lifecycle.run_evaluation(first.run_id, test, target, "wine")
    outcome = lifecycle.register_and_gate(first.run_id, "wine", GatePolicy(), settings)
    lifecycle.promote_if_passed("wine", outcome.version)
    assert assert_consistent(settings) == outcome.version == "1"

    second = lifecycle.run_training(train, target, settings, registered_name="wine")  # a better forest
    lifecycle.run_evaluation(second.run_id, test, target, "wine")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", STEP, second.run_id], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if versions.version_of_run("wine", second.run_id) is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = proc.stdout.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the step was not killed mid-way (rc {proc.returncode}): {output}"
    killed_version = versions.version_of_run("wine", second.run_id)
    tags = versions.get_version("wine", killed_version).tags
    print(f"\nkilled after registering v{killed_version}; gate decision recorded: "
          f"{tags.get('mlcycle.gate.decision', 'none')}; champion v{versions.alias_version('wine', 'champion')}")
    assert assert_consistent(settings) == "1"  # the old champion still stands, and is servable

    # The re-run (a retried pipeline step) completes, reusing the version the killed step registered.
    rerun = lifecycle.register_and_gate(second.run_id, "wine", GatePolicy(), settings)
    assert rerun.version == killed_version
    assert rerun.promote, rerun.decision
    lifecycle.promote_if_passed("wine", rerun.version)
    assert assert_consistent(settings) == killed_version
    assert len(MlflowClient().search_model_versions("name='wine'")) == 2  # no duplicate version


def test_the_gate_and_promotion_are_idempotent(home, tmp_path):
    settings = home
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    train, test, target = tmp_path / "train.parquet", tmp_path / "test.parquet", prepared.target
    run = lifecycle.run_training(train, target, settings, registered_name="wine")
    lifecycle.run_evaluation(run.run_id, test, target, "wine")
    once = lifecycle.register_and_gate(run.run_id, "wine", GatePolicy(), settings)
    twice = lifecycle.register_and_gate(run.run_id, "wine", GatePolicy(), settings)
    assert (once.version, once.decision.decision, once.action) == (twice.version, twice.decision.decision,
                                                                   twice.action)
    lifecycle.promote_if_passed("wine", once.version)
    lifecycle.promote_if_passed("wine", once.version)  # promoting the champion again changes nothing
    assert versions.alias_version("wine", "champion") == once.version
    third = lifecycle.register_and_gate(run.run_id, "wine", GatePolicy(), settings)  # gating the champion itself
    assert third.version == once.version
    assert versions.alias_version("wine", "champion") == once.version
    assert len(MlflowClient().search_model_versions("name='wine'")) == 1
