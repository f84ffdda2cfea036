"""The drift/performance PrometheusRule, run through the real promtool (Debian's prometheus package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ALERTS = Path(__file__).resolve().parents[3] / "kustomize" / "base" / "alerts"
RULE = ALERTS / "prometheusrule-drift.yaml"
RULE_TESTS = ALERTS / "drift-rules.test.yaml"
PUSHED = {
    "mlcycle_drift_detected",
    "mlcycle_drift_share",
    "mlcycle_drift_column_score",
    "mlcycle_drift_rows",
    "mlcycle_model_accuracy",
    "mlcycle_model_f1_macro",
    "mlcycle_drift_last_run_timestamp_seconds",
}

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None, reason="promtool not installed (Debian package prometheus; scripts/install-debian-deps.sh)"
)


def extract_rules(directory: Path) -> Path:
    """Write the PrometheusRule's ``spec`` (a plain rules file) and a copy of the rule tests into ``directory``."""
    rule = yaml.safe_load(RULE.read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    (directory / "drift-rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(RULE_TESTS, directory / "drift-rules.test.yaml")
    return directory / "drift-rules.test.yaml"


@needs_promtool
def test_rules_are_valid_and_their_unit_tests_pass(tmp_path):
    tests = extract_rules(tmp_path)
    checked = subprocess.run(
        [promtool, "check", "rules", "drift-rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs_promtool
def test_promtool_catches_a_wrong_expectation(tmp_path):
    """The rule tests can fail: the persistence alert must not fire before its 3h."""
    tests = extract_rules(tmp_path)
    tests.write_text(tests.read_text().replace("eval_time: 3h20m", "eval_time: 2h50m"))
    tested = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert tested.returncode != 0 and "MlcycleDriftPersistent" in tested.stdout + tested.stderr


def test_rules_use_only_metrics_the_checks_push():
    spec = yaml.safe_load(RULE.read_text())["spec"]
    exprs = [rule["expr"] for group in spec["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\bmlcycle_[a-z_]+\b", expr)}
    assert used and used <= PUSHED
    alerts = {rule["alert"] for group in spec["groups"] for rule in group["rules"]}
    assert {"MlcycleDriftDetected", "MlcycleModelAccuracyLow"} <= alerts
