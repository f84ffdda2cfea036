"""One MLflow identity per team, with MANAGE on exactly its own ``<team>.*`` experiments and models.

MLflow 3.17's basic-auth app grants per resource — an experiment id or a registered-model name — or on
``*`` (every resource of the type); it has no prefix grants (``mlflow.server.auth.permissions.
_validate_resource_pattern`` accepts ``*`` or an exact id). So a team's ownership is made of two rules,
both the server's:

- **new resources**: MLflow gives the creator MANAGE on every experiment and registered model it creates
  (``set_can_manage_experiment_permission`` / ``..._registered_model_permission``), and with
  ``default_permission = NO_PERMISSIONS`` nobody else gets anything;
- **existing resources** (created before the team had a user, or by an admin): :func:`sync_team` grants
  the team MANAGE on every experiment and registered model named ``<team>.*``, on every run (a grant is
  an upsert, so repeating it changes nothing).

Users are created with a random password written to ``MLCYCLE_HOME/credentials/<team>.env``; a user whose
file is gone gets a new password (the old one is lost with it). All calls go to MLflow's REST API with the
admin's credentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlcycle.auth.credentials import Credentials, credentials_dir, generate_password, read_env_file, write_env_file
from mlcycle.config import TEAM_PATTERN
from mlcycle.errors import AuthenticationError, ConfigError, InvalidInputError, MlcycleError, PermissionDeniedError
from mlcycle.registry.uris import TEAM_SEPARATOR

MANAGE = "MANAGE"


class AuthServerError(MlcycleError):
    """MLflow's auth API failed or is unreachable (HTTP 503)."""

    http_status = 503


@dataclass
class TeamSync:
    """What :func:`sync_team` did for one team."""

    team: str
    user_created: bool
    password_reset: bool
    credentials_file: Path
    experiments: list[str] = field(default_factory=list)
    registered_models: list[str] = field(default_factory=list)
    credentials: Credentials | None = field(default=None, repr=False)


def team_names(profiles_dir: Path | None = None, teams: str | None = None) -> list[str]:
    """The teams to provision: ``--teams a,b``, else one per ``profiles/<team>/profile.yaml``.

    Raises:
        InvalidInputError: a team is not a DNS label, or there are none.
    """
    if teams:
        names = [t.strip() for t in teams.split(",") if t.strip()]
    else:
        root = profiles_dir or Path("profiles")
        names = sorted(p.parent.name for p in root.glob("*/profile.yaml"))
    bad = [t for t in names if not TEAM_PATTERN.match(t)]
    if bad:
        raise InvalidInputError(f"team {bad[0]!r} must be a Kubernetes namespace name", field="teams")
    if not names:
        raise InvalidInputError(f"no teams: no {profiles_dir or 'profiles'}/<team>/profile.yaml and no --teams",
                                field="teams")
    return names


class AuthApi:
    """MLflow's REST API (tracking, registry and the basic-auth app's users/permissions) as the admin."""

    def __init__(self, tracking_uri: str, admin: Credentials, *, timeout: float = 30.0) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise ConfigError(
                f"`mlcycle teams sync` talks to an MLflow server; MLCYCLE_TRACKING_URI is {tracking_uri!r} "
                "(start one with `mlcycle server --auth` and point MLCYCLE_TRACKING_URI at it)",
                field="tracking_uri",
            )
        self.http = httpx.Client(base_url=tracking_uri.rstrip("/"), auth=(admin.username, admin.password),
                                 timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise AuthServerError(f"MLflow at {self.http.base_url} is unreachable: {type(e).__name__}") from e
        if response.status_code in ok:
            return response
        if response.status_code == 401:
            raise AuthenticationError(
                f"MLflow at {self.http.base_url} refused the admin credentials (401): check "
                "MLCYCLE_HOME/credentials/admin.env or MLFLOW_TRACKING_USERNAME/PASSWORD", field="credentials")
        if response.status_code == 403:
            raise PermissionDeniedError(f"MLflow refused {path} (403): the acting user is not an admin",
                                        field="credentials")
        raise AuthServerError(f"MLflow answered {response.status_code} to {method} {path}: {response.text[:200]}")

    def user_exists(self, username: str) -> bool:
        r = self.call("GET", "/api/2.0/mlflow/users/get", params={"username": username}, ok=(200, 404))
        return r.status_code != 404

    def create_user(self, creds: Credentials) -> None:
        self.call("POST", "/api/2.0/mlflow/users/create", json={"username": creds.username, "password": creds.password})

    def update_password(self, creds: Credentials) -> None:
        self.call("PATCH", "/api/2.0/mlflow/users/update-password",
                  json={"username": creds.username, "password": creds.password})

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str = MANAGE) -> bool:
        """Give ``username`` ``permission`` on the resource; ``False`` when it already had exactly that."""
        target = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
        r = self.call("POST", "/api/3.0/mlflow/users/permissions/grant", json={**target, "permission": permission},
                      ok=(200, 400))
        if r.status_code == 200:
            return True
        if r.json().get("error_code") != "RESOURCE_ALREADY_EXISTS":
            raise AuthServerError(f"MLflow refused to grant {permission} on {resource_type} {resource_id}: "
                                  f"{r.json().get('message', r.text[:200])}")
        held = self.call("GET", "/api/3.0/mlflow/users/permissions/get", params=target).json()
        if _permission_of(held) == permission:
            return False
        # A different grant (e.g. READ) exists: replace it.
        self.call("POST", "/api/3.0/mlflow/users/permissions/revoke", json=target)
        self.call("POST", "/api/3.0/mlflow/users/permissions/grant", json={**target, "permission": permission})
        return True

    def experiments_named(self, prefix: str) -> list[tuple[str, str]]:
        """(id, name) of every active experiment whose name starts with ``prefix``."""
        found, token = [], None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "filter": f"name LIKE '{_like(prefix)}%'"}
            if token:
                body["page_token"] = token
            data = self.call("POST", "/api/2.0/mlflow/experiments/search", json=body).json()
            found += [(e["experiment_id"], e["name"]) for e in data.get("experiments", [])
                      if e["name"].startswith(prefix)]
            token = data.get("next_page_token")
            if not token:
                return found

    def models_named(self, prefix: str) -> list[str]:
        """Every registered model whose name starts with ``prefix``."""
        found, token = [], None
        while True:
            params: dict[str, Any] = {"max_results": 1000, "filter": f"name LIKE '{_like(prefix)}%'"}
            if token:
                params["page_token"] = token
            data = self.call("GET", "/api/2.0/mlflow/registered-models/search", params=params).json()
            found += [m["name"] for m in data.get("registered_models", []) if m["name"].startswith(prefix)]
            token = data.get("next_page_token")
            if not token:
                return found


def _permission_of(held: dict[str, Any]) -> str | None:
    # {"permission": {"permission": "MANAGE", ...}} or {"permission": "MANAGE"}, depending on the route.
    value = held.get("permission")
    return value.get("permission") if isinstance(value, dict) else value


def _like(prefix: str) -> str:
    # The prefix is a DNS label plus "."; neither holds LIKE's wildcards or a quote.
    return prefix.replace("'", "")


def sync_team(api: AuthApi, team: str, home: Path) -> TeamSync:
    """Create ``team``'s user if needed and grant it MANAGE on every ``<team>.*`` experiment and model."""
    path = credentials_dir(home) / f"{team}.env"
    existing: Credentials | None = None
    if path.exists():
        existing = read_env_file(path)
        if existing.username != team:
            raise ConfigError(f"{path} is for user {existing.username!r}, not {team!r}", field="credentials")
    created = reset = False
    if not api.user_exists(team):
        creds = existing or Credentials(team, generate_password())
        api.create_user(creds)
        created = True
    elif existing is None:
        creds = Credentials(team, generate_password())
        api.update_password(creds)
        reset = True
    else:
        creds = existing
    if existing is None or created:
        write_env_file(path, creds)
    prefix = f"{team}{TEAM_SEPARATOR}"
    result = TeamSync(team, created, reset, path, credentials=creds)
    for experiment_id, name in api.experiments_named(prefix):
        api.grant(team, "experiment", experiment_id)
        result.experiments.append(name)
    for name in api.models_named(prefix):
        api.grant(team, "registered_model", name)
        result.registered_models.append(name)
    return result


def sync_teams(tracking_uri: str, admin: Credentials, teams: list[str], home: Path) -> list[TeamSync]:
    """:func:`sync_team` for each of ``teams``, acting as ``admin``."""
    api = AuthApi(tracking_uri, admin)
    try:
        return [sync_team(api, team, home) for team in teams]
    finally:
        api.close()
