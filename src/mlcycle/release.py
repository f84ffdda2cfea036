"""The one release path: every registry alias move (champion, challenger, rollback, an environment's alias).

The aliases are the release mechanism (the predictor follows them, the overlays serve them), so every
path that moves one calls :func:`move_alias`: the pipeline's gate and promote steps, ``mlcycle promote``
and ``mlcycle rollback``, the deploy/canary code and the notebooks. It enforces, in this order:

1. the version passed the gate (``mlcycle.gate.decision=promote``) and is servable
   (``mlcycle.servability=ok``);
2. if the alias is served in a protected environment (the environment ↔ alias table
   :data:`mlcycle.deploy.environments.ENVIRONMENTS`, protected by ``MLCYCLE_PROTECTED_ENVIRONMENTS``),
   a standing approval for that environment;
3. the alias still points at the expected holder (compare-and-set; a lost race is refused and recorded).

Rollbacks (back to a version that served before) skip 1 and 2: they are never blocked. A refusal moves
nothing, says why (:attr:`AliasMove.reason`) and is recorded as ``alias.move_refused``.

The audit event is part of the move: a *pending* marker (registered-model tag
``mlcycle.release.pending.<alias>``) is written before the alias moves, the ``alias.moved`` event after,
then the marker is removed. Every later move of that alias (and :func:`reconcile`) first completes a
marker left by a crash: if the alias holds the marker's version and its event is missing, the event is
written; otherwise the move never happened and the marker goes. So a crash at any point leaves either no
move, or a move whose event the next call writes — exactly one ``alias.moved`` event per move.

MLflow offers no atomic compare-and-set on an alias: the holder is compared right before the move, and
the pending marker doubles as a lock (a writer that finds another writer's marker after writing its own
refuses as a lost race). Two movers racing within milliseconds can still both pass; this narrows the
window, it cannot close it.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from mlcycle.config import Settings, load_settings
from mlcycle.deploy.environments import ENVIRONMENTS
from mlcycle.errors import (
    ApprovalRequiredError,
    InvalidInputError,
    MlcycleError,
    ModelNotFoundError,
    ServabilityError,
)
from mlcycle.governance import audit
from mlcycle.governance.approvals import require_approval
from mlcycle.registry import store
from mlcycle.registry.uris import CHALLENGER, CHAMPION, qualified_name
from mlcycle.registry.versions import PREVIOUS_CHAMPION_TAG, actor, now_iso

log = logging.getLogger(__name__)

PENDING_PREFIX = "mlcycle.release.pending."
TAG_PROMOTION = "mlcycle.gate.promotion"
TAG_SERVABILITY = "mlcycle.servability"
TAG_BY = "mlcycle.promotion.by"
TAG_AT = "mlcycle.promotion.at"
TAG_REASON = "mlcycle.promotion.reason"
TAG_ACTION = "mlcycle.promotion.action"  # promote | rollback
TAG_ROLLED_BACK_AT = "mlcycle.promotion.rolled_back_at"
TAG_ROLLED_BACK_BY = "mlcycle.promotion.rolled_back_by"

# Why a move was refused (AliasMove.refused): each maps to the error ``raise_if_refused`` raises.
GATE, UNSERVABLE, APPROVAL, RACE = "gate", "unservable", "approval", "race"


class ReleaseRefusedError(MlcycleError):
    """A version may not take an alias: it did not pass the gate, or the alias moved meanwhile (409)."""

    http_status = 409


@dataclass(frozen=True)
class AliasMove:
    """The outcome of one alias move: ``alias`` of ``name`` from ``previous`` to ``version`` (if ``moved``)."""

    moved: bool
    name: str
    alias: str
    version: str
    previous: str | None
    reason: str
    action: str = "promote"
    refused: str = ""  # "" when moved, else GATE | UNSERVABLE | APPROVAL | RACE

    @property
    def current(self) -> str | None:
        """Who holds the alias now."""
        return self.version if self.moved else self.previous

    def raise_if_refused(self) -> AliasMove:
        if self.moved:
            return self
        error = {APPROVAL: ApprovalRequiredError, UNSERVABLE: ServabilityError}.get(self.refused, ReleaseRefusedError)
        raise error(self.reason, field="version")


def _client(client: Any = None) -> Any:
    return client or store.client()


def environments_serving(alias: str) -> list[str]:
    """The environments whose InferenceService follows ``alias`` (the one table in deploy.environments)."""
    return [env.name for env in ENVIRONMENTS.values() if env.alias == alias]


def protected_environments(alias: str, settings: Settings | None = None) -> list[str]:
    """The protected environments (``MLCYCLE_PROTECTED_ENVIRONMENTS``) that serve ``alias``."""
    settings = settings or load_settings()
    return [env for env in environments_serving(alias) if env in settings.protected]


def refusal(name: str, version: str, alias: str, *, settings: Settings | None = None, client: Any = None,
            environments: list[str] | None = None, purpose: str = "") -> tuple[str, str] | None:
    """Why ``version`` may not take ``alias`` (or be served in ``environments``): ``(kind, reason)``, or None.

    Checked in order: gate decision, servability, standing approval in each protected environment.
    ``purpose`` ends the reason (default ``become <alias>``).
    """
    purpose = purpose or f"become {alias}"
    settings = settings or load_settings()
    client = _client(client)
    tags = dict(store.get_model_version(name, version, mlflow_client=client).tags or {})
    decision = tags.get("mlcycle.gate.decision", "")
    if decision != "promote":
        why = tags.get("mlcycle.gate.reason", "")
        return GATE, (f"models:/{name}/{version} did not pass the gate (mlcycle.gate.decision="
                      f"{decision or 'none'}{': ' + why if why else ''}); it may not {purpose}")
    servability = tags.get(TAG_SERVABILITY, "")
    if servability != "ok":
        return UNSERVABLE, (f"models:/{name}/{version} is not servable "
                            f"({servability or 'never checked'}); it may not {purpose}")
    protected = [e for e in (environments or environments_serving(alias)) if e in settings.protected]
    for environment in protected:
        try:
            require_approval(name, version, environment, settings=settings, client=client)
        except ApprovalRequiredError as e:
            return APPROVAL, e.message
    return None


def require_releasable(name: str, version: str, environment: str, *, settings: Settings | None = None,
                       client: Any = None) -> None:
    """Raise unless ``version`` may serve in ``environment`` (gate, servability, approval): deploy's check."""
    found = refusal(name, str(version), ENVIRONMENTS[environment].alias, settings=settings, client=client,
                    environments=[environment], purpose=f"serve in {environment}")
    if found:
        AliasMove(False, name, ENVIRONMENTS[environment].alias, str(version), None, found[1],
                  refused=found[0]).raise_if_refused()


def _pending_key(alias: str) -> str:
    return f"{PENDING_PREFIX}{alias}"


def _read_pending(client: Any, name: str, alias: str) -> dict | None:
    model = store.call(client.get_registered_model, name, what=f"reading {name}")
    raw = (model.tags or {}).get(_pending_key(alias))
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return {"id": "", "to": None}
    return body if isinstance(body, dict) else {"id": "", "to": None}


def _clear_pending(client: Any, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        store.call(client.delete_registered_model_tag, name, _pending_key(alias), what=f"clearing {name}'s marker")
    except MlflowException as e:
        if not store.is_not_found(e):
            raise


def _moved_event(client: Any, body: dict) -> None:
    audit.record(
        body["name"], body["to"], "alias.moved", by=body["by"], client=client,
        details={"alias": body["alias"], "from": body.get("from"), "to": body["to"], "reason": body["reason"],
                 "kind": body["action"], "move": body["id"]},
    )


def reconcile(name: str, alias: str, *, client: Any = None) -> bool:
    """Complete (or drop) a move of ``alias`` that a crash interrupted; True if an event was written."""
    client = _client(client)
    body = _read_pending(client, name, alias)
    if body is None:
        return False
    wrote = False
    current = store.alias_version(name, alias, mlflow_client=client)
    if body.get("to") and current == str(body["to"]):
        events = audit.version_events(name, body["to"], client=client)
        if not any(e.action == "alias.moved" and e.details.get("move") == body["id"] for e in events):
            _moved_event(client, body)
            wrote = True
            log.warning("completed the audit trail of %s@%s -> v%s (interrupted move %s)", name, alias, current,
                        body["id"])
    _clear_pending(client, name, alias)
    return wrote


def move_alias(name: str, alias: str, version: str | int, *, expected_current: str | None, reason: str,
               action: str = "promote", by: str | None = None, settings: Settings | None = None,
               client: Any = None, version_tags: dict[str, str] | None = None) -> AliasMove:
    """Point ``alias`` of ``name`` at ``version``: the only function in mlcycle that moves an alias.

    Args:
        name: registered (team-qualified) name.
        alias: ``champion``, ``challenger`` or any alias an environment serves.
        version: the version to point it at.
        expected_current: who must hold the alias now (None: nobody); anything else is a lost race.
        reason: why (recorded on the audit event).
        action: ``promote`` (checked) or ``rollback`` (back to a version that served; never blocked).
        by: who acts (default ``MLCYCLE_ACTOR``, else the login).
        version_tags: tags written on ``version`` just before the move (who/why of a champion move).

    Returns:
        The move; ``moved`` False with ``refused`` and ``reason`` when it was refused (nothing moved).
    """
    if not reason.strip():
        raise InvalidInputError("say why the alias moves (reason)", field="reason")
    settings = settings or load_settings()
    client = _client(client)
    version = str(version)
    who = by or actor()
    store.get_model_version(name, version, mlflow_client=client)  # never point at nothing
    reconcile(name, alias, client=client)
    current = store.alias_version(name, alias, mlflow_client=client)
    if current == version:
        return AliasMove(True, name, alias, version, current, f"already {alias}", action)

    def refuse(kind: str, why: str) -> AliasMove:
        audit.record(name, version, "alias.move_refused", by=who, client=client,
                     details={"alias": alias, "from": current, "to": version, "refused": kind, "reason": why})
        if alias == CHAMPION:
            note = f"awaiting approval for {', '.join(protected_environments(alias, settings))}" \
                if kind == APPROVAL else f"refused: {why}"
            store.call(client.set_model_version_tag, name, version, TAG_PROMOTION, note, what="tagging")
        log.info("refused to move %s@%s to v%s: %s", name, alias, version, why)
        return AliasMove(False, name, alias, version, current, why, action, kind)

    if action != "rollback" and (found := refusal(name, version, alias, settings=settings, client=client)):
        return refuse(*found)
    race = (f"{alias} moved to v{current or 'none'} since the move was decided against "
            f"v{expected_current or 'none'}; decide again")
    if current != (str(expected_current) if expected_current is not None else None):
        return refuse(RACE, race)
    for key, value in (version_tags or {}).items():  # tags first: a crash before the move leaves only tags
        store.call(client.set_model_version_tag, name, version, key, value, what="tagging")
    body = {"id": secrets.token_hex(8), "name": name, "alias": alias, "from": current, "to": version,
            "reason": reason, "action": action, "by": who, "at": now_iso()}
    store.call(client.set_registered_model_tag, name, _pending_key(alias), json.dumps(body, sort_keys=True),
               what="marking the move")
    mine = _read_pending(client, name, alias)
    if (mine or {}).get("id") != body["id"] or store.alias_version(name, alias, mlflow_client=client) != current:
        return refuse(RACE, f"another move of {alias} is under way; " + race)
    store.call(client.set_registered_model_alias, name, alias, version, what=f"moving {name}@{alias}")
    _moved_event(client, body)
    _clear_pending(client, name, alias)
    log.info("%s of %s: %s -> v%s (%s)", alias, name, f"v{current}" if current else "none", version, reason)
    return AliasMove(True, name, alias, version, current, reason, action)


def promote_version(name: str, version: str | int, *, expected_current: str | None, reason: str,
                    by: str | None = None, settings: Settings | None = None, client: Any = None) -> AliasMove:
    """Move ``champion`` to ``version`` (checked), recording the champion it replaces on it."""
    who = by or actor()
    client = _client(client)
    tags = {PREVIOUS_CHAMPION_TAG: "" if expected_current is None else str(expected_current),
            "mlcycle.champion.reason": reason, "mlcycle.champion.by": who, "mlcycle.champion.at": now_iso(),
            TAG_BY: who, TAG_AT: now_iso(), TAG_REASON: reason, TAG_ACTION: "promote",
            TAG_PROMOTION: "promoted to champion"}
    return move_alias(name, CHAMPION, version, expected_current=expected_current, reason=reason, by=who,
                      settings=settings, client=client, version_tags=tags)


def set_challenger(name: str, version: str | int, *, reason: str = "passed the gate", by: str | None = None,
                   settings: Settings | None = None, client: Any = None) -> AliasMove:
    """Move ``challenger`` to ``version`` (checked: only a version that passed the gate)."""
    client = _client(client)
    current = store.alias_version(name, CHALLENGER, mlflow_client=client)
    return move_alias(name, CHALLENGER, version, expected_current=current, reason=reason, by=by, settings=settings,
                      client=client)


def promote(name: str, settings: Settings, *, version: str | int | None = None, by: str | None = None,
            reason: str = "", alias: str = CHALLENGER) -> AliasMove:
    """``mlcycle promote``: move ``champion`` to ``version`` (default: the one behind ``alias``).

    Raises:
        ModelNotFoundError: the model, version or ``alias`` does not exist.
        ReleaseRefusedError: the version did not pass the gate, or champion moved meanwhile.
        ServabilityError: the version is not servable.
        ApprovalRequiredError: a protected environment serves champion and the version has no standing approval.
    """
    registered = qualified_name(name, settings.team)
    client = _client()
    if version is None:
        target = store.alias_version(registered, alias, mlflow_client=client)
        if target is None:
            raise ModelNotFoundError(f"model {registered!r} has no {alias!r} alias: nothing to promote", field="name")
    else:
        target = str(version)
    current = store.alias_version(registered, CHAMPION, mlflow_client=client)
    why = reason or (f"promoted from {alias}" if version is None else f"promoted v{target}")
    return promote_version(registered, target, expected_current=current, reason=why, by=by, settings=settings,
                           client=client).raise_if_refused()


def rollback(name: str, settings: Settings, *, by: str | None = None, reason: str = "") -> AliasMove:
    """``mlcycle rollback``: move ``champion`` back to the previous champion recorded on the current one.

    Never blocked by the gate or approvals (it returns to a version that served).

    Raises:
        ModelNotFoundError: the model has no champion, or the previous one no longer exists.
        InvalidInputError: no previous champion is recorded (nothing to roll back to).
    """
    registered = qualified_name(name, settings.team)
    client = _client()
    current = store.alias_version(registered, CHAMPION, mlflow_client=client)
    if current is None:
        raise ModelNotFoundError(f"model {registered!r} has no champion to roll back", field="name")
    previous = (store.get_model_version(registered, current, mlflow_client=client).tags or {}).get(
        PREVIOUS_CHAMPION_TAG)
    if not previous:
        raise InvalidInputError(
            f"champion version {current} of {registered!r} records no previous champion "
            f"(tag {PREVIOUS_CHAMPION_TAG}); there is nothing to roll back to",
            field="name",
        )
    try:
        store.get_model_version(registered, previous, mlflow_client=client)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(
            f"previous champion version {previous} of {registered!r} no longer exists", field="name"
        ) from e
    who = by or actor()
    why = reason or f"rolled back from {current}"
    store.call(client.set_model_version_tag, registered, current, TAG_ROLLED_BACK_AT, now_iso(), what="tagging")
    store.call(client.set_model_version_tag, registered, current, TAG_ROLLED_BACK_BY, who, what="tagging")
    return move_alias(registered, CHAMPION, previous, expected_current=current, reason=why, action="rollback",
                      by=who, settings=settings, client=client,
                      version_tags={TAG_ACTION: "rollback", TAG_REASON: why}).raise_if_refused()


def restore_alias(name: str, alias: str, version: str, *, expected_current: str, reason: str,
                  client: Any = None, settings: Settings | None = None) -> AliasMove:
    """Move ``alias`` back to a version that serves (a canary rollback): a rollback, never blocked."""
    return move_alias(name, alias, version, expected_current=expected_current, reason=reason, action="rollback",
                      client=client, settings=settings)


def serving_explanation(tags: dict[str, str], aliases: list[str], settings: Settings | None = None) -> str:
    """Why a version is or is not serving anywhere, for ``mlcycle status``."""
    settings = settings or load_settings()
    if aliases:
        where = [f"{alias} → {', '.join(environments_serving(alias)) or 'no environment'}" for alias in aliases]
        return "serving: " + "; ".join(where)
    decision = tags.get("mlcycle.gate.decision", "")
    if not decision:
        return "not serving: not gated yet"
    if decision != "promote":
        return "not serving: gate rejected it"
    if tags.get(TAG_SERVABILITY, "") != "ok":
        return f"not serving: not servable ({tags.get(TAG_SERVABILITY) or 'never checked'})"
    if promotion := tags.get(TAG_PROMOTION):
        return f"not serving: {promotion}"
    return "not serving: passed the gate, replaced by a newer version"
