import numpy as np
import pandas as pd
import pytest

from mlcycle.data import content_hash, dataset_name, load_dataset
from mlcycle.data.datasets import SyntheticSpec
from mlcycle.errors import InvalidInputError


@pytest.mark.parametrize(("source", "rows", "classes"), [("wine", 178, 3), ("breast_cancer", 569, 2)])
def test_builtin_sets_load_without_download(source, rows, classes):
    frame, target = load_dataset(source)
    assert target == "target"
    assert len(frame) == rows
    assert frame[target].nunique() == classes
    assert frame[target].dtype == np.int64


def test_synthetic_data_has_the_requested_shape_and_is_deterministic():
    a, target = load_dataset("synthetic:rows=500,features=7,classes=4,seed=3")
    b, _ = load_dataset("synthetic:rows=500,features=7,classes=4,seed=3")
    assert a.shape == (500, 8)
    assert a[target].nunique() == 4
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("source", ["synthetic:rows=x", "synthetic:colour=3", "synthetic:features=1"])
def test_bad_synthetic_options_are_named(source):
    with pytest.raises(InvalidInputError) as e:
        SyntheticSpec.parse(source)
    assert e.value.field == "dataset"


def test_table_sources_need_an_existing_target(tmp_path):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": [1, 2], "label": [0, 1]}).to_csv(path, index=False)
    frame, target = load_dataset(str(path), "label")
    assert target == "label" and list(frame.columns) == ["a", "label"]
    with pytest.raises(InvalidInputError) as e:
        load_dataset(str(path), "nope")
    assert e.value.field == "target" and "nope" in e.value.message
    with pytest.raises(InvalidInputError) as e:
        load_dataset(str(path))
    assert e.value.field == "target"


def test_parquet_tables_load(tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}).to_parquet(path)
    frame, _ = load_dataset(str(path), "y")
    assert frame["a"].tolist() == [1.0, 2.0]


def test_unknown_source_and_missing_file_say_what_to_do(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown dataset"):
        load_dataset("iris-from-the-internet")
    with pytest.raises(InvalidInputError, match="no such file"):
        load_dataset(str(tmp_path / "missing.csv"), "y")


def test_content_hash_changes_with_any_value_and_not_with_copying():
    frame, _ = load_dataset("wine")
    same = frame.copy()
    assert content_hash(frame) == content_hash(same)
    same.iloc[3, 2] += 0.001
    assert content_hash(frame) != content_hash(same)


def test_dataset_names():
    assert dataset_name("wine") == "wine"
    assert dataset_name("synthetic:rows=10") == "synthetic"
    assert dataset_name("s3://bucket/path/churn_2024.parquet") == "churn_2024"
