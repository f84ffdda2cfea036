"""Team isolation in the registry: a step acting for team-a cannot write team-b's models, whichever
writing entry point it uses, and a refused write leaves the registry exactly as it was."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle, tracking
from mlcycle.config import load_settings
from mlcycle.errors import PermissionDeniedError
from mlcycle.registry import versions
from mlcycle.registry.gate import GatePolicy
from mlcycle.registry.tenancy import TeamRegistry
from mlcycle.serving import promotion

pytestmark = pytest.mark.slow


def snapshot(name: str) -> list[tuple]:
    client = MlflowClient()
    found = client.search_model_versions(f"name='{name}'")
    return sorted((str(v.version), tuple(sorted(v.aliases)), tuple(sorted(v.tags.items()))) for v in found)


def test_team_a_cannot_write_team_b_models_through_any_entry_point(home, tmp_path, monkeypatch):
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    train, test, target = tmp_path / "train.parquet", tmp_path / "test.parquet", prepared.target
    monkeypatch.setenv("MLCYCLE_TEAM", "team-b")
    team_b = load_settings()
    tracking.configure(team_b)
    run = lifecycle.run_training(train, target, team_b, registered_name="team-b.wine",
                                 model_type="logistic_regression", params={"C": 0.01})
    lifecycle.run_evaluation(run.run_id, test, target, "team-b.wine")
    outcome = lifecycle.register_and_gate(run.run_id, "team-b.wine", GatePolicy(), team_b)
    lifecycle.promote_if_passed("team-b.wine", outcome.version)
    before = snapshot("team-b.wine")
    assert versions.alias_version("team-b.wine", "champion") == outcome.version

    monkeypatch.setenv("MLCYCLE_TEAM", "team-a")
    team_a = load_settings()
    attempts = {
        "train": lambda: lifecycle.run_training(train, target, team_a, registered_name="team-b.wine"),
        "resolve name": lambda: lifecycle.resolve_registered_name("wine", "", "team-b", team_a),
        "register and gate": lambda: lifecycle.register_and_gate(run.run_id, "team-b.wine", GatePolicy(), team_a),
        "promote run": lambda: lifecycle.promote_run_version("team-b.wine", run.run_id, settings=team_a),
        "check write": lambda: lifecycle.check_write_access("team-b.wine", team_a),
        "mlcycle promote": lambda: promotion.promote("team-b.wine", team_a),
        "mlcycle rollback": lambda: promotion.rollback("team-b.wine", team_a),
        "alias": lambda: TeamRegistry(MlflowClient(), "team-a").set_alias("team-b.wine", "champion", "1"),
        "tag": lambda: TeamRegistry(MlflowClient(), "team-a").set_version_tag("team-b.wine", "1", "k", "v"),
        "unprefixed": lambda: lifecycle.check_write_access("wine", team_a),
    }
    allowed = []
    for what, attempt in attempts.items():
        try:
            attempt()
        except PermissionDeniedError as e:
            assert e.http_status == 403
            continue
        allowed.append(what)
    assert not allowed, f"team-a wrote team-b's model through: {allowed}"
    assert snapshot("team-b.wine") == before
