"""The training pipeline through kfp.local's DockerRunner, every step in the component image, leaves the
registry as the SubprocessRunner does (same gate decision, alias, params and metrics), against the host's
MLflow server."""

from __future__ import annotations

import getpass
import math
import os

import pytest

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ARGUMENTS = {"dataset": "wine", "model_type": "random_forest", "params": '{"n_estimators": 20, "max_depth": 4}',
             "seed": 0}


def outcome(name: str, run_id: str) -> dict:
    """What a training run leaves in the registry: versions, aliases, gate tags, the run's params/metrics."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    versions = client.search_model_versions(f"name='{name}'")
    model = client.get_registered_model(name)
    run = client.get_run(run_id)
    return {
        "versions": sorted(v.version for v in versions),
        "aliases": dict(model.aliases),
        "tags": {v.version: {k: t for k, t in v.tags.items() if k in ("mlcycle.gate.decision", "mlcycle.servability")}
                 for v in versions},
        "params": {k: v for k, v in run.data.params.items() if "run_id" not in k and "pipeline" not in k},
        "metrics": run.data.metrics,
        "user": run.data.tags.get("mlflow.user"),  # who ran the training step: the image's user is "mlcycle"
    }


def test_training_in_the_component_image_matches_the_subprocess_runner(images, engine_env, docker_host, on_server,
                                                                       monkeypatch, tmp_path):
    from kfp import local

    from mlcycle.config import settings_env
    from pipelines.local import docker_runner_fix, run_pipeline
    from pipelines.training_pipeline import training_pipeline

    in_subprocess = run_pipeline(training_pipeline, on_server, log_file=tmp_path / "subprocess.log",
                                 model_name="wine-subprocess", **ARGUMENTS)

    monkeypatch.setenv("DOCKER_HOST", docker_host)
    # The step's own MLCYCLE_HOME is in the container's /tmp; the outputs kfp reads back are on the
    # bind-mounted pipeline root, written as this user (as `docker run --user $(id -u)` would).
    environment = {**settings_env(on_server), "MLCYCLE_HOME": "/tmp/mlcycle", "MLFLOW_DISABLE_TELEMETRY": "true"}
    runner = local.DockerRunner(network_mode="host", user=f"{os.getuid()}:{os.getgid()}", environment=environment)
    log = tmp_path / "docker.log"
    with docker_runner_fix():
        in_image = run_pipeline(training_pipeline, on_server, log_file=log, runner=runner,
                                model_name="wine-docker", **ARGUMENTS)

    expected, got = outcome("wine-subprocess", in_subprocess), outcome("wine-docker", in_image)
    assert got["versions"] == expected["versions"] == ["1"]
    assert got["aliases"] == expected["aliases"]
    assert got["aliases"]["champion"] == "1"
    assert got["tags"] == expected["tags"]
    assert got["tags"]["1"]["mlcycle.gate.decision"] == "promote"
    assert got["params"] == expected["params"]
    assert (got["user"], expected["user"]) == ("mlcycle", getpass.getuser())  # the steps did run in the image
    assert got["metrics"].keys() == expected["metrics"].keys() and got["metrics"]
    for key, value in expected["metrics"].items():
        assert math.isclose(got["metrics"][key], value, rel_tol=1e-6, abs_tol=1e-9), key
