"""Approvals: a person says a model version may be served in a protected environment.

``MLCYCLE_PROTECTED_ENVIRONMENTS=prod`` (comma-separated) makes ``prod`` protected. A version is served
there only with an approval recorded on it:

- ``mlcycle approve models:/wine/5 --env prod --reason "..."`` writes version tags
  ``mlcycle.approval.<env>.status`` (``approved``), ``.by`` (``MLCYCLE_ACTOR``, else the login),
  ``.at`` (UTC) and ``.reason``, and appends ``approval.granted`` to the audit trail;
- ``mlcycle revoke models:/wine/5 --env prod --reason "..."`` sets the status to ``revoked`` (with
  ``.revoked_by``/``.revoked_at``/``.revoke_reason``) and appends ``approval.revoked``.

The tags say the current state; the audit trail (:mod:`mlcycle.governance.audit`) keeps every grant and
revocation. :func:`require_approval` is what the deploy step, ``mlcycle deploy apply|promote`` and
``mlcycle promote`` call before serving a version in an environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlcycle.errors import ApprovalRequiredError, InvalidInputError

log = logging.getLogger(__name__)

APPROVED, REVOKED = "approved", "revoked"
TAG_PREFIX = "mlcycle.approval"


def approval_tag(environment: str, key: str) -> str:
    """``mlcycle.approval.<env>.<key>``."""
    return f"{TAG_PREFIX}.{environment}.{key}"


@dataclass(frozen=True)
class Approval:
    """The approval state of one version in one environment."""

    name: str
    version: str
    environment: str
    status: str  # approved | revoked
    by: str
    at: str
    reason: str
    revoked_by: str = ""
    revoked_at: str = ""
    revoke_reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == APPROVED


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _tags(client: Any, name: str, version: str) -> dict[str, str]:
    """The version's tags; ModelNotFoundError only if it does not exist (an outage is RegistryUnavailableError)."""
    from mlcycle.registry import store

    return dict(store.get_model_version(name, str(version), mlflow_client=client).tags or {})


def _check_environment(environment: str) -> str:
    from mlcycle.deploy.environments import get_environment

    return get_environment(environment).name


def approve_command(name: str, version: str, environment: str) -> str:
    """The exact command that approves ``version`` of ``name`` for ``environment``."""
    return f'mlcycle approve models:/{name}/{version} --env {environment} --reason "<why it may serve>"'


def get_approval(name: str, version: str | int, environment: str, *, client: Any = None) -> Approval | None:
    """The recorded approval of a version for an environment, or None if there never was one."""
    tags = _tags(_client(client), name, str(version))
    status = tags.get(approval_tag(environment, "status"))
    if not status:
        return None

    def tag(key: str) -> str:
        return tags.get(approval_tag(environment, key), "")

    return Approval(
        name,
        str(version),
        environment,
        status,
        tag("by"),
        tag("at"),
        tag("reason"),
        tag("revoked_by"),
        tag("revoked_at"),
        tag("revoke_reason"),
    )


def approvals_of(name: str, version: str | int, *, client: Any = None) -> list[Approval]:
    """Every environment's approval state recorded on a version."""
    tags = _tags(_client(client), name, str(version))
    environments = sorted({k.split(".")[2] for k in tags if k.startswith(TAG_PREFIX + ".") and k.endswith(".status")})
    return [a for env in environments if (a := get_approval(name, version, env, client=client))]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _who(by: str | None) -> str:
    from mlcycle.registry.versions import actor

    return by or actor()


def approve(
    name: str, version: str | int, environment: str, reason: str, *, by: str | None = None, client: Any = None
) -> Approval:
    """Record that ``version`` of ``name`` may be served in ``environment``, by whom and why.

    Raises:
        InvalidInputError: no reason given, or an unknown environment.
        ModelNotFoundError: no such version.
    """
    from mlcycle.governance import audit

    if not reason.strip():
        raise InvalidInputError("say why this version may serve there (--reason)", field="reason")
    environment = _check_environment(environment)
    client = _client(client)
    version = str(version)
    _tags(client, name, version)
    who, at = _who(by), _now()
    values = {
        "status": APPROVED,
        "by": who,
        "at": at,
        "reason": reason,
        "revoked_by": "",
        "revoked_at": "",
        "revoke_reason": "",
    }
    for key, value in values.items():
        client.set_model_version_tag(name, version, approval_tag(environment, key), value)
    audit.record(
        name, version, "approval.granted", details={"environment": environment, "reason": reason}, by=who, client=client
    )
    log.info("approved %s v%s for %s by %s", name, version, environment, who)
    return Approval(name, version, environment, APPROVED, who, at, reason)


def revoke(
    name: str, version: str | int, environment: str, reason: str, *, by: str | None = None, client: Any = None
) -> Approval:
    """Withdraw the approval of ``version`` for ``environment``; it is refused there again.

    A version already serving keeps serving until it is replaced or rolled back (revoking does not
    touch the cluster); every later deploy, promotion or canary promotion of it is refused.

    Raises:
        InvalidInputError: no reason, or nothing approved to revoke.
    """
    from mlcycle.governance import audit

    if not reason.strip():
        raise InvalidInputError("say why the approval is withdrawn (--reason)", field="reason")
    environment = _check_environment(environment)
    client = _client(client)
    version = str(version)
    current = get_approval(name, version, environment, client=client)
    if current is None or not current.approved:
        raise InvalidInputError(
            f"models:/{name}/{version} has no approval for {environment} to revoke", field="version"
        )
    who, at = _who(by), _now()
    for key, value in {"status": REVOKED, "revoked_by": who, "revoked_at": at, "revoke_reason": reason}.items():
        client.set_model_version_tag(name, version, approval_tag(environment, key), value)
    audit.record(
        name, version, "approval.revoked", details={"environment": environment, "reason": reason}, by=who, client=client
    )
    log.info("revoked the approval of %s v%s for %s by %s", name, version, environment, who)
    return Approval(name, version, environment, REVOKED, current.by, current.at, current.reason, who, at, reason)


def is_protected(environment: str, settings: Any = None) -> bool:
    """True when ``environment`` is listed in ``MLCYCLE_PROTECTED_ENVIRONMENTS``."""
    if settings is None:
        from mlcycle.config import load_settings

        settings = load_settings()
    return environment in settings.protected


def require_approval(
    name: str, version: str | int, environment: str, *, settings: Any = None, client: Any = None
) -> Approval | None:
    """Refuse to serve ``version`` in a protected ``environment`` without a standing approval.

    Returns:
        The approval, or None when ``environment`` is not protected.

    Raises:
        ApprovalRequiredError: the environment is protected and the version has no approval, or its
            approval was revoked; the message says which and gives the command that approves it.
    """
    if not is_protected(environment, settings):
        return None
    version = str(version)
    approval = get_approval(name, version, environment, client=client)
    if approval is not None and approval.approved:
        return approval
    if approval is None:
        missing = f"has no approval for {environment}"
    else:
        missing = (
            f"had its approval for {environment} revoked by {approval.revoked_by} at "
            f"{approval.revoked_at} ({approval.revoke_reason})"
        )
    raise ApprovalRequiredError(
        f"{environment} is protected (MLCYCLE_PROTECTED_ENVIRONMENTS) and models:/{name}/{version} {missing}; "
        f"approve it with: {approve_command(name, version, environment)}",
        field="approval",
    )
