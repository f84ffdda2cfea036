"""The trainer contract: a user's fit() through the same logging, evaluation and gate as the built-ins."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle
from mlcycle.training.trainers import TrainerError, infer_task, load_trainer

MODULE = "tests.unit.training.user_trainers"


@pytest.fixture
def diabetes(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.sample(frac=0.5, random_state=0).reset_index(drop=True)
    train, test = frame.iloc[:160], frame.iloc[160:]
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    return tmp_path / "train.parquet", tmp_path / "test.parquet"


def test_a_user_regressor_is_logged_evaluated_and_gated_by_rmse(mlcycle_home, diabetes):
    train_path, test_path = diabetes
    result = lifecycle.run_training(train_path, "target", mlcycle_home, registered_name="diabetes",
                                    trainer=f"{MODULE}:fit", params={"n_estimators": 5}, n_trials=2)
    assert result.task == "regression" and result.flavor == "sklearn"
    tags = MlflowClient().get_run(result.run_id).data.tags
    assert tags["mlcycle.trainer"] == f"{MODULE}:fit" and tags["mlcycle.trainer_code_version"].startswith("sha256:")
    assert tags["mlcycle.task"] == "regression"
    assert len(MlflowClient().get_metric_history(result.run_id, "search_trial_rmse")) == 1  # n_estimators fixed
    comparison = lifecycle.run_evaluation(result.run_id, test_path, "target", "diabetes")
    assert set(comparison.candidate.metrics) == {"rmse", "mae", "r2"}
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "evaluation")}
    assert {"evaluation/predicted_vs_actual.png", "evaluation/residuals.png"} <= artifacts
    policy = lifecycle.gate_policy_for_run(result.run_id)
    assert (policy.metric, policy.lower_is_better) == ("rmse", True)


def test_lightgbm_is_logged_with_its_flavor_and_untrusted_types_are_refused(mlcycle_home, diabetes):
    train_path, _ = diabetes
    with pytest.raises(TrainerError, match=r"skops_trusted_types = \[.*lightgbm") as e:
        lifecycle.run_training(train_path, "target", mlcycle_home, registered_name="d",
                               trainer=f"{MODULE}:lightgbm_fit")
    assert f"trainer {MODULE}:lightgbm_fit" in str(e.value) and f"declare them in {MODULE}" in str(e.value)


def test_failures_name_the_trainer_and_the_cause(mlcycle_home, diabetes):
    train_path, _ = diabetes
    with pytest.raises(TrainerError, match=f"trainer {MODULE}:broken: fit raised ValueError: no column named price"):
        lifecycle.run_training(train_path, "target", mlcycle_home, registered_name="d", trainer=f"{MODULE}:broken")
    with pytest.raises(TrainerError, match="cannot log"):
        lifecycle.run_training(train_path, "target", mlcycle_home, registered_name="d",
                               trainer=f"{MODULE}:nothing_loggable")
    with pytest.raises(Exception, match="cannot import no_such_module"):
        load_trainer("no_such_module:fit")


def test_task_is_inferred_from_the_target():
    assert infer_task(pd.Series(["a", "b", "a"])) == "classification"
    assert infer_task(pd.Series([0, 1, 2, 1])) == "classification"
    assert infer_task(pd.Series([0.5, 1.25, 3.0, 7.1])) == "regression"
