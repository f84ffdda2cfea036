from pathlib import Path

import pytest

from mlcycle import __version__
from mlcycle.config import COMPONENT_IMAGE, load_settings, settings_env
from mlcycle.errors import ConfigError


def test_defaults_keep_all_state_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLCYCLE_TRACKING_URI", raising=False)
    settings = load_settings()
    assert settings.effective_tracking_uri == f"sqlite:///{tmp_path / 'h' / 'mlflow.db'}"
    assert settings.effective_artifact_root == str(tmp_path / "h" / "artifacts")
    assert settings.is_local


def test_flags_override_environment_and_mlflow_variables_are_honoured(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.kubeflow:5000")
    monkeypatch.setenv("MLCYCLE_TEAM", "team-a")
    settings = load_settings(team="team-b")
    assert settings.effective_tracking_uri == "http://mlflow.kubeflow:5000"
    assert settings.team == "team-b" and not settings.is_local
    assert settings.effective_artifact_root.endswith("/artifacts/team-b")


def test_image_tag_follows_the_package_version():
    assert COMPONENT_IMAGE.endswith(f":{__version__}")
    assert load_settings().image == COMPONENT_IMAGE
    assert load_settings().predictor_image.endswith(f"-predictor:{__version__}")


@pytest.mark.parametrize(("env", "value", "field"), [("MLCYCLE_TEAM", "Team_A", "team"),
                                                      ("MLCYCLE_LOG_LEVEL", "LOUD", "log_level")])
def test_wrong_settings_name_the_variable(monkeypatch, env, value, field):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert e.value.field == field and f"MLCYCLE_{field.upper()}" in e.value.message


def test_settings_round_trip_through_the_environment(tmp_path, monkeypatch):
    settings = load_settings(home=Path(tmp_path), team="team-a")
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    again = load_settings()
    assert again.effective_tracking_uri == settings.effective_tracking_uri and again.team == "team-a"
