"""The audit trail: a real train → gate → deploy → canary → promote → rollback lifecycle, read back in order."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from mlcycle import lifecycle
from mlcycle.deploy.rollout import analyze_canary, deploy_after_gate, promote_canary
from mlcycle.governance import approvals, audit, cards
from mlcycle.governance.audit import AuditWriteError
from mlcycle.registry.gate import GatePolicy
from mlcycle.serving import promotion
from tests.unit.deploy.fakes import FakeCustomObjectsApi

NAME = "team-a.wine"


class HealthyReader:
    """Prometheus answers for a canary (v2) as healthy as the champion (v1)."""

    def query(self, promql):
        if "status=~" in promql:
            return [({"version": "1"}, 0.0), ({"version": "2"}, 0.0)]
        if "histogram_quantile" in promql:
            return [({"version": "1"}, 0.01), ({"version": "2"}, 0.01)]
        if "predictions" in promql:
            return [({"version": "1", "class": "a"}, 500.0), ({"version": "2", "class": "a"}, 500.0)]
        return [({"version": "1"}, 5000.0), ({"version": "2"}, 500.0)]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    where = tmp_path_factory.mktemp("wine")
    prepared = lifecycle.prepare_data("wine", None, where / "train.parquet", where / "test.parquet")
    return prepared, where / "train.parquet", where / "test.parquet"


def train_and_gate(settings, splits, **training):
    prepared, train_path, test_path = splits
    result = lifecycle.run_training(
        train_path,
        prepared.target,
        settings,
        registered_name=NAME,
        dataset="wine",
        data_hash=prepared.data_hash,
        **training,
    )
    lifecycle.run_evaluation(result.run_id, test_path, prepared.target, NAME)
    return lifecycle.register_and_gate(result.run_id, NAME, GatePolicy(floor=0.0), settings, auto_promote=False)


def test_the_timeline_lists_every_step_in_order_and_the_card_has_the_numbers(mlcycle_home, splits, monkeypatch, capsys):
    monkeypatch.setenv("MLCYCLE_PROTECTED_ENVIRONMENTS", "prod")
    monkeypatch.setenv("MLCYCLE_TEAM", "team-a")
    monkeypatch.setenv("MLCYCLE_ACTOR", "pipeline:run-1")
    settings = mlcycle_home.model_copy(update={"team": "team-a", "protected_environments": "prod"})
    api = FakeCustomObjectsApi()

    # v1: a weak model, gated, made champion, approved and rolled out to prod.
    first = train_and_gate(settings, splits, model_type="logistic_regression", params={"C": 0.001})
    assert first.promote and first.version == "1"
    assert MlflowClient().get_model_version(NAME, "1").tags["mlcycle.card"].endswith("/model_card/v1/card.md")
    approvals.approve(NAME, "1", "prod", "first model", by="alice")  # prod serves champion: approval first
    assert lifecycle.promote_if_passed(NAME, "1", settings=settings).moved
    assert deploy_after_gate(NAME, "1", "prod", team="team-a", settings=settings, api=api)["action"] == "created"

    # v2: better, held as challenger, approved, canary in prod, analysed, promoted, then rolled back.
    second = train_and_gate(settings, splits, params={"n_estimators": 20})
    assert second.action == "hold" and second.version == "2"
    approvals.approve(NAME, "2", "prod", "beats v1", by="alice")
    assert deploy_after_gate(NAME, "2", "prod", team="team-a", settings=settings, api=api)["action"] == "canary"
    decision, _ = analyze_canary(api, MlflowClient(), HealthyReader(), "wine", "prod", team="team-a")
    assert decision.action == "promote"
    promote_canary(api, MlflowClient(), "wine", "prod", team="team-a")
    promotion.promote("wine", settings, by="alice", reason="canary healthy")
    promotion.rollback("wine", settings, by="bob", reason="complaints")

    steps = [(e.version, e.action) for e in audit.timeline(NAME)]
    assert steps == [
        ("1", "registered"),
        ("1", "gate.decision"),
        ("1", "alias.moved"),  # challenger
        ("1", "approval.granted"),
        ("1", "alias.moved"),  # champion
        ("1", "deploy.created"),
        ("2", "registered"),
        ("2", "gate.decision"),
        ("2", "alias.moved"),  # challenger
        ("2", "approval.granted"),
        ("2", "deploy.canary"),
        ("2", "canary.analysis"),
        ("2", "deploy.promoted"),
        ("2", "alias.moved"),  # champion (mlcycle promote)
        ("1", "alias.moved"),  # champion back (mlcycle rollback): the event is on the version that holds it
    ]
    events = audit.timeline(NAME)
    assert [e.at for e in events] == sorted(e.at for e in events)
    by_action = {(e.version, e.action): e for e in events}
    assert by_action[("2", "gate.decision")].details["decision"] == "promote"
    assert by_action[("2", "deploy.canary")].details == {
        "environment": "prod",
        "traffic_percent": 10,
        "inference_service": "team-a/wine",
        "replaces": "1",
    }
    promoted, rolled_back = events[-2], events[-1]
    assert (promoted.details["alias"], promoted.details["from"], promoted.details["to"]) == ("champion", "1", "2")
    assert (rolled_back.details["kind"], rolled_back.details["to"], rolled_back.by) == ("rollback", "1", "bob")
    assert by_action[("1", "registered")].by == "pipeline:run-1"

    # The CLI prints the same timeline, as JSON too.
    from mlcycle.cli import main

    capsys.readouterr()
    assert main(["audit", "wine", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(e["version"], e["action"]) for e in printed] == steps
    assert main(["audit", "wine"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(steps) and "kind=rollback" in lines[-1] and "by bob" in lines[-1]

    # The card of v2 shows the numbers recorded for it.
    run = MlflowClient().get_run(MlflowClient().get_model_version(NAME, "2").run_id)
    stored = cards.generate_card(NAME, "2")
    f1, champion_f1 = run.data.metrics["test_f1_macro"], run.data.metrics["champion_test_f1_macro"]
    assert f"| f1_macro | {f1:.4f} | {champion_f1:.4f} | {f1 - champion_f1:+.4f} |" in stored.markdown
    assert "| Metric (holdout) | v2 | champion v1 | Δ |" in stored.markdown
    assert run.data.tags["mlcycle.data_hash"] in stored.markdown
    assert "| n_estimators | 20 |" in stored.markdown
    assert "| prod | approved | alice |" in stored.markdown
    assert "`ok`" in stored.markdown  # servability
    assert f"<td>{f1:.4f}</td>" in stored.html
    assert stored.location == f"runs:/{run.info.run_id}/model_card/v2/card.md"
    assert MlflowClient().get_model_version(NAME, "2").tags["mlcycle.card"] == stored.location
    import mlflow

    assert mlflow.artifacts.load_text(stored.location) == stored.markdown


def test_entries_are_never_overwritten_through_the_api(registry):
    first = audit.record(NAME, "1", "approval.granted", details={"environment": "prod"}, by="alice")
    second = audit.record(NAME, "1", "approval.revoked", details={"environment": "prod"}, by="bob")
    assert (first.seq, second.seq) == (1, 2) and first.key != second.key
    with pytest.raises(AuditWriteError, match="append-only"):
        audit.append(NAME, "1", first.key, json.dumps({"action": "nothing happened"}))
    with pytest.raises(AuditWriteError):
        audit.append(NAME, "1", "mlcycle.gate.decision", "promote")  # only audit keys go through it
    assert [(e.action, e.by) for e in audit.version_events(NAME, "1")] == [
        ("approval.granted", "alice"),
        ("approval.revoked", "bob"),
    ]


def test_two_writers_with_the_same_sequence_number_both_stay(registry, monkeypatch):
    # Two pods read the trail at the same moment and both pick seq 1: the random part keeps both events.
    stale = MlflowClient().get_model_version(NAME, "1")
    monkeypatch.setattr(MlflowClient, "get_model_version", lambda self, name, version: stale)
    a = audit.record(NAME, "1", "deploy.canary", by="pod-a")
    b = audit.record(NAME, "1", "canary.analysis", by="pod-b")
    monkeypatch.undo()
    assert a.seq == b.seq == 1 and a.key != b.key
    assert sorted(e.by for e in audit.version_events(NAME, "1")) == ["pod-a", "pod-b"]


def test_a_refused_champion_move_is_in_the_trail_too(registry):
    from mlcycle import release
    from tests.release_helpers import mark_releasable

    mark_releasable(registry, NAME, "1", "2")
    assert release.promote_version(NAME, "1", expected_current=None, reason="first", by="alice").moved
    moved = release.promote_version(NAME, "2", expected_current=None, reason="gate passed", by="ci")
    assert not moved.moved and moved.refused == release.RACE
    (refused,) = [e for e in audit.timeline(NAME) if e.action == "alias.move_refused"]
    assert (refused.version, refused.by) == ("2", "ci") and "champion moved to v1" in refused.details["reason"]
    assert [(e.version, e.action, e.details.get("to")) for e in audit.timeline(NAME)][0] == ("1", "alias.moved", "1")


def test_verify_finds_an_entry_edited_or_removed_behind_the_tools_back(registry, capsys):
    from mlcycle.cli import main

    events = [audit.record(NAME, "1", f"step.{i}", by="alice") for i in range(3)]
    audit.record(NAME, "2", "registered")
    assert audit.verify(NAME) == [] and events[1].prev == events[0].digest
    assert main(["audit", NAME, "--verify"]) == 0 and "intact (4 events)" in capsys.readouterr().out

    # Someone rewrites entry 1 through MLflow directly: entry 2 no longer matches it.
    registry.set_model_version_tag(NAME, "1", events[0].key, json.dumps({"action": "nothing to see"}))
    assert audit.verify(NAME) == ["v1: entry 1 was changed or replaced (entry 2, step.1, recorded another one)"]
    # ... and deletes entry 2.
    registry.delete_model_version_tag(NAME, "1", events[1].key)
    assert "v1: entry 2 is missing" in audit.verify(NAME)
    assert main(["audit", NAME, "--verify"]) == 2
    assert "entry 2 is missing" in capsys.readouterr().err
