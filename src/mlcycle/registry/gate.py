"""The promotion gate: a pure decision whether a candidate may replace the champion.

A candidate is promoted only when it clears an absolute floor and, if there is a champion scored on the
same holdout, beats it by at least the minimum improvement. A rejection is a normal outcome with a
reason, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mlcycle.errors import InvalidInputError

PROMOTE = "promote"
REJECT = "reject"
CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
# Each metric's task and direction: the gate compares on the metric's own scale.
TASK_METRICS = {
    CLASSIFICATION: ("accuracy", "f1_macro", "roc_auc", "log_loss"),
    REGRESSION: ("rmse", "mae", "r2"),
}
GATE_METRICS = TASK_METRICS[CLASSIFICATION] + TASK_METRICS[REGRESSION]
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
DEFAULT_METRIC = {CLASSIFICATION: "f1_macro", REGRESSION: "rmse"}
# The floor when none is given: chance level where the scale has one; none for unbounded error metrics.
DEFAULT_FLOOR: dict[str, float | None] = {"accuracy": 0.5, "f1_macro": 0.5, "roc_auc": 0.5, "log_loss": None,
                                          "rmse": None, "mae": None, "r2": 0.0}


def check_task(task: str) -> str:
    """``task`` if it is one mlcycle knows, else an error naming the choices."""
    if task not in TASKS:
        raise InvalidInputError(f"task {task!r} is not one of {', '.join(TASKS)}", field="task")
    return task


def metric_task(metric: str) -> str:
    """The task a gate metric belongs to."""
    for task, metrics in TASK_METRICS.items():
        if metric in metrics:
            return task
    raise InvalidInputError(f"gate metric {metric!r} is not one of {', '.join(GATE_METRICS)}", field="gate_metric")


def policy_for(task: str, metric: str = "", floor: float | str | None = "", min_improvement: float = 0.0
               ) -> GatePolicy:
    """The gate policy for a ``task``: ``metric`` defaults to the task's, ``floor`` ("" or None) to the metric's.

    Raises:
        InvalidInputError: an unknown task or metric, a metric of the other task, or a floor that is no number.
    """
    check_task(task)
    metric = metric or DEFAULT_METRIC[task]
    if metric_task(metric) != task:
        raise InvalidInputError(f"gate metric {metric!r} is a {metric_task(metric)} metric; this is a {task} "
                                f"model (choose one of {', '.join(TASK_METRICS[task])})", field="gate_metric")
    if floor is None or floor == "":
        value = DEFAULT_FLOOR[metric]
    else:
        try:
            value = float(floor)
        except ValueError:
            raise InvalidInputError(f"floor {floor!r} is not a number", field="floor") from None
    return GatePolicy(metric=metric, min_improvement=min_improvement, floor=value)


@dataclass(frozen=True)
class GatePolicy:
    """How the gate decides.

    Attributes:
        metric: the holdout metric compared (``accuracy``, ``f1_macro``, ``roc_auc``, ``log_loss`` for
            classifiers; ``rmse``, ``mae``, ``r2`` for regressors).
        min_improvement: how much better than the champion the candidate must be (in metric units, > 0
            means strictly better by that much; 0 still requires strictly better).
        floor: the worst acceptable value on the metric's own scale (a minimum, or for the lower-is-better
            ``log_loss``, ``rmse`` and ``mae`` a maximum), champion or not; None: no floor.
    """

    metric: str = "f1_macro"
    min_improvement: float = 0.0
    floor: float | None = 0.5

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise InvalidInputError(
                f"gate metric {self.metric!r} is not one of {', '.join(GATE_METRICS)}", field="gate_metric"
            )
        if self.min_improvement < 0 or not math.isfinite(self.min_improvement):
            raise InvalidInputError("min_improvement must be a finite number >= 0", field="min_improvement")
        if self.floor is not None and not math.isfinite(self.floor):
            raise InvalidInputError("floor must be a finite number", field="floor")

    @property
    def lower_is_better(self) -> bool:
        return self.metric in LOWER_IS_BETTER


@dataclass(frozen=True)
class GateDecision:
    decision: str  # PROMOTE or REJECT
    reason: str
    metric: str
    candidate: float | None
    champion: float | None
    champion_version: str | None

    @property
    def promote(self) -> bool:
        return self.decision == PROMOTE

    def as_dict(self) -> dict:
        return asdict(self)


def decide(policy: GatePolicy, candidate: Mapping[str, float], champion: Mapping[str, float] | None,
           champion_version: str | None = None) -> GateDecision:
    """Decide whether ``candidate`` replaces the champion.

    Args:
        policy: metric, minimum improvement and floor.
        candidate: the candidate's holdout metrics.
        champion: the champion's metrics on the same holdout, or None when there is no comparable one.
        champion_version: the champion's registry version, recorded with the decision.
    """
    m = policy.metric
    sign = -1.0 if policy.lower_is_better else 1.0

    def result(decision: str, reason: str, cand: float | None, champ: float | None) -> GateDecision:
        return GateDecision(decision, reason, m, cand, champ, champion_version)

    value = candidate.get(m)
    if value is None or not math.isfinite(value):
        return result(REJECT, f"candidate has no finite {m} on the holdout", None, None)
    comparison = "<=" if policy.lower_is_better else ">="
    if policy.floor is not None and sign * (value - policy.floor) < 0:
        return result(REJECT, f"candidate {m}={value:.4f} fails the floor ({m} {comparison} {policy.floor})",
                      value, None)
    cleared = f"clears the floor {policy.floor}" if policy.floor is not None else "(no floor set)"
    if champion is None:
        if champion_version is None:
            return result(PROMOTE, f"first model: {m}={value:.4f} {cleared}", value, None)
        return result(PROMOTE, f"champion v{champion_version} is not comparable on this holdout; candidate "
                      f"{m}={value:.4f} {cleared}", value, None)
    incumbent = champion.get(m)
    if incumbent is None or not math.isfinite(incumbent):
        return result(PROMOTE, f"champion has no finite {m}; candidate {m}={value:.4f} {cleared}",
                      value, None)
    improvement = sign * (value - incumbent)
    if improvement > 0 and improvement >= policy.min_improvement:
        return result(PROMOTE, f"candidate {m}={value:.4f} beats champion v{champion_version} "
                      f"({incumbent:.4f}) by {improvement:.4f} (needed {policy.min_improvement})",
                      value, incumbent)
    return result(REJECT, f"candidate {m}={value:.4f} does not beat champion v{champion_version} "
                  f"({incumbent:.4f}) by more than {policy.min_improvement} (improvement {improvement:+.4f})",
                  value, incumbent)
