"""What kind of model a trainer returned, how MLflow logs it, and one way to score any of them.

Kinds and flavors: a scikit-learn estimator or Pipeline → ``mlflow.sklearn`` (skops, with the trainer's
trusted types); LightGBM (scikit-learn API or ``Booster``) → ``mlflow.lightgbm`` (skops or LightGBM's own
format); XGBoost → ``mlflow.xgboost`` (XGBoost's own format); an ``mlflow.pyfunc.PythonModel`` →
``mlflow.pyfunc`` (MLflow cloudpickles the instance, with the trainer's code alongside: that is what a
PythonModel is, so it is the declared kind, recorded as the run's ``mlcycle.serialization`` tag — never a
fallback for a model skops refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.training.trainers import TrainerError

SKLEARN = "sklearn"
LIGHTGBM = "lightgbm"
XGBOOST = "xgboost"
PYFUNC = "pyfunc"
SERIALIZATION = {SKLEARN: "skops", LIGHTGBM: "skops", XGBOOST: "xgboost-json", PYFUNC: "cloudpickle (PythonModel)"}


def model_kind(model: Any, trainer: str) -> str:
    """The MLflow flavor for ``model``.

    Raises:
        TrainerError: the trainer returned something mlcycle cannot log.
    """
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel):
        return PYFUNC
    root = type(model).__module__.partition(".")[0]
    if root == "lightgbm":
        return LIGHTGBM
    if root == "xgboost":
        return XGBOOST
    from sklearn.base import BaseEstimator

    if isinstance(model, BaseEstimator) and callable(getattr(model, "predict", None)):
        return SKLEARN
    raise TrainerError(trainer, f"fit returned a {type(model).__module__}.{type(model).__qualname__}, which mlcycle "
                       "cannot log: return a fitted scikit-learn estimator or Pipeline, a LightGBM or XGBoost "
                       "model, or an mlflow.pyfunc.PythonModel")


def _booster_kind(model: Any) -> bool:
    return type(model).__name__ == "Booster"


def check_skops_types(model: Any, trusted: tuple[str, ...], trainer: str) -> None:
    """Refuse a model holding types skops does not trust and the trainer did not declare, saying how to."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    except Exception as e:  # noqa: BLE001 - skops cannot serialize it at all: the trainer's model, the cause said
        raise TrainerError(trainer, f"the model cannot be saved with skops ({type(e).__name__}: {e}); skops "
                           "saves only module-level classes and functions; mlcycle never falls back to pickle") from e
    missing = sorted(set(untrusted) - set(trusted))
    if missing:
        module = trainer.partition(":")[0]
        raise TrainerError(trainer, f"the model holds types skops does not trust: {', '.join(missing)}. If loading "
                           f"them is safe, declare them in {module}: skops_trusted_types = {missing!r}")


def log_model(model: Any, kind: str, trainer_ref: str, *, name: str, signature, input_example: pd.DataFrame,
              trusted: tuple[str, ...], code_paths: list[str] | None = None):
    """Log ``model`` with its flavor under the active run; returns MLflow's ``ModelInfo``."""
    import mlflow

    common = dict(name=name, signature=signature, input_example=input_example)
    if kind == SKLEARN:
        check_skops_types(model, trusted, trainer_ref)
        return mlflow.sklearn.log_model(model, skops_trusted_types=list(trusted), **common)
    if kind == LIGHTGBM:
        import mlflow.lightgbm

        if _booster_kind(model):
            return mlflow.lightgbm.log_model(model, **common)
        check_skops_types(model, trusted, trainer_ref)
        return mlflow.lightgbm.log_model(model, serialization_format="skops", skops_trusted_types=list(trusted),
                                         **common)
    if kind == XGBOOST:
        import mlflow.xgboost

        return mlflow.xgboost.log_model(model, model_format="json", **common)
    return mlflow.pyfunc.log_model(python_model=model, code_paths=code_paths, **common)


@dataclass
class Scorer:
    """Any model behind ``predict`` (and ``predict_proba`` with ``classes`` when the model has them)."""

    model: Any
    kind: str
    trainer: str

    @property
    def classes(self) -> list | None:
        classes = getattr(self.model, "classes_", None)
        return list(classes) if classes is not None and self.has_proba else None

    @property
    def has_proba(self) -> bool:
        return self.kind != PYFUNC and not _booster_kind(self.model) and hasattr(self.model, "predict_proba")

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        try:
            if self.kind == PYFUNC:
                out = self.model.predict(None, X) if _is_python_model(self.model) else self.model.predict(X)
            elif self.kind == XGBOOST and _booster_kind(self.model):
                import xgboost

                out = self.model.predict(xgboost.DMatrix(X))
            else:
                out = self.model.predict(X)
        except Exception as e:
            raise TrainerError(self.trainer, f"the model's predict failed on {len(X)} rows: "
                               f"{type(e).__name__}: {e}", field="model") from e
        out = out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1 or len(out) != len(X):
            raise TrainerError(self.trainer, f"the model's predict returned shape {out.shape} for {len(X)} rows; "
                               "it must return one prediction per row", field="model")
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


def _is_python_model(model: Any) -> bool:
    import mlflow.pyfunc

    return isinstance(model, mlflow.pyfunc.PythonModel)


def adapt_model(model: Any, trainer: str) -> Scorer:
    """A freshly fitted model behind :class:`Scorer`."""
    return Scorer(model, model_kind(model, trainer), trainer)


def load_scorer(model_uri: str, trainer: str = "") -> Scorer:
    """Load a logged model by its own flavor (pyfunc when it has no native one) for scoring."""
    import mlflow
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    flavors = Model.load(local).flavors
    label = trainer or model_uri
    if SKLEARN in flavors:
        return Scorer(mlflow.sklearn.load_model(local), SKLEARN, label)
    if LIGHTGBM in flavors:
        import mlflow.lightgbm

        return Scorer(mlflow.lightgbm.load_model(local), LIGHTGBM, label)
    if XGBOOST in flavors:
        import mlflow.xgboost

        return Scorer(mlflow.xgboost.load_model(local), XGBOOST, label)
    return Scorer(mlflow.pyfunc.load_model(local), PYFUNC, label)


def input_columns(model_uri: str) -> list[str] | None:
    """The column names of the model's signature, or None when it has none (or a tensor signature)."""
    from mlflow.models import get_model_info

    signature = get_model_info(model_uri).signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return None
    return list(signature.inputs.input_names())
