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


DEFAULT_PARALLELISM = 8


def build_sharded_batch_pipeline(parallelism: int = DEFAULT_PARALLELISM):
    """The sharded batch pipeline, with at most ``parallelism`` shards scored at once.

    A ``dsl.ParallelFor``'s parallelism is fixed when the pipeline is compiled (KFP takes no run-time
    value there), so it is an argument of this builder; the committed YAML uses
    :data:`DEFAULT_PARALLELISM` and ``mlcycle batch --shards N --parallelism P`` builds its own.
    """
    from kfp import dsl as _dsl

    from components.collect_shards import collect_shards
    from components.plan_shards import plan_shards
    from components.score_shard import score_shard

    @_dsl.pipeline(
        name="mlcycle-batch-sharded",
        description="Score a table in shards (Parquet row groups / files, CSV byte ranges) fanned out over the "
        "cluster, each shard through the batch job's own code, collected into one Parquet dataset with a "
        "manifest and one MLflow run; a re-run scores only the shards that are missing.",
    )
    def sharded_batch_pipeline(
        input_uri: str,
        output_uri: str,
        model: str = "models:/wine@champion",
        shards: int = 4,
        keys: str = "",
        on_bad_rows: str = "fail",
        chunk_rows: int = 50_000,
    ) -> str:
        """Sharded batch scoring.

        Args:
            input_uri: CSV file, Parquet file, or a directory / ``s3://`` prefix of Parquet files.
            output_uri: the dataset's directory / ``s3://`` prefix (Parquet parts, ``_manifest.json``).
            model: model reference; pinned to one version for every shard when planned.
            shards: how many shards to cut the input into.
            keys: comma-separated input columns copied to the output; empty: every non-feature column.
            on_bad_rows: ``fail`` or ``quarantine`` (quarantined rows under ``<output>/quarantine/``).
            chunk_rows: rows per chunk within a shard.

        Returns:
            The batch job's MLflow run id.
        """
        plan = plan_shards(model=model, input_uri=input_uri, output_uri=output_uri, shards=shards, keys=keys,
                           on_bad_rows=on_bad_rows, chunk_rows=chunk_rows)
        plan.set_display_name("plan shards")
        with _dsl.ParallelFor(plan.output, parallelism=parallelism) as shard:
            scored = score_shard(shard=shard)
            scored.set_display_name("score shard")
            with_team_settings(scored)
        collected = collect_shards(shards=plan.output, results=_dsl.Collected(scored.output))
        collected.set_display_name("collect shards")
        with_team_settings(plan, collected)
        return collected.outputs["Output"]

    return sharded_batch_pipeline


sharded_batch_pipeline = build_sharded_batch_pipeline()
