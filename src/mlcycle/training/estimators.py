"""The scikit-learn estimators mlcycle trains, chosen by name, and what skops must trust to load them.

MLflow 3 saves scikit-learn models with skops, which refuses any type it does not know to be safe.
Each estimator declares exactly the extra types its fitted form contains; nothing else is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcycle.errors import InvalidInputError


@dataclass(frozen=True)
class EstimatorSpec:
    """How to build one kind of estimator and what its hyperparameter search may try."""

    build: Callable[[dict[str, Any]], Any]
    defaults: Mapping[str, Any]
    search_space: Mapping[str, list[Any]]
    skops_trusted_types: tuple[str, ...] = field(default=())
    build_regressor: Callable[[dict[str, Any]], Any] | None = None


def _random_forest(params: dict[str, Any]):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params)


def _hist_gradient_boosting(params: dict[str, Any]):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**params)


def _random_forest_regressor(params: dict[str, Any]):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(**params)


def _hist_gradient_boosting_regressor(params: dict[str, Any]):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(**params)


def _logistic_regression(params: dict[str, Any]):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(**params))])


ESTIMATORS: dict[str, EstimatorSpec] = {
    "random_forest": EstimatorSpec(
        build=_random_forest,
        defaults={"n_estimators": 100, "max_depth": 8, "random_state": 0, "n_jobs": 1},
        search_space={"n_estimators": [50, 100, 200], "max_depth": [4, 8, 12, None],
                      "min_samples_leaf": [1, 2, 4]},
        skops_trusted_types=("sklearn.tree._tree.Tree",),
        build_regressor=_random_forest_regressor,
    ),
    "hist_gradient_boosting": EstimatorSpec(
        build=_hist_gradient_boosting,
        defaults={"max_iter": 100, "learning_rate": 0.1, "random_state": 0},
        search_space={"max_iter": [50, 100, 200], "learning_rate": [0.03, 0.1, 0.3],
                      "max_leaf_nodes": [15, 31, 63]},
        skops_trusted_types=("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
        build_regressor=_hist_gradient_boosting_regressor,
    ),
    "logistic_regression": EstimatorSpec(
        build=_logistic_regression,
        defaults={"C": 1.0, "max_iter": 1000},
        search_space={"C": [0.01, 0.1, 1.0, 10.0]},
    ),
}


def estimator_names() -> list[str]:
    return sorted(ESTIMATORS)


def get_spec(model_type: str) -> EstimatorSpec:
    try:
        return ESTIMATORS[model_type]
    except KeyError:
        raise InvalidInputError(
            f"unknown model type {model_type!r}; choose one of {', '.join(estimator_names())}",
            field="model_type",
        ) from None


def coerce_param(value: str) -> Any:
    """Turn a ``--param k=v`` string value into the Python value it spells (int, float, bool, None)."""
    lowered = value.strip().lower()
    if lowered in {"none", "null"}:
        return None
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def build_estimator(model_type: str, params: Mapping[str, Any] | None = None, task: str = "classification"):
    """Build an unfitted estimator of ``model_type`` for ``task`` with defaults overridden by ``params``.

    Raises:
        InvalidInputError: unknown model type, one without a regressor, or a hyperparameter the estimator
            does not take (``field`` names it).
    """
    spec = get_spec(model_type)
    merged = {**spec.defaults, **(params or {})}
    build = spec.build
    if task == "regression":
        if spec.build_regressor is None:
            regressors = ", ".join(n for n, s in sorted(ESTIMATORS.items()) if s.build_regressor)
            raise InvalidInputError(f"{model_type} is a classifier only; for regression choose {regressors}",
                                    field="model_type")
        build = spec.build_regressor
    try:
        return build(merged)
    except TypeError as e:
        raise InvalidInputError(f"{model_type}: {e}", field="params") from e


def check_params(model_type: str, params: Mapping[str, Any]) -> None:
    """Fail early, naming the parameter, when ``params`` has one the estimator does not accept."""
    estimator = build_estimator(model_type, {})
    target = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    valid = target.get_params(deep=False)
    for key in params:
        if key not in valid:
            raise InvalidInputError(
                f"{model_type} has no hyperparameter {key!r}; valid: {', '.join(sorted(valid))}",
                field=f"params.{key}",
            )
