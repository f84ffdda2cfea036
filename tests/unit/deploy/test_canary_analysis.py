"""decide_canary on recorded metric samples."""

from __future__ import annotations

import pytest

from mlcycle.deploy.canary import CanaryPolicy, VersionSamples, decide_canary, prediction_shift
from mlcycle.errors import InvalidInputError

MIX = {"class_0": 330.0, "class_1": 400.0, "class_2": 270.0}
CHAMPION = VersionSamples("4", requests=9000, errors=9, p95_latency_seconds=0.012, predictions=MIX)


def canary(**kw):
    base = {
        "version": "5",
        "requests": 1000,
        "errors": 1,
        "p95_latency_seconds": 0.013,
        "predictions": {"class_0": 34.0, "class_1": 39.0, "class_2": 27.0},
    }
    return VersionSamples(**{**base, **kw})


def test_healthy_canary_is_promoted():
    decision = decide_canary(CHAMPION, canary())
    assert decision.action == "promote", decision.reasons
    assert decision.metrics["prediction_shift"] < 0.05


def test_no_traffic_yet_holds():
    assert decide_canary(CHAMPION, canary(requests=0, errors=0)).action == "hold"


def test_too_few_requests_hold():
    decision = decide_canary(CHAMPION, canary(requests=40, errors=0))
    assert decision.action == "hold"
    assert "not enough requests" in decision.reasons[0]


def test_many_errors_roll_back():
    decision = decide_canary(CHAMPION, canary(errors=50))
    assert decision.action == "rollback"
    assert "error rate 5.00%" in decision.reasons[0]


def test_errors_roll_back_early_when_no_successes_could_save_the_canary():
    # 30 requests, 5 failed: even 70 clean requests more would leave 5% > 1% at min_requests=100.
    assert decide_canary(CHAMPION, canary(requests=30, errors=5)).action == "rollback"
    # 30 requests, 1 failed: could still end under 1%: wait.
    assert decide_canary(CHAMPION, canary(requests=30, errors=1)).action == "hold"


def test_errors_no_worse_than_the_champion_do_not_roll_back():
    noisy = VersionSamples("4", 9000, 180, 0.012, MIX)  # champion at 2%
    assert decide_canary(noisy, canary(errors=21)).action == "promote"


def test_slow_canary_rolls_back():
    decision = decide_canary(CHAMPION, canary(p95_latency_seconds=0.080))
    assert decision.action == "rollback"
    assert "latency" in decision.reasons[0]


def test_small_absolute_slowdowns_are_tolerated():
    # 2x slower but only by 12 ms, under the 25 ms floor.
    assert decide_canary(CHAMPION, canary(p95_latency_seconds=0.024)).action == "promote"


def test_unmeasured_latency_holds():
    assert decide_canary(CHAMPION, canary(p95_latency_seconds=None)).action == "hold"


def test_shifted_prediction_mix_rolls_back():
    decision = decide_canary(CHAMPION, canary(predictions={"class_0": 90.0, "class_1": 5.0, "class_2": 5.0}))
    assert decision.action == "rollback"
    assert decision.metrics["prediction_shift"] == pytest.approx(0.57)


def test_regressors_without_class_counts_skip_the_mix_check():
    decision = decide_canary(VersionSamples("4", 9000, 9, 0.01), canary(predictions={}))
    assert decision.action == "promote"
    assert "prediction_shift" not in decision.metrics


def test_prediction_shift_is_total_variation():
    assert prediction_shift({"a": 1, "b": 1}, {"a": 2, "b": 2}) == 0
    assert prediction_shift({"a": 1}, {"b": 1}) == 1
    assert prediction_shift({}, {"a": 1}) is None


@pytest.mark.parametrize("bad", [{"min_requests": 0}, {"max_error_rate": 1.5}, {"max_latency_ratio": 0.5}])
def test_policy_rejects_nonsense(bad):
    with pytest.raises(InvalidInputError):
        CanaryPolicy(**bad)
