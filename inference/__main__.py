"""``python -m inference models:/wine@champion [more URIs] [--http-port 8080] [--grpc-port N] ...``

The predictor's entry point (the image's command; ``mlcycle serve`` runs it). Built with
``parents=[kserve.model_server.parser]`` as KServe's runtimes are, so KServe's flags are listed and
honoured beside mlcycle's own (``--http-port``, ``--grpc-port``, ``--host``, ``--canary``...).
"""

from __future__ import annotations

import argparse
import copy
import sys

from mlcycle.serving.workers import argv_with_worker_count, prepare_environment, worker_count

# ModelServer's keyword arguments that come straight from flags of the same name.
SERVER_FLAGS = ("max_threads", "max_asyncio_workers", "enable_docs_url", "event_loop", "timeout_keep_alive",
                "access_log_format", "ssl_certfile", "ssl_keyfile")


def workers_arg(value: str) -> int:
    """``--workers``: a count, or ``auto`` for one REST worker per core."""
    try:
        return worker_count(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def build_parser() -> argparse.ArgumentParser:
    from kserve import model_server

    # A copy: "resolve" replaces KServe's --workers by ours in this parser only, not in KServe's.
    kserve_flags = copy.deepcopy(model_server.parser)
    p = argparse.ArgumentParser(
        prog="python -m inference", description="Serve MLflow models over KServe's v1/v2 protocols.",
        parents=[kserve_flags], conflict_handler="resolve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("models", nargs="+", help="model URIs: models:/wine@champion, models:/wine/3, runs:/...")
    p.add_argument("--http-port", dest="http_port", type=int, default=argparse.SUPPRESS, help="= --http_port")
    p.add_argument("--grpc-port", dest="grpc_port", type=int, default=argparse.SUPPRESS,
                   help="v2 gRPC port; gRPC is on only with a port (or --enable_grpc true: 8081)")
    p.add_argument("--max-threads", dest="max_threads", type=int, default=argparse.SUPPRESS, help="= --max_threads")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (the image uses 0.0.0.0)")
    p.add_argument("--workers", type=workers_arg, default=1,
                   help="REST worker processes, or 'auto' for one per core; /metrics adds them up")
    p.add_argument("--canary", default=None, help="another version of one served model, e.g. models:/wine@challenger")
    p.add_argument("--canary-percent", type=float, default=10.0, help="share of traffic for --canary (0-100)")
    # KServe's defaults that mean something else here: gRPC and the latency log line are off unless asked
    # for; the served name is the registered model's base name unless --model_name gives one.
    p.set_defaults(grpc_port=None, enable_grpc=None, enable_latency_logging=False, model_name=None)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    if not 0 <= args.canary_percent <= 100:
        p.error("--canary-percent must be between 0 and 100")
    if args.enable_grpc is None:
        args.enable_grpc = args.grpc_port is not None
    if args.enable_grpc and args.grpc_port is None:
        args.grpc_port = 8081  # KServe's default
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # KServe parses sys.argv when first imported, --workers as an int: 'auto' would exit
        sys.argv[1:] = argv_with_worker_count(sys.argv[1:])
    args = parse_args(argv)
    prepare_environment(workers=args.workers)  # before prometheus_client or MLflow are imported

    from inference.kserve_private import PredictorServer
    from inference.model import MlflowModel
    from mlcycle import logs
    from mlcycle.config import load_settings
    from mlcycle.errors import MlcycleError
    from mlcycle.serving.endpoint import build_endpoints

    settings = load_settings()
    # JSON lines or text per MLCYCLE_LOG_FORMAT, with the request id on every line of a request.
    logs.configure(settings, component="predictor")
    try:
        endpoints = build_endpoints(
            args.models, settings, canary_ref=args.canary, canary_percent=args.canary_percent, name=args.model_name
        )
        # With --workers N the parent only checks the references: each worker loads its own. A model
        # whose requirements do not hold here leaves its endpoint not ready (503 naming the package and
        # both versions) rather than stopping the predictor; any other load failure exits 2 here.
        for endpoint in endpoints:
            endpoint.check() if args.workers > 1 else endpoint.load_or_refuse()
    except MlcycleError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    options = vars(args)
    server = PredictorServer(
        host=args.host, options=options, max_body_bytes=settings.serving_max_body_bytes, http_port=args.http_port,
        grpc_port=args.grpc_port or 0, workers=args.workers, enable_grpc=args.enable_grpc,
        enable_latency_logging=args.enable_latency_logging, **{k: options[k] for k in SERVER_FLAGS},
    )
    server.start([MlflowModel(endpoint) for endpoint in endpoints])
    return 0


if __name__ == "__main__":
    sys.exit(main())
