"""Read-only views of the registry: what ``mlcycle status`` and the run summary print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mlcycle.registry import store
from mlcycle.registry.uris import TEAM_SEPARATOR, split_name


@dataclass(frozen=True)
class VersionStatus:
    version: str
    aliases: list[str]
    run_id: str | None
    created: int  # ms since epoch
    decision: str
    reason: str
    metric: str
    candidate: str
    champion: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    team: str
    aliases: dict[str, str]
    versions: list[VersionStatus]

    def as_dict(self) -> dict:
        return asdict(self)


def _version_status(v, aliases: dict[str, str] | None = None) -> VersionStatus:
    """``aliases`` (alias → version) from the registered model: MLflow's version search leaves
    ``ModelVersion.aliases`` empty, which is why the column was blank."""
    tags = dict(v.tags)
    held = sorted(set(v.aliases or []) | {a for a, ver in (aliases or {}).items() if ver == str(v.version)})
    return VersionStatus(
        version=str(v.version),
        aliases=held,
        run_id=v.run_id,
        created=int(v.creation_timestamp or 0),
        decision=tags.get("mlcycle.gate.decision", ""),
        reason=tags.get("mlcycle.gate.reason", ""),
        metric=tags.get("mlcycle.gate.metric", ""),
        candidate=tags.get("mlcycle.gate.candidate", ""),
        champion=tags.get("mlcycle.gate.champion", ""),
        tags={k: val for k, val in tags.items() if k.startswith("mlcycle.")},
    )


def registry_status(team: str = "", name: str | None = None) -> list[ModelStatus]:
    """Registered models (a team's only, when ``team`` is set), newest versions first.

    A ``name`` is read directly rather than picked out of a search: MLflow's auth app filters searches
    (another team's model would look absent) but refuses a direct read with 403, which the caller reports.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if name:
        registered = name if TEAM_SEPARATOR in name or not team else f"{team}{TEAM_SEPARATOR}{name}"
        try:
            found = [store.call(client.get_registered_model, registered, what=f"reading {registered}")]
        except Exception as e:
            if not store.is_not_found(e):
                raise
            found = []
    else:
        found = store.call(client.search_registered_models, max_results=1000, what="listing registered models")
    models = []
    for model in found:
        owner, _ = split_name(model.name)
        if team and owner != team:
            continue
        listed = store.call(client.search_model_versions, f"name='{model.name}'", what=f"listing {model.name}")
        versions = sorted(listed, key=lambda v: -int(v.version))
        aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
        models.append(ModelStatus(model.name, owner, aliases, [_version_status(v, aliases) for v in versions]))
    return sorted(models, key=lambda m: m.name)


def version_summary(registered_name: str, version: str) -> dict:
    """One version's gate outcome and holdout metrics, for the end-of-run summary."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    v = store.get_model_version(registered_name, version, mlflow_client=client)
    model = store.get_registered_model(registered_name, mlflow_client=client)
    run = store.get_run(v.run_id, mlflow_client=client) if v.run_id else None
    metrics = run.data.metrics if run else {}
    status = _version_status(v)
    return {
        "registered_name": registered_name,
        "version": status.version,
        "run_id": v.run_id,
        "decision": status.decision,
        "reason": status.reason,
        "promotion": status.tags.get("mlcycle.gate.promotion", ""),
        "aliases": {alias: str(ver) for alias, ver in (model.aliases or {}).items()},
        "metrics": {k.removeprefix("test_"): val for k, val in sorted(metrics.items()) if k.startswith("test_")},
        "champion_metrics": {k.removeprefix("champion_test_"): val for k, val in sorted(metrics.items())
                             if k.startswith("champion_test_")},
    }
