"""A drift check end to end on a local MLflow store: model version -> reference -> payload logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from mlflow.tracking import MlflowClient

from mlcycle.errors import InvalidInputError, ModelNotFoundError
from mlcycle.monitoring import export
from mlcycle.monitoring.check import RetrainPolicy, check_drift, monitor, retraining_arguments
from mlcycle.monitoring.drift import DriftConfig
from mlcycle.monitoring.reference import logged_model_id
from tests.unit.monitoring.wine_model import log_traffic, traffic

SHIFTED = {"alcohol": 1.3, "proline": 1.6}


def check(w, **kwargs):
    return check_drift(f"models:/{w.name}@champion", w.settings, source=w.payloads, **kwargs)


def log(w, rows, seed, scale=None, **kwargs):
    return log_traffic(
        traffic(w.model, w.features, rows, seed=seed, scale=scale), w.payloads, w.name, w.version, **kwargs
    )


def test_shifted_traffic_drifts_on_exactly_the_shifted_columns(wine):
    log(wine, 400, seed=7, scale=SHIFTED)
    summary = check(wine, since="1h")
    assert summary["drifted_columns"] == sorted(SHIFTED)
    assert summary["rows"] == 400 and summary["version"] == wine.version
    assert summary["status"] == "ok" and summary["dataset_drift"] is False  # 2 of 13 columns
    assert set(summary["scores"]) == set(wine.features)
    assert summary["report_path"].endswith(".html")
    json.dumps(summary)  # the summary is JSON as is
    client = MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags[export.TAG_MODEL] == wine.name
    assert run.data.tags[export.TAG_VERSION] == wine.version
    assert run.data.metrics["rows"] == 400
    assert run.data.metrics["drift_detected"] == 0
    assert run.data.metrics["drift_score.proline"] == pytest.approx(summary["scores"]["proline"])
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "drift")]
    assert any(p.endswith(".html") for p in artifacts)


def test_same_distribution_traffic_finds_nothing(wine):
    log(wine, 400, seed=8)
    summary = check(wine, since="1h")
    assert summary["drifted_columns"] == []
    assert summary["prediction_drift"] is False


def test_no_traffic_and_too_little_traffic_are_reported(wine):
    empty = check(wine, since="1h")
    assert empty["status"] == "no_data" and empty["rows"] == 0 and empty["retrain"] is False
    log(wine, 20, seed=9, scale={c: 3.0 for c in wine.features})
    few = check(wine, since="1h")
    assert few["status"] == "insufficient_data" and few["dataset_drift"] is False


def test_window_excludes_older_traffic(wine):
    log(wine, 300, seed=10, when=datetime.now(UTC) - timedelta(hours=3))
    assert check(wine, since="1h")["rows"] == 0
    assert check(wine, since="4h")["rows"] == 300


def test_traffic_of_another_version_is_not_counted(wine):
    log_traffic(traffic(wine.model, wine.features, 300, seed=13), wine.payloads, wine.name, "999")
    assert check(wine, since="1h")["status"] == "no_data"


def test_retrain_only_after_drift_persists_for_n_windows(wine):
    log(wine, 300, seed=11, scale={c: 1.8 for c in wine.features})
    policy = RetrainPolicy(windows=3)
    decisions = [check(wine, since="1h", policy=policy) for _ in range(3)]
    assert [d["dataset_drift"] for d in decisions] == [True, True, True]
    assert [d["consecutive_drift_windows"] for d in decisions] == [1, 2, 3]
    assert [d["retrain"] for d in decisions] == [False, False, True]
    # After a trigger the count starts again, so the next window alone does not retrain again.
    assert check(wine, since="1h", policy=policy)["retrain"] is False


def test_a_thin_window_neither_confirms_nor_breaks_the_streak(wine):
    log(wine, 200, seed=12, scale={c: 1.8 for c in wine.features})
    assert check(wine, since="1h")["consecutive_drift_windows"] == 1
    thin = check(wine, since="1h", config=DriftConfig(min_rows=10_000))
    assert thin["status"] == "insufficient_data" and thin["consecutive_drift_windows"] == 1
    assert check(wine, since="1h")["consecutive_drift_windows"] == 2


def test_a_quiet_window_breaks_the_streak(wine):
    log(wine, 200, seed=14, scale={c: 1.8 for c in wine.features}, when=datetime.now(UTC) - timedelta(hours=2))
    log(wine, 200, seed=15)
    assert check(wine, since="3h", until=_ago(minutes=90))["consecutive_drift_windows"] == 1
    quiet = check(wine, since="30m")
    assert quiet["status"] == "ok" and quiet["consecutive_drift_windows"] == 0


def test_unknown_model_and_bad_window_fail_clearly(wine):
    with pytest.raises(ModelNotFoundError):
        check_drift("models:/nosuch@champion", wine.settings)
    with pytest.raises(InvalidInputError) as err:
        check(wine, since="yesterday-ish")
    assert err.value.field == "since"


def test_monitor_runs_a_bounded_number_of_times_at_a_fixed_rate():
    clock = iter([0.0, 1.0, 601.0, 1202.0]).__next__
    slept, retrained = [], []
    results = iter([{"retrain": False}, {"retrain": True}, {"retrain": False}])
    runs = monitor(
        lambda: next(results),
        every_seconds=600,
        max_runs=3,
        sleep=slept.append,
        clock=clock,
        on_retrain=retrained.append,
    )
    assert runs == 3
    assert slept == [599.0, 599.0]
    assert retrained == [{"retrain": True}]


def _ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def test_drift_metrics_are_attached_to_the_model_versions_logged_model(wine):
    log(wine, 200, seed=16)
    summary = check(wine, since="1h")
    client = MlflowClient()
    model_id = logged_model_id(client.get_model_version(wine.name, wine.version))
    logged = client.get_logged_model(model_id)
    assert any(m.key == "rows" and m.run_id == summary["mlflow_run_id"] for m in logged.metrics)


def test_retraining_repeats_the_served_models_training(wine):
    log(wine, 200, seed=17, scale={c: 1.8 for c in wine.features})
    summary = check(wine, since="1h", policy=RetrainPolicy(windows=1))
    assert summary["retrain"] is True
    assert retraining_arguments(summary) == {
        "dataset": "wine",
        "model_name": wine.name,
        "team": "",
        "model_type": "random_forest",
        "target": "target",
    }
    assert retraining_arguments(summary, dataset="s3://data/wine.parquet")["dataset"] == "s3://data/wine.parquet"
    summary["training"]["dataset"] = None
    with pytest.raises(InvalidInputError) as err:
        retraining_arguments(summary)
    assert err.value.field == "dataset"
