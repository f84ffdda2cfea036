"""render_inference_service: the object KServe gets, and the webhook rules it checks itself."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlcycle.deploy.environments import ENVIRONMENTS, get_environment
from mlcycle.deploy.render import (
    check_canary_percent,
    check_inference_service,
    inference_service_name,
    render_inference_service,
)
from mlcycle.errors import InvalidInputError, PermissionDeniedError


def test_renders_a_pinned_version_in_the_team_namespace():
    isvc = render_inference_service("wine", "prod", team="team-a", version=5)
    meta, predictor = isvc["metadata"], isvc["spec"]["predictor"]
    assert (meta["name"], meta["namespace"]) == ("wine", "team-a")
    assert meta["labels"]["mlcycle.io/team"] == "team-a"
    assert meta["annotations"]["mlcycle.io/model-uri"] == "models:/team-a.wine/5"
    env = {e["name"]: e["value"] for e in predictor["model"]["env"]}
    assert env == {
        "MLCYCLE_MODEL_URI": "models:/team-a.wine/5",
        "MLCYCLE_TEAM": "team-a",
        "MLCYCLE_SERVING_PAYLOAD_DESTINATION": "s3://mlflow/team-a/payloads",
    }
    assert "storageUri" not in predictor["model"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 10)
    assert "canaryTrafficPercent" not in predictor


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_without_a_version_it_serves_the_environment_alias(env):
    isvc = render_inference_service("wine", env)
    alias = get_environment(env).alias
    assert isvc["metadata"]["annotations"]["mlcycle.io/model-uri"] == f"models:/wine@{alias}"
    assert isvc["metadata"]["namespace"] == "mlcycle"


def test_prod_serves_champion_and_dev_challenger():
    assert get_environment("prod").alias == "champion"
    assert get_environment("dev").alias == "challenger"
    assert get_environment("staging").alias == "challenger"


@pytest.mark.parametrize("pct", [0, 1, 50, 100])
def test_canary_percent_in_range_is_kept(pct):
    isvc = render_inference_service("wine", "prod", version=2, canary_percent=pct)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == pct


@pytest.mark.parametrize("pct", [-1, 101, 1000, True, 10.5, "10"])
def test_canary_percent_outside_0_to_100_is_refused(pct):
    with pytest.raises(InvalidInputError) as e:
        render_inference_service("wine", "prod", version=2, canary_percent=pct)
    assert e.value.field == "canaryTrafficPercent"


@given(st.integers())
def test_canary_rule_is_exactly_0_to_100(value):
    if 0 <= value <= 100:
        assert check_canary_percent(value) == value
    else:
        with pytest.raises(InvalidInputError):
            check_canary_percent(value)


def test_model_names_become_dns_labels():
    assert inference_service_name("Wine_Quality") == "wine-quality"
    for bad in ("9lives", "a" * 40, "-x"):
        with pytest.raises(InvalidInputError) as e:
            inference_service_name(bad)
        assert e.value.field == "name"


def test_other_teams_model_is_refused():
    with pytest.raises(PermissionDeniedError):
        render_inference_service("team-b.wine", "prod", team="team-a", version=1)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"environment": "qa"}, "environment"),
        ({"version": "latest"}, "version"),
        ({"namespace": "Team_A"}, "namespace"),
    ],
)
def test_bad_inputs_name_the_field(bad, field):
    args = {"environment": "prod", "version": 1, **bad}
    env = args.pop("environment")
    with pytest.raises(InvalidInputError) as e:
        render_inference_service("wine", env, **args)
    assert e.value.field == field


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o["metadata"]["labels"].update({"mlcycle.io/model": "-bad-"}), "labels"),
        (lambda o: o["metadata"]["labels"].update({"bad key!": "x"}), "labels"),
        (lambda o: o["metadata"].update(name="Wine"), "name"),
        (lambda o: o["spec"]["predictor"].update(minReplicas=5, maxReplicas=2), "minReplicas"),
        (lambda o: o["spec"]["predictor"].update(scaleMetric="gpu"), "scaleMetric"),
        (lambda o: o["spec"]["predictor"].update(canaryTrafficPercent=-5), "canaryTrafficPercent"),
        (lambda o: o["spec"].pop("predictor"), "spec.predictor"),
    ],
)
def test_check_inference_service_catches_webhook_only_rules(mutate, field):
    isvc = render_inference_service("wine", "prod", version=1)
    mutate(isvc)
    with pytest.raises(InvalidInputError) as e:
        check_inference_service(isvc)
    assert e.value.field == field
