"""`python -m data_interface_for_model VERB`: prepare (decode a layout root once into TFDS shards)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _prepare(args: argparse.Namespace) -> int:
    """Build the TFDS dataset from a layout root (the heavy imports happen here, not at parse time)."""
    from data_interface_for_model.cli import configure_logging
    from data_interface_for_model.prepare import prepare_dataset

    configure_logging(args)
    try:
        report = prepare_dataset(args.root, args.data_dir, num_frames=args.frames, size=args.size,
                                 splits=tuple(args.splits), seed=args.seed, workers=args.workers,
                                 quality=args.quality, progress=not args.quiet, force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        print(f"prepare: {exc}", file=sys.stderr)
        return 1
    shown = report.skipped[: args.show_skipped]
    for skipped in shown:
        print(f"skipped {skipped['kind']}: {skipped['path']}: {skipped['message']}", file=sys.stderr)
    if len(report.skipped) > len(shown):
        print(f"... {len(report.skipped) - len(shown)} more skipped items listed in "
              f"{report.dataset_dir}/prepare_report.json", file=sys.stderr)
    print(f"prepare: {report.summary()}")
    return 0


def _add_prepare(verbs) -> None:
    from data_interface_for_model.cli import add_common_arguments

    parser = verbs.add_parser(
        "prepare", help="decode a layout root once into the xinpianchang TFDS dataset (array_record + tfrecord)",
        description="Sample frames uniformly across every clip, resize frames and cover (short side, centre "
                    "crop), JPEG-encode them in parallel processes, split stratified by label, and write the "
                    "TFDS dataset `xinpianchang`, config frames{T}_size{S}. Corrupt items are skipped and "
                    "listed. Running it again with the same arguments reuses the finished build.")
    parser.add_argument("root", help="the layout root: ROOT/<label>/<mp4_id>/<mp4_id>.mp4|.jpeg|.txt")
    parser.add_argument("--data-dir", required=True, help="TFDS data dir to write into")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per clip (default 8)")
    parser.add_argument("--size", type=int, default=112, help="side of the square frames and cover (default 112)")
    parser.add_argument("--splits", type=float, nargs=3, default=(0.8, 0.1, 0.1),
                        metavar=("TRAIN", "VALIDATION", "TEST"), help="split fractions (default 0.8 0.1 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default 0: one per core)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of stored pictures (default 90)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching build exists")
    parser.add_argument("--show-skipped", type=int, default=20, metavar="N",
                        help="print at most N skipped items (all are in prepare_report.json; default 20)")
    add_common_arguments(parser)
    parser.set_defaults(func=_prepare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_interface_for_model", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_prepare(verbs)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
