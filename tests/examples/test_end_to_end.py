"""The three example projects end to end, sharing one store and one predictor:

train (the LightGBM and diabetes trainers) or `mlcycle register` (the custom PythonModel from a plain MLflow script)
→ gate → champion → served over v2 → batch scoring equal to serving, row for row → a drift check on the
served traffic against the reference sample the training or import run stored.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from tests.inference.any_models import v2_columns
from tests.inference.conftest import start_predictor, stop_predictor

pytestmark = pytest.mark.slow

LGBM, DIABETES, CUSTOM = "churn-lgbm", "diabetes", "churn-custom"
TARGETS = {LGBM: "churned", DIABETES: "target", CUSTOM: "outcome"}
SHIFTED = {LGBM: "monthly_spend", DIABETES: "bmi", CUSTOM: "monthly_spend"}  # the column the traffic moves
ROWS = 150


class World:
    """The store, the champion of each example and its holdout rows."""

    def __init__(self, home, settings, env):
        self.home, self.settings, self.env = home, settings, env
        self.outcomes: dict = {}
        self.holdouts: dict[str, pd.DataFrame] = {}
        self.lineage: dict[str, dict] = {}


def _train(world: World, name: str, source: str, trainer: str, tmp, params=None) -> None:
    from mlcycle import lifecycle

    target = TARGETS[name]
    lifecycle.prepare_data(source, target, tmp / f"{name}-train.parquet", tmp / f"{name}-test.parquet")
    trained = lifecycle.run_training(tmp / f"{name}-train.parquet", target, world.settings, registered_name=name,
                                     trainer=trainer, params=params)
    _gate(world, name, trained.run_id, tmp / f"{name}-test.parquet")


def _gate(world: World, name: str, run_id: str, test_path) -> None:
    from mlflow.tracking import MlflowClient

    from mlcycle import lifecycle

    lifecycle.run_evaluation(run_id, test_path, TARGETS[name], name)
    outcome = lifecycle.register_and_gate(run_id, name, lifecycle.gate_policy_for_run(run_id), world.settings)
    if outcome.promote:
        lifecycle.promote_if_passed(name, outcome.version, settings=world.settings)
    world.outcomes[name] = outcome
    world.holdouts[name] = pd.read_parquet(test_path).drop(columns=[TARGETS[name]])
    world.lineage[name] = MlflowClient().get_run(run_id).data.tags


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    import mlflow
    from mlflow.tracking import MlflowClient

    from examples.custom_pythonmodel import train as custom
    from examples.diabetes_regression.train import write_data as write_diabetes
    from examples.lightgbm_categorical.train import write_data as write_churn
    from mlcycle import tracking
    from mlcycle.cli import main
    from mlcycle.config import load_settings
    from mlcycle.registry.versions import alias_version, get_version

    saved = dict(os.environ)
    home = tmp_path_factory.mktemp("examples-home")
    tmp = tmp_path_factory.mktemp("examples-data")
    for var in ("MLCYCLE_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLCYCLE_REGISTRY_URI", "MLFLOW_REGISTRY_URI",
                "MLCYCLE_TEAM", "MLCYCLE_ARTIFACT_ROOT", "MLCYCLE_PROTECTED_ENVIRONMENTS", "MLCYCLE_ACTOR"):
        os.environ.pop(var, None)
    env = {"MLCYCLE_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true", "MLCYCLE_SERVING_POLL_SECONDS": "0",
           "MLCYCLE_SERVING_PAYLOAD_FLUSH_SECONDS": "0.2"}
    os.environ.update(env)
    settings = load_settings()
    tracking.configure(settings)
    world = World(home, settings, env)

    _train(world, LGBM, write_churn(str(tmp / "churn.parquet"), rows=800), "examples.lightgbm_categorical.train:fit",
           tmp)
    _train(world, DIABETES, write_diabetes(str(tmp / "diabetes.parquet")), "examples.diabetes_regression.train:fit",
           tmp)
    # The custom model comes from a plain MLflow script, as a data scientist's own code would log it.
    customers = custom.make_data(rows=800)
    train, holdout = customers.iloc[:560], customers.iloc[560:]
    train.to_parquet(tmp / "custom-train.parquet", index=False)
    holdout.to_parquet(tmp / "custom-holdout.parquet", index=False)
    mlflow.set_experiment(experiment_id=tracking.ensure_experiment("my-scripts", settings))
    uri = custom.main(["--data", str(tmp / "custom-train.parquet")])
    # ... and is brought in with the command a data scientist types (the registration pipeline on kfp.local).
    code = main(["register", uri, "--name", CUSTOM, "--holdout", str(tmp / "custom-holdout.parquet"),
                 "--target", "outcome", "--reference", str(tmp / "custom-train.parquet")])
    assert code == 0
    version = alias_version(CUSTOM, "champion")
    world.outcomes[CUSTOM] = get_version(CUSTOM, version)
    world.holdouts[CUSTOM] = holdout.drop(columns=["outcome"])
    world.lineage[CUSTOM] = MlflowClient().get_run(world.outcomes[CUSTOM].run_id).data.tags
    yield world
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    refs = [f"models:/{name}@champion" for name in (LGBM, DIABETES, CUSTOM)]
    p = start_predictor(refs, world.env, tmp_path_factory.mktemp("examples-logs") / "predictor.log", grpc=False)
    yield p
    stop_predictor(p.proc)


def test_each_example_passes_the_gate_and_becomes_champion(world):
    from mlcycle.registry.versions import alias_version, get_version

    for name in (LGBM, DIABETES):
        outcome = world.outcomes[name]
        assert outcome.action == "promote", (name, outcome.decision.reason)
        assert alias_version(name, "champion") == outcome.version
        assert get_version(name, outcome.version).tags["mlcycle.servability"] == "ok"
    registered = world.outcomes[CUSTOM]  # through `mlcycle register`
    assert registered.tags["mlcycle.gate.decision"] == "promote" and registered.tags["mlcycle.servability"] == "ok"
    assert world.lineage[CUSTOM]["mlcycle.reference_source"].endswith("custom-train.parquet")
    assert world.lineage[LGBM]["mlcycle.task"] == "classification"
    assert world.lineage[LGBM]["mlcycle.trainer"] == "examples.lightgbm_categorical.train:fit"
    assert world.lineage[DIABETES]["mlcycle.task"] == "regression"
    assert world.lineage[CUSTOM]["mlcycle.flavor"] == "pyfunc"
    assert world.lineage[CUSTOM]["mlcycle.source_model_uri"].startswith("runs:/")
    assert world.holdouts[LGBM]["plan"].dtype == object  # the string column reaches the model as strings


def served(server, name: str, frame: pd.DataFrame) -> np.ndarray:
    with server.client() as client:
        r = client.post(f"/v2/models/{name}/infer", json={"inputs": v2_columns(frame)})
    assert r.status_code == 200, (name, r.text)
    [output] = [o for o in r.json()["outputs"] if o["name"] == "predictions"]
    return np.asarray(output["data"])


def test_served_answers_equal_the_model_and_batch_equals_serving(server, world, tmp_path):
    import mlflow.pyfunc

    from mlcycle.batch.score import score_batch

    for name, holdout in world.holdouts.items():
        frame = holdout.head(40).reset_index(drop=True)
        online = served(server, name, frame)
        model = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(frame)
        want = np.asarray(model)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(online.astype(float), want, rtol=1e-6)
        else:
            assert online.tolist() == want.tolist(), name
        frame.assign(id=np.arange(len(frame))).to_parquet(tmp_path / f"{name}.parquet")
        score_batch(f"models:/{name}@champion", str(tmp_path / f"{name}.parquet"),
                    str(tmp_path / f"{name}-out.parquet"), world.settings, keys=["id"])
        batch = pd.read_parquet(tmp_path / f"{name}-out.parquet").sort_values("id")
        assert batch["id"].tolist() == list(range(len(frame)))
        if want.dtype.kind == "f":
            np.testing.assert_allclose(batch["prediction"].to_numpy(dtype=float), online.astype(float), rtol=1e-6)
        else:
            assert batch["prediction"].tolist() == online.tolist(), name
    assert set(served(server, CUSTOM, world.holdouts[CUSTOM].head(40))) == {"churn", "stay"}  # postprocessing


def test_drift_on_served_traffic_names_the_shifted_column(server, world):
    from mlcycle.monitoring.check import check_drift

    for name, holdout in world.holdouts.items():
        column = SHIFTED[name]
        traffic = pd.concat([holdout] * 2, ignore_index=True).head(ROWS)
        traffic[column] = traffic[column] * 4 if name != DIABETES else traffic[column] + 0.15
        for part in (traffic.iloc[: ROWS // 2], traffic.iloc[ROWS // 2:]):
            served(server, name, part.reset_index(drop=True))
    deadline = time.monotonic() + 60
    for name in world.holdouts:
        while True:
            summary = check_drift(f"models:/{name}@champion", world.settings, log_to_mlflow=False)
            if summary["rows"] >= ROWS or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the payload log flushes in the background
        assert summary["rows"] >= ROWS, (name, summary)
        assert SHIFTED[name] in summary["drifted_columns"], (name, summary)
