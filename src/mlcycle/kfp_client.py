"""Submitting and scheduling pipelines on a Kubeflow Pipelines host with ``kfp.Client``.

The functions take the client as an argument (a ``kfp.Client``, or anything with its
``get_experiment``/``create_experiment``/``create_run_from_pipeline_package``/``create_recurring_run``
methods), so they are tested with a recording fake and no KFP server. Pipelines reach this module as
compiled YAML packages; ``mlcycle`` never imports the ``pipelines`` package.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcycle.errors import ConfigError, InvalidInputError, MlcycleError

HOST_VARIABLE = "KFP_HOST"
# ``--pipeline`` name → the pipeline function's name in ``pipelines/`` (and its compiled file's stem).
# ``parallel-training`` and ``sharded-batch`` are the fan-out variants (dsl.ParallelFor: trials, shards), run
# in the same experiments as the plain ones.
PIPELINES = {"training": "training_pipeline", "monitoring": "monitoring_pipeline", "batch": "batch_pipeline",
             "registration": "registration_pipeline", "parallel-training": "parallel_training_pipeline",
             "sharded-batch": "sharded_batch_pipeline"}
EXPERIMENTS = {"training": "mlcycle-training", "monitoring": "mlcycle-monitoring", "batch": "mlcycle-batch",
               "registration": "mlcycle-registration", "parallel-training": "mlcycle-training",
               "sharded-batch": "mlcycle-batch"}


class KfpUnavailableError(MlcycleError):
    """The KFP API could not be reached or refused the call (HTTP 503)."""

    http_status = 503


@dataclass(frozen=True)
class SubmittedRun:
    """What ``submit_run`` created: the run and the experiment it belongs to."""

    run_id: str
    experiment_id: str
    experiment: str
    url: str | None = None


@dataclass(frozen=True)
class ScheduledRun:
    """What ``schedule_run`` created: the recurring run, its cron and experiment."""

    recurring_run_id: str
    experiment_id: str
    experiment: str
    cron: str
    job_name: str


def pipeline_function_name(pipeline: str) -> str:
    """``training`` → ``training_pipeline``.

    Raises:
        InvalidInputError: an unknown pipeline; the message lists the known ones.
    """
    try:
        return PIPELINES[pipeline]
    except KeyError:
        raise InvalidInputError(
            f"unknown pipeline {pipeline!r}; choose one of {', '.join(PIPELINES)}", field="pipeline"
        ) from None


def resolve_host(host: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The KFP API endpoint: ``host`` if given, else ``$KFP_HOST``.

    Raises:
        ConfigError: neither is set; the message says what to set.
    """
    environ = os.environ if environ is None else environ
    value = (host or environ.get(HOST_VARIABLE, "")).strip()
    if not value:
        raise ConfigError(
            f"no KFP host: pass --host http://<kfp-api> or set {HOST_VARIABLE} "
            "(e.g. http://localhost:8888 after `kubectl port-forward -n kubeflow svc/ml-pipeline 8888:8888`)",
            field="host",
        )
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"KFP host {value!r} must start with http:// or https://", field="host")
    return value.rstrip("/")


def parse_params(values: Iterable[str]) -> dict[str, Any]:
    """``["dataset=wine", "n_trials=5"]`` → ``{"dataset": "wine", "n_trials": 5}``.

    Values that read as JSON numbers or booleans (``5``, ``0.25``, ``true``) become those; everything
    else stays a string, so the compiled pipeline's own types decide on the server.

    Raises:
        InvalidInputError: an item without ``=`` or with an empty key, or a key given twice.
    """
    import json

    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInputError(f"--param {item!r}: write key=value, e.g. --param dataset=wine", field="param")
        if key in params:
            raise InvalidInputError(f"--param {key} is given twice", field="param")
        value: Any = raw
        if raw.strip().lower() in ("true", "false"):
            value = raw.strip().lower() == "true"
        else:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if isinstance(parsed, int | float) and not isinstance(parsed, bool):
                value = parsed
        params[key] = value
    return params


def package_parameters(package_path: str | Path) -> dict[str, dict[str, Any]]:
    """The compiled pipeline's parameters: name → ``{"type": ..., "optional": ..., "default": ...}``.

    Raises:
        InvalidInputError: the file is missing or is not a compiled KFP pipeline.
    """
    import yaml

    path = Path(package_path)
    if not path.is_file():
        raise InvalidInputError(f"no compiled pipeline at {path}; run `mlcycle compile`", field="package")
    try:
        # The pipeline spec is the first document; a platform spec (kfp-kubernetes) may follow it.
        spec = next(iter(yaml.safe_load_all(path.read_text(encoding="utf-8"))), None)
        inputs = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InvalidInputError(f"{path} is not a compiled KFP pipeline: {reason}", field="package") from e
    return {
        name: {
            "type": definition.get("parameterType"),
            "optional": bool(definition.get("isOptional", False)),
            "default": definition.get("defaultValue"),
        }
        for name, definition in inputs.items()
    }


def check_params(package_path: str | Path, params: Mapping[str, Any]) -> None:
    """Fail before anything reaches the server when ``params`` names a parameter the pipeline lacks.

    Raises:
        InvalidInputError: an unknown parameter (the message lists the pipeline's parameters), or a
            required parameter without a value.
    """
    known = package_parameters(package_path)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InvalidInputError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; this pipeline takes: {', '.join(sorted(known))}",
            field="param",
        )
    missing = sorted(name for name, d in known.items() if not d["optional"] and name not in params)
    if missing:
        raise InvalidInputError(f"pipeline parameter(s) {', '.join(missing)} need a value (--param k=v)",
                                field="param")


def ensure_experiment(client, name: str, namespace: str | None = None) -> str:
    """The id of experiment ``name`` in ``namespace``, created when it does not exist yet."""
    try:
        found = client.get_experiment(experiment_name=name, namespace=namespace)
    except ValueError:  # kfp.Client: "No experiment is found with name ..."
        found = None
    if found is None:
        found = client.create_experiment(name=name, namespace=namespace)
    return str(found.experiment_id)


def _api_errors() -> tuple[type[BaseException], ...]:
    """What the KFP client raises when the API is unreachable or refuses a call."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    return ApiException, urllib3.exceptions.HTTPError, OSError


def _call(what: str, host: str | None, func, /, **kwargs):
    """Call the KFP API; an unreachable or refusing API becomes one :class:`KfpUnavailableError`."""
    try:
        # kfp.Client prints "Run details: <url>" links; they go to stderr so stdout stays ours (--json).
        with contextlib.redirect_stdout(sys.stderr):
            return func(**kwargs)
    except _api_errors() as e:
        reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        first_line = str(reason).strip().splitlines()[0] if str(reason).strip() else type(e).__name__
        where = f" at {host}" if host else ""
        raise KfpUnavailableError(f"KFP {what} failed{where}: {type(e).__name__}: {first_line}") from e


def connect(host: str, namespace: str | None = None):
    """A ``kfp.Client`` for ``host`` (and the profile ``namespace`` on a multi-user cluster).

    Raises:
        KfpUnavailableError: the client's health check could not reach the API.
    """
    import warnings

    import kfp

    with warnings.catch_warnings():
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later": said on every call.
        warnings.filterwarnings("ignore", message=".*only works with Kubeflow Pipeline.*")
        kwargs: dict[str, Any] = {"host": host}
        if namespace:
            kwargs["namespace"] = namespace
        return _call("connection", host, kfp.Client, **kwargs)


def submit_run(
    client,
    package_path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    experiment: str,
    namespace: str | None = None,
    run_name: str | None = None,
    host: str | None = None,
) -> SubmittedRun:
    """Create one run of a compiled pipeline in ``experiment`` (created if missing).

    Raises:
        InvalidInputError: ``params`` does not fit the pipeline.
        KfpUnavailableError: the KFP API could not be reached or refused the run.
    """
    arguments = dict(params or {})
    check_params(package_path, arguments)
    experiment_id = _call("experiment look-up", host, ensure_experiment, client=client, name=experiment,
                          namespace=namespace)
    result = _call(
        "run creation",
        host,
        client.create_run_from_pipeline_package,
        pipeline_file=str(package_path),
        arguments=arguments,
        run_name=run_name,
        experiment_id=experiment_id,
        namespace=namespace,
    )
    run_id = str(getattr(result, "run_id", result))
    url = f"{host}/#/runs/details/{run_id}" if host else None
    return SubmittedRun(run_id=run_id, experiment_id=experiment_id, experiment=experiment, url=url)


def schedule_run(
    client,
    package_path: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    cron: str,
    experiment: str,
    job_name: str,
    namespace: str | None = None,
    description: str | None = None,
    host: str | None = None,
) -> ScheduledRun:
    """Create a recurring run of a compiled pipeline: one run at a time, no catch-up after a pause.

    Raises:
        InvalidInputError: ``params`` does not fit the pipeline, or ``cron`` is not a 6-field KFP cron.
        KfpUnavailableError: the KFP API could not be reached or refused the recurring run.
    """
    fields = cron.split()
    if len(fields) != 6:
        raise InvalidInputError(
            f"cron {cron!r} has {len(fields)} fields; KFP wants 6, seconds first, e.g. '0 0 * * * *' (hourly)",
            field="cron",
        )
    arguments = dict(params or {})
    check_params(package_path, arguments)
    experiment_id = _call("experiment look-up", host, ensure_experiment, client=client, name=experiment,
                          namespace=namespace)
    result = _call(
        "recurring-run creation",
        host,
        client.create_recurring_run,
        experiment_id=experiment_id,
        job_name=job_name,
        description=description or f"mlcycle: {job_name} on '{cron}'",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=arguments,
        pipeline_package_path=str(package_path),
        enabled=True,
    )
    recurring_id = str(getattr(result, "recurring_run_id", result))
    return ScheduledRun(recurring_run_id=recurring_id, experiment_id=experiment_id, experiment=experiment,
                        cron=cron, job_name=job_name)
