"""Schema and quality checks for training data, and the train/test split.

Each rule fails with a :class:`~mlcycle.errors.DataValidationError` whose ``field`` is the column and
whose ``rule`` names the rule, so a data scientist knows what to fix without reading code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlcycle.errors import DataValidationError


@dataclass(frozen=True)
class QualityRules:
    """The rules a training table must pass.

    Attributes:
        min_rows: fewest rows accepted.
        max_null_fraction: largest share of missing values a feature column may have (0 = none).
        min_class_rows: fewest rows of each class (a stratified split needs at least 2).
        ranges: optional ``{column: (low, high)}`` inclusive value ranges.
    """

    min_rows: int = 20
    max_null_fraction: float = 0.0
    min_class_rows: int = 2
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def validate_dataset(frame: pd.DataFrame, target: str, rules: QualityRules | None = None,
                     task: str = "classification") -> None:
    """Check ``frame`` against ``rules``; return quietly when it passes (class rules for classification only).

    Raises:
        DataValidationError: the first rule broken, naming the column and the rule.
    """
    rules = rules or QualityRules()
    if target not in frame.columns:
        raise DataValidationError(f"target column {target!r} is missing", field=target, rule="target_present")
    if len(frame) < rules.min_rows:
        raise DataValidationError(
            f"{len(frame)} rows is fewer than the minimum of {rules.min_rows}", field=None, rule="min_rows"
        )
    features = [c for c in frame.columns if c != target]
    if not features:
        raise DataValidationError("there are no feature columns besides the target", field=None,
                                  rule="has_features")
    for column in features:
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        if not (numeric or is_categorical(series)):
            raise DataValidationError(
                f"column {column!r} has type {series.dtype} ({_first_odd_value(series)}), but features must be "
                "numbers, booleans or strings (categories)",
                field=str(column), rule="feature_type",
            )
        null_fraction = float(series.isna().mean())
        if null_fraction > rules.max_null_fraction:
            raise DataValidationError(
                f"column {column!r} is {null_fraction:.1%} missing (allowed: {rules.max_null_fraction:.1%})",
                field=str(column), rule="max_nulls",
            )
        if not numeric or pd.api.types.is_bool_dtype(series):
            continue
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            raise DataValidationError(f"column {column!r} has infinite values", field=str(column),
                                      rule="finite")
    for column, (low, high) in rules.ranges.items():
        if column not in frame.columns:
            raise DataValidationError(f"range rule names column {column!r}, which is not in the data",
                                      field=column, rule="range")
        outside = frame[(frame[column] < low) | (frame[column] > high)]
        if len(outside):
            raise DataValidationError(
                f"column {column!r} has {len(outside)} values outside [{low}, {high}] "
                f"(first at row {outside.index[0]})",
                field=column, rule="range",
            )
    labels = frame[target]
    if labels.isna().any():
        raise DataValidationError(f"target {target!r} has {int(labels.isna().sum())} missing labels",
                                  field=target, rule="max_nulls")
    if task == "regression":
        return
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataValidationError(
            f"target {target!r} has {len(counts)} class; a classifier needs at least two",
            field=target, rule="min_classes",
        )
    rare = counts[counts < rules.min_class_rows]
    if len(rare):
        raise DataValidationError(
            f"class {rare.index[0]!r} of {target!r} has {int(rare.iloc[0])} rows; "
            f"each class needs at least {rules.min_class_rows}",
            field=target, rule="min_class_rows",
        )


def is_categorical(series: pd.Series) -> bool:
    """A string or category column (what a trainer that encodes it, e.g. LightGBM's, takes as a feature)."""
    if isinstance(series.dtype, pd.CategoricalDtype) or (
            pd.api.types.is_string_dtype(series.dtype) and series.dtype != object):
        return True
    return series.dtype == object and all(isinstance(v, str) for v in series.dropna())


def _first_odd_value(series: pd.Series) -> str:
    odd = next((v for v in series.dropna() if not isinstance(v, str)), None)
    return "no values" if odd is None else f"e.g. {type(odd).__name__} {odd!r}"


def split_dataset(frame: pd.DataFrame, target: str, *, test_size: float = 0.25, seed: int = 0,
                  task: str = "classification") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/test split (stratified for classification) with a fresh index on each part."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise DataValidationError(f"test_size must be between 0 and 1, got {test_size}", field="test_size",
                                  rule="test_size")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed,
                                   stratify=frame[target] if task != "regression" else None)
    return train.reset_index(drop=True), test.reset_index(drop=True)
