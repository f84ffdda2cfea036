"""Write where each model version serves back to the MLflow registry, as version tags.

Tags, per environment ``<env>`` (contract: ``mlcycle.serving.<env>.*`` in docs/contracts.md):

- ``mlcycle.serving.<env>.state``: ``serving`` (all traffic), ``canary``, ``retired`` (replaced by a
  newer version) or ``rolled_back``;
- ``mlcycle.serving.<env>.traffic_percent``: its share of the InferenceService's traffic, ``0``–``100``;
- ``mlcycle.serving.<env>.inference_service``: ``<namespace>/<name>``;
- ``mlcycle.serving.<env>.updated_at``: UTC ISO-8601 time of the change.

So ``MlflowClient().get_model_version(name, v).tags`` says where a version serves, and
:func:`read_serving_state` lists every version that serves in an environment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlcycle.deploy.kube import RolloutResult
from mlcycle.governance import audit

TAG_PREFIX = "mlcycle.serving"
SERVING, CANARY, RETIRED, ROLLED_BACK = "serving", "canary", "retired", "rolled_back"


def serving_tag(environment: str, key: str) -> str:
    """The version-tag name for ``key`` in ``environment``: ``mlcycle.serving.<env>.<key>``."""
    return f"{TAG_PREFIX}.{environment}.{key}"


def read_serving_state(client: Any, registered_name: str, environment: str) -> dict[str, dict[str, str]]:
    """Serving tags of every version of ``registered_name`` that has any in ``environment``.

    Returns:
        ``{version: {"state": ..., "traffic_percent": ..., ...}}``.
    """
    prefix = f"{TAG_PREFIX}.{environment}."
    state: dict[str, dict[str, str]] = {}
    escaped = registered_name.replace("'", "\\'")
    for mv in client.search_model_versions(f"name = '{escaped}'"):
        tags = {k.removeprefix(prefix): v for k, v in (mv.tags or {}).items() if k.startswith(prefix)}
        if tags:
            state[str(mv.version)] = tags
    return state


def write_serving_state(
    client: Any,
    registered_name: str,
    version: str,
    environment: str,
    *,
    state: str,
    traffic_percent: int,
    inference_service: str,
    now: datetime | None = None,
) -> None:
    """Set the serving tags of one version in one environment."""
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    values = {
        "state": state,
        "traffic_percent": str(traffic_percent),
        "inference_service": inference_service,
        "updated_at": stamp,
    }
    for key, value in values.items():
        client.set_model_version_tag(registered_name, str(version), serving_tag(environment, key), value)


def record_rollout(
    client: Any,
    registered_name: str,
    version: str,
    environment: str,
    result: RolloutResult,
    *,
    now: datetime | None = None,
) -> None:
    """Bring the serving tags of ``registered_name``'s versions in line with a rollout step.

    ``version`` is the version of ``result``'s latest revision. The other versions that serve in
    ``environment`` are updated too: the previous one keeps ``100 - share`` during a canary, becomes
    ``retired`` when the new one takes all traffic, and takes everything back after a rollback.
    """
    if result.action == "unchanged":
        return
    version = str(version)
    where = f"{result.namespace}/{result.name}"
    previous = {
        v: tags
        for v, tags in read_serving_state(client, registered_name, environment).items()
        if v != version and tags.get("state") in (SERVING, CANARY)
    }

    def write(v: str, state: str, share: int) -> None:
        write_serving_state(
            client,
            registered_name,
            v,
            environment,
            state=state,
            traffic_percent=share,
            inference_service=where,
            now=now,
        )

    if result.action == "canary":
        write(version, CANARY, result.traffic_percent)
        for v, tags in previous.items():
            if tags.get("state") == SERVING:
                write(v, SERVING, 100 - result.traffic_percent)
            else:  # an older canary that never finished is replaced by this one
                write(v, RETIRED, 0)
    elif result.action == "rolled_back":
        write(version, ROLLED_BACK, 0)
        for v, tags in previous.items():
            if tags.get("state") == SERVING:
                write(v, SERVING, 100)
    else:  # created, replaced, promoted: the latest revision takes all traffic
        write(version, SERVING, 100)
        for v in previous:
            write(v, RETIRED, 0)
    audit.record(
        registered_name,
        version,
        f"deploy.{result.action}",
        client=client,
        details={
            "environment": environment,
            "traffic_percent": result.traffic_percent,
            "inference_service": where,
            "replaces": ",".join(sorted(previous, key=int)) or None,
        },
    )
