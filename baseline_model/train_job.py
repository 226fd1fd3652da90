"""The main job: make the demo data if needed, prepare it, train, evaluate on the test split, export.

Its flags (:func:`add_train_arguments`) are the ``train`` verb's and ``train_multimodal_baseline_model.py``'s;
every default comes from the config dataclasses, the model kinds and ``data_interface_for_model.defaults``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Tuple

from baseline_model.config import STRATEGIES, ClassifierConfig, TrainConfig, field_default
from baseline_model.kinds import DEFAULT_KIND, get_kind, kind_names
from data_interface_for_model import cli, defaults

DESCRIPTION = """Train, evaluate and export a multimodal short-video classifier (text + cover + frames, 31 categories).

With no arguments: makes the demo dataset under data/demo if it is missing, prepares it once into TFDS
shards (8 frames at 112x112), trains the default `pretrained` model (frozen MiniLM + MobileNetV2 encoders,
features cached, a gated-fusion head), evaluates it on the test split and exports it in TF Serving's
layout. About 5 minutes on 2 CPU cores.
"""


def _kind_defaults(attribute: str) -> str:
    return ", ".join(f"{getattr(get_kind(name), attribute):g} ({name})" for name in kind_names())


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The main job's flags, in groups."""
    default = lambda name: field_default(TrainConfig, name)  # noqa: E731
    data = parser.add_argument_group("data")
    cli.add_data_root(data, required=False, default=defaults.DATA_ROOT,
                      help="dataset root in the xinpianchang layout (the demo dataset is made there when the "
                           "default root is missing)")
    cli.add_data_dir(data, default=defaults.DATA_DIR, help="where the prepared TFDS shards go")
    data.add_argument("--demo-per-category", type=cli.positive_int, default=default("demo_per_category"),
                      help=f"items per category when the demo dataset is made (default {default('demo_per_category')})")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=DEFAULT_KIND, choices=kind_names(), help=f"default: {DEFAULT_KIND}")
    cli.add_frames(model)
    cli.add_image_size(model)
    for name in kind_names():
        get_kind(name).add_arguments(parser.add_argument_group(f"{name} model"))
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=cli.positive_int, default=None,
                       help=f"default {_kind_defaults('default_epochs')}")
    train.add_argument("--batch-size", type=cli.positive_int, default=default("batch_size"),
                       help=f"global batch size (default {default('batch_size')})")
    train.add_argument("--learning-rate", type=float, default=None,
                       help=f"default {_kind_defaults('default_learning_rate')}")
    train.add_argument("--strategy", default=default("strategy"), choices=STRATEGIES,
                       help="tf.distribute strategy (default auto: TPU if --tpu, multi-worker if TF_CONFIG has "
                            "several workers, mirrored if several GPUs, else default)")
    train.add_argument("--tpu", help="TPU name or grpc:// address for --strategy tpu")
    cli.add_output(train, required=False, default=defaults.RUN, help="run folder", metavar="RUN",
                   aliases=("--out",))
    train.add_argument("--resume", action="store_true", help="resume from the run folder's last checkpoint")
    train.add_argument("--seed", type=int, default=default("seed"),
                       help=f"random seed of training and demo data (default {default('seed')})")
    train.add_argument("--split-seed", type=int, default=default("split_seed"),
                       help=f"seed of the stratified train/validation/test split (default {default('split_seed')})")
    train.add_argument("--patience", type=cli.positive_int, default=default("early_stopping_patience"),
                       help=f"early-stopping patience in epochs (default {default('early_stopping_patience')})")
    train.add_argument("--mixed-precision", action="store_true", help="mixed float16 (GPU only)")
    train.add_argument("--steps-per-epoch", type=cli.positive_int, help="override steps per epoch (raw-input training)")
    out = parser.add_argument_group("after training")
    cli.add_model_base(out, default=None, help="export SavedModels under this TF Serving model base "
                                               "(default RUN/export)", aliases=("--export-base",))
    out.add_argument("--no-export", action="store_true", help="skip the export")
    cli.add_common_arguments(out)


def configs_from_args(args: argparse.Namespace) -> Tuple[ClassifierConfig, TrainConfig]:
    """The model kind's config and the training config from parsed flags."""
    kind = get_kind(args.model)
    model = kind.config_from_args(args)
    train = TrainConfig(
        data_root=args.data_root, data_dir=args.data_dir, output=args.output, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, strategy=args.strategy, tpu=args.tpu,
        resume=args.resume, seed=args.seed, split_seed=args.split_seed,
        early_stopping_patience=args.patience, mixed_precision=args.mixed_precision,
        steps_per_epoch=args.steps_per_epoch, demo_per_category=args.demo_per_category)
    return model, kind(model).with_defaults(train)


def run_train(args: argparse.Namespace) -> int:
    """Run the main job from parsed flags; prints what it did and a one-line summary."""
    model_config, train_config = configs_from_args(args)
    from tqdm import tqdm

    from baseline_model import data as data_lib
    from data_interface_for_model.info_file import INFO_FILE_NAME

    if args.data_root == defaults.DATA_ROOT and not os.path.exists(os.path.join(args.data_root, INFO_FILE_NAME)):
        with tqdm(total=31 * args.demo_per_category, desc="making demo dataset", unit="item",
                  disable=args.quiet) as bar:
            data_lib.ensure_demo_dataset(args.data_root, args.demo_per_category, args.seed, progress=bar.update)
    elif not os.path.isdir(args.data_root) and "://" not in args.data_dir:  # a URL data dir: built already
        raise cli.UsageError(f"--data-root {args.data_root!r} is not a folder")
    prepared = data_lib.prepare(train_config, model_config)
    print(f"prepared {prepared.summary()}")

    from baseline_model.evaluate import comparison_line, evaluate_run
    from baseline_model.export import export_run
    from baseline_model.run import load_run, saved_model_path
    from baseline_model.strategy import is_chief
    from baseline_model.train import train_run

    result = train_run(model_config, train_config, verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2))
    if not is_chief():
        print(f"train: worker finished {result.epochs_run} epochs")
        return 0
    run = load_run(result.run_dir)
    report = evaluate_run(result.run_dir, "test", run=run)
    exported = {} if args.no_export else export_run(result.run_dir, args.model_base, run=run)
    print(f"single modality (test accuracy): text {report['text_only']['accuracy']:.3f}, cover "
          f"{report['cover_only']['accuracy']:.3f}, video {report['video_only']['accuracy']:.3f}")
    print(comparison_line(report))
    where = f"; exported {', '.join(exported.values())}" if exported else ""
    print(f"done: {model_config.kind} test accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} "
          f"({report['examples']} items, {result.epochs_run} epochs, {result.seconds:.0f} s); model "
          f"{saved_model_path(result.run_dir)}, report {report['report_json']}{where}")
    return 0


def build_parser(prog: str = None) -> argparse.ArgumentParser:
    """The main job's stand-alone parser (``train_multimodal_baseline_model.py``)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
    return parser
