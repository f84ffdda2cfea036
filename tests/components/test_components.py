"""Components called as plain functions (kfp's `python_func`), the tier between library and pipeline."""

from types import SimpleNamespace

import pytest

from components.load_data import load_data
from components.train_model import train_model
from mlcycle.errors import DataValidationError, PermissionDeniedError


def artifact(path):
    return SimpleNamespace(path=str(path), metadata={})


def test_load_data_and_train_model_chain(mlcycle_home, tmp_path):
    loaded = load_data.python_func(dataset="wine", target="", model_name="", team="", test_size=0.25, seed=0,
                                   train_data=artifact(tmp_path / "train"), test_data=artifact(tmp_path / "test"))
    assert (loaded.target, loaded.registered_name, loaded.rows) == ("target", "wine", 178)
    trained = train_model.python_func(
        train_data=artifact(tmp_path / "train"), target=loaded.target, registered_name="wine",
        model_type="logistic_regression", params='{"C": 0.5}', n_trials=0, seed=0, dataset="wine",
        data_hash=loaded.data_hash, pipeline_run_id="run-1")
    assert len(trained.run_id) == 32 and trained.model_uri.startswith("models:/")


def test_load_data_refuses_another_teams_name(mlcycle_home, tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_TEAM", "team-a")
    with pytest.raises(PermissionDeniedError):
        load_data.python_func(dataset="wine", target="", model_name="", team="team-b", test_size=0.25, seed=0,
                              train_data=artifact(tmp_path / "a"), test_data=artifact(tmp_path / "b"))


def test_load_data_names_the_broken_rule(mlcycle_home, tmp_path):
    path = tmp_path / "one-class.csv"
    path.write_text("x,y\n" + "\n".join(f"{i},1" for i in range(30)) + "\n")
    with pytest.raises(DataValidationError) as e:
        load_data.python_func(dataset=str(path), target="y", model_name="", team="", test_size=0.25, seed=0,
                              train_data=artifact(tmp_path / "a"), test_data=artifact(tmp_path / "b"))
    assert e.value.rule == "min_classes" and e.value.field == "y"


def test_a_team_step_cannot_write_another_teams_model(mlcycle_home, tmp_path, monkeypatch):
    """Every writing step checks the registered name against the step's team (MLCYCLE_TEAM)."""
    from components.promote_model import promote_model
    from components.register_model import register_model

    monkeypatch.setenv("MLCYCLE_TEAM", "team-a")
    with pytest.raises(PermissionDeniedError):
        train_model.python_func(
            train_data=artifact(tmp_path / "none"), target="target", registered_name="team-b.wine",
            model_type="logistic_regression", params="{}", n_trials=0, seed=0, dataset="wine", data_hash="",
            pipeline_run_id="")
    with pytest.raises(PermissionDeniedError):
        register_model.python_func(run_id="0" * 32, registered_name="team-b.wine", gate_metric="f1_macro",
                                   min_improvement=0.0, floor=0.5, auto_promote=True, pipeline_run_id="")
    with pytest.raises(PermissionDeniedError):
        promote_model.python_func(registered_name="wine", run_id="0" * 32, pipeline_run_id="")
