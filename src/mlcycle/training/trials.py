"""Parallel search trials: the serial random search cut into steps a pipeline fans out.

:func:`plan_trials` samples the trials exactly as the serial :func:`~mlcycle.training.trainers.search`
does (same sampler, same seed) and opens the parent MLflow run; :func:`run_trial_item` scores one trial
(the same :func:`~mlcycle.training.trainers.run_trial`) in its own child run (tag ``mlflow.parentRunId``)
logging its parameters and validation metric; :func:`select_trial` keeps the best by the serial search's
rule (highest score, the earliest trial on a tie) and :func:`train_selected` trains the final model with it
in the parent run, which is then the run evaluation, the gate and registration use. Plans and results
cross step boundaries as JSON strings (a ``dsl.ParallelFor`` over the plan, ``dsl.Collected`` results).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError, MlcycleError
from mlcycle.training.train import (
    SearchOutcome,
    TrainingRequest,
    TrainingResult,
    _param_value,
    prepare_training,
    train_model,
)
from mlcycle.training.trainers import REGRESSION, load_trainer, run_trial, sample_trials, search_metric

log = logging.getLogger(__name__)

PARENT_RUN_TAG = "mlflow.parentRunId"
TRIAL_TAG = "mlcycle.trial"
SEARCH_TAG = "mlcycle.search"
BEST_TRIAL_TAG = "mlcycle.best_trial"


class TrialsMismatchError(MlcycleError):
    """The collected trial results are not the planned trials (missing, repeated, or another search's)."""


@dataclass(frozen=True)
class TrialItem:
    """One planned trial: what one step of the fan-out gets."""

    parent_run_id: str
    index: int
    params: dict[str, Any]
    task: str
    target: str
    request: TrainingRequest

    def to_json(self) -> str:
        request = {**dataclasses.asdict(self.request), "params": dict(self.request.params),
                   "tags": dict(self.request.tags)}
        body = {"parent_run_id": self.parent_run_id, "index": self.index, "params": self.params,
                "task": self.task, "target": self.target, "request": request}
        try:
            return json.dumps(body, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"trial {self.index}: parameters {self.params!r} are not JSON values, which "
                                    "parallel trials pass between steps; use numbers, strings, booleans or null "
                                    "in search_space", field="search_space") from e

    @classmethod
    def from_json(cls, text: str) -> TrialItem:
        body = json.loads(text)
        return cls(parent_run_id=body["parent_run_id"], index=int(body["index"]), params=dict(body["params"]),
                   task=body["task"], target=body["target"], request=TrainingRequest(**body["request"]))


@dataclass(frozen=True)
class TrialResult:
    """One scored trial; ``score`` is higher-is-better (minus the RMSE for regression), as in the search."""

    parent_run_id: str
    index: int
    run_id: str
    params: dict[str, Any]
    score: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        body = json.loads(text)
        return cls(parent_run_id=body["parent_run_id"], index=int(body["index"]), run_id=body["run_id"],
                   params=dict(body["params"]), score=float(body["score"]))


def plan_trials(train: pd.DataFrame, target: str, request: TrainingRequest, settings: Settings) -> list[TrialItem]:
    """Check the request, sample its ``n_trials`` parameter sets, and open the parent run they report to.

    Raises:
        InvalidInputError: ``n_trials`` below 1, or what :func:`~mlcycle.training.train.prepare_training`
            refuses (unknown model type, parameter or task; no target).
    """
    from mlflow.tracking import MlflowClient

    from mlcycle.tracking import ensure_experiment

    if request.n_trials < 1:
        raise InvalidInputError(f"parallel trials need n_trials of at least 1, got {request.n_trials}",
                                field="n_trials")
    prepared = prepare_training(train, target, request)
    sampled = sample_trials(prepared.trainer, dict(request.params), request.n_trials, request.seed)
    experiment_id = ensure_experiment(request.experiment, settings)
    parent = MlflowClient().create_run(experiment_id, tags={
        **request.tags, SEARCH_TAG: "parallel", "mlcycle.trainer": prepared.trainer.ref,
        "mlcycle.task": prepared.task, "mlcycle.team": settings.team})
    items = [TrialItem(parent.info.run_id, i, params, prepared.task, target, request)
             for i, params in enumerate(sampled)]
    for item in items:
        item.to_json()  # refuse parameters that cannot cross a step boundary now, not in a trial
    log.info("planned %d trial(s) of %s under run %s", len(items), prepared.trainer.ref, parent.info.run_id)
    return items


def run_trial_item(train: pd.DataFrame, item: TrialItem) -> TrialResult:
    """Score one trial in a child run of the search's parent: its parameters and validation metric.

    The item carries the target column too: inside a ``dsl.ParallelFor`` kfp 2.17's local runner replaces
    every parameter input that is another task's output by the loop item
    (``kfp/local/orchestrator/task_spec_utils.py``, ``create_parameter_loop_iteration_task_spec``), so the
    trial step takes the item (and the data artifact) only.

    The metric is logged on its own scale (``validation_f1_macro``, ``validation_rmse``). A trial that
    fails marks its run and the parent FAILED and raises, as a failing trial stops the serial search.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    trainer = load_trainer(item.request.trainer_ref)
    parent = client.get_run(item.parent_run_id)
    metric = search_metric(item.task)
    tags = {TRIAL_TAG: str(item.index), "mlcycle.trainer": trainer.ref, "mlcycle.task": item.task,
            "mlcycle.pipeline_run_id": item.request.tags.get("mlcycle.pipeline_run_id", "")}
    try:
        with mlflow.start_run(experiment_id=parent.info.experiment_id, run_name=f"trial-{item.index}",
                              parent_run_id=item.parent_run_id, tags=tags) as run:
            mlflow.log_params({k: _param_value(v) for k, v in item.params.items()})
            score = run_trial(trainer, train, item.target, item.params, item.task, seed=item.request.seed)
            mlflow.log_metric(f"validation_{metric}", -score if item.task == REGRESSION else score)
    except BaseException:
        client.set_terminated(item.parent_run_id, "FAILED")
        raise
    return TrialResult(item.parent_run_id, item.index, run.info.run_id, dict(item.params), score)


def select_trial(items: Sequence[TrialItem], results: Sequence[TrialResult]) -> SearchOutcome:
    """The best trial by the serial search's rule: highest score, and on a tie the earliest trial.

    Raises:
        TrialsMismatchError: the results are not exactly one per planned trial of this search.
    """
    if not items:
        raise TrialsMismatchError("no trials were planned")
    parent = items[0].parent_run_id
    planned = sorted(item.index for item in items)
    ordered = sorted(results, key=lambda r: r.index)
    if [r.index for r in ordered] != planned or any(r.parent_run_id != parent for r in ordered):
        raise TrialsMismatchError(f"search {parent}: planned trials {planned}, got results for "
                                  f"{[(r.parent_run_id, r.index) for r in ordered]}")
    trials = [{"params": r.params, "score": r.score, "run_id": r.run_id} for r in ordered]
    best = max(range(len(trials)), key=lambda i: trials[i]["score"])  # max keeps the first of equals
    return SearchOutcome(dict(trials[best]["params"]), trials[best]["score"], trials, best=ordered[best].index)


def train_selected(train: pd.DataFrame, target: str, items: Sequence[TrialItem], results: Sequence[TrialResult],
                   settings: Settings) -> TrainingResult:
    """Select the best trial and train the final model with its parameters in the parent run.

    The parent run then carries what a serial search's run carries (parameters, ``search_<metric>``,
    ``search_trial_<metric>`` per trial, the model) plus the chosen trial's index (``mlcycle.best_trial``).
    In a process that set an active MLflow experiment it must be the parent's (MLflow's rule for resuming).
    """
    outcome = select_trial(items, results)
    request = items[0].request
    request = dataclasses.replace(request, tags={**request.tags, SEARCH_TAG: "parallel",
                                                 BEST_TRIAL_TAG: str(outcome.best)})
    return train_model(train, target, request, settings, searched=outcome, run_id=items[0].parent_run_id)


def parse_items(texts: Sequence[str]) -> list[TrialItem]:
    """The plan's JSON items as :class:`TrialItem` s."""
    return [TrialItem.from_json(t) for t in texts]


def parse_results(texts: Sequence[str]) -> list[TrialResult]:
    """The collected JSON results as :class:`TrialResult` s."""
    return [TrialResult.from_json(t) for t in texts]
