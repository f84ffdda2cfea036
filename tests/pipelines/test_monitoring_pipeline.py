"""The monitoring pipeline: compiled structure, and a real kfp.local run over logged traffic."""

from __future__ import annotations

import yaml

from pipelines.monitoring_pipeline import monitoring_pipeline
from tests.unit.monitoring.fixtures import logged_wine_fixture, monitoring_home_fixture, wine_fixture  # noqa: F401
from tests.unit.monitoring.wine_model import log_traffic, traffic


def test_compiles_with_retraining_nested_under_the_drift_condition(tmp_path):
    from kfp import compiler

    path = tmp_path / "monitoring.yaml"
    compiler.Compiler().compile(monitoring_pipeline, str(path))
    # kfp appends a second document when a step carries Kubernetes platform settings.
    spec = next(yaml.safe_load_all(path.read_text()))
    root = spec["root"]["dag"]["tasks"]
    assert {"check-drift", "check-performance"} <= set(root)
    condition = next(t for name, t in root.items() if name.startswith("condition"))
    assert "check-drift" in condition["dependentTasks"]
    assert (
        "Output" in condition["triggerPolicy"]["condition"]
        and "true" in condition["triggerPolicy"]["condition"].lower()
    )
    nested = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    retrain = spec["components"][next(iter(nested.values()))["componentRef"]["name"]]["dag"]["tasks"]
    assert {"load-data", "train-model", "register-model"} <= set(retrain)
    executors = spec["deploymentSpec"]["executors"]
    drift_exec = next(e for n, e in executors.items() if "check-drift" in n)
    assert drift_exec["container"]["image"].startswith("ghcr.io/mlcycle/mlcycle:")


def test_local_run_checks_drift_and_skips_retraining_without_persistent_drift(wine):
    from pipelines.local import run_pipeline

    log_traffic(traffic(wine.model, wine.features, 200, seed=51), wine.payloads, wine.name, wine.version)
    steps = []
    run_pipeline(
        monitoring_pipeline,
        wine.settings,
        on_step=lambda step, status: steps.append((step, status)),
        model_name=wine.name,
        since="1h",
        payload_source=wine.payloads,
    )
    assert ("check-drift", "SUCCESS") in steps and ("check-performance", "SUCCESS") in steps
    assert not any(step.startswith("train") for step, _ in steps)
