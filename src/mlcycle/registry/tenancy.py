"""Per-team isolation in the MLflow registry, enforced by mlcycle itself.

MLflow's open-source server has no per-team permissions on registered models, so every write that
mlcycle makes goes through these checks: a team may only create versions of, tag, or move aliases on
registered models named ``<team>.<name>``, and a team-less (single-tenant) caller only those without a
team prefix. Experiments follow the same prefix (``<team>.<experiment>``), and a team's artifacts live
under its own root (``Settings.effective_artifact_root`` = ``<artifact root>/<team>``), which the
team's S3 credentials are scoped to on the cluster (see profiles/).

:func:`ensure_team_owns` is the pure check; :class:`TeamRegistry` wraps an ``MlflowClient`` so that the
registry writes cannot skip it.
"""

from __future__ import annotations

from typing import Any

from mlcycle.errors import PermissionDeniedError
from mlcycle.registry.uris import TEAM_SEPARATOR, split_name


def ensure_team_owns(registered_name: str, team: str) -> str:
    """Return ``registered_name`` if ``team`` may write it, else raise.

    Args:
        registered_name: ``<team>.<name>`` or, single-tenant, ``<name>``.
        team: the acting team (``""`` when single-tenant).

    Raises:
        PermissionDeniedError: the name belongs to another team, or lacks the team's prefix.
    """
    owner, _ = split_name(registered_name)
    if owner != team:
        if not team:
            raise PermissionDeniedError(
                f"model {registered_name!r} belongs to team {owner!r}; set MLCYCLE_TEAM={owner} to change it",
                field="name",
            )
        whose = f"team {owner!r}" if owner else "no team"
        raise PermissionDeniedError(
            f"team {team!r} may only write models named '{team}{TEAM_SEPARATOR}<name>'; "
            f"{registered_name!r} belongs to {whose}",
            field="name",
        )
    return registered_name


def ensure_team_owns_experiment(experiment_name: str, team: str) -> str:
    """Return ``experiment_name`` if it carries ``team``'s prefix (any name when single-tenant)."""
    if team and not experiment_name.startswith(f"{team}{TEAM_SEPARATOR}"):
        raise PermissionDeniedError(
            f"team {team!r} may only use experiments named '{team}{TEAM_SEPARATOR}<name>', not {experiment_name!r}",
            field="experiment",
        )
    return experiment_name


class TeamRegistry:
    """The registry writes a team may make, each checked by :func:`ensure_team_owns` first."""

    def __init__(self, client: Any, team: str) -> None:
        self.client = client
        self.team = team

    def create_registered_model(self, name: str, **kwargs: Any) -> Any:
        return self.client.create_registered_model(ensure_team_owns(name, self.team), **kwargs)

    def create_model_version(self, name: str, source: str, **kwargs: Any) -> Any:
        return self.client.create_model_version(ensure_team_owns(name, self.team), source, **kwargs)

    def set_alias(self, name: str, alias: str, version: str | int) -> None:
        self.client.set_registered_model_alias(ensure_team_owns(name, self.team), alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(ensure_team_owns(name, self.team), alias)

    def set_version_tag(self, name: str, version: str | int, key: str, value: str) -> None:
        self.client.set_model_version_tag(ensure_team_owns(name, self.team), str(version), key, value)
