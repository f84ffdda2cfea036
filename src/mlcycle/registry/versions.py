"""Registering model versions and tagging them: the low-level store under the release path.

Every write here is idempotent: a version is created (or found again for the same run) and tagged.
Aliases are not moved here: :mod:`mlcycle.release` owns every alias move (gate, approval, audit). This
module imports nothing from ``governance``, ``deploy`` or ``serving``.
"""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from mlcycle.registry import store
from mlcycle.registry.gate import GateDecision
from mlcycle.registry.uris import split_name

log = logging.getLogger(__name__)

TAG_PREFIX = "mlcycle."
# The version a champion replaced, written on the new champion by every champion move
# (mlcycle.release); `mlcycle rollback` returns to it.
PREVIOUS_CHAMPION_TAG = "mlcycle.champion.previous"


def actor() -> str:
    """Who is acting: ``MLCYCLE_ACTOR``, else the KFP run, else the local user."""
    if explicit := os.environ.get("MLCYCLE_ACTOR"):
        return explicit
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str | None
    aliases: list[str]
    tags: dict[str, str]


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def ensure_registered_model(name: str) -> None:
    """Create registered model ``name`` if it does not exist, tagged with its team."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        store.call(client.get_registered_model, name, what=f"reading {name}")
        return
    except MlflowException as e:
        # MLflow's auth app answers 403 for a model that does not exist yet: create it unless a
        # permission-filtered search shows one (the server refuses the create if it is another team's).
        denied = store.error_code(e) == "PERMISSION_DENIED"
        if not (store.is_not_found(e) or (denied and not store.visible(client, name))):
            raise
        team, _ = split_name(name)
        try:
            client.create_registered_model(name, tags={"mlcycle.team": team} if team else None)
        except MlflowException:
            client.get_registered_model(name)  # created concurrently: fine if it exists now


def register_version(name: str, model_uri: str, run_id: str, tags: dict[str, str] | None = None) -> str:
    """Register ``model_uri`` (logged by ``run_id``) as a version of ``name``; return the version.

    Idempotent: a second call for the same run returns the version the first one created, so a
    re-run after a crash does not create duplicates.
    """
    client = _client()
    ensure_registered_model(name)
    version = version_of_run(name, run_id)
    if version is None:
        # A tracking server insists on the LoggedModel id along with a models:/m-... source.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = str(client.create_model_version(name, source=model_uri, run_id=run_id, model_id=model_id).version)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    return version


def version_of_run(name: str, run_id: str) -> str | None:
    """The (first) version of ``name`` registered from ``run_id``, or None."""
    found = [int(v.version) for v in _client().search_model_versions(f"name='{name}'") if v.run_id == run_id]
    return str(min(found)) if found else None


def get_version(name: str, version: str) -> VersionInfo:
    """The version with its tags and aliases; :class:`ModelNotFoundError` only if MLflow says it does not exist."""
    v = store.get_model_version(name, version)
    return VersionInfo(name, str(v.version), v.run_id, list(v.aliases), dict(v.tags))


def alias_version(name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist.

    Raises:
        RegistryUnavailableError: the registry did not answer (an outage is not "no alias").
    """
    return store.alias_version(name, alias)


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def record_decision(name: str, version: str, decision: GateDecision,
                    decided_by: str | None = None) -> dict[str, str]:
    """Write the gate decision, its reason and the compared numbers as version tags; return them.

    The audit event is written by the caller (governance sits above the registry).
    """
    client = _client()
    tags = {
        "mlcycle.gate.decision": decision.decision,
        "mlcycle.gate.reason": decision.reason,
        "mlcycle.gate.metric": decision.metric,
        "mlcycle.gate.candidate": "" if decision.candidate is None else f"{decision.candidate:.6f}",
        "mlcycle.gate.champion": "" if decision.champion is None else f"{decision.champion:.6f}",
        "mlcycle.gate.champion_version": decision.champion_version or "",
        "mlcycle.gate.decided_by": decided_by or actor(),
        "mlcycle.gate.decided_at": now_iso(),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return tags
