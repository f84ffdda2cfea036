"""Training: one MLflow run per trainer call, with params, metrics, lineage tags, the model and its signature.

The run also stores a reference sample of the training data (with the model's predictions on it) for
drift monitoring later; see ``docs/contracts.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import __version__
from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError
from mlcycle.training.estimators import check_params
from mlcycle.training.flavors import LIGHTGBM, PYFUNC, SERIALIZATION, Scorer, log_model, model_kind
from mlcycle.training.trainers import (
    CLASSIFICATION,
    REGRESSION,
    Trainer,
    TrainerError,
    builtin_ref,
    load_trainer,
    resolve_task,
    search,
    search_metric,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT = "reference/reference.parquet"
REFERENCE_MAX_ROWS = 5_000
MODEL_URI_TAG = "mlcycle.model_uri"


@dataclass(frozen=True)
class TrainingRequest:
    """What to train and where to record it.

    Attributes:
        experiment: MLflow experiment name (the team-qualified model name).
        model_type: built-in estimator name (see ``mlcycle.training.estimators``), used when ``trainer`` is empty.
        trainer: the user's trainer, ``package.module:function`` (see ``mlcycle.training.trainers``).
        task: ``classification`` or ``regression``; empty: inferred from the target.
        params: parameters passed to the trainer (over its defaults).
        n_trials: random-search trials over the trainer's search space (0 = none).
        seed: seed for the search and the reference sample.
        tags: extra run tags (team, pipeline run id, dataset, data hash...).
    """

    experiment: str
    model_type: str = "random_forest"
    trainer: str = ""
    task: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    n_trials: int = 0
    seed: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def trainer_ref(self) -> str:
        return self.trainer or builtin_ref(self.model_type)


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model_uri: str
    params: dict[str, Any]
    search_score: float | None
    task: str = CLASSIFICATION
    trainer: str = ""
    flavor: str = ""


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise InvalidInputError(f"target column {target!r} is missing", field=target)
    return frame.drop(columns=[target]), frame[target]


def reference_sample(frame: pd.DataFrame, model, target: str, *, seed: int,
                     max_rows: int = REFERENCE_MAX_ROWS) -> pd.DataFrame:
    """Up to ``max_rows`` training rows with the model's predictions, for drift monitoring."""
    sample = frame.sample(n=min(max_rows, len(frame)), random_state=seed) if len(frame) > max_rows else frame
    sample = sample.reset_index(drop=True).copy()
    sample["prediction"] = model.predict(sample.drop(columns=[target]))
    return sample


def _trainer_code_paths(trainer: Trainer) -> list[str] | None:
    """The trainer's top-level package (or module file), shipped with a PythonModel so it loads anywhere."""
    import importlib

    module_name = trainer.ref.partition(":")[0]
    source = getattr(importlib.import_module(module_name), "__file__", None)
    if not source:
        return None
    from pathlib import Path

    path = Path(source)
    depth = module_name.count(".")
    return [str(path.parents[depth - 1]) if depth else str(path)]  # the top-level package directory


@dataclass(frozen=True)
class SearchOutcome:
    """A finished random search: the chosen parameters, their score, every trial (scores higher-is-better).

    The serial search (:func:`~mlcycle.training.trainers.search`) and the fan-out of parallel trials
    (:mod:`mlcycle.training.trials`) both end in one; ``best`` is the index of the chosen trial.
    """

    params: dict[str, Any]
    score: float
    trials: list[dict]
    best: int = 0


@dataclass(frozen=True)
class PreparedTraining:
    """A request checked against its data: the loaded trainer, the features, the target and the task."""

    trainer: Trainer
    X: pd.DataFrame
    y: pd.Series
    task: str


def prepare_training(train: pd.DataFrame, target: str, request: TrainingRequest) -> PreparedTraining:
    """Check the request's parameters, load its trainer and resolve the task, before anything is fitted.

    Raises:
        InvalidInputError: unknown model type, hyperparameter or task, non-numeric features for a
            built-in, or no target (``field`` names it).
    """
    if not request.trainer:
        check_params(request.model_type, request.params)
    trainer = load_trainer(request.trainer_ref)
    X, y = features_and_target(train, target)
    if not request.trainer:
        _numeric_only(X, request.model_type)
    return PreparedTraining(trainer, X, y, resolve_task(request.task, y))


def train_model(train: pd.DataFrame, target: str, request: TrainingRequest, settings: Settings, *,
                searched: SearchOutcome | None = None, run_id: str | None = None) -> TrainingResult:
    """Call the trainer on ``train`` and record everything in one MLflow run.

    Built-in estimators and a user's trainer take exactly this path: fit, log with the model's flavor,
    signature from the training frame and the model's output, input example, reference sample, lineage.

    Args:
        train: the training split.
        target: the target column.
        request: what to train and where to record it.
        settings: MLflow and team settings.
        searched: a search already run elsewhere (the parallel trials' select step); without it,
            ``request.n_trials > 0`` runs the serial search here.
        run_id: record into this existing run (the parallel trials' parent) instead of a new one.

    Raises:
        InvalidInputError: unknown model type, hyperparameter or task (``field`` names it), or no target.
        TrainerError: the trainer raised, returned nothing loggable, or its model cannot predict its own
            training rows (the message names the trainer and the cause).
    """
    import mlflow
    from mlflow.models import infer_signature

    from mlcycle.tracking import ensure_experiment

    prepared = prepare_training(train, target, request)
    trainer, X, y, task = prepared.trainer, prepared.X, prepared.y, prepared.task

    # The search varies what the user did not set; the trainer's defaults fill in the rest.
    chosen = dict(request.params)
    search_score = None
    trials: list[dict] = []
    metric = search_metric(task)
    if searched is None and request.n_trials > 0:
        best_params, best_score, tried = search(trainer, train, target, chosen, task, n_trials=request.n_trials,
                                                seed=request.seed)
        best = next(i for i, t in enumerate(tried) if t["score"] == best_score)  # the first of equals, as max
        searched = SearchOutcome(best_params, best_score, tried, best=best)
    if searched is not None:
        chosen, search_score, trials = dict(searched.params), searched.score, list(searched.trials)
        if task == REGRESSION:
            search_score = -search_score
            trials = [{**t, "score": -t["score"]} for t in trials]
    params = dict(trainer.defaults) | chosen
    fitted = trainer.train(train, target, params, task)
    kind = model_kind(fitted, trainer.ref)
    scorer = Scorer(fitted, kind, trainer.ref)
    predicted = scorer.predict(X)

    experiment_id = ensure_experiment(request.experiment, settings)
    tags = {
        "mlcycle.model_type": trainer.name,
        "mlcycle.trainer": trainer.ref,
        "mlcycle.trainer_code_version": trainer.code_version,
        "mlcycle.task": task,
        "mlcycle.flavor": kind,
        "mlcycle.serialization": SERIALIZATION[kind] if not (kind == LIGHTGBM and type(fitted).__name__ == "Booster")
        else "lightgbm-text",
        "mlcycle.target": target,
        "mlcycle.code_version": __version__,
        "mlcycle.team": settings.team,
        **request.tags,
    }
    started = mlflow.start_run(run_id=run_id, tags=tags) if run_id else mlflow.start_run(
        experiment_id=experiment_id, tags=tags)
    with started as run:
        mlflow.log_params({k: _param_value(v) for k, v in params.items()}
                          | {"model_type": trainer.name, "n_trials": request.n_trials, "task": task})
        if task == CLASSIFICATION:
            train_metrics = {"train_accuracy": float((predicted == y.to_numpy()).mean())}
        else:
            train_metrics = {"train_rmse": float(np.sqrt(np.mean((predicted.astype(float) - y.to_numpy()) ** 2)))}
        mlflow.log_metrics({
            **train_metrics,
            "train_rows": float(len(train)),
            **({f"search_{metric}": search_score} if search_score is not None else {}),
        })
        for i, trial in enumerate(trials):
            mlflow.log_metric(f"search_trial_{metric}", trial["score"], step=i)
        try:
            info = log_model(fitted, kind, trainer.ref, name=MODEL_ARTIFACT, signature=infer_signature(X, predicted),
                             input_example=X.head(5), trusted=trainer.skops_trusted_types,
                             code_paths=_trainer_code_paths(trainer) if kind == PYFUNC else None)
        except InvalidInputError:
            raise
        except Exception as e:
            raise TrainerError(trainer.ref, f"MLflow cannot log the {kind} model: {type(e).__name__}: {e}") from e
        # MLflow 3 stores the model as a LoggedModel (models:/m-...), not under the run's artifacts:
        # record its URI on the run so later steps register and load exactly that model.
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        reference = reference_sample(train, scorer, target, seed=request.seed)
        _log_table(reference, REFERENCE_ARTIFACT)
        log.info("trained %s (%s, %s) in run %s", trainer.ref, task, kind, run.info.run_id)
    return TrainingResult(run_id=run.info.run_id, model_uri=info.model_uri, params=params,
                          search_score=search_score, task=task, trainer=trainer.ref, flavor=kind)


def _numeric_only(X: pd.DataFrame, model_type: str) -> None:
    """The built-in estimators take numbers; a string column needs a trainer that encodes it."""
    for column in X.columns:
        if not (pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column])):
            raise InvalidInputError(
                f"column {column!r} holds {X[column].dtype} values: the built-in {model_type} takes numeric "
                "features; encode it, or use a --trainer that does (examples/lightgbm_categorical)",
                field=str(column))


def _param_value(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


def _log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a Parquet artifact at ``artifact_file`` of the active run."""
    import tempfile
    from pathlib import Path

    import mlflow

    directory, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=directory or None)
