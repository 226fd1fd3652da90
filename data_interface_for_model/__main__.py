"""``python -m data_interface_for_model VERB`` (also ``xinpianchang data VERB``): prepare (decode a dataset
root once into TFDS shards)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from data_interface_for_model import defaults
from data_interface_for_model.beam_prepare import add_runner_arguments
from data_interface_for_model.cli import (
    UsageError,
    add_common_arguments,
    add_data_dir,
    add_data_root,
    add_frames,
    add_audio,
    add_image_size,
    audio_windows,
    positive_int,
    verb_main,
)
from data_interface_for_model.limits import (
    add_image_pixels_argument,
    add_parse_limit_arguments,
    parse_limits_from_args,
)


def _prepare(args: argparse.Namespace) -> int:
    """Build the TFDS dataset from a dataset root (the heavy imports happen here, not at parse time)."""
    from data_interface_for_model.prepare import prepare_dataset

    root = args.data_root
    if args.root_positional is not None:
        if root not in (None, defaults.DATA_ROOT) and root != args.root_positional:
            raise UsageError(f"two dataset roots given: --data-root {root} and {args.root_positional}")
        root = args.root_positional
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.runner and args.audio:
        raise UsageError("--audio is not available with --runner yet: prepare the audio config in process")
    if args.runner:  # an Apache Beam pipeline (docs/beam.md)
        from data_interface_for_model.beam_prepare import prepare_from_args

        report = prepare_from_args(args, root)
    else:
        report = prepare_dataset(root, args.data_dir, num_frames=args.frames, size=args.image_size,
                                 splits=tuple(args.splits), seed=args.seed, workers=args.workers,
                                 quality=args.quality, progress=not args.quiet, force=args.force,
                                 max_image_pixels=args.max_image_pixels, parse_limits=parse_limits_from_args(args),
                                 audio_patches=audio_windows(args))
    shown = report.skipped[: args.show_skipped]
    for skipped in shown:
        print(f"skipped {skipped['kind']}: {skipped['path']}: {skipped['message']}", file=sys.stderr)
    if len(report.skipped) > len(shown):
        print(f"... {len(report.skipped) - len(shown)} more skipped items listed in "
              f"{report.dataset_dir}/prepare_report.json", file=sys.stderr)
    print(f"prepare: {report.summary()}")
    return 0


def _add_prepare(verbs) -> None:
    parser = verbs.add_parser(
        "prepare", help="decode a dataset root once into the xinpianchang TFDS dataset (array_record + tfrecord)",
        description="Sample frames uniformly across every clip, resize frames and cover (short side, centre "
                    "crop), JPEG-encode them in parallel processes, split stratified by label, and write the "
                    "TFDS dataset `xinpianchang`, config frames{T}_size{S}. Corrupt items are skipped and "
                    "listed. Running it again with the same arguments reuses the finished build.")
    add_data_root(parser, required=False, default=defaults.DATA_ROOT,
                  help="the dataset root: ROOT/<label>/<mp4_id>/<mp4_id>.mp4|.jpeg|.txt")
    parser.add_argument("root_positional", nargs="?", metavar="ROOT", help=argparse.SUPPRESS)
    add_data_dir(parser, default=defaults.DATA_DIR, help="TFDS data dir to write into")
    add_frames(parser)
    add_image_size(parser, aliases=("--size",))
    add_audio(parser, help="also store the sound track (config frames{T}_size{S}_audio{N})")
    train, validation, test = defaults.SPLIT_FRACTIONS
    parser.add_argument("--splits", type=float, nargs=3, default=defaults.SPLIT_FRACTIONS,
                        metavar=("TRAIN", "VALIDATION", "TEST"),
                        help=f"split fractions (default {train} {validation} {test})")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default 0: one per core)")
    parser.add_argument("--quality", type=positive_int, default=90, help="JPEG quality of stored pictures (default 90)")
    add_image_pixels_argument(parser)
    add_parse_limit_arguments(parser)
    add_runner_arguments(parser, what="the decoding")
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching build exists")
    parser.add_argument("--show-skipped", type=int, default=20, metavar="N",
                        help="print at most N skipped items (all are in prepare_report.json; default 20)")
    add_common_arguments(parser)
    parser.set_defaults(func=_prepare)


def add_verbs(verbs) -> None:
    """Add ``prepare`` to an argparse subparsers action."""
    _add_prepare(verbs)


def build_parser(prog: str = "python -m data_interface_for_model") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
