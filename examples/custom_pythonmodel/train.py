"""A plain training script (no mlcycle in it): fit the custom model and log it with MLflow, then register it.

    python -m examples.custom_pythonmodel.train --data churn.parquet      # prints runs:/<id>/model
    mlcycle register runs:/<id>/model --name churn-custom --holdout holdout.parquet --target outcome

``mlcycle register`` evaluates it against the champion on the holdout rows, checks the predictor can serve
it, gates it and releases it exactly as a model ``mlcycle run training`` trained.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

TARGET = "outcome"


def make_data(rows: int = 1_000, seed: int = 0) -> pd.DataFrame:
    """The LightGBM example's generated customers with messy ``plan`` text and a ``churn``/``stay`` label."""
    import numpy as np

    from examples.lightgbm_categorical.train import make_data as customers

    frame = customers(rows, seed)
    rng = np.random.default_rng(seed + 1)
    messy = rng.choice([str.upper, str.title, lambda s: f" {s} "], rows)
    frame["plan"] = [f(p) for f, p in zip(messy, frame["plan"], strict=True)]
    frame[TARGET] = np.where(frame.pop("churned") == 1, "churn", "stay")
    return frame


def fit(train: pd.DataFrame, target: str = TARGET, params: dict | None = None):
    """The fitted :class:`~examples.custom_pythonmodel.model.ChurnLabeler` (``params``: ``threshold``, ``C``).

    It is also a trainer: ``mlcycle run training --trainer examples.custom_pythonmodel.train:fit`` logs the
    same PythonModel (with this package as its code) without the script.
    """
    from examples.custom_pythonmodel.model import ChurnLabeler

    params = params or {}
    model = ChurnLabeler(threshold=float(params.get("threshold", 0.5)), C=float(params.get("C", 1.0)))
    return model.fit(train.drop(columns=[target]), train[target])


def log(model, train: pd.DataFrame, target: str = TARGET) -> str:
    """Log ``model`` with plain MLflow calls (signature, input example, its code); return its ``runs:/`` URI."""
    import mlflow
    from mlflow.models import infer_signature

    X = train.drop(columns=[target])
    with mlflow.start_run(run_name="custom churn labeler") as run:
        mlflow.pyfunc.log_model(
            name="model", python_model=model, signature=infer_signature(X, model.predict(None, X)),
            input_example=X.head(5),
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the `examples` package, so it loads anywhere
        )
    return f"runs:/{run.info.run_id}/model"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Parquet file with the customers and the outcome column.")
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args(argv)
    train = pd.read_parquet(args.data)
    uri = log(fit(train, params={"threshold": args.threshold}), train)
    print(uri)
    return uri


if __name__ == "__main__":
    main()
