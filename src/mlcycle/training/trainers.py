"""Trainers: a data scientist's own training code, called by mlcycle as ``module:function``.

The contract (README, "Bring your own training code")::

    def fit(train: pandas.DataFrame, target: str, params: dict) -> model

``model`` is a scikit-learn estimator or Pipeline, a LightGBM or XGBoost model (scikit-learn API or
booster), or an ``mlflow.pyfunc.PythonModel``. The module may declare, at module level (or as attributes
of the function, which win):

- ``search_space = {"num_leaves": [15, 31, 63], ...}`` — what ``--trials N`` samples from;
- ``skops_trusted_types = ["lightgbm.sklearn.LGBMClassifier", ...]`` — the extra types skops may load;
- ``defaults = {...}`` — parameters used unless ``--param`` overrides them.

If ``fit`` takes a keyword ``task``, it is called with ``task="classification"`` or ``"regression"``.
A single search trial (:func:`run_trial`) can run by itself, so trials can be fanned out.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import InvalidInputError

BUILTIN_MODULE = "mlcycle.training.builtin"
CLASSIFICATION = "classification"
REGRESSION = "regression"
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TrainerError(InvalidInputError):
    """The trainer failed, or returned something mlcycle cannot log or score; names the trainer and the cause."""

    def __init__(self, trainer: str, message: str, *, field: str | None = "trainer") -> None:
        super().__init__(f"trainer {trainer}: {message}", field=field)
        self.trainer = trainer


@dataclass(frozen=True)
class Trainer:
    """A loaded trainer: its reference, the function, and what its module declares."""

    ref: str
    fit: Callable[..., Any]
    search_space: Mapping[str, list[Any]] = field(default_factory=dict)
    skops_trusted_types: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    code_version: str = ""

    @property
    def builtin(self) -> bool:
        return self.ref.startswith(BUILTIN_MODULE + ":")

    @property
    def name(self) -> str:
        """``random_forest`` for a built-in, else the reference itself."""
        return self.ref.partition(":")[2] if self.builtin else self.ref

    def train(self, train: pd.DataFrame, target: str, params: Mapping[str, Any], task: str) -> Any:
        """Call the trainer; anything it raises becomes a :class:`TrainerError` with the cause."""
        merged = {**self.defaults, **params}
        kwargs = {"task": task} if _takes_task(self.fit) else {}
        try:
            model = self.fit(train.copy(), target, merged, **kwargs)
        except InvalidInputError:
            raise
        except Exception as e:
            raise TrainerError(self.ref, f"fit raised {type(e).__name__}: {e}") from e
        if model is None:
            raise TrainerError(self.ref, "fit returned None; return the fitted model")
        return model


def builtin_ref(model_type: str) -> str:
    """The trainer reference of a built-in estimator: ``mlcycle.training.builtin:random_forest``."""
    return f"{BUILTIN_MODULE}:{model_type}"


def load_trainer(ref: str) -> Trainer:
    """Import ``package.module:function`` and read what its module declares.

    Raises:
        InvalidInputError: the reference is malformed, the module does not import, or the function is missing
            or not callable (``field="trainer"``).
    """
    if not _REF.match(ref or ""):
        raise InvalidInputError(f"trainer {ref!r}: write module:function, e.g. my_package.train:fit",
                                field="trainer")
    module_name, _, function = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InvalidInputError(f"trainer {ref}: cannot import {module_name}: {e} (is it on PYTHONPATH, or in "
                                "the image given to `mlcycle compile --image`?)", field="trainer") from e
    fit = getattr(module, function, None)
    if not callable(fit):
        raise InvalidInputError(f"trainer {ref}: {module_name} has no function {function!r}", field="trainer")

    def declared(attr: str, default):
        value = getattr(fit, attr, None)
        return value if value is not None else getattr(module, attr, default)

    space = declared("search_space", {})
    trusted = declared("skops_trusted_types", ())
    defaults = declared("defaults", {})
    if not isinstance(space, Mapping) or not all(isinstance(v, list | tuple) for v in space.values()):
        raise InvalidInputError(f"trainer {ref}: search_space must map each parameter to a list of values",
                                field="trainer")
    return Trainer(ref=ref, fit=fit, search_space={k: list(v) for k, v in space.items()},
                   skops_trusted_types=tuple(trusted), defaults=dict(defaults),
                   code_version=code_version(module))


def code_version(module) -> str:
    """The trainer's code version: its distribution's version if installed as one, else its source's hash."""
    from importlib import metadata

    top = module.__name__.partition(".")[0]
    if top == "mlcycle":
        from mlcycle import __version__

        return f"mlcycle=={__version__}"
    for dist in metadata.packages_distributions().get(top, []):
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    source = getattr(module, "__file__", None)
    if source and Path(source).is_file():
        return "sha256:" + hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
    return "unknown"


def infer_task(y: pd.Series) -> str:
    """``classification`` for labels (strings, booleans, categories, few distinct integers), else ``regression``."""
    if y.dtype.kind in "OSUb" or isinstance(y.dtype, pd.CategoricalDtype) or y.dtype == "string":
        return CLASSIFICATION
    values = y.dropna().to_numpy()
    integral = y.dtype.kind in "iu" or bool(np.all(np.mod(values, 1) == 0))
    if integral and len(np.unique(values)) <= 20:
        return CLASSIFICATION
    return REGRESSION


def resolve_task(task: str, y: pd.Series) -> str:
    """``task`` if given (checked), else the one the target implies."""
    if not task:
        return infer_task(y)
    if task not in (CLASSIFICATION, REGRESSION):
        raise InvalidInputError(f"task {task!r} is not classification or regression", field="task")
    if task == REGRESSION and y.dtype.kind not in "iuf":
        raise InvalidInputError(f"task regression needs a numeric target; {y.name!r} is {y.dtype}", field="task")
    return task


def search_metric(task: str) -> str:
    """What the search maximises (or, for ``rmse``, minimises)."""
    return "f1_macro" if task == CLASSIFICATION else "rmse"


def sample_trials(trainer: Trainer, fixed: Mapping[str, Any], n_trials: int, seed: int) -> list[dict[str, Any]]:
    """The parameter sets ``--trials n_trials`` tries: the search space minus what the user fixed."""
    from sklearn.model_selection import ParameterSampler

    space = {k: v for k, v in trainer.search_space.items() if k not in fixed}
    sampled = list(ParameterSampler(space, n_iter=n_trials, random_state=seed)) if space else [{}]
    return [{**fixed, **s} for s in sampled]


def run_trial(trainer: Trainer, train: pd.DataFrame, target: str, params: Mapping[str, Any], task: str, *,
              seed: int = 0, folds: int = 3) -> float:
    """One trial by itself: ``folds``-fold cross-validated score of ``params`` (higher is better).

    The score is macro F1 for classification and minus the RMSE for regression, so trials compare the same
    way; the search logs the metric on its own scale.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    from mlcycle.training.flavors import adapt_model

    y = train[target]
    if task == CLASSIFICATION:
        n = max(2, min(folds, int(y.value_counts().min())))
        splitter = StratifiedKFold(n_splits=n, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = []
    for fit_idx, val_idx in splitter.split(train, y):
        part, held = train.iloc[fit_idx].reset_index(drop=True), train.iloc[val_idx].reset_index(drop=True)
        model = adapt_model(trainer.train(part, target, params, task), trainer.ref)
        scores.append(_score(model, held, target, task))
    return float(np.mean(scores))


def search(trainer: Trainer, train: pd.DataFrame, target: str, fixed: Mapping[str, Any], task: str, *,
           n_trials: int, seed: int) -> tuple[dict[str, Any], float, list[dict]]:
    """Random search: every sampled trial through :func:`run_trial`; the best params, score and all trials."""
    trials = [{"params": params, "score": run_trial(trainer, train, target, params, task, seed=seed)}
              for params in sample_trials(trainer, fixed, n_trials, seed)]
    best = max(trials, key=lambda t: t["score"])
    return dict(best["params"]), best["score"], trials


def _score(model, held: pd.DataFrame, target: str, task: str) -> float:
    from sklearn.metrics import f1_score, mean_squared_error

    X, y = held.drop(columns=[target]), held[target].to_numpy()
    predicted = model.predict(X)
    if task == CLASSIFICATION:
        return float(f1_score(y, predicted, average="macro", zero_division=0))
    return -float(np.sqrt(mean_squared_error(y, np.asarray(predicted, dtype=float))))


def _takes_task(fn: Callable) -> bool:
    try:
        return "task" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
