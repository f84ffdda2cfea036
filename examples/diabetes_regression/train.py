"""A regression trainer on scikit-learn's bundled diabetes data (no download): a ridge or a forest.

    mlcycle run training --trainer examples.diabetes_regression.train:fit \
        --dataset diabetes.parquet --target target --task regression --gate-metric rmse
"""

from __future__ import annotations

import pandas as pd

search_space = {"alpha": [0.01, 0.1, 1.0]}
defaults = {"kind": "ridge", "alpha": 0.1}
skops_trusted_types = ["sklearn.tree._tree.Tree"]


def fit(train: pd.DataFrame, target: str, params: dict):
    """Fit a scaled ridge (``kind=ridge``, ``alpha``) or a small forest (``kind=forest``, ``max_depth``)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = train.drop(columns=[target]), train[target]
    if params.get("kind") == "forest":
        model = RandomForestRegressor(n_estimators=50, max_depth=params.get("max_depth", 4), random_state=0, n_jobs=1)
    else:
        model = make_pipeline(StandardScaler(), Ridge(alpha=params["alpha"]))
    return model.fit(X, y)


def write_data(path: str) -> str:
    """The bundled diabetes data as a Parquet file (442 rows, 10 features, a numeric ``target``)."""
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True).frame.to_parquet(path, index=False)
    return path
