"""Parallel trials: the compiled fan-out, the CLI's checks, and one kfp.local run against the serial search."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

from mlcycle.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_fan_out_compiles_to_a_parallel_for_between_plan_and_select(tmp_path):
    from kfp import compiler

    from pipelines.compile import COMPILED_DIR
    from pipelines.training_pipeline import build_training_pipeline

    compiler.Compiler().compile(build_training_pipeline(3), str(tmp_path / "trials.yaml"))
    spec, platform = yaml.safe_load_all((tmp_path / "trials.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    (loop_name,) = [n for n in tasks if n.startswith("for-loop")]
    loop = tasks[loop_name]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-trials-Output"
    assert set(loop["dependentTasks"]) == {"load-data", "plan-trials"}
    assert list(spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]) == ["train-trial"]
    select = tasks["select-trial"]["inputs"]["parameters"]
    assert select["results"]["taskOutputParameter"] == {"producerTask": loop_name,
                                                        "outputParameterKey": "pipelinechannel--train-trial-Output"}
    # What follows the search is the serial pipeline's: evaluation and the gate read the selected run.
    run_id = {"taskOutputParameter": {"producerTask": "select-trial", "outputParameterKey": "run_id"}}
    assert tasks["evaluate-model"]["inputs"]["parameters"]["run_id"] == run_id
    assert tasks["register-model"]["inputs"]["parameters"]["run_id"] == run_id
    assert "train-model" not in tasks
    labelled = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {"exec-plan-trials", "exec-train-trial", "exec-select-trial"} <= set(labelled)

    committed_spec = next(yaml.safe_load_all((COMPILED_DIR / "parallel_training_pipeline.yaml").read_text()))
    committed = committed_spec["root"]["dag"]["tasks"]
    (committed_loop,) = [t for n, t in committed.items() if n.startswith("for-loop")]
    assert committed_loop["iteratorPolicy"]["parallelismLimit"] == 8
    serial = next(yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text()))["root"]["dag"]["tasks"]
    assert not any(n.startswith("for-loop") for n in serial) and "train-model" in serial


@pytest.mark.parametrize(("args", "message"), [
    (["--trials", "3", "--parallelism", "0"], "--parallelism must be at least 1, got 0"),
    (["--parallelism", "2"], "--parallelism 2 runs search trials in parallel: give --trials N too"),
])
def test_bad_parallelism_is_refused_before_any_step(mlcycle_home, capsys, args, message):
    code, _, err = run_cli(capsys, "run", "training", "--model", "logistic_regression", *args)
    assert code == 2
    assert "parallelism" in err and message in err
    assert "Traceback" not in err
    assert MlflowClient().search_registered_models() == []


@pytest.mark.slow
def test_parallel_trials_on_kfp_local_pick_the_serial_search_s_parameters(mlcycle_home, tmp_path, capsys):
    """One kfp.local run (load, plan, 3 trials two at a time, select, evaluate, register, promote), then the
    serial search in this process on the same split with the same seed: the same parameters win."""
    from mlcycle import lifecycle
    from mlcycle.training.trials import PARENT_RUN_TAG

    code, out, err = run_cli(capsys, "run", "training", "--dataset", "wine", "--model", "logistic_regression",
                             "--trials", "3", "--parallelism", "2", "--seed", "3", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["decision"] == "promote" and summary["aliases"]["champion"] == summary["version"]
    # Not a count: kfp.local can drop a parallel step's "finished" line (pipelines/local.py, _StepLog).
    assert "train-trial" in err and "select-trial" in err and "train-model" not in err
    client = MlflowClient()
    parent = client.get_run(summary["run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent.info.run_id}'")
    assert len(children) == 3
    assert sorted(c.data.tags["mlcycle.trial"] for c in children) == ["0", "1", "2"]
    assert all("validation_f1_macro" in c.data.metrics and "C" in c.data.params for c in children)

    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet", seed=3)
    assert prepared.data_hash == parent.data.tags["mlcycle.data_hash"]
    serial = lifecycle.run_training(tmp_path / "train.parquet", prepared.target, mlcycle_home,
                                    registered_name="wine", model_type="logistic_regression", n_trials=3, seed=3)
    assert parent.data.params["C"] == str(serial.params["C"])
    assert parent.data.metrics["search_f1_macro"] == pytest.approx(serial.search_score)
    best = int(parent.data.tags["mlcycle.best_trial"])
    by_trial = {int(c.data.tags["mlcycle.trial"]): c for c in children}
    assert by_trial[best].data.params["C"] == str(serial.params["C"])
    assert by_trial[best].data.metrics["validation_f1_macro"] == pytest.approx(serial.search_score)
