"""The monitoring components called as plain functions: artifacts written, decision returned."""

from __future__ import annotations

import json

from kfp import dsl

from components.check_drift import check_drift
from components.check_performance import check_performance
from tests.unit.monitoring.fixtures import logged_wine_fixture, monitoring_home_fixture, wine_fixture  # noqa: F401
from tests.unit.monitoring.test_performance import labels_for
from tests.unit.monitoring.wine_model import log_traffic, traffic


def test_check_drift_writes_report_metrics_summary_and_returns_the_decision(wine, tmp_path):
    log_traffic(
        traffic(wine.model, wine.features, 300, seed=41, scale={c: 1.8 for c in wine.features}),
        wine.payloads,
        wine.name,
        wine.version,
    )
    report = dsl.HTML(uri=str(tmp_path / "report.html"))
    metrics = dsl.Metrics(uri=str(tmp_path / "metrics"))
    summary = dsl.Artifact(uri=str(tmp_path / "summary.json"))
    decisions = [
        check_drift.python_func(
            model_name=wine.name,
            alias="champion",
            since="1h",
            payload_source=wine.payloads,
            method="",
            drift_share=0.5,
            min_rows=100,
            persistence_windows=2,
            report=report,
            metrics=metrics,
            summary=summary,
        )
        for _ in range(2)
    ]
    assert decisions == [False, True]
    assert "<html" in (tmp_path / "report.html").read_text()[:2000].lower()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["dataset_drift"] is True and written["retrain"] is True
    assert metrics.metadata["dataset_drift"] == 1.0 and metrics.metadata["rows"] == 300.0


def test_check_drift_on_an_empty_window_still_writes_a_report(wine, tmp_path):
    report = dsl.HTML(uri=str(tmp_path / "report.html"))
    decision = check_drift.python_func(
        model_name=wine.name,
        alias="champion",
        since="1h",
        payload_source=wine.payloads,
        method="",
        drift_share=0.5,
        min_rows=100,
        persistence_windows=1,
        report=report,
        metrics=dsl.Metrics(uri=str(tmp_path / "m")),
        summary=dsl.Artifact(uri=str(tmp_path / "s.json")),
    )
    assert decision is False
    assert "no_data" in (tmp_path / "report.html").read_text()


def test_check_performance_component(wine, tmp_path, monkeypatch):
    logged = log_traffic(traffic(wine.model, wine.features, 60, seed=42), wine.payloads, wine.name, wine.version)
    labels_for(logged).to_csv(tmp_path / "truth.csv", index=False)
    from mlcycle.monitoring.performance import ingest_labels

    ingest_labels(tmp_path / "truth.csv", wine.name, wine.settings.home_dir / "labels")
    metrics = dsl.Metrics(uri=str(tmp_path / "m"))
    below = check_performance.python_func(
        model_name=wine.name,
        alias="champion",
        since="1h",
        payload_source=wine.payloads,
        min_accuracy=0.9,
        metrics=metrics,
        summary=dsl.Artifact(uri=str(tmp_path / "s.json")),
    )
    assert below is False and metrics.metadata["accuracy"] == 1.0
