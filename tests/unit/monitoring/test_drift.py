"""Drift statistics as plain functions: seeded shifts are found on exactly the shifted columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.errors import DataValidationError, InvalidInputError
from mlcycle.monitoring.drift import DriftConfig, choose_test, compute_drift, scale_columns

FEATURES = [f"f{i}" for i in range(8)]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({c: rng.normal(10 + i, 2, rows) for i, c in enumerate(FEATURES)})
    data["prediction"] = rng.integers(0, 3, rows)
    return data


@pytest.mark.parametrize("rows", [400, 4000], ids=["small-sample-ks", "large-sample-wasserstein"])
def test_two_scaled_features_drift_and_only_they(rows, tmp_path):
    reference = frame(rows, seed=1)
    current = scale_columns(frame(rows, seed=2), ["f2", "f5"], 1.5)
    result = compute_drift(reference, current, FEATURES, report_path=tmp_path / "r.html")
    assert result.drifted_columns == ["f2", "f5"]
    assert result.status == "ok"  # 2 of 8 is below the default drift share of 0.5
    assert (tmp_path / "r.html").stat().st_size > 10_000
    expected = "ks" if rows <= 1000 else "wasserstein"
    assert {c.method for c in result.columns.values()} == {expected}


@pytest.mark.parametrize("rows", [400, 4000])
def test_same_distribution_finds_no_drift(rows):
    result = compute_drift(frame(rows, seed=1), frame(rows, seed=3), FEATURES)
    assert result.drifted_columns == []
    assert not result.dataset_drift
    assert result.prediction is not None and not result.prediction.drifted


def test_dataset_drift_when_share_reached_and_prediction_drift_separately():
    reference = frame(2000, seed=1)
    current = scale_columns(frame(2000, seed=2), FEATURES[:4], 1.5)
    current["prediction"] = 0  # the model now answers one class only
    result = compute_drift(reference, current, FEATURES, config=DriftConfig(drift_share=0.5))
    assert result.dataset_drift and result.status == "drift"
    assert result.drift_share == 0.5
    assert result.prediction.drifted and result.prediction.method == "jensenshannon"
    summary = result.summary()
    assert summary["prediction_drift"] is True
    assert "prediction" not in summary["scores"]


def test_psi_is_selectable_with_its_threshold():
    current = scale_columns(frame(2000, seed=2), ["f0"], 1.5)
    result = compute_drift(frame(2000, seed=1), current, FEATURES, config=DriftConfig(method="psi"))
    assert result.drifted_columns == ["f0"]
    assert {(c.method, c.threshold) for c in result.columns.values()} == {("psi", 0.1)}


def test_too_few_rows_is_insufficient_data_never_drift(tmp_path):
    current = scale_columns(frame(50, seed=2), FEATURES, 3.0)  # wildly shifted, but only 50 rows
    result = compute_drift(frame(1000, seed=1), current, FEATURES, report_path=tmp_path / "r.html")
    assert result.status == "insufficient_data"
    assert not result.dataset_drift and result.drifted_columns == []
    assert not (tmp_path / "r.html").exists()


def test_empty_window_is_reported_not_crashed_on():
    result = compute_drift(frame(1000, seed=1), pd.DataFrame(), FEATURES)
    assert result.status == "no_data" and result.rows == 0
    assert result.summary()["dataset_drift"] is False


def test_test_choice_follows_type_and_the_smaller_sample():
    config = DriftConfig()
    big, small = pd.Series(np.arange(5000.0)), pd.Series(np.arange(500.0))
    assert choose_test(big, small, "num", 10, config) == ("ks", pytest.approx(0.005))
    assert choose_test(big, big, "num", 10, config) == ("wasserstein", 0.1)
    cats = pd.Series(list("abc") * 100)
    assert choose_test(cats, cats, "cat", 1, config) == ("chisquare", 0.05)
    assert choose_test(pd.Series([0, 1] * 100), pd.Series([0, 1] * 100), "cat", 1, config)[0] == "z"
    assert choose_test(pd.Series(list("abc") * 1000), pd.Series(list("abc") * 1000), "cat", 1, config) == (
        "jensenshannon",
        0.1,
    )
    assert choose_test(big, big, "num", 10, DriftConfig(bonferroni=False, method=None))[0] == "wasserstein"


def test_a_float_flag_column_is_tested_as_categories():
    """The bundled diabetes data's ``sex`` is a float with two values: a categorical test, never a crash."""
    reference, current = frame(400, seed=1), frame(400, seed=2)
    reference["sex"] = np.where(np.arange(400) % 2 == 0, -0.0446, 0.0507)
    current["sex"] = np.where(np.arange(400) % 5 == 0, -0.0446, 0.0507)  # 20% instead of 50%
    result = compute_drift(reference, current, [*FEATURES, "sex"])
    assert result.columns["sex"].column_type == "cat" and result.columns["sex"].method == "z"
    assert result.drifted_columns == ["sex"]


def test_missing_column_names_the_column():
    with pytest.raises(DataValidationError) as err:
        compute_drift(frame(500, seed=1), frame(500, seed=2).drop(columns=["f3"]), FEATURES)
    assert err.value.field == "f3"


def test_bad_config_is_refused():
    with pytest.raises(InvalidInputError):
        DriftConfig(drift_share=0)
    with pytest.raises(InvalidInputError):
        DriftConfig(min_rows=0)
