"""How many REST worker processes: a count or ``auto`` (one per core the process may use)."""

from __future__ import annotations

import os
import tempfile


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, as a container's cpuset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(value: str) -> int:
    """``"auto"`` -> :func:`cores`; ``"3"`` -> 3; anything else ValueError naming the value."""
    if value == "auto":
        return cores()
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(f"--workers takes a number or 'auto', not {value!r}") from e


def argv_with_worker_count(argv: list[str]) -> list[str]:
    """``argv`` with ``--workers auto`` replaced by the number it means (for a parser that takes ints)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--workers=auto":
            out[i] = f"--workers={cores()}"
        elif arg == "--workers" and i + 1 < len(out) and out[i + 1] == "auto":
            out[i + 1] = str(cores())
    return out


# MLflow's HTTP client retries 7 times with exponential backoff (minutes) and waits 120 s per request:
# fine for a training job, too long for an alias poller that should notice a recovered registry within a
# few polls. Explicit settings win.
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def prepare_environment(*, workers: int) -> None:
    """A predictor process's environment, set before prometheus_client or MLflow are imported: a
    multiprocess metrics directory for several workers (``/metrics`` adds them up), MLflow client timeouts."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlcycle-metrics-")
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
