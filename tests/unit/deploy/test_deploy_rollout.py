"""Rollout steps against a real local MLflow registry and a recording fake Kubernetes API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlflow import MlflowClient

from mlcycle.deploy.canary import CanaryPolicy
from mlcycle.deploy.rollout import (
    analyze_canary,
    analyze_namespace,
    deploy_after_gate,
    deploy_version,
    promote_canary,
    rollback_canary,
)
from mlcycle.deploy.serving_state import read_serving_state, serving_tag, write_serving_state
from mlcycle.errors import InvalidInputError, ModelNotFoundError
from tests.release_helpers import mark_releasable
from tests.unit.deploy.fakes import FakeCustomObjectsApi, RecordedReader

NAME = "team-a.wine"


@pytest.fixture
def registry(mlcycle_home, tmp_path):
    client = MlflowClient()
    client.create_registered_model(NAME)
    source = tmp_path / "model"
    source.mkdir()
    for _ in range(3):
        client.create_model_version(NAME, str(source))
    mark_releasable(client, NAME, "1", "2", "3")  # as a passed gate leaves them (the release rules' input)
    return client


def state(client, env="prod"):
    return {v: (t["state"], t["traffic_percent"]) for v, t in read_serving_state(client, NAME, env).items()}


def test_serving_tags_are_written_on_the_version(registry):
    when = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    write_serving_state(
        registry, NAME, "2", "prod", state="canary", traffic_percent=10, inference_service="team-a/wine", now=when
    )
    tags = registry.get_model_version(NAME, "2").tags
    assert tags[serving_tag("prod", "state")] == "canary"
    assert tags["mlcycle.serving.prod.traffic_percent"] == "10"
    assert tags["mlcycle.serving.prod.inference_service"] == "team-a/wine"
    assert tags["mlcycle.serving.prod.updated_at"] == "2026-11-24T05:00:00+00:00"
    assert read_serving_state(registry, NAME, "staging") == {}


def test_canary_then_promote_moves_traffic_and_tags(registry):
    api = FakeCustomObjectsApi()
    assert deploy_version(api, registry, "wine", 1, "prod", team="team-a").action == "created"
    assert state(registry) == {"1": ("serving", "100")}
    assert deploy_version(api, registry, "wine", 2, "prod", team="team-a").action == "canary"
    assert state(registry) == {"1": ("serving", "90"), "2": ("canary", "10")}
    result = promote_canary(api, registry, "wine", "prod", team="team-a")
    assert (result.action, result.model_uri) == ("promoted", "models:/team-a.wine/2")
    assert state(registry) == {"1": ("retired", "0"), "2": ("serving", "100")}


def test_rollback_returns_traffic_to_the_previous_version(registry):
    api = FakeCustomObjectsApi()
    deploy_version(api, registry, "wine", 1, "prod", team="team-a")
    registry.set_registered_model_alias(NAME, "champion", "2")  # the gate promoted 2 ...
    deploy_version(api, registry, "wine", 2, "prod", team="team-a")  # ... and it went out as a canary
    rollback_canary(api, registry, "wine", "prod", team="team-a")
    assert state(registry) == {"1": ("serving", "100"), "2": ("rolled_back", "0")}
    # The alias follows what prod really serves again.
    assert str(registry.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert registry.get_model_version(NAME, "1").tags["mlcycle.serving.prod.alias_moved_from"] == "2"
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    # The next candidate goes out as a canary again, against version 1.
    deploy_version(api, registry, "wine", 3, "prod", team="team-a")
    assert state(registry) == {"1": ("serving", "90"), "2": ("rolled_back", "0"), "3": ("canary", "10")}


def test_dev_replaces_without_canary(registry):
    api = FakeCustomObjectsApi()
    deploy_version(api, registry, "wine", 1, "dev", team="team-a")
    assert deploy_version(api, registry, "wine", 2, "dev", team="team-a").action == "replaced"
    assert state(registry, "dev") == {"1": ("retired", "0"), "2": ("serving", "100")}
    assert state(registry, "prod") == {}


def test_unknown_version_fails_before_touching_the_cluster(registry):
    api = FakeCustomObjectsApi()
    with pytest.raises(ModelNotFoundError, match="model team-a.wine has no version 9"):  # not an outage
        deploy_version(api, registry, "wine", 9, "prod", team="team-a")
    assert api.calls == []


def test_analysis_rolls_a_bad_canary_back_by_itself(registry):
    api = FakeCustomObjectsApi()
    deploy_version(api, registry, "wine", 1, "prod", team="team-a")
    deploy_version(api, registry, "wine", 2, "prod", team="team-a")
    decision, result = analyze_canary(api, registry, RecordedReader(40.0), "wine", "prod", team="team-a")
    assert decision.action == "rollback"
    assert result is not None and result.action == "rolled_back"
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert state(registry)["2"] == ("rolled_back", "0")


def test_analysis_promotes_only_when_asked(registry):
    api = FakeCustomObjectsApi()
    deploy_version(api, registry, "wine", 1, "prod", team="team-a")
    deploy_version(api, registry, "wine", 2, "prod", team="team-a")
    decision, result = analyze_canary(
        api, registry, RecordedReader(0.0), "wine", "prod", team="team-a", policy=CanaryPolicy(min_requests=100)
    )
    assert (decision.action, result) == ("promote", None)
    assert state(registry)["2"] == ("canary", "10")
    decision, result = analyze_canary(
        api, registry, RecordedReader(0.0), "wine", "prod", team="team-a", auto_promote=True
    )
    assert result is not None and result.action == "promoted"
    assert state(registry)["2"] == ("serving", "100")


def test_analysis_without_a_canary_says_so(registry):
    with pytest.raises(InvalidInputError, match="no canary"):
        analyze_canary(FakeCustomObjectsApi(), registry, RecordedReader(0.0), "wine", "prod", team="team-a")


def test_pipeline_step_skips_in_local_mode_and_records_why(registry, mlcycle_home):
    out = deploy_after_gate("wine", "2", "prod", team="team-a", settings=mlcycle_home)
    assert out["action"] == "skipped" and "local mode" in out["reason"]
    tags = registry.get_model_version(NAME, "2").tags
    assert tags["mlcycle.serving.prod.state"] == "skipped"
    assert "python -m inference models:/team-a.wine/2" in tags["mlcycle.serving.prod.reason"]


def test_pipeline_step_skips_a_rejected_candidate(registry, mlcycle_home):
    api = FakeCustomObjectsApi()
    out = deploy_after_gate("wine", "2", "prod", team="team-a", gate_decision="reject", settings=mlcycle_home, api=api)
    assert out["action"] == "skipped" and api.calls == []


def test_pipeline_step_deploys_through_the_api_it_is_given(registry, mlcycle_home):
    api = FakeCustomObjectsApi()
    out = deploy_after_gate("wine", "1", "staging", team="team-a", settings=mlcycle_home, api=api)
    assert out["action"] == "created" and out["namespace"] == "team-a"
    assert state(registry, "staging") == {"1": ("serving", "100")}


def test_namespace_scan_rolls_back_every_bad_canary_and_leaves_the_rest(registry):
    api = FakeCustomObjectsApi()
    deploy_version(api, registry, "wine", 1, "prod", team="team-a")
    deploy_version(api, registry, "wine", 2, "prod", team="team-a")
    # Another team's namespace and a model without a canary are not touched.
    api.objects[("team-b", "other")] = {"metadata": {"name": "other", "labels": {}}}
    summaries = analyze_namespace(api, registry, RecordedReader(40.0), "team-a", team="team-a")
    assert summaries == [
        {
            "model": NAME,
            "environment": "prod",
            "canary_version": "2",
            "decision": "rollback",
            "reasons": summaries[0]["reasons"],
            "action": "rolled_back",
        }
    ]
    assert state(registry) == {"1": ("serving", "100"), "2": ("rolled_back", "0")}
    # Rolled back (0%): no longer a canary, so the next scan leaves it alone.
    assert analyze_namespace(api, registry, RecordedReader(40.0), "team-a", team="team-a") == []


def test_the_pipeline_step_creates_what_the_overlay_describes(mlcycle_home, tmp_path):
    """deploy_model's object equals the dev overlay's template, with the alias pinned to the version."""
    import shutil

    from tests.manifests.schemas import REPO_ROOT, find, kustomize_build

    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is needed to build the overlay (kubectl kustomize)")
    client = MlflowClient()
    client.create_registered_model("wine")
    client.create_model_version("wine", str(tmp_path))
    mark_releasable(client, "wine", "1")
    api = FakeCustomObjectsApi()
    out = deploy_after_gate("wine", "1", "dev", settings=mlcycle_home, api=api)
    assert out["action"] == "created"
    created = api.objects[("mlcycle", "wine")]

    overlay = find(kustomize_build(REPO_ROOT / "kustomize/overlays/dev"), "InferenceService")
    overlay["metadata"]["annotations"]["mlcycle.io/model-uri"] = "models:/wine/1"
    overlay["spec"]["predictor"]["model"]["env"][0]["value"] = "models:/wine/1"
    assert created == overlay


def test_pipeline_step_outside_a_cluster_skips_but_inside_a_pod_fails(registry, mlcycle_home, tmp_path, monkeypatch):
    from mlcycle.errors import ConfigError

    # Settings as against a remote tracking server (MLflow itself stays on the local test store).
    remote = mlcycle_home.model_copy(update={"tracking_uri": "http://mlflow.example:5000"})
    assert not remote.is_local
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    out = deploy_after_gate("wine", "3", "prod", team="team-a", settings=remote)
    assert out["action"] == "skipped" and "no Kubernetes cluster configured" in out["reason"]
    assert registry.get_model_version(NAME, "3").tags["mlcycle.serving.prod.state"] == "skipped"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ConfigError):
        deploy_after_gate("wine", "3", "prod", team="team-a", settings=remote)
