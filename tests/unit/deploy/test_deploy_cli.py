"""``mlcycle deploy``: render and status work without a cluster; cluster commands fail in one line."""

from __future__ import annotations

import json

import yaml
from mlflow import MlflowClient

from mlcycle.cli import main
from mlcycle.deploy.render import render_inference_service
from mlcycle.deploy.serving_state import write_serving_state


def test_render_prints_what_the_library_renders(capsys, monkeypatch):
    monkeypatch.delenv("MLCYCLE_TEAM", raising=False)
    assert (
        main(["--team", "team-a", "deploy", "render", "wine", "--env", "prod", "--version", "4", "--canary", "10"]) == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == render_inference_service("wine", "prod", team="team-a", version=4, canary_percent=10)


def test_render_refuses_a_bad_canary_share(capsys):
    assert main(["deploy", "render", "wine", "--canary", "150"]) == 2
    assert "canaryTrafficPercent" in capsys.readouterr().err


def test_status_reads_the_serving_tags(mlcycle_home, tmp_path, capsys):
    client = MlflowClient()
    client.create_registered_model("wine")
    client.create_model_version("wine", str(tmp_path))
    write_serving_state(
        client, "wine", "1", "staging", state="serving", traffic_percent=100, inference_service="mlcycle/wine"
    )
    assert main(["deploy", "status", "wine"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["serving"]["staging"]["1"]["traffic_percent"] == "100"
    assert out["serving"]["prod"] == {}


def test_cluster_commands_without_credentials_fail_in_one_line(mlcycle_home, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["deploy", "promote", "wine", "--env", "prod"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "KUBECONFIG" in err
