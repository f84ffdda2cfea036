"""Chunked reading and staged Parquet writing for batch jobs: local files and s3:// (moto)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlcycle.batch import default_quarantine_uri
from mlcycle.batch.io import StagedParquet, check_output_uri, iter_chunks, open_input
from mlcycle.errors import InvalidInputError


def table(n: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n) * 1e-7,
                         "label": [f"x{i}" for i in range(n)]})


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_chunks_cover_the_table_exactly_with_the_requested_columns(tmp_path, suffix):
    frame = table()
    path = tmp_path / f"t.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    with open_input(str(path)) as t:
        assert t.columns == ("id", "a", "b", "label")
        assert t.num_rows == (25 if suffix == "parquet" else None)
        chunks = list(iter_chunks(t, ["id", "b"], chunk_rows=10, numeric=["a", "b"]))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert all(list(c.columns) == ["id", "b"] and c.index[0] == 0 for c in chunks)
    joined = pd.concat(chunks, ignore_index=True)
    # Exact floats, also from CSV: rows must reach the model with the bits that were written.
    np.testing.assert_array_equal(joined["b"].to_numpy(), frame["b"].to_numpy())
    assert joined["id"].tolist() == frame["id"].tolist()


def test_csv_numbers_are_exact_and_words_stay_text(tmp_path):
    frame = table(30).astype({"a": object})
    frame.loc[4, "a"] = "twelve"
    frame.loc[17, "a"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    with open_input(str(tmp_path / "t.csv")) as t:
        chunks = list(iter_chunks(t, ["a", "b", "label"], chunk_rows=8, numeric=["a", "b"]))
    assert [len(c) for c in chunks] == [8, 8, 8, 6]
    a = pd.concat(chunks, ignore_index=True)["a"]
    assert a[4] == "twelve" and pd.isna(a[17])
    good = [i for i in range(30) if i not in (4, 17)]
    assert [a[i] for i in good] == [frame["a"][i] for i in good]  # the same floats, bit for bit
    assert chunks[2]["b"].dtype == np.float64  # chunks without a word stay plain float columns


def test_a_reader_stopped_early_cleans_up(tmp_path):
    table(100).to_parquet(tmp_path / "t.parquet")
    with open_input(str(tmp_path / "t.parquet")) as t:
        chunks = iter_chunks(t, ["id"], chunk_rows=10)
        assert len(next(chunks)) == 10
        chunks.close()


def test_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"), open_input(str(tmp_path / "nope.csv")):
        pass
    with pytest.raises(InvalidInputError, match="unknown table format"), open_input(str(tmp_path / "t.json")):
        pass
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInputError, match="cannot read"), open_input(str(tmp_path / "bad.parquet")):
        pass
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n\"3,4\n")  # a quote never closed
    with open_input(str(tmp_path / "ragged.csv")) as t, pytest.raises(InvalidInputError, match="cannot read"):
        list(iter_chunks(t, ["a", "b"], 10))


def test_staged_file_appears_only_on_commit(tmp_path):
    dest = tmp_path / "out" / "scores.parquet"
    staged = StagedParquet(str(dest))
    staged.write(pa.table({"x": [1, 2]}))
    staged.write(pa.table({"x": [3]}))
    assert not dest.exists()
    staged.commit()
    assert pd.read_parquet(dest)["x"].tolist() == [1, 2, 3]
    assert [p.name for p in dest.parent.iterdir()] == ["scores.parquet"]


def test_discard_leaves_nothing_and_keeps_an_older_file(tmp_path):
    dest = tmp_path / "scores.parquet"
    pd.DataFrame({"x": [9]}).to_parquet(dest)
    staged = StagedParquet(str(dest))
    staged.write(pa.table({"x": [1]}))
    staged.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]
    assert pd.read_parquet(dest)["x"].tolist() == [9]


def test_later_chunks_are_cast_to_the_first_chunks_schema(tmp_path):
    staged = StagedParquet(str(tmp_path / "o.parquet"))
    staged.write(pa.table({"k": pa.array([None, None]), "n": pa.array([1.0, 2.0])}))  # all-null first: text
    staged.write(pa.table({"k": pa.array(["a"]), "n": pa.array([3], type=pa.int64())}))
    with pytest.raises(InvalidInputError, match="column 'k' changes type") as caught:
        staged.write(pa.table({"k": pa.array([[1, 2]]), "n": pa.array([4.0])}))
    assert caught.value.field == "k"
    staged.commit()
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert out["k"].tolist() == [None, None, "a"] and out["n"].tolist() == [1.0, 2.0, 3.0]


def test_output_names():
    assert default_quarantine_uri("/data/scores.parquet") == "/data/scores.quarantine.parquet"
    assert default_quarantine_uri("s3://b/p/scores.pq") == "s3://b/p/scores.quarantine.pq"
    check_output_uri("s3://bucket/out.parquet")
    with pytest.raises(InvalidInputError, match="must be a .parquet file"):
        check_output_uri("out.csv")
    with pytest.raises(InvalidInputError, match="has no bucket"):
        check_output_uri("s3:///out.parquet")


@pytest.fixture
def s3(monkeypatch):
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="data")
        yield client


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_s3_input_is_streamed_from_a_local_copy(s3, tmp_path, suffix):
    frame = table(30)
    local = tmp_path / f"t.{suffix}"
    frame.to_csv(local, index=False) if suffix == "csv" else frame.to_parquet(local, index=False)
    s3.upload_file(str(local), "data", f"in/t.{suffix}")
    with open_input(f"s3://data/in/t.{suffix}") as t:
        copy = t.path
        assert copy.exists() and t.columns == ("id", "a", "b", "label")
        chunks = list(iter_chunks(t, ["id", "label"], 12))
    assert not copy.exists()  # the temporary copy goes with the context
    assert pd.concat(chunks, ignore_index=True)["label"].tolist() == frame["label"].tolist()
    with pytest.raises(InvalidInputError, match="no such object"), open_input("s3://data/in/missing.csv"):
        pass


def test_s3_output_is_uploaded_only_on_commit(s3):
    staged = StagedParquet("s3://data/out/scores.parquet")
    staged.write(pa.table({"x": [1, 2]}))
    assert "Contents" not in s3.list_objects_v2(Bucket="data", Prefix="out/")
    staged.commit()
    body = s3.get_object(Bucket="data", Key="out/scores.parquet")["Body"].read()
    assert pd.read_parquet(pa.BufferReader(body))["x"].tolist() == [1, 2]

    dropped = StagedParquet("s3://data/out/dropped.parquet")
    dropped.write(pa.table({"x": [1]}))
    dropped.discard()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="out/")["Contents"]]
    assert keys == ["out/scores.parquet"] and not dropped.staging.exists()
