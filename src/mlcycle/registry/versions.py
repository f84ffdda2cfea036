"""Registering model versions and moving aliases, with who/what/why recorded as version tags.

Every write here is idempotent and leaves the registry consistent at every step: a version is created
(or found again for the same run), tagged, then aliases move in single calls, so ``champion`` always
points at an existing version or at nothing only if there never was one.
"""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from mlcycle.errors import InvalidInputError, ModelNotFoundError
from mlcycle.governance import audit
from mlcycle.registry.gate import GateDecision
from mlcycle.registry.uris import CHALLENGER, CHAMPION, split_name

log = logging.getLogger(__name__)

TAG_PREFIX = "mlcycle."
# The version a champion replaced, written on the new champion by every champion move (the pipeline's
# promotion and `mlcycle promote`); `mlcycle rollback` returns to it.
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
        client.get_registered_model(name)
    except MlflowException:
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
    from mlflow.exceptions import MlflowException

    try:
        v = _client().get_model_version(name, version)
    except MlflowException as e:
        raise ModelNotFoundError(f"model {name} has no version {version}", field="model") from e
    return VersionInfo(name, str(v.version), v.run_id, list(v.aliases), dict(v.tags))


def alias_version(name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def set_challenger(name: str, version: str) -> None:
    previous = alias_version(name, CHALLENGER)
    _client().set_registered_model_alias(name, CHALLENGER, version)
    audit.record(name, version, "alias.moved", details={"alias": CHALLENGER, "from": previous, "to": version})


def record_decision(name: str, version: str, decision: GateDecision, decided_by: str | None = None) -> None:
    """Write the gate decision, its reason and the compared numbers as version tags."""
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
    audit.record(
        name,
        version,
        "gate.decision",
        by=tags["mlcycle.gate.decided_by"],
        details={
            k.removeprefix("mlcycle.gate."): v
            for k, v in tags.items()
            if k not in ("mlcycle.gate.decided_by", "mlcycle.gate.decided_at")
        },
    )


@dataclass(frozen=True)
class AliasMove:
    moved: bool
    name: str
    alias: str
    version: str
    previous: str | None
    reason: str


def move_champion(name: str, version: str, *, expected_current: str | None, reason: str,
                  moved_by: str | None = None) -> AliasMove:
    """Point ``champion`` at ``version`` if the champion is still ``expected_current``.

    The check guards against two pipelines racing: a candidate judged against champion v3 must not
    replace a v4 promoted meanwhile. Moving to the version the alias already has is a no-op success,
    so the step is idempotent.
    """
    get_version(name, version)  # refuse to point at nothing
    current = alias_version(name, CHAMPION)
    if current == version:
        return AliasMove(True, name, CHAMPION, version, current, "already champion")
    if current != expected_current:
        why = (f"champion moved to v{current} since the candidate was judged against "
               f"v{expected_current or 'none'}; re-run the evaluation")
        _client().set_model_version_tag(name, version, "mlcycle.gate.promotion", f"refused: {why}")
        audit.record(name, version, "alias.move_refused", by=moved_by, details={"alias": CHAMPION, "reason": why})
        return AliasMove(False, name, CHAMPION, version, current, why)
    return set_champion(name, version, reason=reason, moved_by=moved_by)


def set_champion(name: str, version: str, *, reason: str, moved_by: str | None = None) -> AliasMove:
    """Move ``champion`` to ``version`` unconditionally, recording the previous champion on the version."""
    if not reason.strip():
        raise InvalidInputError("say why the champion moves (reason)", field="reason")
    client = _client()
    get_version(name, version)
    previous = alias_version(name, CHAMPION)
    tags = {
        PREVIOUS_CHAMPION_TAG: previous or "",
        "mlcycle.champion.reason": reason,
        "mlcycle.champion.by": moved_by or actor(),
        "mlcycle.champion.at": now_iso(),
    }
    for key, value in tags.items():  # tags first: a crash before the move leaves only tags behind
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHAMPION, version)
    audit.record(
        name,
        version,
        "alias.moved",
        by=tags["mlcycle.champion.by"],
        details={"alias": CHAMPION, "from": previous, "to": version, "reason": reason},
    )
    log.info("champion of %s: %s -> v%s (%s)", name, f"v{previous}" if previous else "none", version, reason)
    return AliasMove(True, name, CHAMPION, version, previous, reason)
