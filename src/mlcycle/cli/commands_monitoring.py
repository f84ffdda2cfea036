"""``mlcycle drift``, ``monitor``, ``performance`` and ``ingest-labels``: monitoring a served model."""

from __future__ import annotations

import json

import typer

from mlcycle.cli.app import app, configured_settings


def _drift_config(method, threshold, drift_share, min_rows, max_rows):
    from mlcycle.monitoring.drift import DriftConfig

    return DriftConfig(
        method=method, threshold=threshold, drift_share=drift_share, min_rows=min_rows, max_rows=max_rows
    )


def _print_drift(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    verdicts = {
        "drift": "[red]DRIFT[/]",
        "ok": "[green]no drift[/]",
        "insufficient_data": "[yellow]insufficient data[/]",
        "no_data": "[yellow]no traffic[/]",
    }
    console.print(
        f"{summary['model']} v{summary['version']}: {verdicts[summary['status']]} — "
        f"{summary['rows']} rows, {summary['message']}"
    )
    if summary["scores"]:
        table = Table("column", "test", "threshold", "score", "drifted")
        for column, score in summary["scores"].items():
            test = summary["tests"][column]
            table.add_row(
                column,
                test["method"],
                f"{test['threshold']:.4g}",
                "-" if score is None else f"{score:.4g}",
                "yes" if test["drifted"] else "",
            )
        console.print(table)
    console.print(
        f"consecutive drifting windows: {summary['consecutive_drift_windows']}"
        f"/{summary['persistence_windows']}; retrain: {'yes' if summary['retrain'] else 'no'}"
    )
    if summary.get("report_path"):
        console.print(f"report: {summary['report_path']}")


@app.command("drift")
def drift(
    model: str = typer.Argument(..., help="Model reference, e.g. models:/wine@champion or wine/3."),
    since: str | None = typer.Option(None, "--since", help="Window length (1h, 30m, 2d) or ISO start."),
    until: str | None = typer.Option(None, "--until", help="ISO end of the window (default: now)."),
    source: str | None = typer.Option(
        None, "--source", help="Payload-log root: directory or s3:// prefix (default: MLCYCLE_HOME/payloads)."
    ),
    method: str | None = typer.Option(
        None,
        "--method",
        help="One test for every column (psi, ks, wasserstein, ...); default: chosen by column type and sample size.",
    ),
    threshold: float | None = typer.Option(None, "--threshold", help="Threshold for --method."),
    drift_share: float = typer.Option(0.5, "--drift-share", help="Share of drifted columns that is drift."),
    min_rows: int = typer.Option(100, "--min-rows", help="Fewer rows is 'insufficient data'."),
    max_rows: int = typer.Option(100_000, "--max-rows", help="Larger windows are sampled to this."),
    persistence: int = typer.Option(3, "--persistence", help="Consecutive drifting windows before retraining is due."),
    report_dir: str | None = typer.Option(None, "--report-dir", help="Where the HTML report goes."),
    pushgateway: str | None = typer.Option(
        None, "--pushgateway", help="Pushgateway URL to push metrics to (MLCYCLE_PUSHGATEWAY_URL)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary."),
) -> None:
    """Check one window of traffic for data and prediction drift against the model's reference."""
    from mlcycle.monitoring.check import RetrainPolicy, check_drift

    settings = configured_settings(pushgateway_url=pushgateway)
    summary = check_drift(
        model,
        settings,
        since=since,
        until=until,
        source=source,
        config=_drift_config(method, threshold, drift_share, min_rows, max_rows),
        policy=RetrainPolicy(windows=persistence),
        report_dir=report_dir,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_drift(summary)


@app.command("performance")
def performance(
    model: str = typer.Argument(..., help="Model reference, e.g. models:/wine@champion."),
    since: str | None = typer.Option(None, "--since", help="Window of predictions (1h, 1d) or ISO start."),
    until: str | None = typer.Option(None, "--until", help="ISO end of the window (default: now)."),
    source: str | None = typer.Option(None, "--source", help="Payload-log root (default MLCYCLE_HOME/payloads)."),
    min_accuracy: float = typer.Option(0.8, "--min-accuracy", help="Below this accuracy is an alert."),
    min_labels: int = typer.Option(30, "--min-labels", help="Fewer labelled rows is 'insufficient data'."),
    pushgateway: str | None = typer.Option(
        None, "--pushgateway", help="Pushgateway URL to push metrics to (MLCYCLE_PUSHGATEWAY_URL)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary."),
) -> None:
    """Accuracy and macro F1 over a window, from the delayed labels ingested so far."""
    from mlcycle.monitoring.performance import check_performance

    settings = configured_settings(pushgateway_url=pushgateway)
    summary = check_performance(
        model, settings, since=since, until=until, source=source, min_accuracy=min_accuracy, min_labels=min_labels
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    if summary["status"] != "ok":
        typer.echo(
            f"{summary['model']} v{summary['version']}: {summary['status']} "
            f"({summary['labeled_rows']} labelled of {summary['rows']} rows)"
        )
        return
    flag = "  BELOW THRESHOLD" if summary["below_threshold"] else ""
    typer.echo(
        f"{summary['model']} v{summary['version']}: accuracy {summary['accuracy']:.3f}, "
        f"macro F1 {summary['f1_macro']:.3f} on {summary['labeled_rows']} labelled rows{flag}"
    )


@app.command("ingest-labels")
def ingest_labels(
    path: str = typer.Argument(..., help="CSV or Parquet with request_id, optional row, and label."),
    model: str = typer.Option(..., "--model", "-m", help="Model name (wine) the labels belong to."),
) -> None:
    """Store ground-truth labels that arrived after the predictions, for ``mlcycle performance``."""
    from mlcycle.monitoring import performance as perf
    from mlcycle.registry.uris import qualified_name

    settings = configured_settings()
    name = qualified_name(model.removeprefix("models:/").split("@")[0].split("/")[0], settings.team)
    result = perf.ingest_labels(
        path, name, perf.default_labels_root(settings), s3_endpoint_url=settings.s3_endpoint_url
    )
    typer.echo(f"ingested {result['rows']} labels for {name} -> {result['path']}")


@app.command("monitor")
def monitor(
    model: str = typer.Argument(..., help="Model reference, e.g. models:/wine@champion."),
    every: str = typer.Option("10m", "--every", help="How often to check (90s, 10m, 1h)."),
    window_: str | None = typer.Option(None, "--window", help="Window per check (default: --every)."),
    max_runs: int | None = typer.Option(None, "--max-runs", min=1, help="Stop after N checks."),
    persistence: int = typer.Option(3, "--persistence", help="Consecutive drifting windows before retraining is due."),
    min_rows: int = typer.Option(100, "--min-rows", help="Fewer rows is 'insufficient data'."),
    min_accuracy: float = typer.Option(0.8, "--min-accuracy", help="Performance alert threshold."),
    performance_window: str = typer.Option(
        "1d", "--performance-window", help="Predictions scored against delayed labels (labels come later)."
    ),
    retrain: bool = typer.Option(
        True, "--retrain/--no-retrain", help="Run the training pipeline locally when drift persists."
    ),
    retrain_dataset: str | None = typer.Option(
        None, "--retrain-dataset", help="Data set to retrain on (default: the served model's)."
    ),
    pushgateway: str | None = typer.Option(
        None, "--pushgateway", help="Pushgateway URL to push metrics to (MLCYCLE_PUSHGATEWAY_URL)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per check."),
) -> None:
    """Check drift (and performance, once labels exist) on a schedule; retrain when drift persists."""
    from mlcycle.monitoring.check import RetrainPolicy, check_drift, retraining_arguments
    from mlcycle.monitoring.check import monitor as run_monitor
    from mlcycle.monitoring.performance import check_performance
    from mlcycle.monitoring.windows import parse_duration

    settings = configured_settings(pushgateway_url=pushgateway)
    interval = parse_duration(every, field="every")
    span = window_ or every
    parse_duration(span, field="window")
    config = _drift_config(None, None, 0.5, min_rows, 100_000)

    def once() -> dict:
        summary = check_drift(model, settings, since=span, config=config, policy=RetrainPolicy(windows=persistence))
        summary["performance"] = check_performance(model, settings, since=performance_window, min_accuracy=min_accuracy)
        return summary

    def show(summary: dict) -> None:
        if as_json:
            typer.echo(json.dumps(summary, default=str))
            return
        perf = summary["performance"]
        accuracy = f"accuracy {perf['accuracy']:.3f}" if perf["status"] == "ok" else f"labels: {perf['status']}"
        typer.echo(
            f"{summary['window_end']} {summary['model']} v{summary['version']}: {summary['status']}, "
            f"{summary['rows']} rows, drifted {summary['drifted_columns'] or '-'}, {accuracy}, "
            f"streak {summary['consecutive_drift_windows']}/{summary['persistence_windows']}"
        )

    def on_retrain(summary: dict) -> None:
        if not retrain:
            typer.echo(
                f"retraining is due for {summary['model']} (drift persisted for "
                f"{summary['consecutive_drift_windows']} windows); --no-retrain: not started",
                err=True,
            )
            return
        from pipelines.local import run_pipeline
        from pipelines.training_pipeline import training_pipeline

        arguments = retraining_arguments(summary, dataset=retrain_dataset)
        typer.echo(
            f"drift persisted for {summary['consecutive_drift_windows']} windows: retraining "
            f"{summary['model']} on {arguments['dataset']} (the gate decides promotion)",
            err=True,
        )
        log_file = settings.log_dir / f"retrain-{summary['window_end'][:19].replace(':', '')}.log"
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        run_pipeline(training_pipeline, settings, log_file=log_file, **arguments)
        typer.echo(
            f"retraining of {summary['model']} finished; `mlcycle status` shows the gate's decision (log: {log_file})",
            err=True,
        )

    run_monitor(once, every_seconds=interval.total_seconds(), max_runs=max_runs, on_result=show, on_retrain=on_retrain)


@app.command("schedule-monitoring")
def schedule_monitoring(
    model: str = typer.Argument(..., help="Registered-model base name, e.g. wine."),
    host: str = typer.Option(..., "--host", help="KFP API endpoint, e.g. http://ml-pipeline-ui.kubeflow"),
    every: str = typer.Option("1h", "--every", help="Period (and drift window): 10m, 1h, 1d."),
    cron: str | None = typer.Option(None, "--cron", help="6-field KFP cron instead of --every."),
    namespace: str | None = typer.Option(None, "--namespace", help="Kubeflow profile (= team)."),
    package: str = typer.Option(
        "pipelines/compiled/monitoring_pipeline.yaml",
        "--package",
        help="Compiled monitoring pipeline (mlcycle compile).",
    ),
    persistence: int = typer.Option(3, "--persistence", help="Drifting windows before retraining."),
) -> None:
    """Create a KFP recurring run of the monitoring pipeline on a cluster."""
    import kfp

    from mlcycle.monitoring.schedule import schedule_monitoring as create

    settings = configured_settings()
    params = {"model_name": model, "persistence_windows": persistence}
    if settings.team or namespace:
        params["team"] = settings.team or namespace or ""
    result = create(
        kfp.Client(host=host, namespace=namespace), package, every=every, cron=cron, params=params, namespace=namespace
    )
    typer.echo(f"recurring run {getattr(result, 'recurring_run_id', result)} monitors {model} every {cron or every}")
