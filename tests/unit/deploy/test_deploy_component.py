"""The deploy_model component: thin, image from the package version, skips (and says why) locally."""

from __future__ import annotations

import json

from kfp import compiler
from mlflow import MlflowClient

from components.deploy_model import deploy_model
from mlcycle.config import COMPONENT_IMAGE


def test_component_runs_in_the_project_image(tmp_path):
    path = tmp_path / "deploy_model.yaml"
    compiler.Compiler().compile(deploy_model, str(path))
    text = path.read_text()
    assert f"image: {COMPONENT_IMAGE}" in text
    assert "pip install" not in text


def test_local_mode_skips_and_records_the_reason(mlcycle_home, tmp_path):
    client = MlflowClient()
    client.create_registered_model("wine")
    client.create_model_version("wine", str(tmp_path))
    out = json.loads(deploy_model.python_func(registered_name="wine", version="1", environment="staging"))
    assert out["action"] == "skipped"
    assert client.get_model_version("wine", "1").tags["mlcycle.serving.staging.state"] == "skipped"
