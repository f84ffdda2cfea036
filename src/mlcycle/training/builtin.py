"""The built-in estimators as trainers: ``mlcycle.training.builtin:random_forest`` and friends.

They follow the trainer contract of :mod:`mlcycle.training.trainers` exactly — a module function
``fit(train, target, params)`` with its search space and skops trusted types as attributes — so
``--model random_forest`` and ``--trainer my_package.train:fit`` run the same code after the fit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlcycle.training.estimators import ESTIMATORS, build_estimator


def _builtin(model_type: str):
    spec = ESTIMATORS[model_type]

    def fit(train: pd.DataFrame, target: str, params: dict[str, Any], *, task: str = "classification"):
        X, y = train.drop(columns=[target]), train[target]
        return build_estimator(model_type, params, task).fit(X, y)

    fit.__name__ = fit.__qualname__ = model_type
    fit.__doc__ = f"Fit mlcycle's built-in {model_type} (scikit-learn) on ``train``."
    fit.search_space = dict(spec.search_space)
    fit.skops_trusted_types = list(spec.skops_trusted_types)
    fit.defaults = dict(spec.defaults)
    return fit


random_forest = _builtin("random_forest")
hist_gradient_boosting = _builtin("hist_gradient_boosting")
logistic_regression = _builtin("logistic_regression")
