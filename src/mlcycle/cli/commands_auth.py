"""``mlcycle server [--auth]`` and ``mlcycle teams sync``: MLflow with authentication, one user per team.

Parsing and printing only: the work is in :mod:`mlcycle.auth`.
"""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from mlcycle.cli.app import app, configured_settings

teams_app = typer.Typer(help="MLflow users for teams: one per team, owning exactly its <team>.* resources.",
                        no_args_is_help=True)
app.add_typer(teams_app, name="teams")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command("server")
def server(
    auth: bool = typer.Option(False, "--auth", help="Require MLflow users (basic auth) and per-team permissions."),
    port: int = typer.Option(5000, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    start_timeout: float = typer.Option(120.0, "--start-timeout", min=1, help="Seconds to wait for it to answer."),
) -> None:
    """Run the MLflow tracking server on 127.0.0.1 over the local store until Ctrl-C."""
    from mlcycle.auth import server as tracking_server

    settings = configured_settings()
    signal.signal(signal.SIGTERM, _interrupt)  # a supervisor's SIGTERM stops it like Ctrl-C
    process = tracking_server.start(settings, port, auth=auth)
    url = f"http://127.0.0.1:{port}"
    try:
        tracking_server.wait_until_up(process, url, start_timeout)
        typer.echo(f"MLflow tracking server: {url}  (store: {settings.effective_tracking_uri})", err=True)
        if auth:
            files = tracking_server.AuthFiles(settings.home_dir)
            typer.echo(f"authentication on; admin credentials in {files.admin_env}; next: "
                       f"MLCYCLE_TRACKING_URI={url} mlcycle teams sync", err=True)
        process.wait()
        raise tracking_server.TrackingServerError(f"mlflow server exited with code {process.returncode}")
    except KeyboardInterrupt:
        typer.echo("stopping the MLflow tracking server", err=True)
    finally:
        tracking_server.stop(process)


@teams_app.command("sync")
def sync(
    teams: str | None = typer.Option(None, "--teams", help="Comma-separated teams (default: profiles/<team>/)."),
    profiles: Path = typer.Option(Path("profiles"), "--profiles", help="The Kubeflow profiles directory."),
    apply_secrets: bool = typer.Option(False, "--apply-secrets",
                                       help="Also store each team's credentials in its namespace's Secret."),
    json_output: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Create (idempotently) one MLflow user per team with MANAGE on its <team>.* experiments and models."""
    import json

    from mlcycle.auth import secrets
    from mlcycle.auth import server as tracking_server
    from mlcycle.auth import teams as team_users
    from mlcycle.auth.credentials import Credentials

    settings = configured_settings()
    names = team_users.team_names(profiles, teams)
    if settings.mlflow_username and settings.mlflow_password is not None:
        admin = Credentials(settings.mlflow_username, settings.mlflow_password.get_secret_value())
    else:
        admin = tracking_server.admin_credentials(settings)
    results = team_users.sync_teams(settings.effective_tracking_uri, admin, names, settings.home_dir)
    applied: dict[str, str] = {}
    if apply_secrets:
        api = secrets.load_core_api()
        for r in results:
            assert r.credentials is not None
            applied[r.team] = secrets.apply_secret(api, secrets.render_team_secret(r.team, r.credentials))
    if json_output:
        typer.echo(json.dumps([{
            "team": r.team, "user_created": r.user_created, "password_reset": r.password_reset,
            "credentials_file": str(r.credentials_file), "experiments": r.experiments,
            "registered_models": r.registered_models, "secret": applied.get(r.team)} for r in results], indent=2))
        return
    for r in results:
        did = "created" if r.user_created else "password reset" if r.password_reset else "exists"
        secret = f"; secret {secrets.SECRET_NAME} {applied[r.team]}" if r.team in applied else ""
        typer.echo(f"{r.team}: user {did}; MANAGE on {len(r.experiments)} experiment(s), "
                   f"{len(r.registered_models)} model(s); credentials {r.credentials_file}{secret}")
