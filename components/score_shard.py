"""Component: score one shard of a planned batch job (skipped if a run of the same plan already did)."""

from kfp import dsl

from mlcycle.config import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def score_shard(shard: str) -> str:
    """Score one shard through the batch job's own chunk loop into the plan's staging area.

    Args:
        shard: a fan-out item of ``plan_shards``: ``{"plan": <plan uri>, "shard": <index>}`` as JSON.

    Returns:
        The shard's result (rows read, scored, quarantined; the part's SHA-256) as JSON.
    """
    import json

    from mlcycle.batch.shards import load_plan
    from mlcycle.batch.shards import score_shard as score
    from mlcycle.tracking import configured_settings

    settings = configured_settings()
    item = json.loads(shard)
    return score(load_plan(item["plan"], settings.s3_endpoint_url), int(item["shard"]), settings).to_json()
