"""A custom ``mlflow.pyfunc.PythonModel`` whose preprocessing and postprocessing live in the model.

Preprocessing: ``plan`` arrives as free text (``" Pro "``, ``"BASIC"``), is normalised and mapped to an
ordinal; ``monthly_spend`` is capped at the training data's 99th percentile and log-scaled; the tenure in
months becomes years. Postprocessing: the wrapped logistic regression's churn probability becomes a label,
``"churn"`` or ``"stay"``, at the model's own threshold. The served model takes the raw columns and answers
with the label: no client repeats these steps, and batch scoring runs exactly the same code.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

PLAN_ORDER = {"basic": 0.0, "plus": 1.0, "pro": 2.0}
FEATURES = ["plan", "monthly_spend", "tenure_months", "support_calls"]


class ChurnLabeler(mlflow.pyfunc.PythonModel):
    """Raw customer columns in, ``"churn"`` or ``"stay"`` out."""

    def __init__(self, threshold: float = 0.5, C: float = 1.0) -> None:
        self.threshold = threshold
        self.C = C
        self.spend_cap: float | None = None
        self.estimator = None

    def preprocess(self, frame: pd.DataFrame) -> np.ndarray:
        plan = frame["plan"].astype(str).str.strip().str.lower().map(PLAN_ORDER).fillna(-1.0).to_numpy()
        spend = np.log1p(np.clip(frame["monthly_spend"].to_numpy(dtype=float), 0.0, self.spend_cap))
        years = frame["tenure_months"].to_numpy(dtype=float) / 12.0
        calls = frame["support_calls"].to_numpy(dtype=float)
        return np.column_stack([plan, spend, years, calls])

    def fit(self, frame: pd.DataFrame, labels: pd.Series) -> ChurnLabeler:
        from sklearn.linear_model import LogisticRegression

        self.spend_cap = float(np.quantile(frame["monthly_spend"], 0.99))
        self.estimator = LogisticRegression(C=self.C, max_iter=500).fit(self.preprocess(frame),
                                                                         (labels == "churn").astype(int))
        return self

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        churn = self.estimator.predict_proba(self.preprocess(model_input[FEATURES]))[:, 1]
        return np.where(churn >= self.threshold, "churn", "stay")
