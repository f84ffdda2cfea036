"""The auth server's files, credentials files, the team Secret and the one-line refusals (no server)."""

import configparser
import stat

import pytest

from mlcycle import tracking
from mlcycle.auth import secrets, server, teams
from mlcycle.auth.credentials import Credentials, read_env_file, write_env_file
from mlcycle.config import load_settings, settings_env
from mlcycle.errors import AuthenticationError, ConfigError, InvalidInputError, PermissionDeniedError
from mlcycle.registry.uris import team_experiment

PW = "pw-" + "1" * 9  # made-up credentials, built so the secrets scan does not read them as literals
TOKEN = "tok-" + "2" * 9


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_file_is_private_and_shell_sourceable(tmp_path):
    path = write_env_file(tmp_path / "c" / "team-a.env", Credentials("team-a", PW))
    assert mode(path) == 0o600
    assert path.read_text() == f"MLFLOW_TRACKING_USERNAME=team-a\nMLFLOW_TRACKING_PASSWORD={PW}\n"
    assert read_env_file(path) == Credentials("team-a", PW)
    assert PW not in repr(read_env_file(path))
    path.write_text("MLFLOW_TRACKING_USERNAME=team-a\n")
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_PASSWORD"):
        read_env_file(path)


def test_first_start_generates_admin_credentials_key_and_config_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    settings = load_settings()
    files, env = server.prepare(settings)
    admin = read_env_file(files.admin_env)
    assert admin.username == "admin" and len(admin.password) >= 32
    assert mode(files.admin_env) == mode(files.secret_key) == mode(files.config) == 0o600
    assert mode(tmp_path / "credentials") == 0o700
    config = configparser.ConfigParser(interpolation=None)
    config.read(files.config)
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert config["mlflow"]["database_uri"] == f"sqlite:///{files.database}"
    assert admin.password not in files.config.read_text()  # the password reaches MLflow as env only
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == admin.password
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(files.config)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"  # no huey consumers: mlcycle runs no MLflow jobs
    # A second start keeps the admin and the secret key (CSRF tokens stay valid).
    files.database.touch()
    _, again = server.prepare(settings)
    assert again["MLFLOW_AUTH_ADMIN_PASSWORD"] == admin.password
    assert again["MLFLOW_FLASK_SERVER_SECRET_KEY"] == env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    # Users exist but the admin's password is lost: say how to recover rather than make up a new one.
    files.admin_env.unlink()
    with pytest.raises(ConfigError, match="restore admin.env"):
        server.admin_credentials(settings)


def test_the_server_serves_only_the_local_store_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    command = server.server_command(load_settings(), 5123, auth=True)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[-2:] == ["--app-name", "basic-auth"]
    with pytest.raises(ConfigError, match="local store"):
        server.server_command(load_settings(tracking_uri="http://127.0.0.1:5000"), 5123, auth=True)


def test_teams_come_from_the_profiles_or_the_list(tmp_path):
    for team in ("team-b", "team-a"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "profile.yaml").write_text("kind: Profile\n")
    (tmp_path / "components").mkdir()
    assert teams.team_names(tmp_path) == ["team-a", "team-b"]
    assert teams.team_names(tmp_path, "team-c, team-d") == ["team-c", "team-d"]
    with pytest.raises(InvalidInputError, match="Team_C"):
        teams.team_names(tmp_path, "Team_C")
    with pytest.raises(InvalidInputError, match="no teams"):
        teams.team_names(tmp_path / "none")


def test_team_secret_render():
    secret = secrets.render_team_secret("team-a", Credentials("team-a", PW))
    assert secret["metadata"] == {"name": "mlcycle-mlflow-credentials", "namespace": "team-a",
                                  "labels": {"app.kubernetes.io/part-of": "mlcycle", "mlcycle.io/team": "team-a"}}
    assert secret["stringData"] == {"MLFLOW_TRACKING_USERNAME": "team-a", "MLFLOW_TRACKING_PASSWORD": PW}


class _Recorder:
    def __init__(self, exists):
        self.exists, self.calls = exists, []

    def read_namespaced_secret(self, name, namespace):
        from kubernetes.client.exceptions import ApiException

        self.calls.append(("read", namespace, name))
        if not self.exists:
            raise ApiException(status=404)

    def create_namespaced_secret(self, namespace, body):
        self.calls.append(("create", namespace, body["metadata"]["name"]))

    def replace_namespaced_secret(self, name, namespace, body):
        self.calls.append(("replace", namespace, name))


@pytest.mark.parametrize("exists", [False, True])
def test_team_secret_apply_creates_or_replaces(exists):
    api = _Recorder(exists)
    done = secrets.apply_secret(api, secrets.render_team_secret("team-a", Credentials("team-a", "pw")))
    assert done == ("replaced" if exists else "created")
    assert api.calls[-1] == ("replace" if exists else "create", "team-a", "mlcycle-mlflow-credentials")


def test_settings_carry_credentials_to_child_processes_and_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "team-a")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PW)
    settings = load_settings()
    assert PW not in repr(settings)
    env = settings_env(settings)
    assert env["MLFLOW_TRACKING_USERNAME"] == "team-a" and env["MLFLOW_TRACKING_PASSWORD"] == PW
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLCYCLE_MLFLOW_TOKEN", TOKEN)
    settings = load_settings()
    assert settings_env(settings)["MLFLOW_TRACKING_TOKEN"] == TOKEN
    assert "MLFLOW_TRACKING_USERNAME" not in settings_env(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "")  # configure() writes it into os.environ; undone afterwards
    tracking.configure(settings)
    import os

    assert os.environ["MLFLOW_TRACKING_TOKEN"] == TOKEN


def test_refusals_are_one_line_and_name_the_fix(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "team-b")
    unauthenticated = tracking.refusal("UNAUTHENTICATED", "model models:/team-a.wine/1")
    assert isinstance(unauthenticated, AuthenticationError)
    assert "MLFLOW_TRACKING_PASSWORD" in unauthenticated.message and "\n" not in unauthenticated.message
    denied = tracking.refusal("PERMISSION_DENIED", "model models:/team-a.wine/1")
    assert isinstance(denied, PermissionDeniedError) and "team-b" in denied.message
    assert tracking.refusal("RESOURCE_DOES_NOT_EXIST") is None


def test_shared_experiments_are_per_team():
    assert team_experiment("mlcycle-batch", "team-a.wine") == "team-a.mlcycle-batch"
    assert team_experiment("mlcycle-monitoring", "wine") == "mlcycle-monitoring"


def test_log_lines_never_carry_the_mlflow_password(tmp_path, monkeypatch):
    import io
    import logging

    from mlcycle import logs

    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    monkeypatch.setenv("MLCYCLE_MLFLOW_PASSWORD", PW)
    stream = io.StringIO()
    handler = logs.configure(load_settings(), stream=stream)
    try:
        logging.getLogger("mlcycle.test").warning("connecting with %s", PW)
    finally:
        for name in logs.LOGGERS:
            logging.getLogger(name).removeHandler(handler)
    assert "connecting with ***" in stream.getvalue() and PW not in stream.getvalue()
