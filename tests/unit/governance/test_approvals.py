"""Approvals gate protected environments: the cluster deploy step, `mlcycle deploy promote` and `mlcycle promote`."""

from __future__ import annotations

import pytest

from mlcycle.config import load_settings
from mlcycle.deploy.rollout import deploy_after_gate, deploy_version, promote_canary
from mlcycle.errors import ApprovalRequiredError, InvalidInputError
from mlcycle.governance import approvals, audit
from mlcycle.serving import promotion
from tests.release_helpers import mark_releasable
from tests.unit.deploy.fakes import FakeCustomObjectsApi

NAME = "team-a.wine"


@pytest.fixture
def protected(registry, monkeypatch):
    monkeypatch.setenv("MLCYCLE_PROTECTED_ENVIRONMENTS", "staging, prod")
    monkeypatch.setenv("MLCYCLE_ACTOR", "alice")
    mark_releasable(registry, NAME, "1", "2", "3")  # passed the gate: approval is the only thing missing
    return registry


def test_missing_approval_fails_the_deploy_step_fast_with_the_command_and_records_why(protected):
    api = FakeCustomObjectsApi()
    with pytest.raises(ApprovalRequiredError) as caught:
        deploy_after_gate(NAME, "1", "prod", team="team-a", settings=load_settings(), api=api)
    message = caught.value.message
    assert "models:/team-a.wine/1 has no approval for prod" in message
    assert "mlcycle approve models:/team-a.wine/1 --env prod --reason" in message
    assert api.calls == []  # nothing reached the cluster
    tags = protected.get_model_version(NAME, "1").tags
    assert tags["mlcycle.serving.prod.state"] == "awaiting_approval"
    assert "has no approval" in tags["mlcycle.serving.prod.reason"]
    assert [e.action for e in audit.version_events(NAME, "1")] == ["deploy.refused"]
    # dev is not protected: the same version deploys there without an approval.
    assert deploy_version(api, protected, "wine", 1, "dev", team="team-a").action == "created"


def test_approval_lets_the_rerun_deploy_and_revocation_refuses_again(protected):
    api = FakeCustomObjectsApi()
    approval = approvals.approve(NAME, "1", "prod", "validated on the March holdout")
    assert (approval.by, approval.status) == ("alice", "approved")
    assert deploy_after_gate(NAME, "1", "prod", team="team-a", settings=load_settings(), api=api)["action"] == "created"

    approvals.approve(NAME, "2", "prod", "beats v1 offline")
    assert deploy_version(api, protected, "wine", 2, "prod", team="team-a").action == "canary"
    approvals.revoke(NAME, "2", "prod", "found label leakage", by="bob")
    with pytest.raises(ApprovalRequiredError, match="revoked by bob .*found label leakage"):
        promote_canary(api, protected, "wine", "prod", team="team-a")
    assert api.objects[("team-a", "wine")]["spec"]["predictor"]["canaryTrafficPercent"] == 10  # not promoted
    state = approvals.get_approval(NAME, "2", "prod")
    assert (state.status, state.by, state.revoked_by) == ("revoked", "alice", "bob")
    assert [e.action for e in audit.version_events(NAME, "2")][-2:] == ["approval.revoked", "deploy.refused"]


def test_local_promote_is_refused_without_approval_for_prod(protected):
    from tests.release_helpers import mark_releasable

    settings = load_settings()
    mark_releasable(protected, NAME, "2")
    protected.set_registered_model_alias(NAME, "champion", "1")
    protected.set_registered_model_alias(NAME, "challenger", "2")
    with pytest.raises(ApprovalRequiredError, match="has no approval for prod.*mlcycle approve models:/team-a.wine/2"):
        promotion.promote("wine", settings.model_copy(update={"team": "team-a"}))
    assert str(protected.get_model_version_by_alias(NAME, "champion").version) == "1"
    approvals.approve(NAME, "2", "prod", "canary looked fine")
    moved = promotion.promote("wine", settings.model_copy(update={"team": "team-a"}))
    assert (moved.previous, moved.current) == ("1", "2")


def test_unprotected_environments_need_nothing_and_approvals_need_a_reason(registry):
    assert approvals.require_approval(NAME, "1", "prod") is None
    with pytest.raises(InvalidInputError, match="--reason"):
        approvals.approve(NAME, "1", "prod", "  ")
    with pytest.raises(InvalidInputError, match="unknown environment"):
        approvals.approve(NAME, "1", "qa", "why not")
    with pytest.raises(InvalidInputError, match="no approval for prod to revoke"):
        approvals.revoke(NAME, "1", "prod", "oops")


def test_cli_approve_and_revoke(protected, capsys):
    from mlcycle.cli import main

    assert main(["approve", "models:/team-a.wine/3", "--env", "prod", "--reason", "signed off"]) == 0
    assert "approved models:/team-a.wine/3 for prod by alice" in capsys.readouterr().out
    assert approvals.require_approval(NAME, "3", "prod").reason == "signed off"
    assert main(["revoke", "team-a.wine/3", "--env", "prod", "--reason", "withdrawn"]) == 0
    capsys.readouterr()
    assert main(["approve", "models:/team-a.wine/3", "--env", "prod"]) == 2  # --reason is required
    with pytest.raises(ApprovalRequiredError):
        approvals.require_approval(NAME, "3", "prod")
