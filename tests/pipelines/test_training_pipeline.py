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


def test_second_weaker_model_does_not_move_the_champion(mlcycle_home, capsys):
    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["decision"] == "promote" and first["aliases"]["champion"] == first["version"]
    assert "load-data" in err and "promote-model" in err  # step progress went to stderr

    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--model", "logistic_regression",
                             "--param", "C=0.001", "--json")
    assert code == 0, err
    second = json.loads(out)
    assert second["decision"] == "reject"
    assert alias_version("wine", "champion") == first["version"]
    # challenger is the newest version that passed the gate: the rejected one never gets it (issue 13).
    assert alias_version("wine", "challenger") == first["version"]
    tags = MlflowClient().get_model_version("wine", second["version"]).tags
    assert tags["mlcycle.gate.reason"].startswith("candidate f1_macro=")
    assert f"does not beat champion v{first['version']}" in tags["mlcycle.gate.reason"]
    assert float(tags["mlcycle.gate.champion"]) > float(tags["mlcycle.gate.candidate"])
    assert "promote-model" not in err  # dsl.If skipped the promotion

    code, out, _ = run_cli(capsys, "status", "--json")
    assert code == 0
    [model] = json.loads(out)
    assert model["aliases"] == {"champion": first["version"], "challenger": first["version"]}
    assert [v["decision"] for v in model["versions"]] == ["reject", "promote"]


def test_bad_data_fails_the_run_with_the_rule_and_registers_nothing(mlcycle_home, tmp_path, capsys):
    path = tmp_path / "churn.csv"
    rows = "\n".join(f"{i},{i % 3},{i % 2}" for i in range(30))
    path.write_text("a,b,label\n" + rows.replace("5,2,1", "5,,1") + "\n")
    code, _, err = run_cli(capsys, "run", "training", "--dataset", str(path), "--target", "label")
    assert code == 2
    assert "DataValidationError" in err and "'b'" in err and "missing" in err
    assert MlflowClient().search_registered_models() == []


def test_team_prefix_names_the_registered_model(mlcycle_home, capsys):
    code, out, err = run_cli(capsys, "run", "training", "--dataset", "synthetic:rows=300,features=5",
                             "--model", "logistic_regression", "--team", "team-a", "--name", "churn", "--json")
    assert code == 0, err
    assert json.loads(out)["registered_name"] == "team-a.churn"
    assert alias_version("team-a.churn", "champion") is not None
