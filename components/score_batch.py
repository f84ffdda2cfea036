"""Component: score a CSV or Parquet table with a registered model, the predictor's way, into Parquet."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score_batch(
    model: str,
    input_uri: str,
    output_uri: str,
    keys: str,
    on_bad_rows: str,
    quarantine_uri: str,
    chunk_rows: int,
    metrics: Output[Metrics],
) -> str:
    """Stream ``input_uri`` through the model in chunks and write predictions to ``output_uri``.

    Args:
        model: model reference, e.g. ``models:/wine@champion`` (team-qualified on a cluster).
        input_uri: CSV or Parquet input, an ``s3://`` URI (or a path the step can read).
        output_uri: Parquet output, an ``s3://`` URI (or a path); written only if the job succeeds.
        keys: comma-separated input columns copied to the output; empty: every non-feature column.
        on_bad_rows: ``fail`` (write nothing, list the bad rows) or ``quarantine`` (set them aside).
        quarantine_uri: Parquet file for quarantined rows; empty: ``<output>.quarantine.parquet``.
        chunk_rows: rows read, checked and scored at a time (bounds the step's memory).
        metrics: rows read, scored and quarantined, rows/s, seconds.

    Returns:
        The batch job's MLflow run id (experiment ``mlcycle-batch``).
    """
    from mlcycle.batch import score_batch as run_batch
    from mlcycle.tracking import configured_settings

    result = run_batch(
        model, input_uri, output_uri, configured_settings(),
        keys=[k.strip() for k in keys.split(",") if k.strip()] or None, on_bad_rows=on_bad_rows,
        quarantine_uri=quarantine_uri or None, chunk_rows=chunk_rows,
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    return result.run_id
