"""The registration pipeline on kfp.local: a model trained in a plain script, registered through the CLI, is
gated against the champion on the same holdout rows and released through the one release path."""

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlcycle import lifecycle
from mlcycle.cli import main
from mlcycle.errors import InvalidInputError
from mlcycle.governance import audit
from mlcycle.registry.versions import alias_version

pytestmark = pytest.mark.slow


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def diabetes(tmp_path):
    """Train and holdout tables of scikit-learn's bundled diabetes data (no download)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    paths = {"train": tmp_path / "train.parquet", "holdout": tmp_path / "holdout.csv"}
    frame.iloc[:330].to_parquet(paths["train"], index=False)
    frame.iloc[330:].to_csv(paths["holdout"], index=False)
    return {k: str(v) for k, v in paths.items()}


def script_model(train_path: str, estimator, *, save_to=None) -> str:
    """What a data scientist's own script does: fit, then log (or save) with plain MLflow calls."""
    import mlflow
    from mlflow.models import infer_signature

    train = pd.read_parquet(train_path)
    X, y = train.drop(columns="target"), train["target"]
    estimator.fit(X, y)
    signature = infer_signature(X, estimator.predict(X))
    if save_to is not None:
        mlflow.sklearn.save_model(estimator, str(save_to), signature=signature, input_example=X.head(3))
        return str(save_to)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(estimator, name="model", signature=signature, input_example=X.head(3))
    return f"runs:/{info.run_id}/model"


def test_register_a_script_model_then_gate_a_worse_one(mlcycle_home, diabetes, tmp_path, capsys):
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import Ridge

    uri = script_model(diabetes["train"], Ridge(alpha=0.1))
    code, out, err = run_cli(capsys, "register", uri, "--name", "diab", "--holdout", diabetes["holdout"],
                             "--target", "target", "--reference", diabetes["train"], "--gate-metric", "rmse", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["decision"] == "promote" and first["aliases"]["champion"] == first["version"] == "1"
    assert first["task"] == "regression" and first["task_inferred"] and first["flavor"] == "sklearn"
    assert first["source_model_uri"] == uri and set(first["metrics"]) == {"rmse", "mae", "r2"}
    assert "import-model" in err and "promote-model" in err
    client = MlflowClient()
    version = client.get_model_version("diab", "1")
    assert version.tags["mlcycle.servability"] == "ok"  # the predictor's own code loaded and replayed it
    assert version.tags["mlcycle.source_model_uri"] == uri and version.tags["mlcycle.task"] == "regression"
    events = [e.action for e in audit.version_events("diab", "1")]
    assert "alias.moved" in events  # champion moved through mlcycle.release, with its audit event
    reference = pd.read_parquet(client.download_artifacts(version.run_id, "reference/reference.parquet"))
    assert len(reference) == 330 and "prediction" in reference and "target" in reference

    # `mlcycle evaluate` reports on the same rows as the champion and writes nothing.
    worse_dir = script_model(diabetes["train"], DummyRegressor(), save_to=tmp_path / "worse-model")
    runs_before = len(client.search_runs([client.get_experiment_by_name("diab").experiment_id]))
    code, out, err = run_cli(capsys, "evaluate", worse_dir, "--holdout", diabetes["holdout"], "--target", "target",
                             "--name", "diab", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["champion"] == "1" and report["task"] == "regression"
    assert report["metrics"]["rmse"] > report["champion_metrics"]["rmse"]
    assert report["champion_metrics"]["rmse"] == pytest.approx(first["metrics"]["rmse"])
    assert len(client.search_model_versions("name='diab'")) == 1
    assert len(client.search_runs([client.get_experiment_by_name("diab").experiment_id])) == runs_before

    # The worse model from a local directory, through the same steps in-process: rejected, champion stays.
    imported = lifecycle.run_import(worse_dir, diabetes["holdout"], "target", mlcycle_home, registered_name="diab",
                                    test_path=tmp_path / "test.parquet")
    lifecycle.run_evaluation(imported.run_id, tmp_path / "test.parquet", "target", "diab")
    outcome = lifecycle.register_and_gate(imported.run_id, "diab", lifecycle.gate_policy_for_run(imported.run_id,
                                                                                                  "rmse"),
                                          mlcycle_home)
    assert outcome.action == "reject" and "does not beat champion v1" in outcome.decision.reason
    assert alias_version("diab", "champion") == "1" and imported.reference_source == "holdout"

    # A registry URI works as a source too: its files are copied, so the copy outlives the original.
    copied = lifecycle.run_import("models:/diab@champion", diabetes["holdout"], "target", mlcycle_home,
                                  registered_name="diab-copy", test_path=tmp_path / "copy.parquet")
    assert copied.flavor == "sklearn" and copied.model_uri.endswith("/model")
    assert client.get_run(copied.run_id).data.tags["mlcycle.source_model_uri"] == "models:/diab@champion"


def test_what_is_not_a_model_is_one_line_and_registers_nothing(mlcycle_home, diabetes, tmp_path, capsys):
    code, _, err = run_cli(capsys, "register", str(tmp_path), "--name", "diab", "--holdout", diabetes["holdout"],
                           "--target", "target")
    assert code == 2 and err.strip().startswith("error [model_uri]:") and "MLmodel" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "evaluate", "runs:/0123456789abcdef/model", "--holdout", diabetes["holdout"],
                           "--target", "target")
    assert code == 2 and "runs:/0123456789abcdef/model" in err and len(err.strip().splitlines()) == 1
    assert MlflowClient().search_registered_models() == []


def test_a_model_that_fails_on_the_holdout_is_refused_before_anything_is_written(mlcycle_home, diabetes, tmp_path):
    from sklearn.linear_model import Ridge

    model_dir = script_model(diabetes["train"], Ridge(), save_to=tmp_path / "ridge")
    holdout = pd.read_csv(diabetes["holdout"]).drop(columns=["bmi"])
    holdout.to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InvalidInputError, match="predict failed") as failed:
        lifecycle.run_import(model_dir, str(tmp_path / "short.csv"), "target", mlcycle_home, registered_name="diab",
                             test_path=tmp_path / "test.parquet")
    assert str(tmp_path / "ridge") in failed.value.message
    assert MlflowClient().search_registered_models() == []
    assert MlflowClient().get_experiment_by_name("diab") is None
