"""An append-only audit trail on each model version: who did what, when and why.

Storage: one MLflow model-version tag per event, ``mlcycle.audit.<seq>.<nonce>``, whose value is a
compact JSON object (``at``, ``by``, ``action``, details). Why tags on the version rather than a run of
its own: the trail travels with the version (``get_model_version`` returns it, the MLflow UI shows it,
a registry export carries it), it needs no extra experiment per model, and a version's tags are read
by every part of mlcycle already. Why these keys:

- ``<seq>`` (zero-padded, one more than the highest on the version) gives the order within a version;
- ``<nonce>`` (random) makes two writers that raced for the same ``<seq>`` write two different keys,
  so neither event silently replaces the other (MLflow's ``set_model_version_tag`` would overwrite);
- :func:`append` reads the version first and refuses a key that exists (:class:`AuditWriteError`), and
  nothing in mlcycle deletes or rewrites an ``mlcycle.audit.*`` tag;
- each entry carries ``prev``, a digest of the entry before it on the version, so :func:`verify` finds
  an entry edited or removed behind the tools' back (through MLflow directly): the next entry's ``prev``
  no longer matches, or a sequence number is missing. Removing only the newest entry stays undetected.

Someone with registry write access can still change tags through MLflow itself; the chain makes that
visible, it cannot prevent it (the tracking server's database and its backups are the place for that).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from mlcycle.errors import MlcycleError
from mlcycle.registry import store

AUDIT_PREFIX = "mlcycle.audit."
# MLflow allows 100,000 characters per version tag; entries stay small (the MLflow UI lists them).
_MAX_FIELD = 1_000


class AuditWriteError(MlcycleError):
    """An audit entry exists already and would be overwritten (HTTP 409)."""

    http_status = 409


class AuditIntegrityError(MlcycleError):
    """The trail's chain is broken: an entry was changed or removed outside mlcycle (HTTP 409)."""

    http_status = 409


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the trail.

    Attributes:
        name: registered model name.
        version: model version.
        seq: position within the version's trail (1, 2, ...).
        key: the tag that holds it.
        at: UTC ISO-8601 time, microseconds.
        by: who acted (``MLCYCLE_ACTOR``, else the local user).
        action: what happened, e.g. ``gate.decision``, ``alias.moved``, ``approval.granted``,
            ``alias.move_refused``, ``deploy.canary``, ``canary.analysis`` (every alias move, promotion and
            rollback included, is one ``alias.moved`` event written by :mod:`mlcycle.release`).
        details: the rest (reasons, versions, environment, numbers).
    """

    name: str
    version: str
    seq: int
    key: str
    at: str
    by: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)
    prev: str = ""  # digest of the entry before it on the version ("" for the first)
    digest: str = ""  # digest of this entry (key and stored value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "seq": self.seq,
            "at": self.at,
            "by": self.by,
            "action": self.action,
            "details": dict(self.details),
        }

    def summary(self) -> str:
        """The details as ``key=value`` pairs, for one line of a timeline."""
        return ", ".join(f"{k}={v}" for k, v in self.details.items() if v not in (None, ""))


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _actor() -> str:
    from mlcycle.registry.versions import actor

    return actor()


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD:
        return value[: _MAX_FIELD - 1] + "…"
    return value


def _digest(key: str, value: str) -> str:
    return hashlib.sha256(f"{key}\n{value}".encode()).hexdigest()[:16]


def _seq_of(key: str) -> int | None:
    head = key.removeprefix(AUDIT_PREFIX).split(".", 1)[0]
    return int(head) if head.isdigit() else None


def append(name: str, version: str, key: str, value: str, *, client: Any = None) -> None:
    """Write one audit tag if, and only if, the version does not have it yet.

    Raises:
        AuditWriteError: ``key`` exists on the version (the trail is never rewritten).
    """
    if not key.startswith(AUDIT_PREFIX):
        raise AuditWriteError(f"audit keys start with {AUDIT_PREFIX!r}, not {key!r}", field="key")
    client = _client(client)
    tags = store.get_model_version(name, str(version), mlflow_client=client).tags or {}
    if key in tags:
        raise AuditWriteError(
            f"audit entry {key} of {name} v{version} exists; the audit trail is append-only", field="key"
        )
    client.set_model_version_tag(name, str(version), key, value)


def record(
    name: str,
    version: str | int,
    action: str,
    *,
    details: dict[str, Any] | None = None,
    by: str | None = None,
    client: Any = None,
) -> AuditEvent:
    """Append an event to the trail of ``name`` version ``version`` and return it.

    Args:
        name: registered model name (team-qualified).
        version: the version the event is about.
        action: what happened (see :class:`AuditEvent`).
        details: JSON-able facts; long strings are clipped, ``None`` values dropped.
        by: who acted; default ``MLCYCLE_ACTOR`` or the local user.
        client: an ``MlflowClient`` (default: one for the configured registry).
    """
    client = _client(client)
    version = str(version)
    tags = store.get_model_version(name, version, mlflow_client=client).tags or {}
    entries = {k: (s, v) for k, v in tags.items() if k.startswith(AUDIT_PREFIX) and (s := _seq_of(k)) is not None}
    seq = max((s for s, _ in entries.values()), default=0) + 1
    last = max((k for k, (s, _) in entries.items() if s == seq - 1), default=None)
    prev = _digest(last, entries[last][1]) if last else ""
    key = f"{AUDIT_PREFIX}{seq:06d}.{secrets.token_hex(4)}"
    event = AuditEvent(
        name=name,
        version=version,
        seq=seq,
        key=key,
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        by=by or _actor(),
        action=action,
        details={k: _clip(v) for k, v in (details or {}).items() if v is not None and k != "prev"},
        prev=prev,
    )
    body = {"at": event.at, "by": event.by, "action": action, **event.details}
    if prev:
        body["prev"] = prev
    value = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    append(name, version, key, value, client=client)
    return replace(event, digest=_digest(key, value))


def _parse(name: str, version: str, key: str, value: str) -> AuditEvent | None:
    seq = _seq_of(key)
    if seq is None:
        return None
    try:
        body = json.loads(value)
    except json.JSONDecodeError:
        body = {"action": "unreadable", "raw": value}
    if not isinstance(body, dict):
        body = {"action": "unreadable", "raw": value}
    at = str(body.pop("at", ""))
    by = str(body.pop("by", ""))
    action = str(body.pop("action", "unknown"))
    prev = str(body.pop("prev", ""))
    return AuditEvent(name, version, seq, key, at, by, action, body, prev, _digest(key, value))


def version_events(name: str, version: str | int, *, client: Any = None) -> list[AuditEvent]:
    """The trail of one version, in order."""
    tags = store.get_model_version(name, str(version), mlflow_client=_client(client)).tags or {}
    parsed = [_parse(name, str(version), k, v) for k, v in tags.items() if k.startswith(AUDIT_PREFIX)]
    return sorted((e for e in parsed if e is not None), key=lambda e: (e.seq, e.at, e.key))


def timeline(name: str, *, client: Any = None) -> list[AuditEvent]:
    """Every version's trail of registered model ``name``, merged in time order.

    Ties (same timestamp) keep version order, then each version's own sequence.
    """
    client = _client(client)
    escaped = name.replace("'", "\\'")
    events: list[AuditEvent] = []
    for mv in client.search_model_versions(f"name = '{escaped}'"):
        for key, value in (mv.tags or {}).items():
            if key.startswith(AUDIT_PREFIX) and (event := _parse(name, str(mv.version), key, value)):
                events.append(event)
    return sorted(events, key=lambda e: (e.at, int(e.version), e.seq, e.key))


def verify(name: str, *, client: Any = None) -> list[str]:
    """Check every version's chain; return what is wrong (empty: intact as far as it can tell).

    Finds an entry whose stored value was changed (the next entry's ``prev`` does not match it) and a
    removed entry (a missing sequence number, or a ``prev`` that matches nothing).
    """
    client = _client(client)
    escaped = name.replace("'", "\\'")
    problems: list[str] = []
    for mv in sorted(client.search_model_versions(f"name = '{escaped}'"), key=lambda v: int(v.version)):
        events = version_events(name, str(mv.version), client=client)
        by_seq: dict[int, list[AuditEvent]] = {}
        for e in events:
            by_seq.setdefault(e.seq, []).append(e)
        for seq in range(1, max(by_seq, default=0) + 1):
            if seq not in by_seq:
                problems.append(f"v{mv.version}: entry {seq} is missing")
                continue
            before = {e.digest for e in by_seq.get(seq - 1, [])}
            for e in by_seq[seq]:
                if seq == 1 and e.prev:
                    problems.append(f"v{mv.version}: entry 1 ({e.action}) points at an earlier entry")
                elif seq > 1 and e.prev not in before and (seq - 1) in by_seq:
                    problems.append(
                        f"v{mv.version}: entry {seq - 1} was changed or replaced "
                        f"(entry {seq}, {e.action}, recorded another one)"
                    )
    return problems


def format_timeline(events: list[AuditEvent]) -> str:
    """One line per event: ``<at>  v<version>  <action>  by <who>  <details>``."""
    if not events:
        return "no audit events recorded"
    width = max(len(e.action) for e in events)
    return "\n".join(f"{e.at}  v{e.version:<4} {e.action:<{width}}  by {e.by}  {e.summary()}".rstrip() for e in events)
