"""A LightGBM churn classifier with a string categorical column (``plan``), on generated data (no download).

    mlcycle run training --trainer examples.lightgbm_categorical.train:fit \
        --dataset churn.parquet --target churned --trials 4

The string column is encoded inside the model (a scikit-learn Pipeline: OrdinalEncoder → LGBMClassifier
with ``plan`` declared categorical), so the served model takes the raw string and nothing outside it
needs to know the encoding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORICAL = ["plan"]
PLANS = ["basic", "plus", "pro"]
search_space = {"num_leaves": [7, 15, 31], "learning_rate": [0.05, 0.1, 0.2]}
defaults = {"num_leaves": 15, "learning_rate": 0.1, "n_estimators": 60}
# LightGBM's classes are not in skops' default trust list; loading them is safe (no code runs).
skops_trusted_types = ["collections.OrderedDict", "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"]


def fit(train: pd.DataFrame, target: str, params: dict):
    """Encode ``plan`` in the model and fit a small LightGBM classifier that treats it as categorical."""
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    X, y = train.drop(columns=[target]), train[target]
    encode = ColumnTransformer(
        [("plan", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), CATEGORICAL)],
        remainder="passthrough")
    lgbm = LGBMClassifier(n_estimators=int(params["n_estimators"]), num_leaves=int(params["num_leaves"]),
                          learning_rate=float(params["learning_rate"]), min_child_samples=10, random_state=0,
                          n_jobs=1, verbose=-1)
    model = Pipeline([("encode", encode), ("lgbm", lgbm)])
    return model.fit(X, y, lgbm__categorical_feature=[0])  # the encoded plan is the first column


def make_data(rows: int = 1_200, seed: int = 0) -> pd.DataFrame:
    """Generated customers: a string ``plan``, three numbers and a 0/1 ``churned`` that depends on all four."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    spend = np.round(rng.gamma(2.0, 30.0, rows), 2)
    tenure = rng.integers(1, 72, rows).astype(np.int64)
    calls = rng.poisson(1.5, rows).astype(np.int64)
    logit = 0.9 * calls - 0.05 * tenure + 0.01 * spend + np.select([plan == "basic", plan == "pro"], [1.0, -1.2], 0.0)
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"plan": plan, "monthly_spend": spend, "tenure_months": tenure, "support_calls": calls,
                         "churned": churned})


def write_data(path: str, rows: int = 1_200, seed: int = 0) -> str:
    """:func:`make_data` as a Parquet file."""
    make_data(rows, seed).to_parquet(path, index=False)
    return path
