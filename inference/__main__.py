"""``python -m inference models:/wine@champion [more URIs] [--http-port 8080] [--grpc-port N] ...``

The predictor's entry point (the image's command; ``mlcycle serve`` runs it too). Loads every model
before listening, then serves them all from one KServe model server under their base names.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def cores() -> int:
    """The CPUs this process may run on (its affinity mask, as a container's cpuset limits it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_arg(value: str) -> int:
    """``--workers``: a count, or ``auto`` for one REST worker per core."""
    if value == "auto":
        return cores()
    try:
        return int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--workers takes a number or 'auto', not {value!r}") from e


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m inference", description="Serve MLflow models over KServe's v1/v2 protocols."
    )
    p.add_argument("models", nargs="+", help="model URIs: models:/wine@champion, models:/wine/3, runs:/...")
    p.add_argument("--http-port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--grpc-port", type=int, default=None, help="v2 gRPC port (default: no gRPC)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (the image uses 0.0.0.0)")
    p.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        help="REST worker processes, or 'auto' for one per core (default 1); /metrics adds them up",
    )
    p.add_argument("--canary", default=None, help="another version of one served model, e.g. models:/wine@challenger")
    p.add_argument("--canary-percent", type=float, default=10.0, help="share of traffic for --canary (0-100)")
    p.add_argument("--max-threads", type=int, default=4, help="gRPC worker threads")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if not 0 <= args.canary_percent <= 100:
        p.error("--canary-percent must be between 0 and 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Must be set before prometheus_client is imported (by kserve or mlcycle) in any process.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mlcycle-metrics-")
    # MLflow's HTTP client retries 7 times with exponential backoff (minutes) and waits 120 s per request:
    # fine for a training job, too long for an alias poller that should notice a recovered registry
    # within a few polls. Explicit settings win.
    for key, value in MLFLOW_CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # KServe's model_server parses sys.argv when imported; give it only the program name.
    sys.argv = sys.argv[:1]

    from inference.model import MlflowModel
    from inference.server import PredictorServer
    from mlcycle.config import load_settings
    from mlcycle.errors import MlcycleError
    from mlcycle.registry.uris import parse_model_ref

    settings = load_settings()
    from mlcycle import logs

    # JSON lines or text per MLCYCLE_LOG_FORMAT, with the request id on every line of a request.
    logs.configure(settings, component="predictor")
    try:
        canary_base = parse_model_ref(args.canary, settings.team).base_name if args.canary else None
        models, names = [], set()
        for ref in args.models:
            base = parse_model_ref(ref, settings.team).base_name
            canary = args.canary if canary_base is not None and base == canary_base else None
            model = MlflowModel(ref, settings, canary_ref=canary, canary_percent=args.canary_percent)
            if model.name in names:
                raise MlcycleError(f"two models would be served as {model.name!r}; serve one version per name")
            names.add(model.name)
            if args.workers > 1:
                model.check()  # the parent only supervises: each worker downloads and loads
            else:
                model.load()
            models.append(model)
        if canary_base is not None and canary_base not in names:
            raise MlcycleError(f"--canary {args.canary} is not a version of any served model ({', '.join(names)})")
    except MlcycleError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    server = PredictorServer(
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_threads=args.max_threads,
    )
    server.start(models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
