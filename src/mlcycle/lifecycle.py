"""The training lifecycle's steps, one function per pipeline component.

Each function is what one kfp component calls (a component body is artifact plumbing plus one call
here), and the in-process benchmark and tests call them directly. Data passes between steps as files
(kfp artifacts) and as the MLflow run, which is the source of truth for metrics and lineage.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle import release
from mlcycle.config import Settings
from mlcycle.data import QualityRules, content_hash, dataset_name, load_dataset, split_dataset, validate_dataset
from mlcycle.errors import InvalidInputError, PermissionDeniedError
from mlcycle.governance import audit, cards
from mlcycle.registry import versions
from mlcycle.registry.gate import CLASSIFICATION, REJECT, GateDecision, GatePolicy, decide, policy_for
from mlcycle.registry.uris import CHAMPION, qualified_name
from mlcycle.training.evaluate import Comparison, compare_with_champion, log_comparison
from mlcycle.training.flavors import load_scorer
from mlcycle.training.train import MODEL_URI_TAG, TrainingRequest, TrainingResult, train_model

log = logging.getLogger(__name__)

LINEAGE_TAGS = ("mlcycle.data_hash", "mlcycle.dataset", "mlcycle.pipeline_run_id", "mlcycle.model_type",
                "mlcycle.team", "mlcycle.code_version", "mlcycle.target", "mlcycle.trainer",
                "mlcycle.trainer_code_version", "mlcycle.task", "mlcycle.flavor", "mlcycle.source_model_uri")


@dataclass(frozen=True)
class PreparedData:
    target: str
    data_hash: str
    rows: int
    train_rows: int
    test_rows: int


def registered_name_for(dataset: str, name: str = "", team: str = "") -> str:
    """The registered-model name: ``name`` or the dataset's name, with the team prefix."""
    return qualified_name(name or dataset_name(dataset), team)


def check_write_access(registered_name: str, settings: Settings) -> str:
    """Refuse a write to another team's model when this step acts for a team (``MLCYCLE_TEAM``).

    On a multi-tenant cluster every step gets its team from the namespace's PodDefault, so a step can
    only write ``<team>.<name>`` models. Without a team (single-tenant, local) there is nothing to enforce.
    """
    if settings.team:
        from mlcycle.registry.tenancy import ensure_team_owns

        ensure_team_owns(registered_name, settings.team)
    return registered_name


def resolve_registered_name(dataset: str, name: str, team: str, settings: Settings) -> str:
    """The registered name a run writes to; a step configured for one team may not write for another."""
    if team and settings.team and team != settings.team:
        raise PermissionDeniedError(
            f"this step runs for team {settings.team!r} (MLCYCLE_TEAM) and may not write team {team!r}'s models",
            field="team",
        )
    return registered_name_for(dataset, name, team or settings.team)


def prepare_data(source: str, target: str | None, train_path: str | Path, test_path: str | Path, *,
                 test_size: float = 0.25, seed: int = 0, rules: QualityRules | None = None,
                 endpoint_url: str | None = None, task: str = "") -> PreparedData:
    """Load, validate and split a data source; write train/test Parquet files; hash the content."""
    from mlcycle.training.trainers import resolve_task

    frame, target = load_dataset(source, target, endpoint_url=endpoint_url)
    if target in frame.columns:
        task = resolve_task(task, frame[target])
    validate_dataset(frame, target, rules, task=task or "classification")
    train, test = split_dataset(frame, target, test_size=test_size, seed=seed, task=task or "classification")
    for part, path in ((train, train_path), (test, test_path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(path, index=False)
    return PreparedData(target=target, data_hash=content_hash(frame), rows=len(frame),
                        train_rows=len(train), test_rows=len(test))


def parse_params(params: str | dict[str, Any] | None) -> dict[str, Any]:
    """Hyperparameters from a JSON object string (pipeline parameter) or a dict."""
    if params is None or params == "":
        return {}
    if isinstance(params, dict):
        return dict(params)
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"params must be a JSON object: {e}", field="params") from e
    if not isinstance(parsed, dict):
        raise InvalidInputError("params must be a JSON object like {\"max_depth\": 4}", field="params")
    return parsed


def training_request(registered_name: str, *, model_type: str = "random_forest", params: str | dict | None = None,
                     n_trials: int = 0, seed: int = 0, dataset: str = "", data_hash: str = "",
                     pipeline_run_id: str = "", trainer: str = "", task: str = "") -> TrainingRequest:
    """The training request a pipeline's parameters describe, with the lineage tags every training run carries."""
    return TrainingRequest(
        experiment=registered_name,
        model_type=model_type,
        trainer=trainer,
        task=task,
        params=parse_params(params),
        n_trials=n_trials,
        seed=seed,
        tags={"mlcycle.dataset": dataset, "mlcycle.data_hash": data_hash,
              "mlcycle.pipeline_run_id": pipeline_run_id, "mlcycle.registered_name": registered_name},
    )


def run_training(train_path: str | Path, target: str, settings: Settings, *, registered_name: str,
                 model_type: str = "random_forest", params: str | dict | None = None, n_trials: int = 0,
                 seed: int = 0, dataset: str = "", data_hash: str = "", pipeline_run_id: str = "",
                 trainer: str = "", task: str = "") -> TrainingResult:
    """Train on the train split with ``trainer`` (default: the built-in ``model_type``) and record the run."""
    check_write_access(registered_name, settings)
    request = training_request(registered_name, model_type=model_type, params=params, n_trials=n_trials, seed=seed,
                               dataset=dataset, data_hash=data_hash, pipeline_run_id=pipeline_run_id,
                               trainer=trainer, task=task)
    return train_model(pd.read_parquet(train_path), target, request, settings)


def plan_training_trials(train_path: str | Path, target: str, settings: Settings, *, registered_name: str,
                         model_type: str = "random_forest", params: str | dict | None = None, n_trials: int = 0,
                         seed: int = 0, dataset: str = "", data_hash: str = "", pipeline_run_id: str = "",
                         trainer: str = "", task: str = "") -> list[str]:
    """Parallel trials, first step: the sampled trials as JSON items for a fan-out, under one parent run.

    Takes :func:`run_training`'s arguments; ``n_trials`` must be at least 1.
    """
    from mlcycle.training import trials

    check_write_access(registered_name, settings)
    request = training_request(registered_name, model_type=model_type, params=params, n_trials=n_trials, seed=seed,
                               dataset=dataset, data_hash=data_hash, pipeline_run_id=pipeline_run_id,
                               trainer=trainer, task=task)
    return [item.to_json() for item in trials.plan_trials(pd.read_parquet(train_path), target, request, settings)]


def run_training_trial(train_path: str | Path, item: str) -> str:
    """Parallel trials, one fan-out step: score the trial ``item`` in a child run; the result as JSON."""
    from mlcycle.training import trials

    return trials.run_trial_item(pd.read_parquet(train_path), trials.TrialItem.from_json(item)).to_json()


def train_best_trial(train_path: str | Path, target: str, items: list[str], results: list[str],
                     settings: Settings) -> TrainingResult:
    """Parallel trials, last step: keep the best trial and train the final model with it in the parent run."""
    from mlcycle.training import trials

    planned = trials.parse_items(items)
    if planned:
        check_write_access(planned[0].request.experiment, settings)
    return trials.train_selected(pd.read_parquet(train_path), target, planned, trials.parse_results(results),
                                 settings)


def run_evaluation(run_id: str, test_path: str | Path, target: str, registered_name: str) -> Comparison:
    """Score the run's model and the current champion on the same holdout; record it on the run.

    The model is loaded by its own flavor; the task is the one the training (or import) recorded.
    """
    from mlflow.tracking import MlflowClient

    run = MlflowClient().get_run(run_id)
    scorer = load_scorer(model_uri_of_run(run_id, run), run.data.tags.get("mlcycle.trainer", ""))
    comparison = compare_with_champion(scorer, pd.read_parquet(test_path), target, registered_name,
                                       run.data.tags.get("mlcycle.task", ""))
    log_comparison(run_id, comparison)
    return comparison


def gate_policy_for_run(run_id: str, metric: str = "", floor: float | str | None = "",
                        min_improvement: float = 0.0) -> GatePolicy:
    """The gate policy for the run's task (its ``mlcycle.task`` tag): metric and floor default to the task's."""
    from mlflow.tracking import MlflowClient

    task = MlflowClient().get_run(run_id).data.tags.get("mlcycle.task") or CLASSIFICATION
    return policy_for(task, metric, floor, min_improvement)


def model_uri_of_run(run_id: str, run=None) -> str:
    """The URI of the model a training run logged (recorded as a run tag by the training step)."""
    from mlflow.tracking import MlflowClient

    run = run or MlflowClient().get_run(run_id)
    uri = run.data.tags.get(MODEL_URI_TAG)
    if not uri:
        raise InvalidInputError(f"run {run_id} logged no model (tag {MODEL_URI_TAG} missing)", field="run_id")
    return uri


@dataclass(frozen=True)
class GateOutcome:
    registered_name: str
    version: str
    decision: GateDecision
    auto_promote: bool = True
    awaiting: str | None = None  # why a passing version stops at challenger (``awaiting approval for prod``)

    @property
    def promote(self) -> bool:
        return self.decision.promote

    @property
    def action(self) -> str:
        """What the pipeline does next: ``promote``, ``hold`` (passed, awaiting a canary), ``awaiting_approval``
        (passed; a protected environment serves champion) or ``reject``."""
        if self.decision.promote and self.awaiting:
            return "awaiting_approval"
        if self.decision.promote and not self.auto_promote:
            return "hold"
        return self.decision.decision


def register_candidate(run_id: str, registered_name: str) -> str:
    """Register the run's model as a version of ``registered_name`` with its lineage tags (idempotent)."""
    from mlflow.tracking import MlflowClient

    run = MlflowClient().get_run(run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k in LINEAGE_TAGS}
    version = versions.register_version(registered_name, model_uri_of_run(run_id, run), run_id, tags=lineage)
    audit.record(
        registered_name,
        version,
        "registered",
        details={
            "run_id": run_id,
            "dataset": lineage.get("mlcycle.dataset"),
            "data_hash": lineage.get("mlcycle.data_hash"),
        },
    )
    return version


def gate_candidate(run_id: str, registered_name: str, version: str, policy: GatePolicy, settings: Settings, *,
                   decided_by: str | None = None) -> GateDecision:
    """Decide whether ``version`` may become champion, record why, and point ``challenger`` at it.

    First the version must be servable: it is loaded and replayed through exactly the predictor's code
    (:func:`mlcycle.serving.servability.check_servability`); a version that is not servable is rejected
    and no alias moves. Then the decision uses the holdout metrics the evaluation step logged on the run
    (``test_*`` and ``champion_test_*``). The champion alias itself moves in :func:`promote_if_passed`, so
    a pipeline killed between the two leaves the old champion in place.
    """
    from mlflow.tracking import MlflowClient

    from mlcycle.serving.servability import check_servability, servability_tag

    # An outage raises RegistryUnavailableError here: nothing is recorded, the version stays ungated.
    report = check_servability(f"models:/{registered_name}/{version}", settings)
    MlflowClient().set_model_version_tag(registered_name, version, "mlcycle.servability", servability_tag(report))
    if not report.ok:
        decision = GateDecision(REJECT, "not servable: " + "; ".join(report.reasons), policy.metric, None, None,
                                None)
        _record_decision(registered_name, version, decision, decided_by)
        return decision

    run = MlflowClient().get_run(run_id)
    metrics = run.data.metrics
    candidate = {k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_")}
    if not candidate:
        raise InvalidInputError(f"run {run_id} has no test_* metrics; run the evaluation first", field="run_id")
    champion = {k.removeprefix("champion_test_"): v for k, v in metrics.items()
                if k.startswith("champion_test_")} or None
    compared_version = run.data.tags.get("mlcycle.compared_champion_version") or None
    decision = decide(policy, candidate, champion, compared_version)
    _record_decision(registered_name, version, decision, decided_by)
    if decision.promote:  # challenger is the newest version that passed the gate, never a rejected one
        move = release.set_challenger(registered_name, version, reason=decision.reason, by=decided_by,
                                      settings=settings)
        versions.tag_version(registered_name, version,
                             {"mlcycle.gate.promotion": "passed: challenger" if move.moved else _awaiting(move)})
    return decision


def _awaiting(move) -> str:
    if move.refused == release.APPROVAL:
        return f"awaiting approval for {', '.join(release.protected_environments(move.alias))}"
    return f"refused: {move.reason}"


def _record_decision(registered_name: str, version: str, decision: GateDecision, decided_by: str | None) -> None:
    tags = versions.record_decision(registered_name, version, decision, decided_by)
    audit.record(
        registered_name,
        version,
        "gate.decision",
        by=tags["mlcycle.gate.decided_by"],
        details={k.removeprefix("mlcycle.gate."): v for k, v in tags.items()
                 if k not in ("mlcycle.gate.decided_by", "mlcycle.gate.decided_at")},
    )


def register_and_gate(run_id: str, registered_name: str, policy: GatePolicy, settings: Settings, *,
                      decided_by: str | None = None, auto_promote: bool = True) -> GateOutcome:
    """:func:`register_candidate` then :func:`gate_candidate`, in one call.

    With ``auto_promote`` off, a version that passes the gate is held as ``challenger`` (for a canary
    rollout first) and the outcome's :attr:`GateOutcome.action` is ``hold``; ``mlcycle promote`` moves
    the champion later.
    """
    check_write_access(registered_name, settings)
    version = register_candidate(run_id, registered_name)
    decision = gate_candidate(run_id, registered_name, version, policy, settings, decided_by=decided_by)
    awaiting = None
    if decision.promote:
        held = versions.get_version(registered_name, version).tags.get("mlcycle.gate.promotion", "")
        if held.startswith(("awaiting", "refused")):
            awaiting = held  # challenger itself was refused (a protected dev/staging)
        elif auto_promote and (found := release.refusal(registered_name, version, CHAMPION, settings=settings)):
            # A protected environment serves champion: the pipeline stops at challenger, a normal outcome.
            awaiting = f"awaiting approval for {', '.join(release.protected_environments(CHAMPION, settings))}" \
                if found[0] == release.APPROVAL else f"refused: {found[1]}"
            versions.tag_version(registered_name, version, {"mlcycle.gate.promotion": awaiting})
        elif not auto_promote:
            versions.tag_version(registered_name, version, {
                "mlcycle.gate.promotion": "held: automatic promotion is off; promote after the canary"})
    cards.generate_card(registered_name, version)  # every gated version has its card; `mlcycle card` refreshes it
    return GateOutcome(registered_name, version, decision, auto_promote, awaiting)


def promote_run_version(registered_name: str, run_id: str, *, moved_by: str | None = None,
                        settings: Settings | None = None):
    """:func:`promote_if_passed` for the version registered from ``run_id``."""
    if settings is not None:
        check_write_access(registered_name, settings)
    version = versions.version_of_run(registered_name, run_id)
    if version is None:
        raise InvalidInputError(f"run {run_id} has no registered version of {registered_name}", field="run_id")
    return promote_if_passed(registered_name, version, moved_by=moved_by, settings=settings)


def promote_if_passed(registered_name: str, version: str, *, moved_by: str | None = None,
                      settings: Settings | None = None) -> release.AliasMove:
    """Move ``champion`` to ``version`` through :func:`mlcycle.release.promote_version` (idempotent).

    The champion the gate compared against is the expected holder; a version that did not pass the gate,
    is not servable or lacks a standing approval is refused (``moved`` False, with the reason).
    """
    info = versions.get_version(registered_name, version)
    expected = info.tags.get("mlcycle.gate.champion_version") or None
    if expected is None and CHAMPION in info.aliases:
        expected = version
    return release.promote_version(registered_name, version, expected_current=expected,
                                   reason=info.tags.get("mlcycle.gate.reason", "gate passed"), by=moved_by,
                                   settings=settings)


def publish_kfp_metrics(comparison: Comparison, metrics, classification_metrics, plots=None) -> None:
    """Copy an evaluation into kfp's ``Metrics``, ``ClassificationMetrics`` and ``HTML`` (plots) artifacts."""
    if plots is not None:
        from mlcycle.training.evaluate import plots_html

        Path(plots.path).parent.mkdir(parents=True, exist_ok=True)
        Path(plots.path).write_text(plots_html(comparison.candidate), encoding="utf-8")
    for key, value in comparison.candidate.metrics.items():
        metrics.log_metric(key, round(value, 6))
    if comparison.champion is not None:
        for key, value in comparison.champion.metrics.items():
            metrics.log_metric(f"champion_{key}", round(value, 6))
    if comparison.candidate.task != CLASSIFICATION:
        return
    classification_metrics.log_confusion_matrix([str(label) for label in comparison.candidate.labels],
                                                comparison.candidate.confusion)
    if comparison.candidate.roc:
        roc = comparison.candidate.roc
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])


def run_import(model_uri: str, holdout: str, target: str, settings: Settings, *, registered_name: str,
               test_path: str | Path, reference: str = "", task: str = "", pipeline_run_id: str = ""):
    """Bring a model trained elsewhere in as an import run (see :mod:`mlcycle.training.imports`).

    The holdout is written to ``test_path`` (Parquet) for the evaluation step, which then scores the model
    and the champion on exactly those rows.
    """
    from mlcycle.training.imports import import_model, read_frame

    check_write_access(registered_name, settings)
    frame = read_frame(holdout, target, "holdout", settings.s3_endpoint_url)
    reference_frame = read_frame(reference, target, "reference", settings.s3_endpoint_url) if reference else None
    result = import_model(model_uri, frame, target, settings, registered_name=registered_name,
                          reference=reference_frame, reference_source=reference, task=task, dataset=holdout,
                          pipeline_run_id=pipeline_run_id)
    Path(test_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(test_path, index=False)
    return result


def evaluate_uri(model_uri: str, holdout: str, target: str, settings: Settings, *, registered_name: str = "",
                 task: str = "") -> Comparison:
    """Score the model at ``model_uri`` (and ``registered_name``'s champion, if given) on the holdout.

    Writes nothing: no run, no version, no alias (``mlcycle evaluate``).
    """
    import tempfile

    from mlcycle.training.evaluate import score_model
    from mlcycle.training.imports import download_model, read_frame
    from mlcycle.training.trainers import resolve_task

    frame = read_frame(holdout, target, "holdout", settings.s3_endpoint_url)
    task = resolve_task(task, frame[target])
    with tempfile.TemporaryDirectory() as tmp:
        scorer = load_scorer(str(download_model(model_uri, Path(tmp))), model_uri)
        if registered_name:
            return compare_with_champion(scorer, frame, target, registered_name, task)
        return Comparison(candidate=score_model(scorer, frame, target, task), notes=["no champion compared"])
