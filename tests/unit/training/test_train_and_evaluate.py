import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle
from mlcycle.registry.gate import GatePolicy
from mlcycle.registry.versions import alias_version
from mlcycle.training.evaluate import score_model
from mlcycle.training.train import MODEL_URI_TAG, REFERENCE_ARTIFACT


@pytest.fixture
def splits(tmp_path):
    prepared = lifecycle.prepare_data("wine", None, tmp_path / "train.parquet", tmp_path / "test.parquet")
    return prepared, tmp_path / "train.parquet", tmp_path / "test.parquet"


def test_one_run_records_params_lineage_model_and_reference(mlcycle_home, splits):
    prepared, train_path, _ = splits
    result = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name="wine",
                                    model_type="random_forest", params={"n_estimators": 20}, dataset="wine",
                                    data_hash=prepared.data_hash, pipeline_run_id="kfp-123")
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["n_estimators"] == "20" and run.data.params["model_type"] == "random_forest"
    assert run.data.tags["mlcycle.data_hash"] == prepared.data_hash
    assert run.data.tags["mlcycle.pipeline_run_id"] == "kfp-123"
    assert run.data.tags[MODEL_URI_TAG] == result.model_uri
    model_info = mlflow.models.get_model_info(result.model_uri)
    assert [c.name for c in model_info.signature.inputs.inputs][:2] == ["alcohol", "malic_acid"]
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=result.run_id,
                                                                   artifact_path=REFERENCE_ARTIFACT))
    assert len(reference) == prepared.train_rows and {"target", "prediction"} <= set(reference.columns)


def test_search_picks_the_best_trial(mlcycle_home, splits):
    prepared, train_path, _ = splits
    result = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name="wine",
                                    model_type="logistic_regression", n_trials=3)
    assert result.search_score is not None and result.params["C"] in (0.01, 0.1, 1.0, 10.0)
    history = MlflowClient().get_metric_history(result.run_id, "search_trial_f1_macro")
    assert len(history) == 3 and max(m.value for m in history) == pytest.approx(result.search_score)


def test_evaluation_scores_champion_on_the_same_holdout_and_gate_keeps_the_better_one(mlcycle_home, splits):
    prepared, train_path, test_path = splits
    name = "wine"
    first = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name=name)
    comparison = lifecycle.run_evaluation(first.run_id, test_path, prepared.target, name)
    assert comparison.champion is None and comparison.notes == ["no champion yet"]
    outcome = lifecycle.register_and_gate(first.run_id, name, GatePolicy(), mlcycle_home)
    assert outcome.promote
    assert lifecycle.promote_if_passed(name, outcome.version).moved
    assert alias_version(name, "champion") == outcome.version

    weak = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name=name,
                                  model_type="logistic_regression", params={"C": 0.001})
    comparison = lifecycle.run_evaluation(weak.run_id, test_path, prepared.target, name)
    assert comparison.champion_version == outcome.version
    assert comparison.champion.metrics["f1_macro"] > comparison.candidate.metrics["f1_macro"]
    rejected = lifecycle.register_and_gate(weak.run_id, name, GatePolicy(), mlcycle_home)
    assert not rejected.promote
    assert alias_version(name, "champion") == outcome.version
    # challenger is the newest version that passed the gate: a rejected one never gets it (issue 13).
    assert alias_version(name, "challenger") == outcome.version
    tags = MlflowClient().get_model_version(name, rejected.version).tags
    assert tags["mlcycle.gate.decision"] == "reject"
    assert "does not beat champion" in tags["mlcycle.gate.reason"]
    refused = lifecycle.promote_if_passed(name, rejected.version)
    assert not refused.moved and refused.refused == "gate", refused
    assert alias_version(name, "champion") == outcome.version
    artifacts = {a.path for a in MlflowClient().list_artifacts(weak.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.png", "evaluation/confusion_matrix.json"} <= artifacts


def test_registration_is_idempotent_per_run(mlcycle_home, splits):
    prepared, train_path, test_path = splits
    trained = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name="wine")
    lifecycle.run_evaluation(trained.run_id, test_path, prepared.target, "wine")
    assert lifecycle.register_candidate(trained.run_id, "wine") == lifecycle.register_candidate(trained.run_id, "wine")
    assert len(MlflowClient().search_model_versions("name='wine'")) == 1


def test_binary_evaluation_has_roc_curve():
    from sklearn.linear_model import LogisticRegression

    from mlcycle.data import load_dataset

    frame, target = load_dataset("breast_cancer")
    model = LogisticRegression(max_iter=5000).fit(frame.drop(columns=[target]), frame[target])
    evaluation = score_model(model, frame, target)
    assert evaluation.roc is not None and evaluation.roc["fpr"][0] == 0.0
    assert 0.9 < evaluation.metrics["roc_auc"] <= 1.0
    assert sum(map(sum, evaluation.confusion)) == len(frame)


def test_gate_refuses_a_version_the_serving_image_cannot_serve(mlcycle_home, splits):
    """A model whose recorded scikit-learn differs from the serving image is rejected before any alias moves."""
    from mlcycle.training.estimators import build_estimator

    prepared, train_path, _ = splits
    frame = pd.read_parquet(train_path)
    X, y = frame.drop(columns=["target"]), frame["target"]
    model = build_estimator("logistic_regression").fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3),
                                        signature=mlflow.models.infer_signature(X, model.predict(X)),
                                        pip_requirements=["scikit-learn==1.0.2", "mlflow"])
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        mlflow.log_metrics({"test_f1_macro": 0.99, "test_accuracy": 0.99})
    version = lifecycle.register_candidate(run.info.run_id, "wine")
    decision = lifecycle.gate_candidate(run.info.run_id, "wine", version, GatePolicy(), mlcycle_home)
    assert decision.decision == "reject" and decision.reason.startswith("not servable")
    assert "scikit-learn" in decision.reason
    tags = MlflowClient().get_model_version("wine", version).tags
    assert tags["mlcycle.servability"].startswith("failed")
    assert alias_version("wine", "challenger") is None and alias_version("wine", "champion") is None


def test_a_champion_the_pipeline_promoted_can_be_rolled_back(mlcycle_home, splits):
    """The pipeline's promotion and `mlcycle rollback` agree on where the previous champion is recorded."""
    from mlcycle.serving.promotion import rollback

    prepared, train_path, test_path = splits
    for model_type, params in (("logistic_regression", {"C": 0.001}), ("random_forest", {})):
        trained = lifecycle.run_training(train_path, prepared.target, mlcycle_home, registered_name="wine",
                                         model_type=model_type, params=params)
        lifecycle.run_evaluation(trained.run_id, test_path, prepared.target, "wine")
        outcome = lifecycle.register_and_gate(trained.run_id, "wine", GatePolicy(), mlcycle_home)
        assert outcome.promote
        lifecycle.promote_if_passed("wine", outcome.version)
    assert alias_version("wine", "champion") == "2"
    move = rollback("wine", mlcycle_home, reason="test")
    assert (move.previous, move.current) == ("2", "1")
    assert alias_version("wine", "champion") == "1"


def test_a_pythonmodel_trainer_ships_its_top_level_package_and_loads_from_the_store(mlcycle_home, tmp_path):
    from pathlib import Path

    from examples.custom_pythonmodel.train import make_data

    frame = make_data(rows=200)
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    result = lifecycle.run_training(tmp_path / "train.parquet", "outcome", mlcycle_home, registered_name="custom",
                                    trainer="examples.custom_pythonmodel.train:fit", params={"threshold": 0.4})
    assert result.flavor == "pyfunc" and result.task == "classification"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=result.model_uri))
    assert (local / "code" / "examples" / "custom_pythonmodel" / "model.py").is_file()  # the package, not the repo
    answers = mlflow.pyfunc.load_model(result.model_uri).predict(frame.drop(columns=["outcome"]).head(20))
    assert set(answers) <= {"churn", "stay"}
