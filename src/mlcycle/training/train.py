"""Training: one MLflow run per training, with params, metrics, lineage tags, the model and its signature.

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
from mlcycle.training.estimators import build_estimator, check_params, get_spec

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
        model_type: estimator name (see ``mlcycle.training.estimators``).
        params: hyperparameters overriding the estimator's defaults.
        n_trials: random-search trials over the estimator's search space (0 = none).
        seed: seed for the search and the reference sample.
        tags: extra run tags (team, pipeline run id, dataset, data hash...).
    """

    experiment: str
    model_type: str = "random_forest"
    params: Mapping[str, Any] = field(default_factory=dict)
    n_trials: int = 0
    seed: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingResult:
    run_id: str
    model_uri: str
    params: dict[str, Any]
    search_score: float | None


def features_and_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise InvalidInputError(f"target column {target!r} is missing", field=target)
    return frame.drop(columns=[target]), frame[target]


def search_hyperparameters(model_type: str, base_params: Mapping[str, Any], X: pd.DataFrame, y: pd.Series,
                           *, n_trials: int, seed: int) -> tuple[dict[str, Any], float, list[dict]]:
    """Random search with 3-fold cross-validated macro F1; returns the best params, score and all trials."""
    from sklearn.model_selection import ParameterSampler, StratifiedKFold, cross_val_score

    spec = get_spec(model_type)
    space = {k: v for k, v in spec.search_space.items() if k not in base_params}
    folds = StratifiedKFold(n_splits=min(3, int(y.value_counts().min())), shuffle=True, random_state=seed)
    trials: list[dict] = []
    candidates = list(ParameterSampler(space, n_iter=n_trials, random_state=seed)) if space else [{}]
    for sampled in candidates:
        params = {**base_params, **sampled}
        score = float(np.mean(cross_val_score(build_estimator(model_type, params), X, y, cv=folds,
                                              scoring="f1_macro")))
        trials.append({"params": params, "score": score})
    best = max(trials, key=lambda t: t["score"])
    return dict(best["params"]), best["score"], trials


def reference_sample(frame: pd.DataFrame, model, target: str, *, seed: int,
                     max_rows: int = REFERENCE_MAX_ROWS) -> pd.DataFrame:
    """Up to ``max_rows`` training rows with the model's predictions, for drift monitoring."""
    sample = frame.sample(n=min(max_rows, len(frame)), random_state=seed) if len(frame) > max_rows else frame
    sample = sample.reset_index(drop=True).copy()
    sample["prediction"] = model.predict(sample.drop(columns=[target]))
    return sample


def train_model(train: pd.DataFrame, target: str, request: TrainingRequest, settings: Settings
                ) -> TrainingResult:
    """Fit the requested estimator on ``train`` and record everything in one MLflow run.

    Raises:
        InvalidInputError: unknown model type or hyperparameter (``field`` names it), or no target.
    """
    import mlflow
    from mlflow.models import infer_signature

    from mlcycle.tracking import ensure_experiment

    get_spec(request.model_type)
    check_params(request.model_type, request.params)
    X, y = features_and_target(train, target)

    # The search varies what the user did not set; the estimator's defaults fill in the rest.
    chosen = dict(request.params)
    search_score = None
    trials: list[dict] = []
    if request.n_trials > 0:
        chosen, search_score, trials = search_hyperparameters(
            request.model_type, chosen, X, y, n_trials=request.n_trials, seed=request.seed)
    params = dict(get_spec(request.model_type).defaults) | chosen
    model = build_estimator(request.model_type, params).fit(X, y)

    experiment_id = ensure_experiment(request.experiment, settings)
    tags = {
        "mlcycle.model_type": request.model_type,
        "mlcycle.target": target,
        "mlcycle.code_version": __version__,
        "mlcycle.team": settings.team,
        **request.tags,
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params({k: v for k, v in params.items()} | {"model_type": request.model_type,
                                                                 "n_trials": request.n_trials})
        mlflow.log_metrics({
            "train_accuracy": float((model.predict(X) == y.to_numpy()).mean()),
            "train_rows": float(len(train)),
            **({"search_f1_macro": search_score} if search_score is not None else {}),
        })
        for i, trial in enumerate(trials):
            mlflow.log_metric("search_trial_f1_macro", trial["score"], step=i)
        example = X.head(5)
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=infer_signature(X, model.predict(X)),
            input_example=example,
            skops_trusted_types=list(get_spec(request.model_type).skops_trusted_types),
        )
        # MLflow 3 stores the model as a LoggedModel (models:/m-...), not under the run's artifacts:
        # record its URI on the run so later steps register and load exactly that model.
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        reference = reference_sample(train, model, target, seed=request.seed)
        _log_table(reference, REFERENCE_ARTIFACT)
        log.info("trained %s in run %s", request.model_type, run.info.run_id)
    return TrainingResult(run_id=run.info.run_id, model_uri=info.model_uri, params=params,
                          search_score=search_score)


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
