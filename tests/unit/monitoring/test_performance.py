"""Delayed labels: ingested later, joined by request id, accuracy / macro F1 per window."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlcycle.errors import DataValidationError, InvalidInputError
from mlcycle.monitoring.performance import (
    check_performance,
    compute_performance,
    ingest_labels,
    read_label_file,
    read_labels,
)
from tests.unit.monitoring.wine_model import log_traffic, traffic


def labels_for(logged: pd.DataFrame, *, wrong_every: int = 0) -> pd.DataFrame:
    """Ground truth for ``logged``: the model's answer, deliberately wrong on every n-th row."""
    label = logged["prediction"].copy()
    if wrong_every:
        flip = label.index % wrong_every == 0
        label[flip] = (label[flip] + 1) % 3
    return pd.DataFrame({"request_id": logged["request_id"], "row": logged["row"], "label": label})


def test_accuracy_and_macro_f1_on_joined_rows(wine, tmp_path):
    logged = log_traffic(traffic(wine.model, wine.features, 200, seed=21), wine.payloads, wine.name, wine.version)
    labels = labels_for(logged, wrong_every=4)  # 50 of 200 wrong
    half = labels.iloc[:100]
    half.to_csv(tmp_path / "labels.csv", index=False)
    root = tmp_path / "labels"
    assert ingest_labels(tmp_path / "labels.csv", wine.name, root)["rows"] == 100
    summary = check_performance(
        f"{wine.name}@champion", wine.settings, since="1h", source=wine.payloads, labels_root=root, min_accuracy=0.8
    )
    assert summary["status"] == "ok"
    assert summary["labeled_rows"] == 100 and summary["label_coverage"] == pytest.approx(0.5)
    assert summary["accuracy"] == pytest.approx(0.75)
    assert 0 < summary["f1_macro"] < 1
    assert summary["below_threshold"] is True
    metrics = MlflowClient().get_run(summary["mlflow_run_id"]).data.metrics
    assert metrics["accuracy"] == pytest.approx(0.75)


def test_labels_without_row_apply_to_single_row_requests_and_later_labels_win(wine, tmp_path):
    logged = log_traffic(traffic(wine.model, wine.features, 60, seed=22), wine.payloads, wine.name, wine.version)
    root = tmp_path / "labels"
    wrong = labels_for(logged, wrong_every=1).drop(columns=["row"])
    wrong.to_parquet(tmp_path / "first.parquet")
    ingest_labels(tmp_path / "first.parquet", wine.name, root)
    right = labels_for(logged).drop(columns=["row"])
    right.to_csv(tmp_path / "fixed.csv", index=False)
    ingest_labels(tmp_path / "fixed.csv", wine.name, root)
    assert len(read_labels(root, wine.name)) == 60
    summary = check_performance(
        f"{wine.name}@champion", wine.settings, since="1h", source=wine.payloads, labels_root=root
    )
    assert summary["accuracy"] == 1.0 and summary["below_threshold"] is False


def test_too_few_labels_is_insufficient_never_an_alert():
    payloads = pd.DataFrame({"request_id": list("abcde"), "row": 0, "prediction": [0, 1, 2, 0, 1]})
    labels = pd.DataFrame({"request_id": list("ab"), "row": 0, "label": [1, 0]})
    result = compute_performance(payloads, labels, min_labels=30)
    assert result["status"] == "insufficient_data" and result["accuracy"] is None
    assert compute_performance(payloads.iloc[:0], labels)["status"] == "no_data"


def test_string_labels_compare_with_numeric_predictions():
    payloads = pd.DataFrame({"request_id": list("abcd"), "row": 0, "prediction": [0, 1, 2, 1]})
    labels = pd.DataFrame({"request_id": list("abcd"), "row": 0, "label": ["0", "1", "2", "2"]})
    assert compute_performance(payloads, labels, min_labels=1)["accuracy"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("request_id,truth\na,1\n", "label"),
        ("id,label\na,1\n", "request_id"),
        ("request_id,label\na,1\na,2\n", "request_id"),
        ("request_id,row,label\na,x,1\n", "row"),
    ],
)
def test_bad_label_files_name_the_column(tmp_path, content, field):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(DataValidationError) as err:
        read_label_file(path)
    assert err.value.field == field


def test_label_file_must_exist_and_be_csv_or_parquet(tmp_path):
    with pytest.raises(InvalidInputError):
        read_label_file(tmp_path / "nope.csv")
    (tmp_path / "labels.json").write_text("{}")
    with pytest.raises(InvalidInputError):
        read_label_file(tmp_path / "labels.json")


def test_labels_round_trip_through_s3(tmp_path, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    pd.DataFrame({"request_id": ["a", "b"], "label": [1, 2]}).to_csv(tmp_path / "first.csv", index=False)
    pd.DataFrame({"request_id": ["b"], "label": [0]}).to_csv(tmp_path / "fix.csv", index=False)
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="mlcycle")
        stored = ingest_labels(tmp_path / "first.csv", "team-a.wine", "s3://mlcycle/labels/team-a")
        assert stored["path"].startswith("s3://mlcycle/labels/team-a/wine/labels-")
        ingest_labels(tmp_path / "fix.csv", "team-a.wine", "s3://mlcycle/labels/team-a")
        labels = read_labels("s3://mlcycle/labels/team-a", "team-a.wine").sort_values("request_id")
        assert labels["label"].tolist() == [1, 0]  # the later ingestion of b wins
        assert read_labels("s3://mlcycle/labels/team-b", "team-b.wine").empty
