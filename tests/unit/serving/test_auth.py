"""API keys for the local predictor: who may call which team's model, and that keys never leak."""

from __future__ import annotations

import logging

import pytest

from mlcycle.config import load_settings
from mlcycle.errors import AuthenticationError, ConfigError, PermissionDeniedError
from mlcycle.serving.auth import Authenticator

KEY_A = "a-secret-key-of-team-a-0123456789"
KEY_B = "b-secret-key-of-team-b-9876543210"
KEY_ADMIN = "admin-key-abcdefabcdef"


@pytest.fixture
def no_key_env(monkeypatch):
    for var in ("MLCYCLE_AUTH_KEYS_FILE", "MLCYCLE_API_KEYS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def auth(tmp_path, monkeypatch, no_key_env) -> Authenticator:
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team:key\nteam-a:{KEY_A}\n\n*:{KEY_ADMIN}\n")
    monkeypatch.setenv("MLCYCLE_AUTH_KEYS_FILE", str(keys))
    monkeypatch.setenv("MLCYCLE_API_KEYS", f"team-b:{KEY_B}")
    authenticator = Authenticator.from_settings(load_settings())
    assert authenticator is not None
    return authenticator


def test_no_keys_configured_means_no_authentication(no_key_env):
    assert Authenticator.from_settings(load_settings()) is None


@pytest.mark.parametrize(
    ("headers", "model", "team"),
    [
        ({"Authorization": f"Bearer {KEY_A}"}, "team-a.wine", "team-a"),
        ({"authorization": f"bearer {KEY_A}"}, "team-a.wine", "team-a"),
        ({"X-API-Key": KEY_B}, "team-b.wine", "team-b"),
        ({"x-api-key": KEY_B}, "team-b.iris", "team-b"),
        ({"X-API-Key": KEY_ADMIN}, "team-b.wine", "*"),
        ({"Authorization": f"Bearer {KEY_ADMIN}"}, "wine", "*"),
        ({"X-API-Key": KEY_A}, "wine", "team-a"),  # a model without a team: any valid key
    ],
)
def test_valid_key_of_the_right_team_is_let_in(auth, headers, model, team):
    principal = auth.authenticate(headers, model)
    assert principal.startswith(f"{team}/key-")
    assert KEY_A not in principal and KEY_B not in principal and KEY_ADMIN not in principal


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {KEY_A}"},
        {"Authorization": "Bearer not-a-key"},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": KEY_A[:-1]},
        {"X-API-Key": KEY_A + "x"},
    ],
)
def test_missing_or_wrong_credentials_are_401(auth, headers):
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(headers, "team-a.wine")
    assert caught.value.http_status == 401


def test_another_teams_model_is_403(auth):
    with pytest.raises(PermissionDeniedError) as caught:
        auth.authenticate({"X-API-Key": KEY_A}, "team-b.wine")
    assert caught.value.http_status == 403
    assert "team-a" in caught.value.message and "team-b.wine" in caught.value.message
    assert KEY_A not in caught.value.message


def test_keys_are_never_held_or_echoed(auth, caplog):
    caplog.set_level(logging.DEBUG)
    for headers in ({"X-API-Key": "wrong-" + KEY_A}, {"X-API-Key": KEY_A}):
        try:
            auth.authenticate(headers, "team-b.wine")
        except (AuthenticationError, PermissionDeniedError) as e:
            assert KEY_A not in str(e) and KEY_A not in repr(e.to_dict())
    state = repr(auth) + repr(vars(auth))
    for key in (KEY_A, KEY_B, KEY_ADMIN):
        assert key not in state
        assert key not in caplog.text
    assert KEY_B not in repr(load_settings())  # the env secret is masked in the settings object


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("team-a\n", "entry 1: expected '<team>:<key>'"),
        ("# only a comment\n", "has no '<team>:<key>' line"),
        ("team-a:ok\nTeam_A:secret-value\n", "entry 2: team 'Team_A'"),
        ("team-a:two words\n", "entry 1: the key contains whitespace"),
    ],
)
def test_malformed_keys_file_fails_at_start_naming_the_line(tmp_path, monkeypatch, no_key_env, content, fragment):
    keys = tmp_path / "keys.txt"
    keys.write_text(content)
    monkeypatch.setenv("MLCYCLE_AUTH_KEYS_FILE", str(keys))
    with pytest.raises(ConfigError) as caught:
        Authenticator.from_settings(load_settings())
    assert fragment in caught.value.message
    assert "secret-value" not in caught.value.message and "words" not in caught.value.message


def test_unreadable_keys_file_names_the_variable(tmp_path, monkeypatch, no_key_env):
    monkeypatch.setenv("MLCYCLE_AUTH_KEYS_FILE", str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="MLCYCLE_AUTH_KEYS_FILE"):
        Authenticator.from_settings(load_settings())
