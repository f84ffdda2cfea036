"""Component: collect a sharded batch job's parts into one dataset with a manifest, and finish its run."""

from kfp import dsl
from kfp.dsl import Metrics, Output

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def collect_shards(shards: list, results: list, metrics: Output[Metrics]) -> str:
    """Move every shard's part into the output directory, write the manifest last, log the totals.

    Args:
        shards: ``plan_shards``' items (they name the plan).
        results: every ``score_shard`` result (JSON strings, collected from the fan-out).
        metrics: rows read, scored and quarantined; shards scored and reused.

    Returns:
        The batch job's MLflow run id (experiment ``mlcycle-batch``).
    """
    import json

    from mlcycle.batch.shards import ShardResult, load_plan
    from mlcycle.batch.shards import collect_shards as collect
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    plan = load_plan(json.loads(shards[0])["plan"], settings.s3_endpoint_url)
    result = collect(plan, [ShardResult.from_json(r) for r in results], settings)
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    return result.run_id
