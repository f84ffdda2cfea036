import pytest

from mlcycle.errors import InvalidInputError
from mlcycle.registry.gate import PROMOTE, REJECT, GatePolicy, decide


def test_first_model_is_promoted_only_above_the_floor():
    policy = GatePolicy(metric="f1_macro", floor=0.7)
    assert decide(policy, {"f1_macro": 0.8}, None).decision == PROMOTE
    low = decide(policy, {"f1_macro": 0.6}, None)
    assert low.decision == REJECT and "floor" in low.reason


def test_candidate_must_beat_champion_by_the_minimum_improvement():
    policy = GatePolicy(metric="accuracy", min_improvement=0.02, floor=0.5)
    win = decide(policy, {"accuracy": 0.93}, {"accuracy": 0.90}, "3")
    assert win.promote and win.champion == 0.90 and win.champion_version == "3"
    small = decide(policy, {"accuracy": 0.91}, {"accuracy": 0.90}, "3")
    assert not small.promote and "does not beat champion v3" in small.reason


def test_a_tie_does_not_replace_the_champion():
    decision = decide(GatePolicy(), {"f1_macro": 0.9}, {"f1_macro": 0.9}, "1")
    assert decision.decision == REJECT


def test_lower_is_better_for_log_loss():
    policy = GatePolicy(metric="log_loss", floor=1.0)
    assert decide(policy, {"log_loss": 0.2}, {"log_loss": 0.3}, "1").promote
    assert not decide(policy, {"log_loss": 0.4}, {"log_loss": 0.3}, "1").promote
    assert not decide(policy, {"log_loss": 1.5}, None).promote  # a maximum for log loss


def test_missing_or_nan_metric_is_a_rejection_not_an_error():
    assert decide(GatePolicy(metric="roc_auc"), {"accuracy": 1.0}, None).decision == REJECT
    assert decide(GatePolicy(), {"f1_macro": float("nan")}, None).decision == REJECT


def test_incomparable_champion_falls_back_to_the_floor():
    decision = decide(GatePolicy(floor=0.5), {"f1_macro": 0.8}, None, champion_version="4")
    assert decision.promote and "not comparable" in decision.reason


@pytest.mark.parametrize(("kwargs", "field"), [({"metric": "r2"}, "gate_metric"),
                                               ({"min_improvement": -1}, "min_improvement"),
                                               ({"floor": float("inf")}, "floor")])
def test_bad_policies_are_named(kwargs, field):
    with pytest.raises(InvalidInputError) as e:
        GatePolicy(**kwargs)
    assert e.value.field == field
