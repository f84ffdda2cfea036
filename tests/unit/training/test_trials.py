"""Parallel trials, step by step in this process: the same choice as the serial search, one child run per trial."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle
from mlcycle.errors import InvalidInputError
from mlcycle.training.train import TrainingRequest
from mlcycle.training.trials import (
    PARENT_RUN_TAG,
    TrialItem,
    TrialResult,
    TrialsMismatchError,
    select_trial,
)


@pytest.fixture
def splits(tmp_path):
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    return prepared, tmp_path / "train.parquet"


def test_fanned_out_trials_choose_what_the_serial_search_chooses(mlcycle_home, splits):
    prepared, train_path = splits
    options = dict(registered_name="wine", model_type="logistic_regression", n_trials=3, seed=3)
    serial = lifecycle.run_training(train_path, prepared.target, mlcycle_home, **options)

    items = lifecycle.plan_training_trials(train_path, prepared.target, mlcycle_home, **options)
    results = [lifecycle.run_training_trial(train_path, item) for item in reversed(items)]
    parent_id = TrialItem.from_json(items[0]).parent_run_id
    client = MlflowClient()
    mlflow.set_experiment(experiment_id=client.get_run(parent_id).info.experiment_id)  # MLflow's rule to resume
    final = lifecycle.train_best_trial(train_path, prepared.target, items, results, mlcycle_home)

    assert final.run_id == parent_id
    assert final.params == serial.params and final.search_score == pytest.approx(serial.search_score)
    serial_history = [m.value for m in client.get_metric_history(serial.run_id, "search_trial_f1_macro")]
    history = sorted(client.get_metric_history(parent_id, "search_trial_f1_macro"), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx(serial_history)
    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'")
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    by_trial = {int(c.data.tags["mlcycle.trial"]): c for c in children}
    assert sorted(by_trial) == [0, 1, 2]
    assert [by_trial[i].data.metrics["validation_f1_macro"] for i in range(3)] == pytest.approx(serial_history)
    parent = client.get_run(parent_id)
    best = int(parent.data.tags["mlcycle.best_trial"])
    assert by_trial[best].data.params["C"] == str(serial.params["C"])
    assert parent.data.params["C"] == str(serial.params["C"]) and parent.data.params["n_trials"] == "3"
    assert parent.info.status == "FINISHED" and parent.data.tags["mlcycle.model_uri"] == final.model_uri


def _item(index):
    return TrialItem("parent", index, {"C": index}, "classification", "target", TrainingRequest(experiment="wine"))


def test_select_keeps_the_highest_score_and_the_earliest_trial_on_a_tie():
    items = [_item(i) for i in range(4)]
    results = [TrialResult("parent", i, f"run-{i}", {"C": i}, score) for i, score in
               [(3, 0.9), (0, 0.5), (2, 0.9), (1, 0.7)]]
    outcome = select_trial(items, results)
    assert (outcome.best, outcome.params, outcome.score) == (2, {"C": 2}, 0.9)
    assert [t["run_id"] for t in outcome.trials] == ["run-0", "run-1", "run-2", "run-3"]


def test_select_refuses_results_that_are_not_the_planned_trials():
    items = [_item(i) for i in range(2)]
    with pytest.raises(TrialsMismatchError, match=r"planned trials \[0, 1\]"):
        select_trial(items, [TrialResult("parent", 0, "r", {}, 0.1)])
    with pytest.raises(TrialsMismatchError):
        select_trial(items, [TrialResult("parent", 0, "r", {}, 0.1), TrialResult("other", 1, "r", {}, 0.2)])


def test_a_plan_needs_trials(mlcycle_home, splits):
    prepared, train_path = splits
    with pytest.raises(InvalidInputError, match="n_trials of at least 1") as raised:
        lifecycle.plan_training_trials(train_path, prepared.target, mlcycle_home, registered_name="wine",
                                       model_type="logistic_regression", n_trials=0)
    assert raised.value.field == "n_trials"


def test_a_failing_trial_fails_its_run_and_the_search_s_parent(mlcycle_home, splits):
    from mlcycle.training.trainers import TrainerError

    prepared, train_path = splits
    items = lifecycle.plan_training_trials(train_path, prepared.target, mlcycle_home, registered_name="wine",
                                           trainer="tests.unit.training.user_trainers:broken", n_trials=2)
    assert len(items) == 2  # the module's search_space: n_estimators in [5, 10]
    with pytest.raises(TrainerError, match="no column named price"):
        lifecycle.run_training_trial(train_path, items[0])
    parent_id = TrialItem.from_json(items[0]).parent_run_id
    client = MlflowClient()
    parent = client.get_run(parent_id)
    (child,) = client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'")
    assert (parent.info.status, child.info.status) == ("FAILED", "FAILED")


def test_regression_trials_log_rmse_on_its_own_scale_and_keep_the_lowest(mlcycle_home, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.sample(n=150, random_state=0).reset_index(drop=True)
    frame.to_parquet(tmp_path / "train.parquet")
    options = dict(registered_name="diabetes", trainer="tests.unit.training.user_trainers:fit", n_trials=2)
    serial = lifecycle.run_training(tmp_path / "train.parquet", "target", mlcycle_home, **options)
    items = lifecycle.plan_training_trials(tmp_path / "train.parquet", "target", mlcycle_home, **options)
    results = [lifecycle.run_training_trial(tmp_path / "train.parquet", item) for item in items]
    parent_id = TrialItem.from_json(items[0]).parent_run_id
    client = MlflowClient()
    mlflow.set_experiment(experiment_id=client.get_run(parent_id).info.experiment_id)
    final = lifecycle.train_best_trial(tmp_path / "train.parquet", "target", items, results, mlcycle_home)
    assert final.params == serial.params and final.search_score == pytest.approx(serial.search_score)
    assert final.search_score > 0  # an RMSE, not the search's higher-is-better minus RMSE
    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'")
    rmses = [c.data.metrics["validation_rmse"] for c in children]
    assert min(rmses) == pytest.approx(final.search_score)
