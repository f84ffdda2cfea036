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


GATE_METRIC_OPTION = typer.Option(
    "", "--gate-metric", help="Metric the gate compares, with its direction: accuracy, f1_macro, roc_auc (higher "
    "is better), log_loss; rmse, mae (lower is better), r2. Default: f1_macro, or rmse for regression.")
MIN_IMPROVEMENT_OPTION = typer.Option(0.0, "--min-improvement", help="How much the candidate must win by.")
FLOOR_OPTION = typer.Option(None, "--floor", help="Worst acceptable value on the metric's own scale (a maximum "
                            "for lower-is-better metrics). Default: 0.5 for accuracy/f1_macro/roc_auc, 0 for r2, "
                            "none for log_loss/rmse/mae.")


def check_gate_options(gate_metric: str, floor: float | None, min_improvement: float, task: str = "") -> None:
    """Fail before any step starts on a gate option that cannot work (the task, when known, must match)."""
    from mlcycle.registry.gate import metric_task, policy_for

    if gate_metric or task:
        policy_for(task or metric_task(gate_metric), gate_metric, floor, min_improvement)


def check_trial_options(trials: int, parallelism: int) -> None:
    """``--parallelism`` is at least 1, and above 1 only fans out ``--trials``."""
    if parallelism < 1:
        raise InvalidInputError(f"--parallelism must be at least 1, got {parallelism}", field="parallelism")
    if parallelism > 1 and trials < 1:
        raise InvalidInputError(f"--parallelism {parallelism} runs search trials in parallel: give --trials N too",
                                field="parallelism")


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
    trainer: str = typer.Option("", "--trainer",
                                help="Your training function, package.module:function: fit(train, target, params) "
                                     "returns a model (replaces --model)."),
    task: str = typer.Option("", "--task", help="classification or regression (default: inferred from the "
                                                "target, and said in the summary)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter key=value for the trainer (repeatable)."),
    team: str | None = typer.Option(None, "--team", help="Team prefix for the registered model."),
    name: str = typer.Option("", "--name", help="Registered-model name (default: the dataset's name)."),
    target: str = typer.Option("", "--target", help="Target column (tables only)."),
    trials: int = typer.Option(0, "--trials", min=0,
                               help="Random-search trials over the trainer's search_space (0: none)."),
    parallelism: int = typer.Option(1, "--parallelism",
                                    help="With --trials: trials run at once, each its own pipeline step and MLflow "
                                         "child run (a ParallelFor); 1: one after another inside the train step."),
    test_size: float = typer.Option(0.25, "--test-size", help="Share of rows held out."),
    seed: int = typer.Option(0, "--seed"),
    gate_metric: str = GATE_METRIC_OPTION,
    min_improvement: float = MIN_IMPROVEMENT_OPTION,
    floor: float | None = FLOOR_OPTION,
    promote: bool = typer.Option(True, "--promote/--no-promote",
                                 help="Move champion when the gate passes; --no-promote holds the version as "
                                      "challenger for a canary first (then `mlcycle promote`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every step's log."),
) -> None:
    """Train, evaluate against the champion, register, and promote if the gate passes."""
    from rich.console import Console

    from mlcycle.registry.status import version_summary
    from mlcycle.training.estimators import check_params
    from mlcycle.training.trainers import load_trainer
    from pipelines.local import run_pipeline
    from pipelines.training_pipeline import build_training_pipeline, training_pipeline

    check_trial_options(trials, parallelism)
    settings = configured_settings(team=team)
    params = parse_param_options(param)
    if trainer:
        load_trainer(trainer)  # fail before any step starts: the reference must import
    else:
        check_params(model, params)
    check_gate_options(gate_metric, floor, min_improvement, task)
    console = Console(stderr=as_json)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = None if verbose else settings.log_dir / f"training-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    arguments = dict(dataset=dataset, target=target, model_name=name, team=settings.team, model_type=model,
                     trainer=trainer, task=task, params=json.dumps(params), n_trials=trials, test_size=test_size,
                     seed=seed, gate_metric=gate_metric, min_improvement=min_improvement,
                     floor="" if floor is None else str(floor), auto_promote=promote)
    with console.status("running the training pipeline locally") as status:
        def on_step(step: str, result: str) -> None:
            mark = "[green]✓[/]" if result == "SUCCESS" else "[red]✗[/]"
            console.print(f"  {mark} {step}")
            status.update(f"running the training pipeline locally (after {step})")

        pipeline = build_training_pipeline(parallelism) if parallelism > 1 else training_pipeline
        run_id = run_pipeline(pipeline, settings, log_file=log_file, on_step=on_step, **arguments)
    from mlcycle.lifecycle import registered_name_for
    from mlcycle.registry.versions import version_of_run

    registered_name = registered_name_for(dataset, name, settings.team)
    summary = version_summary(registered_name, version_of_run(registered_name, run_id))
    summary |= run_lineage(run_id, task_given=bool(task))
    summary["log_file"] = str(log_file) if log_file else None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(console, summary)


def run_lineage(run_id: str, *, task_given: bool) -> dict:
    """The trainer, its code version, the task (and whether it was inferred) and flavor, from the run's tags."""
    from mlflow.tracking import MlflowClient

    tags = MlflowClient().get_run(run_id).data.tags
    return {"task": tags.get("mlcycle.task"), "task_inferred": not task_given, "trainer": tags.get("mlcycle.trainer"),
            "trainer_code_version": tags.get("mlcycle.trainer_code_version"), "flavor": tags.get("mlcycle.flavor")}


def _print_summary(console, summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"training run → {summary['registered_name']} v{summary['version']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run id", summary["run_id"])
    table.add_row("version", summary["version"])
    if summary.get("task"):
        table.add_row("task", summary["task"] + (" (inferred from the target)" if summary.get("task_inferred") else ""))
    if summary.get("trainer"):
        table.add_row("trainer", f"{summary['trainer']} ({summary.get('trainer_code_version')}, "
                                 f"{summary.get('flavor')} flavor)")
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
    image: str | None = typer.Option(None, "--image", help="Run the steps in this image, built FROM mlcycle's "
                                                           "with your trainer's code in it."),
) -> None:
    """Compile every pipeline to KFP YAML for the Kubeflow Pipelines UI."""
    from pipelines.compile import COMPILED_DIR, compile_all

    if image and out_dir is None:
        raise InvalidInputError("--image writes pipelines for your image: give --out-dir too (the committed "
                                "pipelines/compiled/ stay on mlcycle's image)", field="out_dir")
    for path in compile_all(out_dir or COMPILED_DIR, image=image):
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
