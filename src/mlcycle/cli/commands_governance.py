"""``mlcycle approve|revoke|audit|card``: approvals, the audit trail and model cards."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlcycle.cli.app import app, configured_settings

ENV_OPTION = typer.Option(..., "--env", "-e", help="Environment the approval is for: dev, staging or prod.")
REASON_OPTION = typer.Option(..., "--reason", "-r", help="Why (recorded on the version and in the audit trail).")


def _version_ref(model: str, team: str) -> tuple[str, str]:
    """``(registered name, version)`` of ``models:/wine/5``, ``wine/5`` or an alias (resolved now)."""
    from mlcycle.errors import InvalidInputError, ModelNotFoundError
    from mlcycle.registry.uris import parse_model_ref
    from mlcycle.registry.versions import alias_version

    ref = parse_model_ref(model, team)
    if not ref.is_registry:
        raise InvalidInputError(
            f"{model!r} is not a registered model version; use models:/<name>/<version>", field="model"
        )
    if ref.version is not None:
        return ref.name, ref.version
    version = alias_version(ref.name, ref.alias)
    if version is None:
        raise ModelNotFoundError(f"{ref.uri} does not exist", field="model")
    return ref.name, version


@app.command("approve")
def approve(
    model: str = typer.Argument(..., help="The version: models:/wine/5 (an @alias is resolved now)."),
    environment: str = ENV_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Approve a version for a protected environment (MLCYCLE_PROTECTED_ENVIRONMENTS); who = MLCYCLE_ACTOR."""
    from mlcycle.governance.approvals import approve as approve_version
    from mlcycle.governance.approvals import is_protected

    s = configured_settings()
    name, version = _version_ref(model, s.team)
    approval = approve_version(name, version, environment, reason)
    typer.echo(f"approved models:/{name}/{version} for {environment} by {approval.by} at {approval.at}")
    if not is_protected(environment, s):
        typer.echo(
            f"note: {environment} is not protected here (MLCYCLE_PROTECTED_ENVIRONMENTS); "
            "the approval is recorded but not required",
            err=True,
        )


@app.command("revoke")
def revoke(
    model: str = typer.Argument(..., help="The version: models:/wine/5."),
    environment: str = ENV_OPTION,
    reason: str = REASON_OPTION,
) -> None:
    """Withdraw a version's approval; deploys and promotions to that environment are refused again."""
    from mlcycle.governance.approvals import revoke as revoke_approval

    s = configured_settings()
    name, version = _version_ref(model, s.team)
    approval = revoke_approval(name, version, environment, reason)
    typer.echo(
        f"revoked the approval of models:/{name}/{version} for {environment} "
        f"(by {approval.revoked_by} at {approval.revoked_at})"
    )


@app.command("audit")
def audit_trail(
    model: str = typer.Argument(..., help="Registered model name (wine or team-a.wine)."),
    version: str | None = typer.Option(None, "--version", help="Only this version's trail."),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of events."),
    check: bool = typer.Option(False, "--verify", help="Check the chain: fail if an entry was changed or removed."),
) -> None:
    """Print the model's audit timeline: every alias move, gate decision, approval, deploy, canary step,
    promotion and rollback, oldest first."""
    from mlcycle.governance import audit
    from mlcycle.registry.uris import qualified_name

    s = configured_settings()
    name = qualified_name(model, s.team)
    _require_model(name)
    if check:
        problems = audit.verify(name)
        for problem in problems:
            typer.echo(f"audit trail of {name}: {problem}", err=True)
        if problems:
            raise audit.AuditIntegrityError(f"audit trail of {name} failed verification ({len(problems)} problems)")
        typer.echo(f"audit trail of {name}: intact ({len(audit.timeline(name))} events)")
        return
    events = audit.version_events(name, version) if version else audit.timeline(name)
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in events], indent=2))
    else:
        typer.echo(audit.format_timeline(events))


def _require_model(name: str) -> None:
    from mlcycle.registry import store

    store.get_registered_model(name)  # ModelNotFoundError, or RegistryUnavailableError for an outage


@app.command("card")
def card(
    model: str = typer.Argument(..., help="The version: wine/5 or models:/wine@champion."),
    as_html: bool = typer.Option(False, "--html", help="Print the HTML card instead of Markdown."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the card to this file."),
    intended_use: str | None = typer.Option(
        None, "--intended-use", help="Record what the model is for first (all its cards show it)."
    ),
    store: bool = typer.Option(True, "--store/--no-store", help="Keep the card with the version's run."),
) -> None:
    """Generate a version's model card from what MLflow recorded, store it with the version, and show it."""
    from mlcycle.governance.cards import generate_card, set_intended_use

    s = configured_settings()
    name, version = _version_ref(model, s.team)
    if intended_use:
        set_intended_use(name, intended_use)
    stored = generate_card(name, version, store=store)
    text = stored.html if as_html else stored.markdown
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
    else:
        typer.echo(text)
    if stored.location:
        typer.echo(f"stored as {stored.location} (tag mlcycle.card)", err=True)
