"""`python -m serving VERB`: export trained runs in TF Serving's layout, or serve them (REST + gRPC)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Dict, List, Optional

from data_interface_for_model.cli import UsageError, add_common_arguments, add_model_base, positive_int, verb_main


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


def _serve_batching(args: argparse.Namespace):
    """``serve``'s batching: none without ``--enable-batching``; else ``--batching-parameters-file``, else
    ``MODELS/batching_parameters.txt`` when ``export --enable-batching`` wrote one, else the batching flags."""
    from serving.tf_serving_configs import read_batching_parameters

    if not args.enable_batching:
        return None
    parameters = args.batching_parameters_file or os.path.join(args.model_base, "batching_parameters.txt")
    if args.batching_parameters_file or os.path.isfile(parameters):
        return read_batching_parameters(parameters)
    return _batching(args)


# ----------------------------------------------------------------------------------------------- export
def cmd_export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from serving.export import export_runs, write_serving_configs

    if not args.classifier_run and not args.recommender_run:
        raise UsageError("give --classifier-run RUN and/or --recommender-run RUN")
    steps = int(bool(args.classifier_run)) + int(bool(args.recommender_run)) + 1
    with tqdm(total=steps, desc="export", unit="step", disable=args.quiet) as bar:
        def progress(kind: str) -> None:
            bar.set_postfix_str(kind)

        exported = export_runs(args.model_base, args.classifier_run, args.recommender_run, args.version,
                               progress=progress)
        bar.update(steps - 1)
        bar.set_postfix_str("configs")
        configs = write_serving_configs(args.model_base, _batching(args))
        bar.update(1)
    for name, path in sorted(exported.items()):
        print(f"  {name}: {path}")
    for kind, path in sorted(configs.items()):
        print(f"  {kind}: {path}")
    print(f"exported {len(exported)} model version(s) to {args.model_base}; TF Serving configs: "
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
            raise UsageError(f"--version-labels names unknown model {model!r} (models: {model_names})")
        for name in ([model] if model else model_names):
            labels.setdefault(name, {}).update(parse_version_labels(spec))
    return labels


def _configure_access_log(target: str) -> None:
    if not target:
        return
    access = logging.getLogger("serving.access")
    access.setLevel(logging.INFO)
    access.propagate = False
    handler = logging.StreamHandler(sys.stderr) if target == "-" else logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access.addHandler(handler)


def _models_to_serve(args: argparse.Namespace):
    from serving.layout import VersionPolicy, load_model_base

    if not os.path.isdir(args.model_base):
        raise UsageError(f"model base {args.model_base!r} is not a folder")
    models = load_model_base(args.model_base, args.model_config_file)
    if not models:
        raise UsageError(f"{args.model_base}: no model folders (expected <name>/<version>/saved_model.pb)")
    if args.version_policy:
        policy = VersionPolicy.parse(args.version_policy)
        for model in models:
            model.version_policy = policy
    for name, labels in _parse_labels(args.version_labels, [m.name for m in models]).items():
        next(m for m in models if m.name == name).version_labels.update(labels)
    return models


def run_server(models, config, quiet: bool = False) -> int:
    """Start the server, print where it listens, serve until SIGINT/SIGTERM, stop."""
    from serving.server import ModelServer

    server = ModelServer(models, config)
    try:
        server.start()
    except OSError as exc:
        server.stop()
        raise UsageError(f"cannot listen on {config.host}: {exc.strerror or exc}") from None
    health = server.health()
    for model in models:
        print(f"  {model.name}: versions {health[model.name] or 'none yet'}"
              + (f", labels {model.version_labels}" if model.version_labels else ""))
    print(f"serving {len(models)} model(s): REST http://{config.host}:{server.rest_port}  gRPC "
          f"{config.host}:{server.grpc_port}  batching {'on' if config.batching else 'off'} (Ctrl-C to stop)",
          flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    print("server stopped")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    models = _models_to_serve(args)  # bad input fails before TensorFlow loads
    from serving.limits import limits_from_args
    from serving.server import ServerConfig

    batching = _serve_batching(args)
    _configure_access_log(args.access_log)
    logging.getLogger("serving.model_manager").setLevel(logging.INFO)
    config = ServerConfig(host=args.host, rest_port=None if args.no_rest else args.rest_port,
                          grpc_port=None if args.no_grpc else args.grpc_port, poll_interval_s=args.poll_interval,
                          batching=batching, limits=limits_from_args(args))
    return run_server(models, config, args.quiet)


# ----------------------------------------------------------------------------------------------- model-server
def _flag_bool(value: str) -> bool:
    """TF Serving's boolean flags: ``--enable_batching``, ``--enable_batching=true``, ``=false``, ``=0``..."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean (true or false)")


def _model_server_models(args: argparse.Namespace):
    from serving.layout import ModelConfig

    if args.model_config_file:
        if args.model_base_path:
            raise UsageError("give --model_config_file or --model_base_path, not both")
        return _read_model_config(args.model_config_file), _read_model_config
    name = args.model_name or os.environ.get("MODEL_NAME") or "default"
    base = args.model_base_path
    if not base and os.environ.get("MODEL_BASE_PATH"):
        base = os.path.join(os.environ["MODEL_BASE_PATH"], name)  # the Docker image's convention
    if not base:
        raise UsageError("give --model_base_path (with --model_name) or --model_config_file, or set MODEL_NAME "
                         "and MODEL_BASE_PATH as in TF Serving's Docker image")
    return [ModelConfig(name, os.path.abspath(base))], None


def _read_model_config(path: str):
    from serving.layout import parse_models_config

    if not os.path.isfile(path):
        raise UsageError(f"model config file {path!r} does not exist")
    with open(path, encoding="utf-8") as handle:
        return parse_models_config(handle.read(), relative_to=os.path.dirname(os.path.abspath(path)))


def cmd_model_server(args: argparse.Namespace) -> int:
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    models, reader = _model_server_models(args)
    from serving.batching import BatchingConfig
    from serving.limits import Limits
    from serving.server import ServerConfig
    from serving.tf_serving_configs import read_batching_parameters, read_monitoring_config

    batching = None
    if args.enable_batching:
        batching = read_batching_parameters(args.batching_parameters_file) if args.batching_parameters_file \
            else BatchingConfig()
    metrics_path = read_monitoring_config(args.monitoring_config_file).prometheus_path \
        if args.monitoring_config_file else None
    limits = Limits(max_connections=args.rest_api_num_threads) if args.rest_api_num_threads else Limits()
    config = ServerConfig(host=args.host, grpc_port=args.port, rest_port=args.rest_api_port or None,
                          poll_interval_s=args.file_system_poll_wait_seconds, batching=batching, limits=limits,
                          metrics_path=metrics_path,
                          allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
                          run_timeout_ms=args.rest_api_timeout_in_ms or None, cors=args.rest_api_enable_cors_support,
                          model_config_file=args.model_config_file,
                          model_config_poll_s=args.model_config_file_poll_wait_seconds, read_model_config=reader)
    _configure_access_log("-" if args.verbose else "")
    if args.host in ("0.0.0.0", "::"):
        print(f"listening on all interfaces ({args.host}), as tensorflow_model_server does; --host 127.0.0.1 "
              "keeps it local", flush=True)
    return run_server(models, config, args.quiet)


def _add_model_server(verbs) -> None:
    p = verbs.add_parser(
        "model-server", help="tensorflow_model_server's command line (--port, --rest_api_port, --model_name...)",
        description="Serve with tensorflow_model_server's flags, so a Kubernetes manifest or a Docker command "
                    "written for TF Serving can swap binaries: --model_name + --model_base_path (or MODEL_NAME / "
                    "MODEL_BASE_PATH as in TF Serving's image) or --model_config_file. Like TF Serving it listens "
                    "on all interfaces unless --host says otherwise, and REST is off unless --rest_api_port is set.")
    flag = {"type": _flag_bool, "nargs": "?", "const": True, "default": False, "metavar": "BOOL"}
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port (default 0: no REST)")
    p.add_argument("--rest_api_num_threads", type=int, default=0,
                   help="REST requests served at once (here: open connections; default: the server's limit)")
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30000,
                   help="a model run longer than this fails with DEADLINE_EXCEEDED, REST 504 (default 30000)")
    p.add_argument("--rest_api_enable_cors_support", **flag, help="CORS headers and preflight answers")
    p.add_argument("--model_name", help="the model's name in single-model mode (default: $MODEL_NAME or default)")
    p.add_argument("--model_base_path", help="the model's base path in single-model mode")
    p.add_argument("--model_config_file", help="a ModelServerConfig text file (several models, policies, labels)")
    p.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                   help="re-read --model_config_file this often and apply changes (default 0: never)")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1,
                   help="seconds between scans for new versions (default 1)")
    p.add_argument("--enable_batching", **flag, help="batch concurrent requests")
    p.add_argument("--batching_parameters_file", help="BatchingParameters text file (max_batch_size, "
                                                      "allowed_batch_sizes, pad_variable_length_inputs...)")
    p.add_argument("--monitoring_config_file", help="MonitoringConfig text file (prometheus_config enable/path)")
    p.add_argument("--allow_version_labels_for_unavailable_models", **flag,
                   help="accept labels that point at versions which are not serving")
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0, as TF Serving)")
    add_common_arguments(p)
    p.set_defaults(func=cmd_model_server)


def add_verbs(verbs) -> None:
    """``export`` and ``serve`` (and ``model-server``, TF Serving's own command line)."""
    from serving.limits import add_limit_arguments

    export = verbs.add_parser(
        "export", help="export runs to MODELS/<name>/<version>/ + models.config + docker-compose.yml",
        description="Export the classifier run (classifier, embedder) and the recommender run "
                    "(recommender_bruteforce, recommender_scann) in TF Serving's layout, then write models.config "
                    "and docker-compose.yml for every model under --model-base.")
    export.add_argument("--classifier-run", metavar="RUN", help="classifier run folder to export")
    export.add_argument("--recommender-run", metavar="RUN", help="recommender run folder to export")
    export.add_argument("--classifier", dest="classifier_run", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    export.add_argument("--retrieval", dest="recommender_run", help=argparse.SUPPRESS, default=argparse.SUPPRESS)
    add_model_base(export, aliases=("--base",))
    export.add_argument("--version", type=positive_int, default=None, help="version number (default: next free)")
    _add_batching_arguments(export)
    add_common_arguments(export)
    export.set_defaults(func=cmd_export)

    serve = verbs.add_parser(
        "serve", help="serve MODELS over TF Serving's REST and gRPC APIs (127.0.0.1 by default)",
        description="Serve every model under --model-base (or those its models.config lists) with TF Serving's "
                    "REST API and gRPC PredictionService/ModelService; new version folders are picked up while "
                    "serving.")
    add_model_base(serve)
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
    serve.add_argument("--access-log", default="-", metavar="FILE",
                       help="access log file ('-' = stderr, the default; '' = none)")
    _add_batching_arguments(serve)
    serve.add_argument("--batching-parameters-file", metavar="FILE",
                       help="TF Serving BatchingParameters text file; with --enable-batching it replaces the "
                            "batching flags (default: MODELS/batching_parameters.txt when it exists)")
    add_limit_arguments(serve)
    add_common_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    _add_model_server(verbs)

    from serving.catalog.cli import add_catalog_verb  # catalog, catalog-export (light: no TensorFlow)

    add_catalog_verb(verbs)


def build_parser(prog: str = "python -m serving") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
