"""``python -m data_download_tools VERB``: make-demo, stats, download, check, aggregate."""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from data_interface_for_model.cli import add_common_arguments, configure_logging, run_verb


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


def _cmd_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.download import DownloadConfig, count_lines, download
    from data_download_tools.http_fetch import FetchConfig
    from data_interface_for_model.schema import validate_label

    categories = frozenset(validate_label(c) for c in args.categories) if args.categories else None
    config = DownloadConfig(
        workers=args.workers, categories=categories, limit=args.limit, verify=not args.no_verify,
        failures_path=args.failures,
        fetch=FetchConfig(timeout_s=args.timeout, retries=args.retries, backoff_s=args.backoff,
                          max_per_host=args.max_per_host, delay_s=args.delay),
    )
    total = None if categories else count_lines(args.info)
    if args.limit is not None:
        total = min(total, args.limit) if total is not None else args.limit
    with tqdm(total=total, desc="download", unit="item", disable=args.quiet) as bar:
        summary = download(args.info, args.out, config, progress=lambda result: bar.update(1))
    for error in summary.line_errors:
        print(f"invalid record {error}", file=sys.stderr)
    print(summary.line())
    return 0 if summary.ok else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.check import check_dataset, plot_items_per_category

    with tqdm(desc="check --deep" if args.deep else "check", unit="item", disable=args.quiet) as bar:
        report = check_dataset(args.root, deep=args.deep, workers=args.workers, progress=bar.update)
    print(report.statistics.table())
    for label, stats in report.statistics.categories.items():
        if stats.missing:
            missing = ", ".join(f"{count} without {modality}" for modality, count in sorted(stats.missing.items()))
            print(f"incomplete {label}: {missing}")
    for problem in report.statistics.problems:
        print(f"problem: {problem}", file=sys.stderr)
    for corrupt in report.corrupt:
        print(corrupt, file=sys.stderr)
    if args.json:
        from data_interface_for_model.atomic import atomic_write

        with atomic_write(args.json, "w", encoding="utf-8") as handle:
            json.dump(report.to_dict(), handle, indent=2, ensure_ascii=False)
    if args.plot:
        plot_items_per_category(report, args.plot)
    print(report.line())
    return 0 if report.ok else 1


def _cmd_aggregate(args: argparse.Namespace) -> int:
    import os

    from data_download_tools.aggregate import aggregate_info_file
    from data_interface_for_model.info_file import INFO_FILE_NAME

    out = args.out or os.path.join(args.root, INFO_FILE_NAME)
    summary = aggregate_info_file(args.root, out, complete_only=args.complete_only)
    for problem in summary.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(summary.line(out))
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

    fetch = verbs.add_parser(
        "download", help="fetch the clips and covers an info file lists into ROOT/<label>/<id>/",
        description="Concurrent, resumable, verified download of what an info file lists. A re-run skips "
                    "what is complete and verified; failures go to a JSON-lines file that --info accepts.")
    fetch.add_argument("--info", required=True, help="multimodal_data_info.json (or a failures file)")
    fetch.add_argument("--out", required=True, help="the dataset root to download into")
    fetch.add_argument("--categories", nargs="+", metavar="LABEL", help="only these labels (default: all)")
    fetch.add_argument("--limit", type=int, help="stop after this many records")
    fetch.add_argument("--workers", type=int, default=16, help="items fetched at once (default 16)")
    fetch.add_argument("--retries", type=int, default=4,
                       help="retries of a timeout, reset or 5xx, with exponential backoff (default 4)")
    fetch.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to connect and for any byte to arrive (default 30)")
    fetch.add_argument("--backoff", type=float, default=1.0,
                       help="first backoff in seconds, doubling per retry, with jitter (default 1)")
    fetch.add_argument("--max-per-host", type=int, default=8, help="requests in flight per host (default 8)")
    fetch.add_argument("--delay", type=float, default=0.0,
                       help="least seconds between request starts to one host (default 0; the original used 3.5)")
    fetch.add_argument("--failures", help="failures file (default ROOT/download_failures.json)")
    fetch.add_argument("--no-verify", action="store_true",
                       help="do not decode files: any non-empty file on disk counts as done")
    add_common_arguments(fetch)
    fetch.set_defaults(func=_cmd_download)

    check = verbs.add_parser(
        "check", help="per-category completeness, disk usage, durations; --deep decodes every file",
        description="Check a dataset root. Exit code 1 when anything is incomplete, misplaced or corrupt.")
    check.add_argument("root", help="the dataset root")
    check.add_argument("--json", help="also write the report to this JSON file")
    check.add_argument("--plot", help="write a bar chart of items per category to this image (e.g. OUT.png)")
    check.add_argument("--deep", action="store_true", help="decode every clip and cover; list the corrupt ones")
    check.add_argument("--workers", type=int, default=0, help="decoding threads with --deep (default: one per core)")
    add_common_arguments(check)
    check.set_defaults(func=_cmd_check)

    aggregate = verbs.add_parser(
        "aggregate", help="rebuild multimodal_data_info.json from the item folders",
        description="Write one JSON line per item (from its .txt, label from its folder), sorted by label and id.")
    aggregate.add_argument("root", help="the dataset root")
    aggregate.add_argument("--out", help="the info file to write (default ROOT/multimodal_data_info.json)")
    aggregate.add_argument("--complete-only", action="store_true",
                           help="only items that also have their clip and cover")
    add_common_arguments(aggregate)
    aggregate.set_defaults(func=_cmd_aggregate)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    return run_verb(args)


if __name__ == "__main__":
    sys.exit(main())
