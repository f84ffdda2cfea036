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


@pytest.mark.parametrize(("kwargs", "field"), [({"metric": "mape"}, "gate_metric"),
                                               ({"min_improvement": -1}, "min_improvement"),
                                               ({"floor": float("inf")}, "floor")])
def test_bad_policies_are_named(kwargs, field):
    with pytest.raises(InvalidInputError) as e:
        GatePolicy(**kwargs)
    assert e.value.field == field


def test_rmse_lower_is_better_and_its_floor_is_a_maximum():
    from mlcycle.registry.gate import policy_for

    policy = policy_for("regression", "rmse", 60.0)
    assert policy.lower_is_better
    assert decide(policy, {"rmse": 50.0}, {"rmse": 55.0}, "1").promote
    worse = decide(policy, {"rmse": 58.0}, {"rmse": 55.0}, "1")
    assert not worse.promote and "does not beat champion v1" in worse.reason
    over = decide(policy, {"rmse": 61.0}, None)
    assert not over.promote and "floor (rmse <= 60.0)" in over.reason


def test_each_task_has_its_default_metric_and_floor():
    from mlcycle.registry.gate import policy_for

    assert (policy_for("regression").metric, policy_for("regression").floor) == ("rmse", None)
    assert decide(policy_for("regression"), {"rmse": 1e6}, None).promote  # no floor on an unbounded error
    assert (policy_for("regression", "r2").floor, policy_for("classification").metric) == (0.0, "f1_macro")
    assert policy_for("classification", "", "0.7").floor == 0.7
    with pytest.raises(InvalidInputError, match="rmse' is a regression metric") as e:
        policy_for("classification", "rmse")
    assert e.value.field == "gate_metric"
