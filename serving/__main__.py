"""`python -m serving VERB`: export trained runs in TF Serving's layout, or serve them (REST + gRPC)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Dict, List, Optional

from data_interface_for_model.cli import add_common_arguments, configure_logging


def _add_batching_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("batching (as TF Serving's --enable_batching / BatchingParameters)")
    group.add_argument("--enable-batching", action="store_true", help="merge concurrent requests into batches")
    group.add_argument("--max-batch-size", type=int, default=8, help="rows per batch (default 8; small suits CPUs)")
    group.add_argument("--batch-timeout-micros", type=int, default=2000,
                       help="longest wait for a batch to fill, from its first request (default 2000)")
    group.add_argument("--num-batch-threads", type=int, default=2, help="batches run in parallel (default 2)")
    group.add_argument("--max-enqueued-batches", type=int, default=64,
                       help="queue limit in batches; beyond it requests get 503 / UNAVAILABLE (default 64)")


def _batching(args: argparse.Namespace):
    from serving.batching import BatchingConfig

    if not args.enable_batching:
        return None
    return BatchingConfig(args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads,
                          args.max_enqueued_batches)


# ----------------------------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from serving.export import ExportUnavailable, export_runs, write_serving_configs

    if not args.classifier and not args.retrieval:
        print("error: give --classifier RUN and/or --retrieval RUN", file=sys.stderr)
        return 2
    steps = int(bool(args.classifier)) + int(bool(args.retrieval)) + 1
    with tqdm(total=steps, desc="export", unit="step", disable=args.quiet) as bar:
        def progress(kind: str) -> None:
            bar.set_postfix_str(kind)

        try:
            exported = export_runs(args.base, args.classifier, args.retrieval, args.version, progress=progress)
        except (ExportUnavailable, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - an exporter failed: say which, exit non-zero
            print(f"error: export failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        bar.update(steps - 1)
        bar.set_postfix_str("configs")
        configs = write_serving_configs(args.base, _batching(args))
        bar.update(1)
    for name, path in sorted(exported.items()):
        print(f"  {name}: {path}")
    for kind, path in sorted(configs.items()):
        print(f"  {kind}: {path}")
    print(f"exported {len(exported)} model version(s) to {args.base}; TF Serving configs: "
          f"{', '.join(sorted(configs))}")
    return 0


# ----------------------------------------------------------------------------------------------- serve
def _parse_labels(values: List[str], model_names: List[str]) -> Dict[str, Dict[str, int]]:
    """``stable=1,canary=2`` (every model) or ``classifier:stable=1,canary=2`` (one model), repeatable."""
    from serving.layout import parse_version_labels

    labels: Dict[str, Dict[str, int]] = {}
    for value in values:
        model, sep, spec = value.partition(":")
        if not sep:
            model, spec = None, value
        if model is not None and model not in model_names:
            raise ValueError(f"--version-labels names unknown model {model!r} (models: {model_names})")
        for name in ([model] if model else model_names):
            labels.setdefault(name, {}).update(parse_version_labels(spec))
    return labels


def cmd_serve(args: argparse.Namespace) -> int:
    from serving.layout import LayoutError, VersionPolicy, load_model_base
    from serving.server import ModelServer, ServerConfig

    if args.access_log:
        access = logging.getLogger("serving.access")
        access.setLevel(logging.INFO)
        access.propagate = False
        handler = logging.StreamHandler(sys.stderr) if args.access_log == "-" else logging.FileHandler(args.access_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access.addHandler(handler)
    logging.getLogger("serving.model_manager").setLevel(logging.INFO)
    try:
        if not os.path.isdir(args.model_base):
            raise LayoutError(f"model base {args.model_base!r} is not a folder")
        models = load_model_base(args.model_base, args.model_config_file)
        if not models:
            raise LayoutError(f"{args.model_base}: no model folders (expected <name>/<version>/saved_model.pb)")
        if args.version_policy:
            policy = VersionPolicy.parse(args.version_policy)
            for model in models:
                model.version_policy = policy
        for name, labels in _parse_labels(args.version_labels, [m.name for m in models]).items():
            next(m for m in models if m.name == name).version_labels.update(labels)
    except (LayoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(host=args.host, rest_port=None if args.no_rest else args.rest_port,
                          grpc_port=None if args.no_grpc else args.grpc_port,
                          max_request_bytes=args.max_request_bytes, poll_interval_s=args.poll_interval,
                          batching=_batching(args))
    server = ModelServer(models, config)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        server.stop()
        return 1
    health = server.health()
    for model in models:
        print(f"  {model.name}: versions {health[model.name] or 'none yet'} from {model.base_path}"
              + (f", labels {model.version_labels}" if model.version_labels else ""))
    print(f"serving {len(models)} model(s): REST http://{args.host}:{server.rest_port}  gRPC {args.host}:{server.grpc_port}"
          f"  batching {'on' if config.batching else 'off'} (Ctrl-C to stop)", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    print("server stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    export = verbs.add_parser("export", help="export runs to MODELS/<name>/<version>/ + models.config + docker-compose.yml",
                              description="Export the classifier run (classifier, embedder) and the retrieval run "
                                          "(recommender_bruteforce, recommender_scann) in TF Serving's layout, then "
                                          "write models.config and docker-compose.yml for every model under --base.")
    export.add_argument("--classifier", metavar="RUN", help="classifier run folder (baseline_model)")
    export.add_argument("--retrieval", metavar="RUN", help="retrieval run folder (retrieval)")
    export.add_argument("--base", metavar="MODELS", default="models", help="model base folder (default: models)")
    export.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    _add_batching_arguments(export)
    add_common_arguments(export)
    export.set_defaults(func=cmd_export)

    serve = verbs.add_parser("serve", help="serve MODELS over TF Serving's REST and gRPC APIs",
                             description="Serve every model under --model-base (or those its models.config lists) "
                                         "with TF Serving's REST API and gRPC PredictionService/ModelService; new "
                                         "version folders are picked up while serving.")
    serve.add_argument("--model-base", metavar="MODELS", default="models", help="model base folder (default: models)")
    serve.add_argument("--model-config-file", help="a ModelServerConfig text file (default: MODELS/models.config "
                                                   "if present, else every sub-folder of MODELS)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--rest-port", type=int, default=8501, help="REST port (default 8501; 0 = any free port)")
    serve.add_argument("--grpc-port", type=int, default=8500, help="gRPC port (default 8500; 0 = any free port)")
    serve.add_argument("--no-rest", action="store_true", help="do not serve REST")
    serve.add_argument("--no-grpc", action="store_true", help="do not serve gRPC")
    serve.add_argument("--poll-interval", type=float, default=1.0,
                       help="seconds between scans for new versions (default 1; 0 = never)")
    serve.add_argument("--version-policy", help="latest[:N] | all | specific:V1,V2 (default: latest, or models.config)")
    serve.add_argument("--version-labels", action="append", default=[], metavar="[MODEL:]LABEL=V,...",
                       help="version labels for /labels/{label}, e.g. stable=1,canary=2 (repeatable)")
    serve.add_argument("--max-request-bytes", type=int, default=32 << 20,
                       help="largest request body / gRPC message (default 32 MiB)")
    serve.add_argument("--access-log", default="-", metavar="FILE",
                       help="access log file ('-' = stderr, the default; '' = none)")
    _add_batching_arguments(serve)
    add_common_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    configure_logging(args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
