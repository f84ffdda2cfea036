"""``mlcycle serve``, ``mlcycle promote`` and ``mlcycle rollback``: the local predictor and its aliases.

``serve`` runs the predictor (``python -m inference``, the same entry point as the image) in this
process; a running predictor follows the ``champion`` alias, so ``promote``/``rollback`` in another
terminal move what it serves within one poll interval (``MLCYCLE_SERVING_POLL_SECONDS``).
"""

from __future__ import annotations

import os
import sys

import typer

from mlcycle.cli.app import app, configured_settings

MODELS_ARGUMENT = typer.Argument(..., help="Model URIs: models:/wine@champion, models:/wine/3, wine@champion.")


@app.command("serve")
def serve(
    models: list[str] = MODELS_ARGUMENT,
    http_port: int = typer.Option(8080, "--http-port", help="HTTP port (v1 and v2 REST, /metrics)."),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="v2 gRPC port (default: no gRPC)."),
    canary: str | None = typer.Option(None, "--canary", help="A second version, e.g. models:/wine@challenger."),
    canary_percent: float = typer.Option(10.0, "--canary-percent", min=0, max=100, help="Traffic share of --canary."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0: all)."),
    workers: str = typer.Option(
        "1", "--workers", help="REST worker processes, or 'auto' for one per core (checked by the predictor)."
    ),
    poll_seconds: float | None = typer.Option(
        None, "--poll-seconds", min=0, help="Check the aliases this often (MLCYCLE_SERVING_POLL_SECONDS)."
    ),
) -> None:
    """Serve models over KServe's v1/v2 REST (and gRPC) protocols until interrupted."""
    from mlcycle.config import settings_env

    settings = configured_settings()
    argv = [
        sys.executable,
        "-m",
        "inference",
        *models,
        "--http-port",
        str(http_port),
        "--host",
        host,
        "--workers",
        str(workers),
    ]
    if grpc_port is not None:
        argv += ["--grpc-port", str(grpc_port)]
    if canary:
        argv += ["--canary", canary, "--canary-percent", str(canary_percent)]
    env = {**os.environ, **settings_env(settings)}
    if poll_seconds is not None:
        env["MLCYCLE_SERVING_POLL_SECONDS"] = str(poll_seconds)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - no shell; the predictor replaces this process: signals go straight to it


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Model name (base name; the team comes from --team)."),
    version: str | None = typer.Option(None, "--version", help="The version to promote (default: challenger's)."),
    reason: str = typer.Option("", "--reason", help="Why; recorded on the version and in the audit trail."),
    by: str | None = typer.Option(None, "--by", help="Who; default: $MLCYCLE_ACTOR or the login name."),
    alias: str = typer.Option("challenger", "--from-alias", help="Without --version: the alias whose version "
                                                                  "becomes champion."),
) -> None:
    """Move ``champion`` to a version that passed the gate, is servable and (where champion serves a protected
    environment) is approved; otherwise exit 2 with the reason and nothing moved. The running predictor follows."""
    from mlcycle.release import promote as promote_version

    move = promote_version(name, configured_settings(), version=version, by=by, reason=reason, alias=alias)
    if move.previous == move.version:
        typer.echo(f"{move.name}: version {move.version} already is the champion")
        return
    was = f"version {move.previous}" if move.previous else "nothing"
    typer.echo(f"{move.name}: champion is now version {move.current} (was {was})")


@app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="Model name (base name; the team comes from --team)."),
    reason: str = typer.Option("", "--reason", help="Why; recorded on the version and in the audit trail."),
    by: str | None = typer.Option(None, "--by", help="Who; default: $MLCYCLE_ACTOR or the login name."),
) -> None:
    """Move ``champion`` back to the previous champion recorded on the current one (never blocked)."""
    from mlcycle.release import rollback as rollback_version

    move = rollback_version(name, configured_settings(), by=by, reason=reason)
    typer.echo(f"{move.name}: champion rolled back to version {move.current} (from version {move.previous})")
