"""``mlcycle batch``: score a CSV or Parquet table with a registered model, locally."""

from __future__ import annotations

import json
from functools import partial

import typer

from mlcycle.cli.app import app, configured_settings


@app.command("batch")
def batch(
    model: str = typer.Argument(..., help="Model reference, e.g. models:/wine@champion or wine/3."),
    input_uri: str = typer.Option(..., "--input", help="CSV or Parquet input: a path or s3:// URI."),
    output_uri: str = typer.Option(..., "--output", help="Parquet output: a path or s3:// URI."),
    key: list[str] | None = typer.Option(
        None, "--key", help="Input column copied to the output (repeatable); default: every non-feature column."
    ),
    on_bad_rows: str = typer.Option(
        "fail", "--on-bad-rows", help="fail: write nothing and list the bad rows; quarantine: set them aside."
    ),
    quarantine: str | None = typer.Option(
        None, "--quarantine", help="Parquet file for quarantined rows; default: <output>.quarantine.parquet."
    ),
    chunk_rows: int = typer.Option(50_000, "--chunk-rows", help="Rows read, checked and scored at a time."),
    shards: int = typer.Option(
        0, "--shards", help="Cut the input into N shards and run the sharded batch pipeline on kfp.local; the "
        "output is then a directory (Parquet parts and _manifest.json). 0: one job in this process."
    ),
    parallelism: int = typer.Option(2, "--parallelism", help="With --shards: shards scored at once."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score a table in chunks with the predictor's own loading, validation and prediction code."""
    from rich.console import Console

    from mlcycle.batch import score_batch

    settings = configured_settings()
    console = Console(stderr=as_json)
    if shards:
        _sharded(console, settings, model, input_uri, output_uri, key, on_bad_rows, chunk_rows, shards, parallelism,
                 as_json)
        return
    with _progress(console, disabled=no_progress or as_json) as on_chunk:
        result = score_batch(
            model, input_uri, output_uri, settings, keys=key or None, on_bad_rows=on_bad_rows,
            quarantine_uri=quarantine, chunk_rows=chunk_rows, progress=on_chunk,
        )
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    say = partial(console.print, soft_wrap=True)  # paths stay whole, whatever the terminal's width
    say(
        f"[green]scored[/] {result.rows_scored:,} rows with {result.model_name} v{result.model_version} "
        f"in {result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s)"
    )
    if result.rows_quarantined:
        say(f"[yellow]quarantined[/] {result.rows_quarantined:,} rows → {result.quarantine_uri}")
    else:
        say("quarantined 0 rows")
    say(f"output: {result.output_uri}\nMLflow run: {result.run_id}")


def _sharded(console, settings, model, input_uri, output_uri, key, on_bad_rows, chunk_rows, shards, parallelism,
             as_json) -> None:
    """``--shards N``: the sharded batch pipeline on kfp.local (plan, a ParallelFor of shards, collect)."""
    from mlcycle.batch.shards import check_dataset_uri, read_manifest
    from mlcycle.errors import InvalidInputError
    from pipelines.batch_pipeline import build_sharded_batch_pipeline
    from pipelines.local import run_pipeline

    if parallelism < 1:
        raise InvalidInputError(f"--parallelism must be at least 1, got {parallelism}", field="parallelism")
    check_dataset_uri(output_uri)
    log_file = settings.home_dir / "kfp" / "batch-sharded.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with console.status(f"scoring {shards} shard(s) on kfp.local (log: {log_file})"):
        run_id = run_pipeline(
            build_sharded_batch_pipeline(parallelism), settings, log_file=log_file, input_uri=input_uri,
            output_uri=output_uri, model=model, shards=shards, keys=",".join(key or []), on_bad_rows=on_bad_rows,
            chunk_rows=chunk_rows)
    manifest = read_manifest(output_uri, settings.s3_endpoint_url) or {}
    if as_json:
        print(json.dumps({"run_id": run_id, "output_uri": output_uri, "manifest": manifest}, indent=2))
        return
    say = partial(console.print, soft_wrap=True)
    say(f"[green]scored[/] {manifest.get('rows_scored', 0):,} rows in {len(manifest.get('shards', []))} shard(s) "
        f"with {manifest.get('model_name')} v{manifest.get('model_version')}; quarantined "
        f"{manifest.get('rows_quarantined', 0):,}")
    say(f"output: {output_uri} (manifest {output_uri.rstrip('/')}/_manifest.json)\nMLflow run: {run_id}")


class _progress:
    """A Rich progress bar fed by ``score_batch``'s progress callback (an open-ended one for CSV)."""

    def __init__(self, console, *, disabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            SpinnerColumn(), TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
            TimeElapsedColumn(), console=console, disable=disabled, transient=False,
        )
        self._task = None

    def __enter__(self):
        self._bar.__enter__()
        self._task = self._bar.add_task("scoring", total=None)
        return self._update

    def _update(self, done: int, total: int | None) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)
