"""Running the monitoring pipeline on a schedule on a cluster: a KFP recurring run.

``client`` is a ``kfp.Client`` (or anything with its ``get_experiment``/``create_experiment``/
``create_recurring_run`` methods). The pipeline package is the compiled YAML
(``pipelines/compiled/monitoring_pipeline.yaml``); this module never imports ``pipelines``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlcycle.errors import InvalidInputError
from mlcycle.monitoring.windows import parse_duration

EXPERIMENT = "mlcycle-monitoring"


def cron_for(every: str) -> str:
    """The 6-field KFP cron (seconds first) for ``every`` = ``Nm`` (N divides 60), ``Nh`` (N divides 24) or ``1d``.

    Raises:
        InvalidInputError: another period; pass ``cron`` yourself for those.
    """
    seconds = int(parse_duration(every, field="every").total_seconds())
    minutes, hours = seconds // 60, seconds // 3600
    if seconds % 60 == 0 and 0 < minutes < 60 and 60 % minutes == 0:
        return f"0 */{minutes} * * * *" if minutes > 1 else "0 * * * * *"
    if seconds % 3600 == 0 and 0 < hours < 24 and 24 % hours == 0:
        return f"0 0 */{hours} * * *" if hours > 1 else "0 0 * * * *"
    if seconds == 86400:
        return "0 0 0 * * *"
    raise InvalidInputError(
        f"--every {every} has no simple cron form; use minutes dividing 60, hours dividing 24, or 1d, or "
        "give a cron expression",
        field="every",
    )


def schedule_monitoring(
    client,
    pipeline_package_path: str,
    *,
    every: str = "1h",
    cron: str | None = None,
    params: Mapping[str, Any] | None = None,
    job_name: str | None = None,
    namespace: str | None = None,
    experiment: str = EXPERIMENT,
) -> Any:
    """Create a recurring run of the monitoring pipeline; return what the client returns.

    The drift window follows the period unless ``params`` says otherwise, so consecutive windows tile
    time without gaps or overlap. One run at a time (``max_concurrency=1``) and no catch-up after a
    pause: a backlog of stale windows would count towards "drift persisted" at once.
    """
    expression = cron or cron_for(every)
    arguments = {"since": every, **dict(params or {})}
    model = arguments.get("model_name", "model")
    try:
        found = client.get_experiment(experiment_name=experiment, namespace=namespace)
    except ValueError:  # kfp.Client: "No experiment is found with name ..."
        found = None
    if found is None:
        found = client.create_experiment(name=experiment, namespace=namespace)
    return client.create_recurring_run(
        experiment_id=found.experiment_id,
        job_name=job_name or f"monitor-{model}",
        description=f"mlcycle monitoring of {model} every {cron or every}",
        cron_expression=expression,
        max_concurrency=1,
        no_catchup=True,
        params=arguments,
        pipeline_package_path=pipeline_package_path,
        enabled=True,
    )
