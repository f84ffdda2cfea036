"""``mlcycle submit``, ``mlcycle schedule`` and ``mlcycle ui``: pipelines on a KFP host, and the MLflow UI.

``submit`` and ``schedule`` compile the chosen pipeline (imported lazily, as every presentation layer
imports ``pipelines``) and hand the YAML to :mod:`mlcycle.kfp_client`. ``ui`` runs MLflow's server on
loopback against the configured store until Ctrl-C, and stops it (and only it) on the way out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from mlcycle.cli.app import app, configured_settings
from mlcycle.errors import InvalidInputError

PIPELINE_OPTION = typer.Option(
    "training", "--pipeline",
    help="training, monitoring, batch, registration, or the fan-out ones: parallel-training, sharded-batch.")
PARAM_OPTION = typer.Option([], "--param", "-p", help="Pipeline parameter key=value (repeatable).")
HOST_OPTION = typer.Option(None, "--host", help="KFP API endpoint (default: $KFP_HOST).")
NAMESPACE_OPTION = typer.Option(None, "--namespace", "-n",
                                help="Kubeflow profile namespace (default: the team, else the client's).")
PACKAGE_OPTION = typer.Option(None, "--package", help="A compiled pipeline YAML to use instead of compiling now.")


IMAGE_OPTION = typer.Option(None, "--image", help="Run the steps in this image (built FROM mlcycle's, with your "
                                                   "trainer's code in it).")


def compile_pipeline(pipeline: str, out_dir: Path, image: str | None = None) -> Path:
    """Compile the ``--pipeline`` to ``out_dir/<name>.yaml`` and return the path.

    Raises:
        InvalidInputError: an unknown pipeline, or one this checkout does not have.
    """
    from kfp import compiler

    from mlcycle.kfp_client import pipeline_function_name
    from pipelines.compile import pipelines

    name = pipeline_function_name(pipeline)
    available = pipelines()
    if name not in available:
        raise InvalidInputError(f"the {pipeline} pipeline (pipelines/{name}.py) is not in this installation",
                                field="pipeline")
    path = out_dir / f"{name}.yaml"
    compiler.Compiler().compile(available[name], str(path))
    if image:
        from pipelines.compile import use_image

        use_image(path, image)
    return path


def _package(pipeline: str, package: Path | None, tmp: str, image: str | None = None) -> Path:
    from rich.console import Console

    if package is not None and image:
        raise InvalidInputError("give --package or --image, not both (compile the package with --image)",
                                field="image")
    if package is not None:
        if not package.is_file():
            raise InvalidInputError(f"--package {package} does not exist", field="package")
        return package
    with Console(stderr=True).status(f"compiling the {pipeline} pipeline"):
        return compile_pipeline(pipeline, Path(tmp), image)


@app.command("submit", rich_help_panel="Kubeflow Pipelines cluster")
def submit(
    pipeline: str = PIPELINE_OPTION,
    param: list[str] = PARAM_OPTION,
    host: str | None = HOST_OPTION,
    namespace: str | None = NAMESPACE_OPTION,
    experiment: str | None = typer.Option(None, "--experiment", help="KFP experiment (default: mlcycle-<pipeline>)."),
    run_name: str | None = typer.Option(None, "--run-name", help="Display name of the run."),
    package: Path | None = PACKAGE_OPTION,
    image: str | None = IMAGE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the created run as JSON."),
) -> None:
    """Compile a pipeline and start one run of it on a Kubeflow Pipelines host."""
    from dataclasses import asdict

    from mlcycle import kfp_client

    kfp_client.pipeline_function_name(pipeline)
    api = kfp_client.resolve_host(host)
    params = kfp_client.parse_params(param)
    settings = configured_settings()
    namespace = namespace or settings.team or None
    with tempfile.TemporaryDirectory(prefix="mlcycle-submit-") as tmp:
        path = _package(pipeline, package, tmp, image)
        kfp_client.check_params(path, params)
        client = kfp_client.connect(api, namespace)
        run = kfp_client.submit_run(client, path, params, experiment=experiment or kfp_client.EXPERIMENTS[pipeline],
                                    namespace=namespace, run_name=run_name, host=api)
    if as_json:
        typer.echo(json.dumps(asdict(run), sort_keys=True))
        return
    typer.echo(f"run {run.run_id} of the {pipeline} pipeline started in experiment {run.experiment}"
               f"{f' ({namespace})' if namespace else ''}: {run.url}")


@app.command("schedule", rich_help_panel="Kubeflow Pipelines cluster")
def schedule(
    pipeline: str = typer.Option("monitoring", "--pipeline", help="training, monitoring or batch."),
    every: str = typer.Option("1h", "--every", help="Period: 10m, 1h, 1d (minutes dividing 60, hours dividing 24)."),
    cron: str | None = typer.Option(None, "--cron", help="6-field KFP cron (seconds first) instead of --every."),
    param: list[str] = PARAM_OPTION,
    host: str | None = HOST_OPTION,
    namespace: str | None = NAMESPACE_OPTION,
    experiment: str | None = typer.Option(None, "--experiment", help="KFP experiment (default: mlcycle-<pipeline>)."),
    name: str | None = typer.Option(None, "--name", help="Recurring-run name (default: <pipeline>-every-<period>)."),
    package: Path | None = PACKAGE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the created recurring run as JSON."),
) -> None:
    """Create a recurring run of a pipeline on a Kubeflow Pipelines host (monitoring: the window follows the period)."""
    from dataclasses import asdict

    from mlcycle import kfp_client
    from mlcycle.monitoring.schedule import cron_for

    kfp_client.pipeline_function_name(pipeline)
    api = kfp_client.resolve_host(host)
    params = kfp_client.parse_params(param)
    expression = cron or cron_for(every)
    if pipeline == "monitoring":
        # Consecutive drift windows tile time only when the window is the period.
        params.setdefault("since", every)
    settings = configured_settings()
    namespace = namespace or settings.team or None
    job_name = name or (f"{pipeline}-scheduled" if cron else f"{pipeline}-every-{every}")
    with tempfile.TemporaryDirectory(prefix="mlcycle-schedule-") as tmp:
        path = _package(pipeline, package, tmp)
        kfp_client.check_params(path, params)
        client = kfp_client.connect(api, namespace)
        scheduled = kfp_client.schedule_run(client, path, params, cron=expression,
                                            experiment=experiment or kfp_client.EXPERIMENTS[pipeline],
                                            job_name=job_name, namespace=namespace, host=api)
    if as_json:
        typer.echo(json.dumps(asdict(scheduled), sort_keys=True))
        return
    typer.echo(f"recurring run {scheduled.recurring_run_id} ({scheduled.job_name}) runs the {pipeline} pipeline "
               f"on '{scheduled.cron}' in experiment {scheduled.experiment}")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_ui_command(settings, port: int) -> list[str]:
    """The ``mlflow server`` argv for the configured stores, on loopback, with one worker."""
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", settings.effective_tracking_uri,
               "--registry-store-uri", settings.effective_registry_uri,
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if settings.is_local:
        # Local runs keep artifacts as plain files (absolute paths in each experiment); the UI reads them
        # where they are instead of proxying a second artifact store.
        command += ["--default-artifact-root", settings.effective_artifact_root, "--no-serve-artifacts"]
    return command


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@app.command("ui")
def ui(
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
    start_timeout: float = typer.Option(120.0, "--start-timeout", min=1, help="Seconds to wait for the UI to answer."),
) -> None:
    """Start the MLflow UI on 127.0.0.1 against the configured store; runs until Ctrl-C."""
    settings = configured_settings()
    chosen = port or free_port()
    url = f"http://127.0.0.1:{chosen}"
    if port is not None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                raise InvalidInputError(f"port {port} on 127.0.0.1 is in use; pick another or leave --port out",
                                        field="port")
    # SIGTERM (e.g. from a supervisor) stops the UI like Ctrl-C does, so the server never outlives us; and
    # Ctrl-C stops it even when started with SIGINT ignored (a background job of a non-interactive shell).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    # SERVER_ENV: no GenAI job workers (mlcycle runs no MLflow jobs); waiting and stopping as `mlcycle server`.
    from mlcycle.auth.server import SERVER_ENV, TrackingServerError, stop, wait_until_up

    process = subprocess.Popen(mlflow_ui_command(settings, chosen), env={**SERVER_ENV, **os.environ},  # noqa: S603 (our argv)
                               start_new_session=True)
    try:
        wait_until_up(process, url, start_timeout)
        typer.echo(f"MLflow UI: {url}  (store: {settings.effective_tracking_uri}); Ctrl-C stops it", err=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(url)
        while process.poll() is None:
            time.sleep(0.5)
        raise TrackingServerError(f"mlflow server exited with code {process.returncode}")
    except KeyboardInterrupt:
        typer.echo("stopping the MLflow UI", err=True)
    finally:
        stop(process)
