"""Component: cut a batch input into shards (Parquet row groups / files, CSV byte ranges) and open the job's run."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def plan_shards(
    model: str,
    input_uri: str,
    output_uri: str,
    shards: int,
    keys: str,
    on_bad_rows: str,
    chunk_rows: int,
) -> list:
    """Plan a sharded batch job: pin the model version, cut the input, write the plan beside the output.

    Args:
        model: model reference, e.g. ``models:/wine@champion``; pinned to the version it names now.
        input_uri: CSV file, Parquet file, or a directory / ``s3://`` prefix of Parquet files.
        output_uri: the output dataset's directory or ``s3://`` prefix.
        shards: how many shards to cut (fewer if the input has fewer row groups or lines).
        keys: comma-separated input columns copied to the output; empty: every non-feature column.
        on_bad_rows: ``fail`` or ``quarantine``.
        chunk_rows: rows per chunk within a shard.

    Returns:
        One JSON item per shard for the fan-out: ``{"plan": <plan uri>, "shard": <index>}`` (a single output:
        kfp.local's ParallelFor iterates a task's ``Output`` only).
    """
    import json

    from mlcycle.batch.shards import plan_shards as plan
    from mlcycle.tracking import configured_settings

    planned = plan(model, input_uri, output_uri, configured_settings(), shards=shards,
                   keys=[k.strip() for k in keys.split(",") if k.strip()] or None, on_bad_rows=on_bad_rows,
                   chunk_rows=chunk_rows)
    items = [json.dumps({"plan": planned.plan_uri, "shard": s.index}) for s in planned.shards]
    return items
