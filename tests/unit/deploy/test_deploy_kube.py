"""The apply layer speaks KServe's rollout protocol; checked against a recording fake API."""

from __future__ import annotations

import pytest

from mlcycle.deploy.kube import (
    GROUP,
    PLURAL,
    VERSION,
    ClusterError,
    apply_inference_service,
    load_custom_objects_api,
    promote,
    rollback,
)
from mlcycle.deploy.render import render_inference_service
from mlcycle.errors import ConfigError, ModelNotFoundError
from tests.unit.deploy.fakes import FakeCustomObjectsApi


def _isvc(version, env="prod"):
    return render_inference_service("wine", env, team="team-a", version=version)


def test_first_rollout_creates_at_full_traffic():
    api = FakeCustomObjectsApi()
    result = apply_inference_service(
        api,
        _isvc(
            1,
        ),
        canary_percent=10,
    )
    assert (result.action, result.traffic_percent) == ("created", 100)
    [(verb, body)] = api.writes()
    assert verb == "create"
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]
    assert api.calls[-1][1][:4] == (GROUP, VERSION, "team-a", PLURAL)


def test_new_version_goes_out_as_a_canary_then_promote_removes_the_split():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1), canary_percent=10)
    result = apply_inference_service(api, _isvc(2), canary_percent=10)
    assert (result.action, result.traffic_percent) == ("canary", 10)
    verb, body = api.writes()[-1]
    assert verb == "patch" and body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    stored = api.objects[("team-a", "wine")]
    assert stored["metadata"]["annotations"]["mlcycle.io/model-uri"] == "models:/team-a.wine/2"

    result = promote(api, "wine", "team-a")
    assert (result.action, result.traffic_percent, result.model_uri) == ("promoted", 100, "models:/team-a.wine/2")
    assert api.writes()[-1] == ("patch", {"spec": {"predictor": {"canaryTrafficPercent": None}}})
    assert "canaryTrafficPercent" not in api.objects[("team-a", "wine")]["spec"]["predictor"]


def test_rollback_sets_the_canary_to_zero():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1), canary_percent=10)
    apply_inference_service(api, _isvc(2), canary_percent=10)
    result = rollback(api, "wine", "team-a")
    assert (result.action, result.traffic_percent) == ("rolled_back", 0)
    assert api.writes()[-1] == ("patch", {"spec": {"predictor": {"canaryTrafficPercent": 0}}})
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_same_version_again_changes_nothing():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1), canary_percent=10)
    result = apply_inference_service(api, _isvc(1), canary_percent=10)
    assert result.action == "unchanged"
    assert len(api.writes()) == 1


def test_without_canary_a_new_version_replaces_the_old_at_once():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1, "dev"), canary_percent=None)
    apply_inference_service(api, _isvc(2, "dev"), canary_percent=10)  # leaves a split behind
    result = apply_inference_service(api, _isvc(3, "dev"), canary_percent=None)
    assert (result.action, result.traffic_percent) == ("replaced", 100)
    assert api.writes()[-1][1]["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert "canaryTrafficPercent" not in api.objects[("team-a", "wine")]["spec"]["predictor"]


def test_promote_or_rollback_of_a_missing_service_is_a_404():
    api = FakeCustomObjectsApi()
    with pytest.raises(ModelNotFoundError):
        promote(api, "wine", "team-a")
    with pytest.raises(ModelNotFoundError):
        rollback(api, "wine", "team-a")
    assert api.writes() == []


def test_api_errors_become_cluster_errors():
    api = FakeCustomObjectsApi()
    api.fail_with = 403
    with pytest.raises(ClusterError, match="403"):
        apply_inference_service(api, _isvc(1), canary_percent=10)


def test_no_kubeconfig_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="KUBECONFIG"):
        load_custom_objects_api()


def test_live_defaults_do_not_count_as_a_change_but_new_settings_do():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1), canary_percent=10)
    live = api.objects[("team-a", "wine")]
    live["spec"]["predictor"]["model"]["name"] = "kserve-container"  # what KServe's webhook adds
    live["status"] = {"url": "http://wine.team-a.example.com"}
    assert apply_inference_service(api, _isvc(1), canary_percent=10).action == "unchanged"
    assert len(api.writes()) == 1

    rescaled = _isvc(1)
    rescaled["spec"]["predictor"]["maxReplicas"] = 20
    result = apply_inference_service(api, rescaled, canary_percent=10)
    assert (result.action, result.traffic_percent) == ("updated", 100)
    assert api.writes()[-1][1]["spec"]["predictor"]["canaryTrafficPercent"] is None
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["maxReplicas"] == 20


def test_deploying_a_running_canary_again_does_not_promote_it():
    api = FakeCustomObjectsApi()
    apply_inference_service(api, _isvc(1), canary_percent=10)
    apply_inference_service(api, _isvc(2), canary_percent=10)
    result = apply_inference_service(api, _isvc(2), canary_percent=10)
    assert (result.action, result.traffic_percent) == ("unchanged", 10)
    rollback(api, "wine", "team-a")
    assert apply_inference_service(api, _isvc(2), canary_percent=10).traffic_percent == 0
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["canaryTrafficPercent"] == 0
