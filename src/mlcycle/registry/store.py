"""Registry reads and writes that tell "not found" from "unavailable".

Only MLflow's ``RESOURCE_DOES_NOT_EXIST`` means a model or version is not there (and, for an alias
lookup, the ``INVALID_PARAMETER_VALUE`` MLflow answers with for a missing alias). A timeout, a 5xx, a
refused connection or a locked database is an outage: :func:`call` retries it with tenacity and then
raises :class:`~mlcycle.errors.RegistryUnavailableError` (503). Any other client error is re-raised as is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mlcycle.errors import ModelNotFoundError, RegistryUnavailableError

T = TypeVar("T")

NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST"})
# MLflow's client-side error codes: the request was wrong, retrying it cannot help.
CLIENT_ERROR_CODES = frozenset({
    "RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST",
    "INVALID_STATE", "PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED", "ENDPOINT_NOT_FOUND",
    "FEATURE_DISABLED", "RESOURCE_CONFLICT", "MALFORMED_REQUEST", "NOT_FOUND",
})
ATTEMPTS = 3


def error_code(e: BaseException) -> str | None:
    return getattr(e, "error_code", None)


def is_not_found(e: BaseException) -> bool:
    return error_code(e) in NOT_FOUND_CODES


def is_transient(e: BaseException) -> bool:
    """True for an outage: a server-side MLflow error, a connection/timeout error, a locked database."""
    from mlflow.exceptions import MlflowException

    if isinstance(e, RegistryUnavailableError):
        return True
    if isinstance(e, MlflowException):
        return error_code(e) not in CLIENT_ERROR_CODES
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    module = type(e).__module__
    if module.startswith(("requests", "urllib3", "botocore")):
        return True  # connection / endpoint / read-timeout errors of the HTTP and S3 clients
    return module.startswith("sqlalchemy") and type(e).__name__ == "OperationalError"


def call(fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, retried on transient errors; then :class:`RegistryUnavailableError`."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    try:
        for attempt in Retrying(retry=retry_if_exception(is_transient), stop=stop_after_attempt(ATTEMPTS),
                                wait=wait_exponential(multiplier=0.2, max=2), reraise=True):
            with attempt:
                return fn(*args, **kwargs)
    except Exception as e:
        if is_transient(e) and not isinstance(e, RegistryUnavailableError):
            raise RegistryUnavailableError(
                f"the model registry is unavailable while {what} (after {ATTEMPTS} attempts): {e}"
            ) from e
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def get_model_version(name: str, version: str, *, mlflow_client: Any = None) -> Any:
    """The MLflow ``ModelVersion``; :class:`ModelNotFoundError` only when MLflow says it does not exist."""
    c = mlflow_client or client()
    try:
        return call(c.get_model_version, name, str(version), what=f"reading {name} v{version}")
    except Exception as e:
        if is_not_found(e):
            raise ModelNotFoundError(f"model {name} has no version {version}", field="model") from e
        raise


def get_registered_model(name: str, *, mlflow_client: Any = None) -> Any:
    """The MLflow ``RegisteredModel``; :class:`ModelNotFoundError` only when MLflow says it does not exist."""
    c = mlflow_client or client()
    try:
        return call(c.get_registered_model, name, what=f"reading {name}")
    except Exception as e:
        if is_not_found(e):
            raise ModelNotFoundError(f"registered model {name!r} not found", field="model") from e
        raise


def get_run(run_id: str, *, mlflow_client: Any = None) -> Any | None:
    """The MLflow run, or None when MLflow says it does not exist (an outage still raises)."""
    c = mlflow_client or client()
    try:
        return call(c.get_run, run_id, what=f"reading run {run_id}")
    except Exception as e:
        if is_not_found(e):
            return None
        raise


def alias_version(name: str, alias: str, *, mlflow_client: Any = None,
                  denied_is_missing: bool = False) -> str | None:
    """The version ``alias`` points at; None when the alias or the model does not exist.

    Args:
        denied_is_missing: also None for a 403 on a model no permission-filtered search shows. MLflow's auth
            app answers 403 for a model that does not exist as for another team's, and the two cannot be told
            apart with these credentials; only a caller about to *create* the model (a team's first evaluation)
            may read that as "no alias" — the server still refuses the create if the name is another team's.
            Everyone else (promote, rollback, status) gets the 403, which the CLI reports as a refusal.
    """
    c = mlflow_client or client()
    try:
        return str(call(c.get_model_version_by_alias, name, alias, what=f"reading {name}@{alias}").version)
    except Exception as e:
        if is_not_found(e) or error_code(e) == "INVALID_PARAMETER_VALUE":  # MLflow: "alias ... not found"
            return None
        if denied_is_missing and error_code(e) == "PERMISSION_DENIED" and not visible(c, name):
            return None
        raise


def visible(c: Any, name: str) -> bool:
    """Whether a registered model ``name`` exists that these credentials may read."""
    escaped = name.replace("'", "\\'")
    found = call(c.search_registered_models, filter_string=f"name = '{escaped}'", what=f"searching for {name}")
    return any(m.name == name for m in found)
