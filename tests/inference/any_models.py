"""Models a team brings, logged with plain MLflow calls (as a user would, outside mlcycle), registered.

- ``lgbm``: a LightGBM classifier behind an OrdinalEncoder for its string column ``color`` (scikit-learn
  Pipeline, ``mlflow.sklearn``: pyfunc cannot serve a bare LGBMClassifier fitted on a pandas category);
- ``lgbnum``: a bare LGBMClassifier on numeric columns (``mlflow.lightgbm``, the native fast path);
- ``xgbreg``: an XGBoost regressor (``mlflow.xgboost``) with a double and a long column;
- ``pipe``: a scikit-learn Pipeline whose ColumnTransformer selects string + numeric columns by name;
- ``custom``: an ``mlflow.pyfunc.PythonModel`` returning a DataFrame of two columns (a float score, a
  string label), taking a string, a double, a boolean and a datetime;
- ``sklreg``: a scikit-learn regressor, versions 1 (alias champion) and 2 (alias challenger).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

N = 300


class TwoColumns:  # replaced by a PythonModel subclass in build(), when mlflow is imported
    pass


def make_frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], n),
            "x": rng.normal(size=n),
            "k": rng.integers(0, 5, n).astype(np.int64),
            "flag": rng.random(n) > 0.5,
            "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 30, n), unit="s"),
        }
    )


@dataclass
class AnyModels:
    frame: pd.DataFrame
    inputs: dict[str, list[str]]  # model -> its input columns
    uris: dict[str, str]  # model -> models:/name/1


def _custom_class():
    import mlflow.pyfunc

    class TwoColumnModel(mlflow.pyfunc.PythonModel):
        """Pre- and post-processing in the model: a score and a label, per row."""

        def predict(self, context, model_input, params=None):
            hours = pd.to_datetime(model_input["when"]).dt.hour.to_numpy()
            score = model_input["x"].to_numpy() * 2.0 + hours / 24.0 + np.where(model_input["flag"], 1.0, 0.0)
            label = np.where(model_input["color"].to_numpy() == "red", "hot", "cold")
            return pd.DataFrame({"score": score, "label": label})

    return TwoColumnModel


def requirements() -> list[str]:
    """Pinned like MLflow pins them (naming them saves its requirement inference, ~15 s per model here)."""
    from importlib.metadata import version

    names = ("mlflow", "scikit-learn", "lightgbm", "xgboost-cpu", "pandas", "numpy", "cloudpickle")
    return [f"{n}=={version(n)}" for n in names]


def build_any_models(experiment_id: str) -> AnyModels:
    """Fit, log and register every model in the MLflow store MLflow is pointed at."""
    import lightgbm as lgb
    import mlflow
    import xgboost as xgb
    from mlflow.tracking import MlflowClient
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    f = make_frame()
    y_cls = ((f.x > 0).astype(int) + (f.color == "red")).to_numpy()
    y_reg = (f.x * 3 + f.k - (f.color == "blue") * 2).to_numpy()
    inputs, uris = {}, {}

    def log(name, flavor, model, cols, **kw):
        with mlflow.start_run(experiment_id=experiment_id, run_name=name):
            info = flavor.log_model(
                model,
                name="model",
                input_example=f[cols].head(5),
                registered_model_name=name,
                pip_requirements=requirements(),
                **kw,
            )
        inputs[name] = cols
        uris[name] = f"models:/{name}/{info.registered_model_version}"

    cols = ["color", "x", "k"]
    lgbm = Pipeline(
        [
            ("enc", ColumnTransformer([("cat", OrdinalEncoder(), ["color"])], remainder="passthrough")),
            ("lgbm", lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1)),
        ]
    ).fit(f[cols], y_cls)
    trusted = ["collections.OrderedDict", "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"]
    log("lgbm", mlflow.sklearn, lgbm, cols, skops_trusted_types=trusted)
    lgbnum = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(f[["x", "k"]], y_cls)
    log("lgbnum", mlflow.lightgbm, lgbnum, ["x", "k"])
    xgbreg = xgb.XGBRegressor(n_estimators=20, max_depth=3).fit(f[["x", "k"]], y_reg)
    log("xgbreg", mlflow.xgboost, xgbreg, ["x", "k"])
    pipe = Pipeline(
        [
            ("cols", ColumnTransformer([("city", OneHotEncoder(), ["color"]), ("num", StandardScaler(), ["x", "k"])])),
            ("clf", LogisticRegression()),
        ]
    ).fit(f[cols], y_cls)
    log("pipe", mlflow.sklearn, pipe, cols)
    with mlflow.start_run(experiment_id=experiment_id, run_name="custom"):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_custom_class()(),
            input_example=f[["color", "x", "flag", "when"]].head(5),
            registered_model_name="custom",
            pip_requirements=requirements(),
        )
    inputs["custom"] = ["color", "x", "flag", "when"]
    uris["custom"] = f"models:/custom/{info.registered_model_version}"
    log("sklreg", mlflow.sklearn, Ridge(alpha=1.0).fit(f[["x", "k"]], y_reg), ["x", "k"])
    log("sklreg", mlflow.sklearn, Lasso(alpha=0.05).fit(f[["x", "k"]], y_reg), ["x", "k"])
    client = MlflowClient()
    client.set_registered_model_alias("sklreg", "champion", "1")
    client.set_registered_model_alias("sklreg", "challenger", "2")
    uris["sklreg"] = "models:/sklreg/1"
    return AnyModels(frame=f, inputs=inputs, uris=uris)


def pyfunc_predict(uri: str, frame: pd.DataFrame):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri).predict(frame)


def v2_columns(frame: pd.DataFrame) -> list[dict]:
    """One v2 input per column, datatypes as the metadata says (datetimes as BYTES ISO-8601)."""
    out = []
    for c in frame.columns:
        s = frame[c]
        if s.dtype.kind == "M":
            out.append(
                {
                    "name": c,
                    "shape": [len(s)],
                    "datatype": "BYTES",
                    "data": [v.isoformat() for v in s],
                    "parameters": {"content_type": "datetime"},
                }
            )
        elif s.dtype.kind == "O":
            out.append(
                {
                    "name": c,
                    "shape": [len(s)],
                    "datatype": "BYTES",
                    "data": s.tolist(),
                    "parameters": {"content_type": "str"},
                }
            )
        elif s.dtype.kind == "b":
            out.append({"name": c, "shape": [len(s)], "datatype": "BOOL", "data": s.tolist()})
        elif s.dtype.kind in "iu":
            out.append({"name": c, "shape": [len(s)], "datatype": "INT64", "data": s.tolist()})
        else:
            out.append({"name": c, "shape": [len(s)], "datatype": "FP64", "data": s.tolist()})
    return out
