"""Train, evaluate and export a multimodal short-video classifier (text + cover + frames, 31 categories).

With no arguments: makes the demo dataset under data/demo if it is missing, prepares it once into TFDS
shards (8 frames at 112x112), trains the default `pretrained` model (frozen MiniLM + MobileNetV2 encoders,
features cached, a gated-fusion head), evaluates it on the test split and exports it in TF Serving's
layout. About 5 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not our messages

DEFAULT_DATA_ROOT = os.path.join("data", "demo")


def build_parser() -> argparse.ArgumentParser:
    from baseline_model.config import MODEL_KINDS, STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                      help=f"dataset root in the xinpianchang layout (default {DEFAULT_DATA_ROOT}; the demo "
                           f"dataset is made there when the default root is missing)")
    data.add_argument("--data-dir", default=os.path.join("data", "tfds"),
                      help="where the prepared TFDS shards go (default data/tfds)")
    data.add_argument("--demo-per-category", type=int, default=20,
                      help="items per category when the demo dataset is made (default 20)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="pretrained", choices=MODEL_KINDS, help="default: pretrained")
    model.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    model.add_argument("--image-size", type=int, default=112, help="frame and cover size (default 112)")
    model.add_argument("--embedding-dim", type=int, default=256, help="penultimate embedding size (default 256)")
    model.add_argument("--text-preset", default="offline-minilm",
                       help="keras-hub preset or folder for the text encoder (default: the offline MiniLM)")
    model.add_argument("--image-weights", default="offline", choices=("offline", "imagenet", "none"),
                       help="MobileNetV2 weights: offline (converted torchvision weights), imagenet "
                            "(keras.applications download), none (default offline)")
    model.add_argument("--fine-tune-top-layers", type=int, default=0,
                       help="unfreeze this many top layers of each encoder (default 0: frozen; implies "
                            "--no-feature-cache, as does --image-weights none)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=None, help="default 40 (pretrained head), 15 (seed_baseline)")
    train.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    train.add_argument("--learning-rate", type=float, default=None,
                       help="default 2e-3 (pretrained head), 1e-3 (seed_baseline)")
    train.add_argument("--strategy", default="auto", choices=STRATEGIES,
                       help="tf.distribute strategy (default auto: TPU if --tpu, multi-worker if TF_CONFIG has "
                            "several workers, mirrored if several GPUs, else default)")
    train.add_argument("--tpu", help="TPU name or grpc:// address for --strategy tpu")
    train.add_argument("--output", default=os.path.join("runs", "latest"), help="run folder (default runs/latest)")
    train.add_argument("--resume", action="store_true", help="resume from the run folder's last checkpoint")
    train.add_argument("--seed", type=int, default=0, help="random seed of training and demo data (default 0)")
    train.add_argument("--split-seed", type=int, default=0,
                       help="seed of the stratified train/validation/test split (default 0)")
    train.add_argument("--no-feature-cache", action="store_true",
                       help="train the pretrained model end to end instead of on cached encoder features")
    train.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    train.add_argument("--mixed-precision", action="store_true", help="mixed float16 (GPU only)")
    train.add_argument("--steps-per-epoch", type=int, help="override steps per epoch (raw-input training)")
    out = parser.add_argument_group("after training")
    out.add_argument("--export-base", help="export SavedModels here (default RUN/export)")
    out.add_argument("--no-export", action="store_true", help="skip the export")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    out.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def configs_from_args(args: argparse.Namespace):
    from baseline_model.config import ModelConfig, TrainConfig

    seed = args.model == "seed_baseline"
    model = ModelConfig(kind=args.model, num_frames=args.frames, image_size=args.image_size,
                        embedding_dim=args.embedding_dim, text_preset=args.text_preset,
                        image_weights=args.image_weights, fine_tune_top_layers=args.fine_tune_top_layers)
    train = TrainConfig(
        data_root=args.data_root, data_dir=args.data_dir, output=args.output,
        epochs=args.epochs or (15 if seed else 40), batch_size=args.batch_size,
        learning_rate=args.learning_rate or (1e-3 if seed else 2e-3), strategy=args.strategy, tpu=args.tpu,
        resume=args.resume, seed=args.seed, split_seed=args.split_seed,
        feature_cache=(not args.no_feature_cache and args.fine_tune_top_layers == 0
                       and args.image_weights != "none"),
        early_stopping_patience=args.patience, mixed_precision=args.mixed_precision,
        steps_per_epoch=args.steps_per_epoch, demo_per_category=args.demo_per_category)
    return model, train


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # deprecation notices from inside TF/TFDS are not actionable for users
        for noisy in ("absl", "tensorflow"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        model_config, train_config = configs_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from baseline_model import data as data_lib

    from data_interface_for_model.info_file import INFO_FILE_NAME

    if args.data_root == DEFAULT_DATA_ROOT and not os.path.exists(os.path.join(args.data_root, INFO_FILE_NAME)):
        with tqdm(total=31 * args.demo_per_category, desc="making demo dataset", unit="item",
                  disable=args.quiet) as bar:
            data_lib.ensure_demo_dataset(args.data_root, args.demo_per_category, args.seed, progress=bar.update)
    elif not os.path.isdir(args.data_root):
        print(f"error: --data-root {args.data_root!r} is not a folder", file=sys.stderr)
        return 2
    prepared = data_lib.prepare(train_config, model_config)
    print(f"prepared {prepared.summary()}")

    from baseline_model.evaluate import evaluate_run
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
    exported = {} if args.no_export else export_run(result.run_dir, args.export_base, run=run)
    print(f"single modality (test accuracy): text {report['text_only']['accuracy']:.3f}, cover "
          f"{report['cover_only']['accuracy']:.3f}, video {report['video_only']['accuracy']:.3f}")
    where = f"; exported {', '.join(exported.values())}" if exported else ""
    print(f"done: {model_config.kind} test accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} "
          f"({report['examples']} items, {result.epochs_run} epochs, {result.seconds:.0f} s); model "
          f"{saved_model_path(result.run_dir)}, report {report['report_json']}{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
