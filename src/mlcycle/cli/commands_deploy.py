"""``mlcycle deploy render|apply|promote|rollback|analyze|status``: models on a KServe cluster."""

from __future__ import annotations

import json

import typer

from mlcycle.cli.app import app, configured_settings, settings

deploy_app = typer.Typer(
    help="Serve registered models on a Kubeflow/KServe cluster: render, roll out, promote, roll back.",
    no_args_is_help=True,
)
app.add_typer(deploy_app, name="deploy")

ENV_OPTION = typer.Option("prod", "--env", "-e", help="Environment: dev, staging or prod.")


def _print_result(result) -> None:
    from dataclasses import asdict

    typer.echo(json.dumps(asdict(result), sort_keys=True))


@deploy_app.command("render")
def render(
    model: str = typer.Argument(..., help="Model name (wine or team-a.wine)."),
    environment: str = ENV_OPTION,
    version: int | None = typer.Option(None, "--version", help="Version to pin (default: the env's alias)."),
    canary: int | None = typer.Option(None, "--canary", help="canaryTrafficPercent for this revision."),
) -> None:
    """Print the InferenceService YAML for MODEL in an environment (no cluster needed)."""
    import yaml

    from mlcycle.deploy.render import render_inference_service

    s = settings()
    isvc = render_inference_service(model, environment, team=s.team, version=version, canary_percent=canary)
    typer.echo(yaml.safe_dump(isvc, sort_keys=False), nl=False)


@deploy_app.command("apply")
def apply(
    model: str = typer.Argument(..., help="Model name (wine or team-a.wine)."),
    version: int = typer.Argument(..., help="Registered version to roll out."),
    environment: str = ENV_OPTION,
) -> None:
    """Roll VERSION out: 100% the first time, else as a canary with the environment's share."""
    from mlflow import MlflowClient

    from mlcycle.deploy.kube import load_custom_objects_api
    from mlcycle.deploy.rollout import deploy_version

    s = configured_settings()
    api = load_custom_objects_api()
    _print_result(deploy_version(api, MlflowClient(), model, version, environment, team=s.team))


@deploy_app.command("promote")
def promote(model: str = typer.Argument(..., help="Model name."), environment: str = ENV_OPTION) -> None:
    """Give the canary all traffic (removes canaryTrafficPercent)."""
    from mlflow import MlflowClient

    from mlcycle.deploy.kube import load_custom_objects_api
    from mlcycle.deploy.rollout import promote_canary

    s = configured_settings()
    api = load_custom_objects_api()
    _print_result(promote_canary(api, MlflowClient(), model, environment, team=s.team))


@deploy_app.command("rollback")
def rollback(model: str = typer.Argument(..., help="Model name."), environment: str = ENV_OPTION) -> None:
    """Send all traffic back to the previous revision (canaryTrafficPercent: 0)."""
    from mlflow import MlflowClient

    from mlcycle.deploy.kube import load_custom_objects_api
    from mlcycle.deploy.rollout import rollback_canary

    s = configured_settings()
    api = load_custom_objects_api()
    _print_result(rollback_canary(api, MlflowClient(), model, environment, team=s.team))


@deploy_app.command("analyze")
def analyze(
    model: str = typer.Argument(..., help="Model name."),
    environment: str = ENV_OPTION,
    prometheus: str = typer.Option(..., "--prometheus", help="Prometheus base URL, e.g. http://prometheus:9090."),
    window: str = typer.Option("10m", "--window", help="PromQL range over which to compare."),
    auto_promote: bool = typer.Option(False, "--auto-promote", help="Promote a healthy canary too."),
) -> None:
    """Compare the canary with the champion; roll a bad canary back (and promote a good one if asked)."""
    from dataclasses import asdict

    from mlflow import MlflowClient

    from mlcycle.deploy.kube import load_custom_objects_api
    from mlcycle.deploy.prometheus import PrometheusReader
    from mlcycle.deploy.rollout import analyze_canary

    s = configured_settings()
    api = load_custom_objects_api()
    reader = PrometheusReader(prometheus)
    try:
        decision, result = analyze_canary(
            api,
            MlflowClient(),
            reader,
            model,
            environment,
            team=s.team,
            window=window,
            auto_promote=auto_promote,
        )
    finally:
        reader.close()
    typer.echo(
        json.dumps({"decision": asdict(decision), "rollout": asdict(result) if result else None}, sort_keys=True)
    )


@deploy_app.command("analyze-all")
def analyze_all(
    prometheus: str = typer.Option(..., "--prometheus", help="Prometheus base URL, e.g. http://prometheus:9090."),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Namespace to scan (default: the team's, else the platform's)."
    ),
    window: str = typer.Option("10m", "--window", help="PromQL range over which to compare."),
    auto_promote: bool = typer.Option(False, "--auto-promote", help="Promote healthy canaries too."),
) -> None:
    """Analyse every canary in a namespace; roll bad ones back (the team's CronJob runs this)."""
    from mlflow import MlflowClient

    from mlcycle.deploy.environments import PLATFORM_NAMESPACE
    from mlcycle.deploy.kube import load_custom_objects_api
    from mlcycle.deploy.prometheus import PrometheusReader
    from mlcycle.deploy.rollout import analyze_namespace

    s = configured_settings()
    api = load_custom_objects_api()
    reader = PrometheusReader(prometheus)
    try:
        summaries = analyze_namespace(
            api,
            MlflowClient(),
            reader,
            namespace or s.team or PLATFORM_NAMESPACE,
            team=s.team,
            window=window,
            auto_promote=auto_promote,
        )
    finally:
        reader.close()
    typer.echo(json.dumps(summaries, sort_keys=True))


@deploy_app.command("status")
def status(model: str = typer.Argument(..., help="Model name (wine or team-a.wine).")) -> None:
    """Where each version of MODEL serves, from the registry's mlcycle.serving.<env>.* tags."""
    from mlflow import MlflowClient

    from mlcycle.deploy.environments import ENVIRONMENTS
    from mlcycle.deploy.serving_state import read_serving_state
    from mlcycle.registry.uris import qualified_name

    s = configured_settings()
    name = qualified_name(model, s.team)
    client = MlflowClient()
    state = {env: read_serving_state(client, name, env) for env in ENVIRONMENTS}
    typer.echo(json.dumps({"model": name, "serving": state}, sort_keys=True))
