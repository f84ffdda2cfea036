"""Batch scoring through the predictor's functions: outputs, keys, both bad-row rules, the MLflow run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.batch import BadRowsError, score_batch
from mlcycle.errors import InvalidInputError, ModelNotFoundError
from tests.batch.conftest import wine_like

PROBA = ["proba_0", "proba_1", "proba_2"]


def frame_with_ids(wine, n=300) -> pd.DataFrame:
    frame = wine_like(wine.X, n, seed=3)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(n)])
    frame["batch_date"] = "2026-11-24"
    return frame


def write(frame: pd.DataFrame, path) -> str:
    if str(path).endswith(".csv"):
        frame.to_csv(path, index=False)
    else:  # a column holding a word among numbers is a text column in Parquet
        text = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, str)).any()]
        frame.astype({c: "string" for c in text}).to_parquet(path, index=False)
    return str(path)


def mlflow_run(run_id: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient().get_run(run_id)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_scores_every_row_in_chunks_as_the_estimator_does(wine, tmp_path, suffix):
    frame = frame_with_ids(wine)
    progress = []
    result = score_batch(
        "models:/wine@champion", write(frame, tmp_path / f"in.{suffix}"), str(tmp_path / "out.parquet"),
        wine.settings, chunk_rows=64, progress=lambda done, total: progress.append((done, total)),
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["customer_id", "batch_date", "row", "prediction", *PROBA, "model_name",
                                 "model_version", "run_id"]
    est = wine.estimators["1"]
    features = frame[wine.X.columns]
    assert out["customer_id"].tolist() == frame["customer_id"].tolist()
    assert out["row"].tolist() == list(range(len(frame)))
    assert out["prediction"].tolist() == est.predict(features).tolist()
    # the forest scores compiled (float32 ONNX Runtime), as the predictor serves it: the 1e-6 contract
    np.testing.assert_allclose(out[PROBA].to_numpy(), est.predict_proba(features), rtol=0, atol=1e-6)
    assert set(out["model_name"]) == {"wine"} and set(out["model_version"]) == {"1"}
    assert set(out["run_id"]) == {result.run_id}
    assert (result.rows_read, result.rows_scored, result.rows_quarantined) == (300, 300, 0)
    total = 300 if suffix == "parquet" else None
    assert progress == [(64, total), (128, total), (192, total), (256, total), (300, total)]

    run = mlflow_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model_uri"] == "models:/wine@champion"
    assert run.data.params["model_version"] == "1"
    assert run.data.params["input"].endswith(f"in.{suffix}")
    assert run.data.metrics["rows_scored"] == 300 and run.data.metrics["rows_quarantined"] == 0
    assert run.data.metrics["rows_per_second"] > 0
    assert run.data.tags["mlcycle.batch.model"] == "wine"


def test_version_reference_and_explicit_keys(wine, tmp_path):
    frame = frame_with_ids(wine, 20)
    score_batch("wine/2", write(frame, tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), wine.settings,
                keys=["customer_id", "alcohol"])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns)[:3] == ["customer_id", "alcohol", "row"]
    assert out["alcohol"].tolist() == frame["alcohol"].tolist()
    assert set(out["model_version"]) == {"2"}
    assert out["prediction"].tolist() == wine.estimators["2"].predict(frame[wine.X.columns]).tolist()


def with_bad_rows(wine) -> pd.DataFrame:
    frame = frame_with_ids(wine, 200).astype({"alcohol": object, "ash": object})
    frame.loc[5, "alcohol"] = "twelve"
    frame.loc[70, "ash"] = None
    frame.loc[150, "magnesium"] = np.inf
    return frame


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_fail_rule_lists_rows_and_reasons_and_writes_nothing(wine, tmp_path, suffix):
    source = write(with_bad_rows(wine), tmp_path / f"in.{suffix}")
    with pytest.raises(BadRowsError) as caught:
        score_batch("models:/wine@champion", source, str(tmp_path / "out.parquet"), wine.settings, chunk_rows=64)
    err = caught.value
    assert err.count == 3
    assert [r for r, _ in err.rows] == [5, 70, 150]
    assert "not a number ('twelve')" in err.rows[0][1] and "ash: missing" in err.rows[1][1]
    assert "magnesium: infinite" in err.rows[2][1]
    assert "row 5: alcohol" in err.message and "row 150: magnesium" in err.message
    # No output and no staging file left behind; the rows before the first bad one were not kept.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"in.{suffix}"]

    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("mlcycle-batch").experiment_id],
        filter_string=f"params.input = '{source}'",
    )
    assert runs and runs[0].info.status == "FAILED"


def test_fail_rule_keeps_an_existing_output_untouched(wine, tmp_path):
    old = tmp_path / "out.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(old)
    with pytest.raises(BadRowsError):
        score_batch("wine@champion", write(with_bad_rows(wine), tmp_path / "in.csv"), str(old), wine.settings)
    assert pd.read_parquet(old).equals(pd.DataFrame({"x": [1]}))


def test_quarantine_rule_sets_bad_rows_aside_and_scores_the_rest(wine, tmp_path):
    frame = with_bad_rows(wine)
    result = score_batch(
        "wine@champion", write(frame, tmp_path / "in.csv"), str(tmp_path / "out.parquet"), wine.settings,
        on_bad_rows="quarantine", chunk_rows=64,
    )
    assert (result.rows_read, result.rows_scored, result.rows_quarantined) == (200, 197, 3)
    assert result.quarantine_uri == str(tmp_path / "out.quarantine.parquet")
    bad = pd.read_parquet(result.quarantine_uri)
    assert bad["row"].tolist() == [5, 70, 150]
    assert bad["customer_id"].tolist() == ["c0005", "c0070", "c0150"]
    assert bad["alcohol"].iloc[0] == "twelve" and pd.isna(bad["ash"].iloc[1])
    assert bad["reason"].tolist()[0] == "alcohol: not a number ('twelve')"
    assert "infinite" in bad["reason"].iloc[2]

    out = pd.read_parquet(tmp_path / "out.parquet")
    good = frame.drop(index=[5, 70, 150])
    assert out["row"].tolist() == good.index.tolist()
    features = good[wine.X.columns].astype(float)
    assert out["prediction"].tolist() == wine.estimators["1"].predict(features).tolist()
    assert mlflow_run(result.run_id).data.metrics["rows_quarantined"] == 3


def test_quarantine_without_bad_rows_still_replaces_the_quarantine_file(wine, tmp_path):
    stale = tmp_path / "q" / "bad.parquet"
    stale.parent.mkdir()
    pd.DataFrame({"row": [1], "reason": ["from an earlier run"]}).to_parquet(stale)
    result = score_batch("wine@champion", write(frame_with_ids(wine, 10), tmp_path / "in.csv"),
                         str(tmp_path / "out.parquet"), wine.settings, on_bad_rows="quarantine",
                         quarantine_uri=str(stale))
    assert result.quarantine_uri == str(stale) and (result.rows_scored, result.rows_quarantined) == (10, 0)
    bad = pd.read_parquet(stale)
    assert len(bad) == 0 and {"customer_id", "alcohol", "row", "reason"} <= set(bad.columns)


def test_empty_input_gives_an_empty_output_with_the_columns(wine, tmp_path):
    frame = frame_with_ids(wine, 0)
    score_batch("wine@champion", write(frame, tmp_path / "in.parquet"), str(tmp_path / "out.parquet"),
                wine.settings)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 0 and "proba_2" in out.columns and "customer_id" in out.columns


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"keys": ["nope"]}, "key", "'nope' not in the input"),
        ({"keys": ["customer_id", "row"]}, "key", "clash with output columns"),
        ({"on_bad_rows": "skip"}, "on_bad_rows", "use one of fail, quarantine"),
        ({"chunk_rows": 0}, "chunk_rows", "at least 1"),
    ],
)
def test_bad_arguments_are_named(wine, tmp_path, kwargs, field, message):
    frame = frame_with_ids(wine, 5).rename(columns={"batch_date": "row"})
    with pytest.raises(InvalidInputError) as caught:
        score_batch("wine@champion", write(frame, tmp_path / "in.csv"), str(tmp_path / "out.parquet"),
                    wine.settings, **kwargs)
    assert caught.value.field == field and message in caught.value.message
    assert not (tmp_path / "out.parquet").exists()


def test_missing_feature_column_fails_before_scoring(wine, tmp_path):
    frame = frame_with_ids(wine, 5).drop(columns=["proline"])
    with pytest.raises(InvalidInputError, match="missing column.*proline") as caught:
        score_batch("wine@champion", write(frame, tmp_path / "in.parquet"), str(tmp_path / "out.parquet"),
                    wine.settings)
    assert caught.value.field == "proline"


def test_output_must_be_parquet_and_input_must_exist(wine, tmp_path):
    source = write(frame_with_ids(wine, 5), tmp_path / "in.csv")
    with pytest.raises(InvalidInputError, match="must be a .parquet file"):
        score_batch("wine@champion", source, str(tmp_path / "out.csv"), wine.settings)
    with pytest.raises(InvalidInputError, match="no such file"):
        score_batch("wine@champion", str(tmp_path / "missing.csv"), str(tmp_path / "out.parquet"), wine.settings)
    with pytest.raises(ModelNotFoundError):
        score_batch("wine@nobody", source, str(tmp_path / "out.parquet"), wine.settings)


def test_s3_input_and_outputs(wine, tmp_path, monkeypatch):
    import io

    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    frame = with_bad_rows(wine)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="scoring")
        s3.put_object(Bucket="scoring", Key="in/rows.csv", Body=frame.to_csv(index=False).encode())
        result = score_batch("wine@champion", "s3://scoring/in/rows.csv", "s3://scoring/out/scores.parquet",
                             wine.settings, on_bad_rows="quarantine", chunk_rows=64)
        scores = pd.read_parquet(io.BytesIO(s3.get_object(Bucket="scoring", Key="out/scores.parquet")["Body"].read()))
        bad = pd.read_parquet(
            io.BytesIO(s3.get_object(Bucket="scoring", Key="out/scores.quarantine.parquet")["Body"].read()))
    assert result.quarantine_uri == "s3://scoring/out/scores.quarantine.parquet"
    assert len(scores) == 197 and bad["row"].tolist() == [5, 70, 150]
    assert scores["customer_id"].tolist() == frame.drop(index=[5, 70, 150])["customer_id"].tolist()
