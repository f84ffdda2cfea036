"""The batch inference pipeline: score a table with a registered model, as the predictor would."""

from kfp import dsl

from components.score_batch import score_batch
from pipelines.cluster import with_team_settings


@dsl.pipeline(
    name="mlcycle-batch",
    description="Score a CSV or Parquet table with a registered model in bounded-memory chunks, using the "
    "predictor's own loading, validation and prediction code; the job is an MLflow run.",
)
def batch_pipeline(
    input_uri: str,
    output_uri: str,
    model: str = "models:/wine@champion",
    keys: str = "",
    on_bad_rows: str = "fail",
    quarantine_uri: str = "",
    chunk_rows: int = 50_000,
) -> str:
    """Batch scoring.

    Args:
        input_uri: CSV or Parquet input (``s3://`` on a cluster).
        output_uri: Parquet output (``s3://`` on a cluster).
        model: model reference; ``models:/<name>@champion`` scores with what production serves.
        keys: comma-separated input columns copied to the output; empty: every non-feature column.
        on_bad_rows: ``fail`` or ``quarantine``.
        quarantine_uri: Parquet file for quarantined rows; empty: ``<output>.quarantine.parquet``.
        chunk_rows: rows per chunk.

    Returns:
        The batch job's MLflow run id.
    """
    scored = score_batch(
        model=model, input_uri=input_uri, output_uri=output_uri, keys=keys, on_bad_rows=on_bad_rows,
        quarantine_uri=quarantine_uri, chunk_rows=chunk_rows)
    scored.set_display_name("score batch")
    with_team_settings(scored)
    return scored.outputs["Output"]
