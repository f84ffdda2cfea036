"""Data and prediction drift between a reference sample and a window of traffic, with Evidently.

The statistics, and why:

- **The test follows the column type and the sample size.** Evidently's own default looks only at the
  reference size (more than 1,000 rows: a distance; else a p-value test). We decide on the *smaller* of
  the two samples, because a window of 50 requests against a 5,000-row reference is a small-sample
  problem: an empirical Wasserstein distance from 50 rows is biased upwards by roughly ``1/sqrt(n)``
  standard deviations and would cross a 0.1 threshold by chance, while a p-value test accounts for ``n``.
  Above 1,000 rows on both sides p-values flag differences too small to matter (with 100,000 rows a
  0.02-sd shift is "significant"), so we switch to an effect size with a fixed threshold:

  ============================  ===============================  ==================================
  column                        min(rows) <= 1,000               min(rows) > 1,000
  ============================  ===============================  ==================================
  numerical, > 5 distinct        Kolmogorov-Smirnov p-value       Wasserstein distance / ref. std
  numerical <= 5 distinct,       chi-square p-value (z-test for   Jensen-Shannon distance
  categorical, prediction        two values)
  ============================  ===============================  ==================================

  ``method="psi"`` (or any Evidently stattest name) applies one test to every column instead.
- **Many columns, one family.** With 13 columns and alpha 0.05 per column, a window from the very same
  distribution shows at least one "drifted" column about half of the time. p-value thresholds are
  therefore Bonferroni-corrected (alpha / number of columns tested); distances need no correction.
- **Too little data is not drift.** Below ``min_rows`` rows the result is ``insufficient_data`` and
  never an alarm; an empty window is ``no_data``.
- **Large windows are sampled.** Above ``max_rows`` (100,000) the window (and the reference) is reduced
  to a uniform random sample with a fixed seed, which keeps a check over a million rows well inside 30 s
  (Evidently itself takes minutes there). With both sides above 1,000 rows this is the distance branch:
  the sampling error of a distance estimate is about ``1/sqrt(max_rows)`` (0.003) against a threshold of
  0.1, so a verdict changes only for a column whose true distance is within a few thousandths of the
  threshold (``benchmarks/bench_drift.py`` compares full-data and sampled scores). With a small reference
  the p-value test's power is set by the smaller sample, which sampling the larger side leaves as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle.errors import DataValidationError, InvalidInputError

PREDICTION = "prediction"
SMALL_SAMPLE_ROWS = 1000  # at or below: p-value tests; above: distances (see module docstring)
P_VALUE_METHODS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "fisher_exact",
        "mannw",
        "anderson",
        "cramer_von_mises",
        "g_test",
        "epps_singleton",
        "t_test",
        "empirical_mmd",
    }
)
Status = Literal["ok", "drift", "insufficient_data", "no_data"]


@dataclass(frozen=True)
class DriftConfig:
    """How a drift check decides.

    Attributes:
        method: one Evidently stattest for every column (``"psi"``, ``"ks"``, ...); ``None`` picks the
            test per column by type and sample size (module docstring).
        threshold: the threshold for ``method``; ``None`` uses the test's default (0.05 for p-values,
            0.1 for distances and PSI).
        alpha: family-wise p-value threshold when the test is chosen automatically.
        distance_threshold: threshold for Wasserstein / Jensen-Shannon when chosen automatically.
        bonferroni: divide p-value thresholds by the number of columns tested.
        drift_share: the window drifts when at least this share of feature columns drifts.
        min_rows: fewer rows than this is ``insufficient_data``.
        max_rows: larger windows (and references) are sampled down to this many rows.
        seed: the sampling seed.
    """

    method: str | None = None
    threshold: float | None = None
    alpha: float = 0.05
    distance_threshold: float = 0.1
    bonferroni: bool = True
    drift_share: float = 0.5
    min_rows: int = 100
    max_rows: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise InvalidInputError("min_rows must be at least 1", field="min_rows")
        if self.max_rows < max(self.min_rows, 2 * SMALL_SAMPLE_ROWS):
            raise InvalidInputError(
                f"max_rows must be at least {max(self.min_rows, 2 * SMALL_SAMPLE_ROWS)}", field="max_rows"
            )
        if not 0 < self.drift_share <= 1:
            raise InvalidInputError("drift_share must be in (0, 1]", field="drift_share")
        if not 0 < self.alpha < 1:
            raise InvalidInputError("alpha must be in (0, 1)", field="alpha")


@dataclass
class ColumnDrift:
    column: str
    column_type: Literal["num", "cat"]
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass
class DriftResult:
    """The outcome of one drift check; :meth:`summary` is the JSON the CLI and components print."""

    status: Status
    rows: int
    reference_rows: int
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    prediction: ColumnDrift | None = None
    drift_share: float = 0.0
    sampled_rows: int = 0
    report_path: str | None = None
    message: str = ""

    @property
    def dataset_drift(self) -> bool:
        return self.status == "drift"

    @property
    def drifted_columns(self) -> list[str]:
        return sorted(name for name, c in self.columns.items() if c.drifted)

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "dataset_drift": self.dataset_drift,
            "drifted_columns": self.drifted_columns,
            "drift_share": self.drift_share,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "sampled_rows": self.sampled_rows,
            "scores": {name: _finite(c.score) for name, c in self.columns.items()},
            "tests": {
                name: {"method": c.method, "threshold": c.threshold, "drifted": c.drifted}
                for name, c in self.columns.items()
            },
            "prediction_drift": bool(self.prediction and self.prediction.drifted),
            "prediction_score": _finite(self.prediction.score) if self.prediction else None,
            "report_path": self.report_path,
            "message": self.message,
        }


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


LOW_CARDINALITY = 5  # a numeric column with at most this many distinct values is tested as categories


def column_kind(series: pd.Series) -> Literal["num", "cat"]:
    """``num`` for numeric dtypes (bool excluded), ``cat`` for everything else.

    A numeric column with at most :data:`LOW_CARDINALITY` distinct values (a code, a count of a few
    values, or a float-encoded flag such as the bundled diabetes data's ``sex``) is ``cat``: its test is
    then a categorical one (Evidently refuses chi-square and the z-test on ``num``).
    """
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "cat"
    if series.nunique() <= LOW_CARDINALITY:
        return "cat"
    return "num"


def prediction_kind(series: pd.Series) -> Literal["num", "cat"]:
    """Class labels (integers, strings) are categorical; float predictions are a regression's."""
    return "num" if pd.api.types.is_float_dtype(series) else "cat"


def choose_test(
    reference: pd.Series, current: pd.Series, kind: Literal["num", "cat"], n_tests: int, config: DriftConfig
) -> tuple[str, float]:
    """The (Evidently stattest name, threshold) for one column; see the module docstring."""
    if config.method is not None:
        return config.method, config.threshold if config.threshold is not None else _default_threshold(config.method)
    small = min(len(reference), len(current)) <= SMALL_SAMPLE_ROWS
    alpha = config.alpha / n_tests if config.bonferroni else config.alpha
    distinct = pd.concat([reference, current], ignore_index=True).nunique()
    if kind == "num" and distinct > 5:
        return ("ks", alpha) if small else ("wasserstein", config.distance_threshold)
    if small:
        return ("chisquare", alpha) if distinct > 2 else ("z", alpha)
    return "jensenshannon", config.distance_threshold


def _default_threshold(method: str) -> float:
    return 0.05 if method in P_VALUE_METHODS else 0.1


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A uniform random sample of ``n`` rows without replacement (the frame itself when smaller)."""
    if len(frame) <= n:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[rows]


def align_current(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The current window restricted to ``columns``, with the reference's dtypes.

    Raises:
        DataValidationError: a column is missing, or its values cannot take the reference's dtype.
    """
    missing = [c for c in columns if c not in current.columns]
    if missing:
        raise DataValidationError(
            f"current data lacks column(s) {', '.join(missing)} present in the reference",
            field=missing[0],
            rule="columns_match_reference",
        )
    out = current[columns].copy()
    for column in columns:
        if out[column].dtype != reference[column].dtype:
            try:
                out[column] = out[column].astype(reference[column].dtype)
            except (TypeError, ValueError) as e:
                raise DataValidationError(
                    f"column {column!r} cannot be read as {reference[column].dtype}: {e}",
                    field=column,
                    rule="dtype_matches_reference",
                ) from e
    return out


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    config: DriftConfig | None = None,
    report_path: str | Path | None = None,
    prediction: str | None = PREDICTION,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column; write the Evidently HTML report.

    Args:
        reference: the reference sample (features, and ``prediction`` when given).
        current: the window of traffic, same columns.
        features: the feature columns to test; the dataset drifts when ``drift_share`` of them do.
        config: thresholds and test choice; defaults to :class:`DriftConfig`.
        report_path: where to write the HTML report; none written when ``None`` or too little data.
        prediction: the prediction column, tested on its own (prediction drift); ``None`` to skip.

    Raises:
        DataValidationError: the current data lacks a column of the reference or has a wrong dtype.
    """
    config = config or DriftConfig()
    use_prediction = bool(prediction) and prediction in reference.columns and prediction in current.columns
    columns = [*features, prediction] if use_prediction else list(features)
    rows = len(current)
    if rows == 0:
        return DriftResult(
            status="no_data", rows=0, reference_rows=len(reference), message="no logged traffic in the window"
        )
    if rows < config.min_rows:
        return DriftResult(
            status="insufficient_data",
            rows=rows,
            reference_rows=len(reference),
            message=f"{rows} rows in the window, fewer than min_rows={config.min_rows}: not tested",
        )
    missing = [c for c in columns if c not in current.columns]
    if missing:  # before sampling, so the error does not depend on the sample
        align_current(reference, current.head(0), columns)
    # Sample first, then copy and convert only the sampled rows: a million-row window is never copied.
    ref = _sample(reference, config.max_rows, config.seed)[columns].reset_index(drop=True)
    cur = align_current(reference, _sample(current, config.max_rows, config.seed), columns).reset_index(drop=True)

    kinds = {c: column_kind(ref[c]) for c in features}
    if use_prediction:
        kinds[prediction] = prediction_kind(ref[prediction])
    tests = {c: choose_test(ref[c], cur[c], kinds[c], len(columns), config) for c in columns}
    scores, drifted = _run_evidently(
        ref, cur, features, prediction if use_prediction else None, kinds, tests, config, report_path
    )
    per_column = {
        c: ColumnDrift(
            column=c,
            column_type=kinds[c],
            method=tests[c][0],
            threshold=tests[c][1],
            score=scores[c],
            drifted=drifted[c],
        )
        for c in columns
    }
    pred = per_column.pop(prediction) if use_prediction else None
    share = sum(c.drifted for c in per_column.values()) / max(len(per_column), 1)
    status: Status = "drift" if per_column and share >= config.drift_share else "ok"
    return DriftResult(
        status=status,
        rows=rows,
        reference_rows=len(reference),
        columns=per_column,
        prediction=pred,
        drift_share=share,
        sampled_rows=len(cur),
        report_path=str(report_path) if report_path is not None else None,
        message=f"{sum(c.drifted for c in per_column.values())} of {len(per_column)} columns drifted",
    )


def _run_evidently(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    features: list[str],
    prediction: str | None,
    kinds: dict[str, str],
    tests: dict[str, tuple[str, float]],
    config: DriftConfig,
    report_path: str | Path | None,
) -> tuple[dict[str, float], dict[str, bool]]:
    """Run one Evidently report; return per-column scores and Evidently's drift verdicts."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numerical = [c for c, k in kinds.items() if k == "num"]
    categorical = [c for c, k in kinds.items() if k == "cat"]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=features,
            drift_share=config.drift_share,
            per_column_method={c: tests[c][0] for c in features},
            per_column_threshold={c: tests[c][1] for c in features},
        )
    ]
    if prediction:
        metrics.append(ValueDrift(column=prediction, method=tests[prediction][0], threshold=tests[prediction][1]))
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    scores: dict[str, float] = {}
    drifted: dict[str, bool] = {}
    result = snapshot.dict()
    for metric in result["metrics"]:
        config_ = metric.get("config", {})
        if config_.get("type", "").endswith(":ValueDrift"):
            scores[config_["column"]] = float(metric["value"])
    for test in result["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift"):
            drifted[params["column"]] = test["status"] == "FAIL"
    for column, (method, threshold) in tests.items():
        # Evidently emits a verdict per ValueDrift; fall back to the rule it applies if one is missing.
        if column not in drifted and column in scores:
            score = scores[column]
            drifted[column] = score <= threshold if method in P_VALUE_METHODS else score >= threshold
        scores.setdefault(column, float("nan"))
        drifted.setdefault(column, False)
    if report_path is not None:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report_path))
    return scores, drifted


def scale_columns(frame: pd.DataFrame, columns: list[str], factor: float) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` multiplied by ``factor``: a known shift for demos and tests."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].astype(float) * factor
    return out
