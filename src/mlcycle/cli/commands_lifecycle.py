"""``mlcycle run training``, ``mlcycle compile`` and ``mlcycle status``: the training pipeline and registry.

The pipelines live in the top-level ``pipelines`` package; like every presentation layer the CLI imports
them lazily, inside the command, and ``mlcycle``'s library modules never do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from mlcycle.cli.app import app, configured_settings
from mlcycle.errors import InvalidInputError

run_app = typer.Typer(help="Run a pipeline locally (kfp.local) against the configured MLflow.",
                      no_args_is_help=True)
app.add_typer(run_app, name="run")


def parse_param_options(values: list[str]) -> dict:
    """``["max_depth=4", "n_estimators=50"]`` → ``{"max_depth": 4, "n_estimators": 50}``."""
    from mlcycle.training.estimators import coerce_param

    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param {item!r}: write key=value, e.g. --param max_depth=4", field="param")
        params[key.strip()] = coerce_param(value)
    return params


@run_app.command("training")
def run_training(
    dataset: str = typer.Option("wine", "--dataset", "-d",
                                help="wine, breast_cancer, synthetic[:rows=N,features=F,classes=C], or a "
                                     "CSV/Parquet path or s3:// URI."),
    model: str = typer.Option("random_forest", "--model", "-m",
                              help="random_forest, hist_gradient_boosting or logistic_regression."),
    param: list[str] = typer.Option([], "--param", "-p", help="Hyperparameter key=value (repeatable)."),
    team: str | None = typer.Option(None, "--team", help="Team prefix for the registered model."),
    name: str = typer.Option("", "--name", help="Registered-model name (default: the dataset's name)."),
    target: str = typer.Option("", "--target", help="Target column (tables only)."),
    trials: int = typer.Option(0, "--trials", min=0, help="Random-search trials (0: none)."),
    test_size: float = typer.Option(0.25, "--test-size", help="Share of rows held out."),
    seed: int = typer.Option(0, "--seed"),
    gate_metric: str = typer.Option("f1_macro", "--gate-metric", help="Metric the gate compares."),
    min_improvement: float = typer.Option(0.0, "--min-improvement", help="How much the candidate must win by."),
    floor: float = typer.Option(0.5, "--floor", help="Worst acceptable metric value."),
    promote: bool = typer.Option(True, "--promote/--no-promote",
                                 help="Move champion when the gate passes; --no-promote holds the version as "
                                      "challenger for a canary first (then `mlcycle promote`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every step's log."),
) -> None:
    """Train, evaluate against the champion, register, and promote if the gate passes."""
    from rich.console import Console

    from mlcycle.registry.gate import GatePolicy
    from mlcycle.registry.status import version_summary
    from mlcycle.training.estimators import check_params
    from pipelines.local import run_pipeline
    from pipelines.training_pipeline import training_pipeline

    settings = configured_settings(team=team)
    params = parse_param_options(param)
    check_params(model, params)  # fail before any step starts
    GatePolicy(metric=gate_metric, min_improvement=min_improvement, floor=floor)
    console = Console(stderr=as_json)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = None if verbose else settings.log_dir / f"training-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    arguments = dict(dataset=dataset, target=target, model_name=name, team=settings.team, model_type=model,
                     params=json.dumps(params), n_trials=trials, test_size=test_size, seed=seed,
                     gate_metric=gate_metric, min_improvement=min_improvement, floor=floor, auto_promote=promote)
    with console.status("running the training pipeline locally") as status:
        def on_step(step: str, result: str) -> None:
            mark = "[green]✓[/]" if result == "SUCCESS" else "[red]✗[/]"
            console.print(f"  {mark} {step}")
            status.update(f"running the training pipeline locally (after {step})")

        run_id = run_pipeline(training_pipeline, settings, log_file=log_file, on_step=on_step, **arguments)
    from mlcycle.lifecycle import registered_name_for
    from mlcycle.registry.versions import version_of_run

    registered_name = registered_name_for(dataset, name, settings.team)
    summary = version_summary(registered_name, version_of_run(registered_name, run_id))
    summary["log_file"] = str(log_file) if log_file else None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(console, summary)


def _print_summary(console, summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"training run → {summary['registered_name']} v{summary['version']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run id", summary["run_id"])
    table.add_row("version", summary["version"])
    for key, value in summary["metrics"].items():
        champion = summary["champion_metrics"].get(key)
        table.add_row(key, f"{value:.4f}" + (f"   (champion {champion:.4f})" if champion is not None else ""))
    colour = "green" if summary["decision"] == "promote" else "yellow"
    table.add_row("gate", f"[{colour}]{summary['decision']}[/]: {summary['reason']}")
    if summary.get("promotion"):
        table.add_row("promotion", summary["promotion"])
    table.add_row("aliases", ", ".join(f"{a} → v{v}" for a, v in sorted(summary["aliases"].items())) or "-")
    if summary.get("log_file"):
        table.add_row("log", summary["log_file"])
    console.print(table)


@app.command("compile")
def compile_pipelines(
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Where to write the YAML "
                                                                "(default: pipelines/compiled/)."),
) -> None:
    """Compile every pipeline to KFP YAML for the Kubeflow Pipelines UI."""
    from pipelines.compile import COMPILED_DIR, compile_all

    for path in compile_all(out_dir or COMPILED_DIR):
        typer.echo(str(path))


@app.command("status")
def status(
    name: str | None = typer.Argument(None, help="Only this registered model."),
    team: str | None = typer.Option(None, "--team", help="Only this team's models."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    limit: int = typer.Option(10, "--limit", min=1, help="Versions shown per model."),
) -> None:
    """Registered models, their versions, aliases and gate decisions."""
    from rich.console import Console
    from rich.table import Table

    from mlcycle.registry.status import registry_status
    from mlcycle.release import serving_explanation

    settings = configured_settings(team=team)
    models = registry_status(settings.team, name)
    if as_json:
        typer.echo(json.dumps([{**m.as_dict(), "serving": {v.version: serving_explanation(v.tags, v.aliases, settings)
                                                            for v in m.versions}} for m in models], indent=2))
        return
    console = Console()
    if not models:
        console.print("no registered models yet — try [bold]mlcycle run training[/]")
        return
    for model in models:
        aliases = ", ".join(f"{a} → v{v}" for a, v in sorted(model.aliases.items())) or "no aliases"
        table = Table(title=f"{model.name}  ({aliases})")
        for column in ("version", "aliases", "gate", "metric", "candidate", "champion", "serving", "reason"):
            table.add_column(column)
        for v in model.versions[:limit]:
            table.add_row(v.version, ", ".join(v.aliases), v.decision, v.metric, v.candidate, v.champion,
                          serving_explanation(v.tags, v.aliases, settings), v.reason)
        console.print(table)
