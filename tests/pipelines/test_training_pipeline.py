"""The training pipeline on kfp.local, end to end, through the CLI a data scientist uses."""

import json

import pytest
from mlflow.tracking import MlflowClient

from mlcycle.cli import main
from mlcycle.registry.versions import alias_version

pytestmark = pytest.mark.slow


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_pipeline_moves_aliases_only_for_versions_that_earned_it(mlcycle_home, capsys, monkeypatch):
    """The release cells of the training pipeline on kfp.local (issue 13), one team-prefixed model:
    auto-promote on (first version; then a passing version where prod is protected: it stops at
    challenger) and off (a rejected version: nothing moves); then approve + promote moves champion."""
    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--model", "logistic_regression",
                             "--param", "C=0.01", "--team", "team-a", "--json")
    assert code == 0, err
    first = json.loads(out)
    name = first["registered_name"]
    assert name == "team-a.wine"
    assert first["decision"] == "promote" and first["aliases"]["champion"] == first["version"]
    assert "load-data" in err and "promote-model" in err  # step progress went to stderr

    monkeypatch.setenv("MLCYCLE_PROTECTED_ENVIRONMENTS", "prod")  # prod serves champion: approval needed
    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--team", "team-a", "--json")
    assert code == 0, err  # awaiting approval is a normal outcome, like a failed gate
    second = json.loads(out)
    assert second["decision"] == "promote"
    assert second["promotion"] == "awaiting approval for prod"
    assert second["aliases"] == {"champion": first["version"], "challenger": second["version"]}

    monkeypatch.delenv("MLCYCLE_PROTECTED_ENVIRONMENTS")
    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--team", "team-a",
                             "--min-improvement", "0.5", "--no-promote", "--json")
    assert code == 0, err
    third = json.loads(out)
    assert third["decision"] == "reject"
    # challenger is the newest version that passed the gate: the rejected one never gets it.
    assert alias_version(name, "champion") == first["version"]
    assert alias_version(name, "challenger") == second["version"]
    tags = MlflowClient().get_model_version(name, third["version"]).tags
    assert tags["mlcycle.gate.reason"].startswith("candidate f1_macro=")
    assert "promote-model" not in err  # dsl.If skipped the promotion

    code, out, _ = run_cli(capsys, "status", "--team", "team-a", "--json")
    assert code == 0
    [model] = json.loads(out)
    assert model["aliases"] == {"champion": first["version"], "challenger": second["version"]}
    assert [v["decision"] for v in model["versions"]] == ["reject", "promote", "promote"]

    monkeypatch.setenv("MLCYCLE_PROTECTED_ENVIRONMENTS", "prod")
    assert run_cli(capsys, "--team", "team-a", "promote", "wine")[0] == 2  # no approval: refused, nothing moved
    assert alias_version(name, "champion") == first["version"]
    assert run_cli(capsys, "approve", f"models:/{name}/{second['version']}", "--env", "prod",
                   "--reason", "canary healthy")[0] == 0
    code, out, err = run_cli(capsys, "--team", "team-a", "promote", "wine")
    assert code == 0, err
    assert alias_version(name, "champion") == second["version"]
    assert run_cli(capsys, "audit", name, "--verify")[0] == 0


def test_bad_data_fails_the_run_with_the_rule_and_registers_nothing(mlcycle_home, tmp_path, capsys):
    path = tmp_path / "churn.csv"
    rows = "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30))
    path.write_text("a,b,label\n" + rows.replace("5,2,1", "5,,1") + "\n")
    code, _, err = run_cli(capsys, "run", "training", "--dataset", str(path), "--target", "label")
    assert code == 2
    assert "DataValidationError" in err and "'b'" in err and "missing" in err
    assert MlflowClient().search_registered_models() == []
