import numpy as np
import pandas as pd
import pytest

from mlcycle.data import QualityRules, split_dataset, validate_dataset
from mlcycle.errors import DataValidationError


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=40), "x2": rng.uniform(0, 10, size=40), "y": [0, 1] * 20})


def broken(frame, rule):
    frame = frame.copy()
    if rule == "feature_type":
        frame["x1"] = [{"a": 1}] * len(frame)  # neither a number nor a string
    elif rule == "max_nulls":
        frame.loc[3, "x2"] = np.nan
    elif rule == "finite":
        frame.loc[5, "x1"] = np.inf
    elif rule == "min_rows":
        frame = frame.head(5)
    elif rule == "min_classes":
        frame["y"] = 0
    elif rule == "min_class_rows":
        frame.loc[frame.index[1:], "y"] = 0
        frame.loc[0, "y"] = 1
    elif rule == "target_present":
        frame = frame.drop(columns=["y"])
    elif rule == "has_features":
        frame = frame[["y"]]
    return frame


@pytest.mark.parametrize(("rule", "field"), [
    ("feature_type", "x1"), ("max_nulls", "x2"), ("finite", "x1"), ("min_rows", None),
    ("min_classes", "y"), ("min_class_rows", "y"), ("target_present", "y"), ("has_features", None),
])
def test_each_rule_fails_with_its_name_and_column(frame, rule, field):
    validate_dataset(frame, "y")  # the intact frame passes
    with pytest.raises(DataValidationError) as e:
        validate_dataset(broken(frame, rule), "y")
    assert e.value.rule == rule
    assert e.value.field == field
    assert e.value.http_status == 400
    if field:
        assert field in e.value.message


def test_string_and_category_features_pass_for_trainers_that_encode_them(frame):
    validate_dataset(frame.assign(plan=["basic", "pro"] * 20, tier=pd.Categorical(["a", "b"] * 20)), "y")
    with pytest.raises(DataValidationError, match="e.g. int 3") as e:
        validate_dataset(frame.assign(plan=["basic", 3] * 20), "y")  # mixed strings and numbers
    assert (e.value.rule, e.value.field) == ("feature_type", "plan")


def test_value_range_rule(frame):
    rules = QualityRules(ranges={"x2": (0.0, 5.0)})
    with pytest.raises(DataValidationError) as e:
        validate_dataset(frame, "y", rules)
    assert (e.value.rule, e.value.field) == ("range", "x2")
    assert "outside [0.0, 5.0]" in e.value.message
    validate_dataset(frame, "y", QualityRules(ranges={"x2": (0.0, 10.0)}))


def test_null_tolerance_is_configurable(frame):
    frame.loc[3, "x2"] = np.nan
    validate_dataset(frame, "y", QualityRules(max_null_fraction=0.05))


def test_missing_labels_are_refused(frame):
    frame["y"] = frame["y"].astype(float)
    frame.loc[0, "y"] = np.nan
    with pytest.raises(DataValidationError) as e:
        validate_dataset(frame, "y")
    assert e.value.field == "y" and "missing labels" in e.value.message


def test_split_is_stratified_and_seeded(frame):
    train, test = split_dataset(frame, "y", test_size=0.25, seed=1)
    again, _ = split_dataset(frame, "y", test_size=0.25, seed=1)
    assert len(train) == 30 and len(test) == 10
    assert test["y"].value_counts().to_dict() == {0: 5, 1: 5}
    pd.testing.assert_frame_equal(train, again)
    with pytest.raises(DataValidationError):
        split_dataset(frame, "y", test_size=1.5)
