"""A team cannot register, version, tag or move aliases on another team's model (real MLflow store)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mlcycle.errors import PermissionDeniedError
from mlcycle.registry.tenancy import TeamRegistry, ensure_team_owns, ensure_team_owns_experiment


def test_pure_check():
    assert ensure_team_owns("team-a.wine", "team-a") == "team-a.wine"
    assert ensure_team_owns("wine", "") == "wine"
    for name, team in [("team-b.wine", "team-a"), ("wine", "team-a"), ("team-a.wine", ""), ("team-a-x.wine", "team-a")]:
        with pytest.raises(PermissionDeniedError) as e:
            ensure_team_owns(name, team)
        assert e.value.http_status == 403 and e.value.field == "name"


def test_experiment_prefix():
    assert ensure_team_owns_experiment("team-a.wine-training", "team-a")
    assert ensure_team_owns_experiment("anything", "")
    with pytest.raises(PermissionDeniedError):
        ensure_team_owns_experiment("team-b.wine-training", "team-a")


@pytest.fixture
def store(mlcycle_home, tmp_path):
    client = MlflowClient()
    source = tmp_path / "model"
    source.mkdir()
    team_a = TeamRegistry(client, "team-a")
    team_a.create_registered_model("team-a.wine")
    team_a.create_model_version("team-a.wine", str(source))
    team_a.create_model_version("team-a.wine", str(source))
    team_a.set_alias("team-a.wine", "champion", 1)
    return client, source


def test_team_cannot_touch_another_teams_model(store):
    client, source = store
    team_b = TeamRegistry(client, "team-b")
    with pytest.raises(PermissionDeniedError):
        team_b.create_registered_model("team-a.forest")
    with pytest.raises(PermissionDeniedError):
        team_b.create_model_version("team-a.wine", str(source))
    with pytest.raises(PermissionDeniedError):
        team_b.set_alias("team-a.wine", "champion", 2)
    with pytest.raises(PermissionDeniedError):
        team_b.delete_alias("team-a.wine", "champion")
    with pytest.raises(PermissionDeniedError):
        team_b.set_version_tag("team-a.wine", 1, "mlcycle.gate.decision", "reject")
    # Nothing changed in the store.
    assert str(client.get_model_version_by_alias("team-a.wine", "champion").version) == "1"
    assert len(client.search_model_versions("name = 'team-a.wine'")) == 2
    assert [m.name for m in client.search_registered_models()] == ["team-a.wine"]
    assert "mlcycle.gate.decision" not in client.get_model_version("team-a.wine", "1").tags


def test_team_moves_its_own_alias(store):
    client, _ = store
    TeamRegistry(client, "team-a").set_alias("team-a.wine", "champion", 2)
    assert str(client.get_model_version_by_alias("team-a.wine", "champion").version) == "2"


def test_unprefixed_names_are_refused_for_a_team(store):
    client, _ = store
    with pytest.raises(PermissionDeniedError, match="team-b.<name>"):
        TeamRegistry(client, "team-b").create_registered_model("wine")
    assert [m.name for m in client.search_registered_models()] == ["team-a.wine"]
