"""``mlcycle register`` and ``mlcycle evaluate``: models trained elsewhere, through the same gate.

``register`` runs the registration pipeline (kfp.local): import → evaluate against the champion → servability
check and gate → the release path. ``evaluate`` scores a model (and a champion) on a holdout and writes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from mlcycle.cli.app import app, configured_settings
from mlcycle.cli.commands_lifecycle import (
    FLOOR_OPTION,
    GATE_METRIC_OPTION,
    MIN_IMPROVEMENT_OPTION,
    _print_summary,
    check_gate_options,
)

MODEL_URI_ARGUMENT = typer.Argument(..., metavar="MODEL_URI",
                                    help="runs:/<id>/<path>, models:/<name>/<version> (or @alias), or a local "
                                         "MLflow model directory.")
HOLDOUT_OPTION = typer.Option(..., "--holdout", help="The rows to score on (CSV/Parquet path or s3:// URI), "
                                                     "with the target column.")
TARGET_OPTION = typer.Option(..., "--target", help="Target column of the holdout.")
TASK_OPTION = typer.Option("", "--task", help="classification or regression (default: inferred from the target).")


@app.command("register")
def register(
    model_uri: str = MODEL_URI_ARGUMENT,
    name: str = typer.Option(..., "--name", help="Registered-model name (the team prefix is added)."),
    holdout: str = HOLDOUT_OPTION,
    target: str = TARGET_OPTION,
    reference: str = typer.Option("", "--reference", help="Drift reference rows (CSV/Parquet with the target, e.g. "
                                                          "the training data); default: the holdout."),
    task: str = TASK_OPTION,
    team: str | None = typer.Option(None, "--team", help="Team prefix for the registered model."),
    gate_metric: str = GATE_METRIC_OPTION,
    min_improvement: float = MIN_IMPROVEMENT_OPTION,
    floor: float | None = FLOOR_OPTION,
    promote: bool = typer.Option(True, "--promote/--no-promote",
                                 help="Move champion when the gate passes; --no-promote holds the version as "
                                      "challenger for a canary first (then `mlcycle promote`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every step's log."),
) -> None:
    """Register a model trained elsewhere: evaluate it against the champion, gate it, promote it if it passes."""
    from rich.console import Console

    from mlcycle.lifecycle import registered_name_for
    from mlcycle.registry.status import version_summary
    from mlcycle.registry.versions import version_of_run
    from mlcycle.training.imports import normalise_source
    from pipelines.local import run_pipeline
    from pipelines.registration_pipeline import registration_pipeline

    settings = configured_settings(team=team)
    source = normalise_source(model_uri)  # a local directory goes to the steps as an absolute path
    check_gate_options(gate_metric, floor, min_improvement, task)
    console = Console(stderr=as_json)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = None if verbose else settings.log_dir / f"registration-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    arguments = dict(model_uri=source, model_name=name, holdout=holdout, target=target, reference=reference,
                     team=settings.team, task=task, gate_metric=gate_metric, min_improvement=min_improvement,
                     floor="" if floor is None else str(floor), auto_promote=promote)
    with console.status("running the registration pipeline locally") as status:
        def on_step(step: str, result: str) -> None:
            mark = "[green]✓[/]" if result == "SUCCESS" else "[red]✗[/]"
            console.print(f"  {mark} {step}")
            status.update(f"running the registration pipeline locally (after {step})")

        run_id = run_pipeline(registration_pipeline, settings, log_file=log_file, on_step=on_step, **arguments)
    registered_name = registered_name_for("", name, settings.team)
    summary = version_summary(registered_name, version_of_run(registered_name, run_id))
    summary |= import_lineage(run_id, task_given=bool(task))
    summary["log_file"] = str(log_file) if log_file else None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(console, summary)


def import_lineage(run_id: str, *, task_given: bool) -> dict:
    """The source model, task (and whether it was inferred), flavor and reference, from the import run's tags."""
    from mlflow.tracking import MlflowClient

    tags = MlflowClient().get_run(run_id).data.tags
    return {"task": tags.get("mlcycle.task"), "task_inferred": not task_given,
            "source_model_uri": tags.get("mlcycle.source_model_uri"), "flavor": tags.get("mlcycle.flavor"),
            "reference": tags.get("mlcycle.reference_source")}


@app.command("evaluate")
def evaluate(
    model_uri: str = MODEL_URI_ARGUMENT,
    holdout: str = HOLDOUT_OPTION,
    target: str = TARGET_OPTION,
    name: str = typer.Option("", "--name", help="Also score this registered model's champion on the same rows."),
    task: str = TASK_OPTION,
    team: str | None = typer.Option(None, "--team", help="Team prefix of --name."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Score a model on a holdout (and a champion on the same rows); registers nothing, moves nothing."""
    from rich.console import Console
    from rich.table import Table

    from mlcycle.lifecycle import evaluate_uri, registered_name_for

    settings = configured_settings(team=team)
    registered_name = registered_name_for("", name, settings.team) if name else ""
    comparison = evaluate_uri(model_uri, holdout, target, settings, registered_name=registered_name, task=task)
    report = {
        "model_uri": model_uri, "task": comparison.candidate.task, "metrics": comparison.candidate.metrics,
        "registered_name": registered_name or None, "champion": comparison.champion_version,
        "champion_metrics": comparison.champion.metrics if comparison.champion else {},
        "notes": comparison.notes,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"evaluation of {model_uri} ({report['task']})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in report["metrics"].items():
        champion = report["champion_metrics"].get(key)
        table.add_row(key, f"{value:.4f}" + (f"   (champion v{report['champion']} {champion:.4f})"
                                             if champion is not None else ""))
    for note in report["notes"]:
        table.add_row("note", note)
    Console().print(table)
