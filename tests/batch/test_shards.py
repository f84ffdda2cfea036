"""Sharded batch scoring on the plain functions: plan → score each shard → collect, against the unsharded job."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcycle.batch import score_batch
from mlcycle.batch.shards import (
    MANIFEST,
    ShardFailedError,
    plan_shards,
    read_dataset,
    read_manifest,
    score_shard,
    score_sharded,
)
from mlcycle.errors import InvalidInputError
from tests.batch.conftest import wine_like

COMPARED = ["id", "row", "prediction", "proba_0", "proba_1", "proba_2"]


def frame(wine, n=300, seed=3) -> pd.DataFrame:
    rows = wine_like(wine.X, n, seed=seed)
    rows.insert(0, "id", np.arange(1000, 1000 + n))
    return rows


def with_bad_rows(rows: pd.DataFrame, where=(7, 151, 298)) -> pd.DataFrame:
    rows = rows.astype({"alcohol": object})
    rows.loc[list(where), "alcohol"] = "n/a"
    return rows


def unsharded(wine, source: str, tmp_path: Path, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    out = tmp_path / "unsharded.parquet"
    score_batch("wine@champion", source, str(out), wine.settings, chunk_rows=64, **kwargs)
    quarantine = tmp_path / "unsharded.quarantine.parquet"
    return pd.read_parquet(out), (pd.read_parquet(quarantine) if quarantine.exists() else None)


def same_rows(sharded: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(expected) > 0
    pd.testing.assert_frame_equal(sharded[COMPARED], expected[COMPARED], check_exact=True)
    assert set(expected["prediction"]) == {0, 1, 2}  # not vacuous: every class occurs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_shards_by_byte_range_equal_the_unsharded_job_and_quarantine_the_same_rows(wine, tmp_path):
    from mlflow.tracking import MlflowClient

    source = tmp_path / "in.csv"
    with_bad_rows(frame(wine)).to_csv(source, index=False)
    expected, expected_bad = unsharded(wine, str(source), tmp_path, on_bad_rows="quarantine")

    result = score_sharded("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=3,
                           on_bad_rows="quarantine", chunk_rows=64)
    same_rows(read_dataset(str(tmp_path / "out")), expected)
    bad = read_dataset(str(tmp_path / "out"), quarantine=True)
    assert bad["row"].tolist() == expected_bad["row"].tolist() == [7, 151, 298]
    assert bad["reason"].tolist() == expected_bad["reason"].tolist()

    manifest = read_manifest(str(tmp_path / "out"))
    assert len(manifest["shards"]) == 3 and result.shards_scored == 3
    assert all(80 < s["rows_read"] < 120 for s in manifest["shards"])  # the rows really are spread
    assert sum(s["rows"] for s in manifest["shards"]) == manifest["rows_scored"] == 297
    assert sum(s["quarantined"] for s in manifest["shards"]) == manifest["rows_quarantined"] == 3
    for entry in manifest["shards"]:  # checksums are of the files as they are in the dataset
        assert sha256(tmp_path / "out" / entry["part"]) == entry["sha256"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [MANIFEST, "quarantine", *(s["part"] for s in manifest["shards"])])
    assert not (tmp_path / "out.shards").exists()  # the staging area is gone

    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["shards"] == "3"
    assert run.data.metrics["rows_scored"] == 297 and run.data.metrics["rows_quarantined"] == 3
    assert set(read_dataset(str(tmp_path / "out"))["run_id"]) == {result.run_id}


def test_parquet_shards_by_row_group_equal_the_unsharded_job(wine, tmp_path):
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame(wine), preserve_index=False), source, row_group_size=40)
    expected, _ = unsharded(wine, str(source), tmp_path)
    plan = plan_shards("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=3,
                       chunk_rows=64)
    # 8 row groups of 40 rows (the last 20) cut where the running count crosses 100 and 200.
    assert [s.pieces[0].row_groups for s in plan.shards] == [(0, 1, 2), (3, 4), (5, 6, 7)]
    assert [(s.first_row, s.rows) for s in plan.shards] == [(0, 120), (120, 80), (200, 100)]
    assert plan.model_uri.endswith("/1")  # the alias is pinned to the version it named when planned
    result = score_sharded("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=3,
                           chunk_rows=64)
    same_rows(read_dataset(str(tmp_path / "out")), expected)
    assert [s["rows"] for s in result.manifest["shards"]] == [120, 80, 100]


def test_a_directory_of_parquet_files_is_sharded_across_files(wine, tmp_path):
    rows = frame(wine, 200)
    (tmp_path / "in").mkdir()
    for i, part in enumerate((rows.iloc[:90], rows.iloc[90:])):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp_path / "in" / f"{i}.parquet",
                       row_group_size=30)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp_path / "whole.parquet")
    expected, _ = unsharded(wine, str(tmp_path / "whole.parquet"), tmp_path)
    score_sharded("wine@champion", str(tmp_path / "in"), str(tmp_path / "out"), wine.settings, shards=2)
    same_rows(read_dataset(str(tmp_path / "out")), expected)


def test_s3_csv_and_parquet_inputs_and_dataset(wine, tmp_path, monkeypatch):
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    rows = frame(wine, 240)
    rows.to_csv(tmp_path / "in.csv", index=False)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp_path / "in.parquet", row_group_size=50)
    expected, _ = unsharded(wine, str(tmp_path / "in.csv"), tmp_path)
    with mock_aws():
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="scoring")
        for name in ("in.csv", "in.parquet"):
            s3.upload_file(str(tmp_path / name), "scoring", f"in/{name}")
        for name in ("in.csv", "in.parquet"):
            out = f"s3://scoring/out/{name.replace('.', '-')}"
            score_sharded("wine@champion", f"s3://scoring/in/{name}", out, wine.settings, shards=3, chunk_rows=64)
            same_rows(read_dataset(out), expected)
            manifest = read_manifest(out)
            for entry in manifest["shards"]:
                body = s3.get_object(Bucket="scoring", Key=f"out/{name.replace('.', '-')}/{entry['part']}")
                assert hashlib.sha256(body["Body"].read()).hexdigest() == entry["sha256"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="scoring")["Contents"]]
        assert not [k for k in keys if ".shards/" in k]  # staging removed
        assert pd.read_parquet(io.BytesIO(s3.get_object(Bucket="scoring", Key=keys[-1])["Body"].read())) \
            is not None


def test_a_failed_shard_names_itself_and_leaves_no_output(wine, tmp_path):
    from mlflow.tracking import MlflowClient

    source = tmp_path / "in.parquet"
    rows = frame(wine)
    rows.loc[130, "proline"] = float("nan")  # in the second of three shards
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), source, row_group_size=50)
    plan = plan_shards("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=3)
    score_shard(plan, 0, wine.settings)
    with pytest.raises(ShardFailedError, match=r"shard 1 of 3 \(.*in.parquet row groups 2-3, rows 100-199\) "
                                               r"failed: 1 of 100 rows .* row 130: proline: missing") as e:
        score_shard(plan, 1, wine.settings)
    assert e.value.shard == 1 and e.value.http_status == 400 and e.value.cause_type == "BadRowsError"
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "out.shards").rglob("*-00001.parquet"))
    run = MlflowClient().get_run(plan.run_id)
    assert run.info.status == "FAILED" and run.data.tags["mlcycle.batch.failed_shard"] == "1"
    with pytest.raises(ShardFailedError, match="shard 1 of 3"):  # the whole job fails the same way
        score_sharded("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=3)
    assert not (tmp_path / "out").exists()


def test_a_rerun_scores_only_the_missing_shards(wine, tmp_path):
    from mlflow.tracking import MlflowClient

    source = tmp_path / "in.csv"
    frame(wine).to_csv(source, index=False)
    out = tmp_path / "out"
    # An interrupted job: shard 0 was scored, then the job died.
    plan = plan_shards("wine@champion", str(source), str(out), wine.settings, shards=3)
    score_shard(plan, 0, wine.settings)
    resumed = score_sharded("wine@champion", str(source), str(out), wine.settings, shards=3)
    assert (resumed.shards_scored, resumed.shards_reused) == (2, 1) and resumed.run_id == plan.run_id
    before = read_dataset(str(out))
    manifest = read_manifest(str(out))
    parts = [out / s["part"] for s in manifest["shards"]]
    stamps = [p.stat().st_mtime_ns for p in parts]

    parts[1].unlink()
    again = score_sharded("wine@champion", str(source), str(out), wine.settings, shards=3)
    assert (again.shards_scored, again.shards_reused) == (1, 2)
    assert [p.stat().st_mtime_ns for p in parts][::2] == stamps[::2]  # shards 0 and 2 untouched
    assert parts[1].exists() and read_manifest(str(out)) == manifest  # same bytes, same checksum
    pd.testing.assert_frame_equal(read_dataset(str(out)), before)
    assert MlflowClient().get_run(again.run_id).info.status == "FINISHED"

    # A changed input is a new plan: everything is scored again and the old parts go.
    frame(wine, seed=9).to_csv(source, index=False)
    fresh = score_sharded("wine@champion", str(source), str(out), wine.settings, shards=3)
    assert fresh.shards_scored == 3 and fresh.run_id != plan.run_id
    assert sorted(p.name for p in out.glob("part-*")) == sorted(s["part"] for s in fresh.manifest["shards"])


def test_outputs_that_are_not_a_dataset_directory_are_refused(wine, tmp_path):
    source = tmp_path / "in.csv"
    frame(wine, 20).to_csv(source, index=False)
    with pytest.raises(InvalidInputError, match="names a file"):
        plan_shards("wine@champion", str(source), str(tmp_path / "out.parquet"), wine.settings, shards=2)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="is not a batch dataset"):
        plan_shards("wine@champion", str(source), str(tmp_path / "busy"), wine.settings, shards=2)
    with pytest.raises(InvalidInputError, match="shards must be at least 1"):
        plan_shards("wine@champion", str(source), str(tmp_path / "out"), wine.settings, shards=0)
