"""The one release path: every path that moves an alias × every reason it must not (real local MLflow store).

Each refused cell leaves the aliases exactly as they were, says why, and records ``alias.move_refused``;
each allowed move leaves exactly one ``alias.moved`` event; ``mlcycle audit --verify`` is clean after all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from copy import deepcopy
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlcycle import lifecycle, release
from mlcycle.cli import main
from mlcycle.deploy import rollout
from mlcycle.deploy.kube import apply_inference_service
from mlcycle.deploy.render import render_inference_service
from mlcycle.deploy.serving_state import record_rollout
from mlcycle.governance import approvals, audit
from mlcycle.registry import store
from tests.release_helpers import mark_releasable
from tests.unit.deploy.fakes import FakeCustomObjectsApi, RecordedReader

NAME = "wine"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(mlcycle_home, tmp_path, monkeypatch):
    """``wine`` v1 (champion, releasable) and v2 (the candidate, state set per cell); prod protected."""
    monkeypatch.setenv("MLCYCLE_PROTECTED_ENVIRONMENTS", "prod")
    monkeypatch.setenv("MLCYCLE_ACTOR", "tester")
    client = MlflowClient()
    client.create_registered_model(NAME)
    source = tmp_path / "model"
    source.mkdir()
    for _ in range(3):
        client.create_model_version(NAME, str(source))
    mark_releasable(client, NAME, "1")
    approvals.approve(NAME, "1", "prod", "first model")
    assert release.promote_version(NAME, "1", expected_current=None, reason="first").moved
    return client


def aliases(client) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(NAME).aliases.items()}


def moved_events(version: str) -> list[audit.AuditEvent]:
    return [e for e in audit.version_events(NAME, version) if e.action == "alias.moved"]


def rejected(client):
    client.set_model_version_tag(NAME, "2", "mlcycle.gate.decision", "reject")
    client.set_model_version_tag(NAME, "2", "mlcycle.gate.reason", "does not beat the champion")
    client.set_model_version_tag(NAME, "2", "mlcycle.servability", "ok")


def unservable(client):
    mark_releasable(client, NAME, "2")
    client.set_model_version_tag(NAME, "2", "mlcycle.servability", "failed: cannot load")


def unapproved(client):
    mark_releasable(client, NAME, "2")


def revoked(client):
    mark_releasable(client, NAME, "2")
    approvals.approve(NAME, "2", "prod", "looked fine")
    approvals.revoke(NAME, "2", "prod", "label leakage")


def lost_race(client):
    mark_releasable(client, NAME, "2", "3")
    approvals.approve(NAME, "2", "prod", "looked fine")
    approvals.approve(NAME, "3", "prod", "also fine")
    # v3 became champion after v2 was judged against v1.
    assert release.promote_version(NAME, "3", expected_current="1", reason="faster pipeline").moved


CELLS = {  # state → (expected refusal kind, words the reason contains)
    "rejected": (rejected, release.GATE, "did not pass the gate"),
    "unservable": (unservable, release.UNSERVABLE, "not servable"),
    "unapproved": (unapproved, release.APPROVAL, "has no approval for prod"),
    "revoked": (revoked, release.APPROVAL, "revoked by"),
    "lost race": (lost_race, release.RACE, "since the move was decided against v1"),
}


def pipeline_promote(settings):  # the pipeline's promote step (components/promote_model.py)
    return lifecycle.promote_if_passed(NAME, "2", moved_by="pipeline:run-1", settings=settings)


def api_promote(settings):  # mlcycle.release.promote (the notebooks' helper, serving.promotion.promote)
    try:
        return release.promote(NAME, settings, version="2", reason="notebook")
    except Exception as e:  # noqa: BLE001 - the cell checks the error's type and message below
        return e


def cli_promote(settings):  # `mlcycle promote wine --version 2`
    return main(["promote", NAME, "--version", "2", "--reason", "cli"])


PATHS = {"pipeline promote": pipeline_promote, "release.promote": api_promote, "mlcycle promote": cli_promote}


# `mlcycle promote` decides now (the expected champion is the one it reads), so a lost race there is the
# narrow window the pending marker guards; the pipeline's step decides earlier and can lose a real race.
MATRIX = [(state, path) for state in CELLS for path in PATHS if state != "lost race" or path == "pipeline promote"]


@pytest.mark.parametrize(("state", "path"), MATRIX)
def test_every_champion_path_refuses_every_unearned_version(registry, mlcycle_home, path, state, capsys, monkeypatch):
    setup, kind, words = CELLS[state]
    if path == "pipeline promote" and state == "lost race":
        registry.set_model_version_tag(NAME, "2", "mlcycle.gate.champion_version", "1")  # judged against v1
    setup(registry)
    settings = mlcycle_home.model_copy(update={"protected_environments": "prod"})
    before = aliases(registry)
    events_before = len(audit.timeline(NAME))
    capsys.readouterr()
    outcome = PATHS[path](settings)
    assert aliases(registry) == before, "a refused move changed an alias"
    if path == "mlcycle promote":
        assert outcome == 2
        assert words in capsys.readouterr().err
    elif isinstance(outcome, Exception):
        assert words in str(outcome)
        expected = {release.APPROVAL: "ApprovalRequiredError", release.UNSERVABLE: "ServabilityError"}
        assert type(outcome).__name__ == expected.get(kind, "ReleaseRefusedError")
    else:
        assert not outcome.moved and outcome.refused == kind and words in outcome.reason
    new = audit.timeline(NAME)[events_before:]
    assert [e.action for e in new] == ["alias.move_refused"]
    assert new[0].details["refused"] == kind
    promotion = registry.get_model_version(NAME, "2").tags.get("mlcycle.gate.promotion", "")
    expected_note = "awaiting approval for prod" if kind == release.APPROVAL else f"refused: {new[0].details['reason']}"
    assert promotion == expected_note
    assert audit.verify(NAME) == []


def cluster(*versions: str) -> FakeCustomObjectsApi:
    """The Kubernetes stand-in with ``versions`` of wine rolled out in prod, in order, as ``kubectl apply``
    would (no release check): the first serves, a second runs as a canary."""
    api = FakeCustomObjectsApi()
    for version in versions:
        isvc = render_inference_service(NAME, "prod", version=version)
        record_rollout(MlflowClient(), NAME, version, "prod", apply_inference_service(api, isvc, 10))
    return api


def deploy_apply(api):  # `mlcycle deploy apply wine --version 2 --env prod` (and the pipeline's deploy step)
    return rollout.deploy_version(api, MlflowClient(), NAME, "2", "prod")


def deploy_promote(api):  # `mlcycle deploy promote wine --env prod`, v2's canary running
    return rollout.promote_canary(api, MlflowClient(), NAME, "prod")


def canary_auto_promote(api):  # `mlcycle deploy analyze wine --env prod --auto-promote` on a healthy canary
    decision, result = rollout.analyze_canary(api, MlflowClient(), RecordedReader(0.0), NAME, "prod",
                                              auto_promote=True)
    assert decision.action == "promote"  # healthy: only the release rules hold it back
    return result


DEPLOY_PATHS = {"deploy apply": (deploy_apply, ("1",)), "deploy promote": (deploy_promote, ("1", "2")),
                "canary auto-promote": (canary_auto_promote, ("1", "2"))}
ERRORS = {release.GATE: "ReleaseRefusedError", release.UNSERVABLE: "ServabilityError",
          release.APPROVAL: "ApprovalRequiredError"}


@pytest.mark.parametrize("path", DEPLOY_PATHS)
@pytest.mark.parametrize("state", [state for state in CELLS if state != "lost race"])
def test_every_deploy_path_refuses_every_unearned_version(registry, path, state):
    """Deploy paths move traffic, not aliases: the same rules hold, and neither traffic nor aliases move."""
    step, deployed = DEPLOY_PATHS[path]
    api = cluster(*deployed)
    setup, kind, words = CELLS[state]
    setup(registry)
    before, cluster_before = aliases(registry), deepcopy(api.objects)
    events_before = len(audit.timeline(NAME))
    if path == "canary auto-promote":
        assert step(api) is None
    else:
        with pytest.raises(Exception) as caught:
            step(api)
        assert type(caught.value).__name__ == ERRORS[kind] and words in str(caught.value)
    assert aliases(registry) == before and api.objects == cluster_before, "a refused step changed something"
    new = audit.timeline(NAME)[events_before:]
    (refused,) = [e for e in new if e.action == "deploy.refused"]
    assert words in refused.details["reason"] and refused.details["environment"] == "prod"
    assert "alias.moved" not in [e.action for e in new]
    assert audit.verify(NAME) == []


def test_a_canary_rollback_is_never_blocked(registry):
    mark_releasable(registry, NAME, "2")
    approvals.approve(NAME, "2", "prod", "canary may start")
    api = cluster("1", "2")
    assert release.promote_version(NAME, "2", expected_current="1", reason="canary started").moved
    approvals.revoke(NAME, "1", "prod", "even v1 is suspect")  # rolling back to v1 still works
    result = rollout.rollback_canary(api, MlflowClient(), NAME, "prod")
    assert result.action == "rolled_back"
    assert aliases(registry)["champion"] == "1"  # the alias follows what serves
    (back,) = [e for e in moved_events("1") if e.details["kind"] == "rollback"]
    assert back.details["reason"] == "prod canary rolled back"
    assert audit.verify(NAME) == []


@pytest.mark.parametrize("state", ["rejected", "unservable"])
def test_challenger_only_moves_to_a_version_that_passed_the_gate(registry, state):
    CELLS[state][0](registry)
    move = release.set_challenger(NAME, "2")
    assert not move.moved and "challenger" not in aliases(registry)


def test_allowed_moves_leave_exactly_one_event_and_rollbacks_are_never_blocked(registry, mlcycle_home, capsys):
    unapproved(registry)
    assert release.set_challenger(NAME, "2").moved  # dev/staging are not protected here
    approvals.approve(NAME, "2", "prod", "canary healthy")
    assert main(["promote", NAME]) == 0  # challenger's version by default
    assert "champion is now version 2 (was version 1)" in capsys.readouterr().out
    assert aliases(registry) == {"champion": "2", "challenger": "2"}
    assert [e.details["alias"] for e in moved_events("2")] == ["challenger", "champion"]
    assert main(["promote", NAME, "--version", "2"]) == 0  # again: idempotent, no second event
    assert len(moved_events("2")) == 2
    approvals.revoke(NAME, "1", "prod", "even so, back")  # a rollback is never blocked, not even by this
    registry.set_model_version_tag(NAME, "1", "mlcycle.gate.decision", "reject")
    assert main(["rollback", NAME, "--reason", "complaints"]) == 0
    assert aliases(registry)["champion"] == "1"
    (back,) = [e for e in moved_events("1") if e.details["kind"] == "rollback"]
    assert (back.details["from"], back.details["to"]) == ("2", "1")
    assert main(["audit", NAME, "--verify"]) == 0


def test_a_protected_prod_stops_the_pipeline_at_challenger(registry, mlcycle_home):
    unapproved(registry)
    assert release.refusal(NAME, "2", "champion")[0] == release.APPROVAL
    assert release.refusal(NAME, "2", "challenger") is None
    explained = release.serving_explanation(registry.get_model_version(NAME, "1").tags, ["champion"])
    assert explained == "serving: champion → prod"


def test_a_crash_between_the_move_and_its_event_is_completed_by_the_rerun(registry, monkeypatch):
    unapproved(registry)
    approvals.approve(NAME, "2", "prod", "ok")

    def die(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(release, "_moved_event", die)
    with pytest.raises(SystemExit):
        release.promote_version(NAME, "2", expected_current="1", reason="gate passed")
    monkeypatch.undo()
    assert aliases(registry)["champion"] == "2" and moved_events("2") == []  # moved, event not written yet
    again = release.promote_version(NAME, "2", expected_current="1", reason="gate passed")  # the re-run
    assert again.moved
    assert len(moved_events("2")) == 1
    assert audit.verify(NAME) == [] and release.reconcile(NAME, "champion") is False


STEP = """
import sys, time
from mlcycle import release, tracking
from mlcycle.config import load_settings
from mlcycle.governance import audit

tracking.configure(load_settings())
real = audit.record
def slow(name, version, action, **kwargs):
    if action == "alias.moved":
        time.sleep(120)  # the test SIGKILLs the step here, between the alias move and its event
    return real(name, version, action, **kwargs)
audit.record = slow
release.promote_version("wine", "2", expected_current="1", reason="gate passed", by="pipeline:killed")
"""


@pytest.mark.slow
def test_sigkill_between_the_move_and_the_audit_write_then_the_rerun_completes_the_trail(registry):
    unapproved(registry)
    approvals.approve(NAME, "2", "prod", "ok")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", STEP], env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if store.alias_version(NAME, "champion") == "2":
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = proc.stdout.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, output
    assert moved_events("2") == []  # killed after the move, before its event
    assert lifecycle.promote_if_passed(NAME, "2").moved  # the re-run (a retried pipeline step)
    (event,) = moved_events("2")
    assert event.by == "pipeline:killed" and event.details["from"] == "1"
    assert audit.verify(NAME) == []


def test_an_outage_is_not_a_verdict(monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    from mlcycle.errors import RegistryUnavailableError

    calls = []

    def down(*args):
        calls.append(args)
        raise MlflowException("API request to http://127.0.0.1:1/api failed with exception Connection refused")

    monkeypatch.setattr(store, "ATTEMPTS", 2)
    with pytest.raises(RegistryUnavailableError, match="unavailable"):
        store.call(down, what="reading wine")
    assert len(calls) == 2  # retried
    assert not store.is_transient(MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST))
    assert store.is_not_found(MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST))
    assert not store.is_transient(MlflowException("bad name", error_code=INVALID_PARAMETER_VALUE))
