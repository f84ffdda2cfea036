"""Promote the canary to champion, or roll champion back, by moving registry aliases.

A running predictor follows the ``champion`` alias (its poller swaps versions when it moves), so these
two functions are all that a local promotion or rollback needs. Who did it, when and why is recorded
as version tags (``mlcycle.promotion.*``, docs/contracts.md):

- ``promote(name)`` moves ``champion`` to the version behind ``challenger`` (the canary) and records
  on that version the champion it replaced (``mlcycle.champion.previous``, the tag the pipeline's
  promotion writes too).
- ``rollback(name)`` moves ``champion`` back to the version recorded as previous champion of the
  current champion, and marks the current one as rolled back. Without that record it refuses.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from mlcycle.config import Settings
from mlcycle.errors import InvalidInputError, ModelNotFoundError, ServabilityError
from mlcycle.governance import audit
from mlcycle.governance.approvals import require_approval
from mlcycle.registry.uris import CHALLENGER, CHAMPION, qualified_name
from mlcycle.registry.versions import PREVIOUS_CHAMPION_TAG

TAG_PREVIOUS = PREVIOUS_CHAMPION_TAG  # shared with the pipeline's promotion, so rollback undoes either
TAG_BY = "mlcycle.promotion.by"
TAG_AT = "mlcycle.promotion.at"
TAG_REASON = "mlcycle.promotion.reason"
TAG_ACTION = "mlcycle.promotion.action"  # promote | rollback
TAG_ROLLED_BACK_AT = "mlcycle.promotion.rolled_back_at"
TAG_ROLLED_BACK_BY = "mlcycle.promotion.rolled_back_by"
TAG_SERVABILITY = "mlcycle.servability"


@dataclass(frozen=True)
class AliasMove:
    """What moved: ``champion`` of ``name`` from ``previous`` to ``current``."""

    name: str
    alias: str
    previous: str | None
    current: str
    action: str


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return os.environ.get("MLCYCLE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _alias_version(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(f"registered model {name!r} not found", field="name") from e
        from mlcycle.tracking import auth_error

        if (refused := auth_error(e, f"model {name}")) is not None:  # refused is not "no such alias"
            raise refused from e
        return None


def promote(
    name: str,
    settings: Settings,
    *,
    by: str | None = None,
    reason: str = "",
    alias: str = CHALLENGER,
    environment: str = "prod",
) -> AliasMove:
    """Move ``champion`` to the version behind ``alias`` (the canary/challenger).

    Raises:
        ModelNotFoundError: the model or its ``alias`` does not exist.
        InvalidInputError: that version already is the champion.
        ServabilityError: the version's ``mlcycle.servability`` tag says it failed the check.
        ApprovalRequiredError: ``environment`` (local promotion serves what prod would) is protected
            (``MLCYCLE_PROTECTED_ENVIRONMENTS``) and the version has no standing approval for it.
    """
    from mlflow.tracking import MlflowClient

    registered = qualified_name(name, settings.team)
    client = MlflowClient()
    target = _alias_version(client, registered, alias)
    if target is None:
        raise ModelNotFoundError(f"model {registered!r} has no {alias!r} alias: nothing to promote", field="name")
    require_approval(registered, target, environment, settings=settings, client=client)
    current = _alias_version(client, registered, CHAMPION)
    if current == target:
        raise InvalidInputError(f"version {target} of {registered!r} already is the champion", field="name")
    mv = client.get_model_version(registered, target)
    servability = (mv.tags or {}).get(TAG_SERVABILITY, "")
    if servability.startswith("failed"):
        raise ServabilityError(
            f"version {target} of {registered!r} is not servable ({servability}); refusing to promote it",
            field="name",
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        TAG_BY: _who(by),
        TAG_AT: now,
        TAG_REASON: reason or f"promoted from {alias}",
        TAG_ACTION: "promote",
    }
    if current is not None:
        tags[TAG_PREVIOUS] = current
    for key, value in tags.items():
        client.set_model_version_tag(registered, target, key, value)
    client.set_registered_model_alias(registered, CHAMPION, target)
    audit.record(
        registered,
        target,
        "promotion.promote",
        by=tags[TAG_BY],
        client=client,
        details={"alias": CHAMPION, "from": current, "to": target, "reason": tags[TAG_REASON]},
    )
    return AliasMove(registered, CHAMPION, current, target, "promote")


def rollback(name: str, settings: Settings, *, by: str | None = None, reason: str = "") -> AliasMove:
    """Move ``champion`` back to the previous champion recorded on the current one.

    Raises:
        ModelNotFoundError: the model has no champion.
        InvalidInputError: no previous champion is recorded (nothing to roll back to).
    """
    from mlflow.tracking import MlflowClient

    registered = qualified_name(name, settings.team)
    client = MlflowClient()
    current = _alias_version(client, registered, CHAMPION)
    if current is None:
        raise ModelNotFoundError(f"model {registered!r} has no champion to roll back", field="name")
    mv = client.get_model_version(registered, current)
    previous = (mv.tags or {}).get(TAG_PREVIOUS)
    if not previous:
        raise InvalidInputError(
            f"champion version {current} of {registered!r} records no previous champion "
            f"(tag {TAG_PREVIOUS}); there is nothing to roll back to",
            field="name",
        )
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(registered, previous)
    except MlflowException as e:
        raise ModelNotFoundError(
            f"previous champion version {previous} of {registered!r} no longer exists", field="name"
        ) from e
    now = datetime.now(UTC).isoformat(timespec="seconds")
    who = _who(by)
    client.set_model_version_tag(registered, current, TAG_ROLLED_BACK_AT, now)
    client.set_model_version_tag(registered, current, TAG_ROLLED_BACK_BY, who)
    client.set_model_version_tag(registered, previous, TAG_ACTION, "rollback")
    client.set_model_version_tag(registered, previous, TAG_REASON, reason or f"rolled back from {current}")
    client.set_registered_model_alias(registered, CHAMPION, previous)
    audit.record(
        registered,
        current,
        "promotion.rollback",
        by=who,
        client=client,
        details={"alias": CHAMPION, "from": current, "to": previous, "reason": reason or f"rolled back from {current}"},
    )
    return AliasMove(registered, CHAMPION, current, previous, "rollback")
