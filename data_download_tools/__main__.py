"""``python -m data_download_tools VERB``: make-demo, stats (download, check and aggregate follow)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import List, Optional

from data_interface_for_model.cli_util import add_common_arguments, configure_logging


def _cmd_make_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.demo import DemoConfig, make_demo_dataset

    config = DemoConfig(
        per_category=args.per_category, seed=args.seed, width=args.width, height=args.height, fps=args.fps,
        min_seconds=args.min_seconds, max_seconds=args.max_seconds, cover_width=args.cover_width,
        cover_height=args.cover_height, ambiguous_fraction=args.ambiguous_fraction, base_url=args.base_url,
        workers=args.workers,
    )
    total = 31 * config.per_category
    with tqdm(total=total, desc="make-demo", unit="item", disable=args.quiet) as bar:
        records = make_demo_dataset(args.out, config, progress=bar.update)
    seconds = sum(r.duration_s for r in records)
    print(f"make-demo: wrote {len(records)} items (31 categories x {config.per_category}, {seconds} s of video) "
          f"to {args.out}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from data_download_tools.statistics import dataset_statistics

    stats = dataset_statistics(args.root)
    print(stats.table())
    for problem in stats.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if args.json:
        from data_interface_for_model.atomic import atomic_write

        with atomic_write(args.json, "w", encoding="utf-8") as handle:
            json.dump(stats.to_dict(), handle, indent=2, ensure_ascii=False)
    print(f"stats: {stats.items} items ({stats.complete} complete), {len(stats.problems)} problems, "
          f"{stats.bytes / 1e6:.1f} MB under {args.root}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_download_tools", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    demo = verbs.add_parser("make-demo", help="write a synthetic demo dataset in the xinpianchang layout")
    demo.add_argument("out", help="output folder (the dataset root)")
    demo.add_argument("--per-category", type=int, default=10, help="items per category (default 10)")
    demo.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same bytes (default 0)")
    demo.add_argument("--base-url", default="https://demo.invalid/xinpianchang",
                      help="URLs in multimodal_data_info.json point under this (a server serving OUT)")
    demo.add_argument("--width", type=int, default=160, help="clip width in pixels, even (default 160)")
    demo.add_argument("--height", type=int, default=96, help="clip height in pixels, even (default 96)")
    demo.add_argument("--fps", type=int, default=12, help="clip frame rate (default 12)")
    demo.add_argument("--min-seconds", type=int, default=2, help="shortest clip in seconds (default 2)")
    demo.add_argument("--max-seconds", type=int, default=4, help="longest clip in seconds (default 4)")
    demo.add_argument("--cover-width", type=int, default=224, help="cover width (default 224)")
    demo.add_argument("--cover-height", type=int, default=128, help="cover height (default 128)")
    demo.add_argument("--ambiguous-fraction", type=float, default=0.15,
                      help="share of items whose pictures or brief come from another category (default 0.15)")
    demo.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    add_common_arguments(demo)
    demo.set_defaults(func=_cmd_make_demo)

    stats = verbs.add_parser("stats", help="per-category counts, sizes and durations of a dataset root")
    stats.add_argument("root", help="the dataset root")
    stats.add_argument("--json", help="also write the statistics to this JSON file")
    add_common_arguments(stats)
    stats.set_defaults(func=_cmd_stats)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        logging.getLogger("data_download_tools").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
