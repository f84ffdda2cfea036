"""Canary analysis: compare the canary's recorded metrics with the champion's and decide.

:func:`decide_canary` is pure: it takes what Prometheus recorded for both versions over one window
(:class:`VersionSamples`, read by :func:`mlcycle.deploy.prometheus.read_canary_samples`) and returns
``promote``, ``hold`` or ``rollback`` with the reasons. The rules, in order:

1. no canary traffic yet → hold;
2. error rate (HTTP 5xx) above ``max_error_rate`` *and* above the champion's by more than
   ``max_error_rate_increase`` → rollback. With fewer than ``min_requests`` requests this can already
   fire when the errors alone exceed ``max_error_rate * min_requests`` (no run of successes could
   bring the rate back under the ceiling);
3. fewer than ``min_requests`` canary (or champion) requests → hold;
4. p95 latency above ``max_latency_ratio`` × the champion's and slower by more than
   ``latency_floor_seconds`` → rollback; unmeasured latency → hold;
5. prediction mix: total variation distance between the canary's and the champion's predicted-class
   shares above ``max_prediction_shift`` → rollback; for a regressor (no class counts, a histogram of
   predicted values instead) the normalised Wasserstein distance between the two histograms
   (:func:`prediction_distance`) above ``max_prediction_shift`` → rollback;
6. otherwise promote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mlcycle.errors import InvalidInputError

Verdict = Literal["promote", "hold", "rollback"]


@dataclass(frozen=True)
class VersionSamples:
    """What one model version did over the analysis window.

    Attributes:
        version: registered model version.
        requests: requests answered in the window.
        errors: of which answered with HTTP 5xx.
        p95_latency_seconds: 95th percentile of request duration, ``None`` if not measured.
        predictions: predicted rows per class in the window.
        value_buckets: a regressor's predicted values in the window, as Prometheus histogram buckets:
            upper bound (``le``, ``inf`` included) -> cumulative count.
    """

    version: str
    requests: float
    errors: float
    p95_latency_seconds: float | None = None
    predictions: dict[str, float] = field(default_factory=dict)
    value_buckets: dict[float, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class CanaryPolicy:
    """Thresholds of the analysis (defaults suit a 10-minute window at a few requests per second)."""

    min_requests: int = 100
    max_error_rate: float = 0.01
    max_error_rate_increase: float = 0.005
    max_latency_ratio: float = 1.5
    latency_floor_seconds: float = 0.025
    max_prediction_shift: float = 0.2

    def __post_init__(self) -> None:
        if self.min_requests < 1:
            raise InvalidInputError("min_requests must be at least 1", field="min_requests")
        for name in ("max_error_rate", "max_error_rate_increase", "max_prediction_shift"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be between 0 and 1", field=name)
        if self.max_latency_ratio < 1.0:
            raise InvalidInputError("max_latency_ratio must be at least 1", field="max_latency_ratio")


@dataclass(frozen=True)
class CanaryDecision:
    """The verdict, why, and the numbers it was based on."""

    action: Verdict
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def prediction_shift(champion: dict[str, float], canary: dict[str, float]) -> float | None:
    """Total variation distance between two class-count mixes (0 = same shares, 1 = disjoint)."""
    total_h, total_c = sum(champion.values()), sum(canary.values())
    if total_h <= 0 or total_c <= 0:
        return None
    classes = set(champion) | set(canary)
    return 0.5 * sum(abs(canary.get(k, 0.0) / total_c - champion.get(k, 0.0) / total_h) for k in classes)


def prediction_distance(champion: dict[float, float], canary: dict[float, float]) -> float | None:
    """Normalised Wasserstein-1 distance between two histograms of predicted values (0 = same, 1 = apart).

    Both are cumulative Prometheus buckets (``le`` -> count). The distance is the area between the two
    empirical CDFs over the finite buckets, divided by the width of the range both occupy, so it does
    not depend on the unit of the prediction. ``None`` when either histogram is empty.
    """
    edges = sorted(e for e in set(champion) | set(canary) if e != float("inf"))
    total_h = champion.get(float("inf"), max(champion.values(), default=0.0))
    total_c = canary.get(float("inf"), max(canary.values(), default=0.0))
    if total_h <= 0 or total_c <= 0 or len(edges) < 2:
        return None

    def cdf(hist: dict[float, float], total: float) -> list[float]:
        out, last = [], 0.0
        for e in edges:
            last = hist.get(e, last * total) / total  # a bucket missing from one side: its CDF is flat there
            out.append(last)
        return out

    fh, fc = cdf(champion, total_h), cdf(canary, total_c)
    # the occupied range: from the first edge where either CDF leaves 0 to where both reach 1
    lo = next((i for i in range(len(edges)) if fh[i] > 0 or fc[i] > 0), 0)
    hi = next((i for i in range(len(edges)) if fh[i] >= 1 and fc[i] >= 1), len(edges) - 1)
    lo = max(lo - 1, 0)
    if hi <= lo:
        return 0.0
    area = sum(abs(fh[i] - fc[i]) * (edges[i + 1] - edges[i]) for i in range(lo, hi))
    return min(1.0, area / (edges[hi] - edges[lo]))


def decide_canary(
    champion: VersionSamples, canary: VersionSamples, policy: CanaryPolicy | None = None
) -> CanaryDecision:
    """Decide whether the canary is promoted, held or rolled back (rules in the module docstring)."""
    policy = policy or CanaryPolicy()
    metrics: dict[str, float] = {
        "canary_requests": canary.requests,
        "champion_requests": champion.requests,
        "canary_error_rate": canary.error_rate,
        "champion_error_rate": champion.error_rate,
    }

    def verdict(action: Verdict, *reasons: str) -> CanaryDecision:
        return CanaryDecision(action, tuple(reasons), metrics)

    if canary.requests <= 0:
        return verdict("hold", f"canary version {canary.version} has served no requests yet")
    too_many_errors = (
        canary.error_rate > policy.max_error_rate
        and canary.error_rate > champion.error_rate + policy.max_error_rate_increase
    )
    if too_many_errors and (
        canary.requests >= policy.min_requests or canary.errors > policy.max_error_rate * policy.min_requests
    ):
        return verdict(
            "rollback",
            f"canary error rate {canary.error_rate:.2%} exceeds {policy.max_error_rate:.2%} "
            f"(champion {champion.error_rate:.2%})",
        )
    if canary.requests < policy.min_requests or champion.requests < policy.min_requests:
        return verdict(
            "hold",
            f"not enough requests yet: canary {canary.requests:.0f}, champion {champion.requests:.0f}, "
            f"need {policy.min_requests} each",
        )
    reasons = [f"error rate {canary.error_rate:.2%} (champion {champion.error_rate:.2%})"]
    if canary.p95_latency_seconds is None or champion.p95_latency_seconds is None:
        return verdict("hold", "p95 latency is not measured for both versions")
    metrics["canary_p95_seconds"] = canary.p95_latency_seconds
    metrics["champion_p95_seconds"] = champion.p95_latency_seconds
    slower = canary.p95_latency_seconds - champion.p95_latency_seconds
    if (
        canary.p95_latency_seconds > policy.max_latency_ratio * champion.p95_latency_seconds
        and slower > policy.latency_floor_seconds
    ):
        return verdict(
            "rollback",
            f"canary p95 latency {canary.p95_latency_seconds * 1000:.1f} ms is more than "
            f"{policy.max_latency_ratio:g}x the champion's {champion.p95_latency_seconds * 1000:.1f} ms",
        )
    reasons.append(
        f"p95 latency {canary.p95_latency_seconds * 1000:.1f} ms "
        f"(champion {champion.p95_latency_seconds * 1000:.1f} ms)"
    )
    shift = prediction_shift(champion.predictions, canary.predictions)
    if shift is not None:
        metrics["prediction_shift"] = shift
        if shift > policy.max_prediction_shift:
            return verdict(
                "rollback",
                f"prediction mix moved by {shift:.2f} (total variation) from the champion's, "
                f"more than {policy.max_prediction_shift:.2f}",
            )
        reasons.append(f"prediction mix shift {shift:.2f}")
    distance = prediction_distance(champion.value_buckets, canary.value_buckets)
    if distance is not None:
        metrics["prediction_distance"] = distance
        if distance > policy.max_prediction_shift:
            return verdict(
                "rollback",
                f"predicted values moved by {distance:.2f} (normalised Wasserstein distance) from the "
                f"champion's, more than {policy.max_prediction_shift:.2f}",
            )
        reasons.append(f"prediction distribution distance {distance:.2f}")
    return verdict("promote", *reasons)
