"""``python -m data_download_tools VERB`` (also ``xinpianchang data VERB``): make-demo, download, check,
aggregate, stats."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from data_interface_for_model import defaults
from data_interface_for_model.cli import (
    UsageError,
    add_common_arguments,
    add_data_root,
    add_output,
    positive_int,
    verb_main,
)
from data_interface_for_model.limits import (
    add_image_pixels_argument,
    add_parse_limit_arguments,
    parse_limits_from_args,
)


def non_negative_int(value: str) -> int:
    """An argparse type: an integer >= 0 (0 often means "one per core")."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


def add_root_arguments(parser: argparse.ArgumentParser, help: str = "dataset root in the xinpianchang layout") -> None:
    """``--data-root ROOT`` (default ``data/demo``); a bare positional ROOT is read too (hidden)."""
    add_data_root(parser, required=False, default=defaults.DATA_ROOT, help=help)
    parser.add_argument("root_positional", nargs="?", metavar="ROOT", help=argparse.SUPPRESS)


def data_root(args: argparse.Namespace) -> str:
    """The dataset root of a verb: ``--data-root`` or the hidden positional spelling (not both)."""
    positional = getattr(args, "root_positional", None)
    if positional is None:
        return args.data_root
    if args.data_root not in (None, defaults.DATA_ROOT) and args.data_root != positional:
        raise UsageError(f"two dataset roots given: --data-root {args.data_root} and {positional}")
    return positional


def _cmd_make_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.demo import DemoConfig, make_demo_dataset

    output = args.output if args.output_positional is None else args.output_positional
    config = DemoConfig(
        per_category=args.per_category, seed=args.seed, width=args.width, height=args.height, fps=args.fps,
        min_seconds=args.min_seconds, max_seconds=args.max_seconds, cover_width=args.cover_width,
        cover_height=args.cover_height, ambiguous_fraction=args.ambiguous_fraction, base_url=args.base_url,
        workers=args.workers, audio=args.audio, silent_fraction=args.silent_fraction,
        music=args.music or "", music_tone=args.music_tone, categories=tuple(args.categories or ()),
    )
    if config.music and config.music != "immich" and not os.path.isdir(config.music):
        raise FileNotFoundError(f"make-demo: --music {config.music}: no such folder (or say 'immich')")
    categories = len(config.categories) or 31
    total = categories * config.per_category
    with tqdm(total=total, desc="make-demo", unit="item", disable=args.quiet) as bar:
        records = make_demo_dataset(output, config, progress=bar.update)
    seconds = sum(r.duration_s for r in records)
    print(f"make-demo: wrote {len(records)} items ({categories} categories x {config.per_category}, "
          f"{seconds} s of video) to {output}")
    if config.music:
        print(f"make-demo: background music from {config.music}; pairs (video_id,music_id) -> "
              f"{os.path.join(output, 'music_pairs.csv')}")
    return 0


def _write_json(path: str, data: dict) -> None:
    from data_interface_for_model.atomic import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)


def _cmd_stats(args: argparse.Namespace) -> int:
    from data_download_tools.statistics import dataset_statistics

    root = data_root(args)
    stats = dataset_statistics(root, parse_limits_from_args(args))
    print(stats.table())
    for problem in stats.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if args.json:
        _write_json(args.json, stats.to_dict())
    print(f"stats: {stats.items} items ({stats.complete} complete), {len(stats.problems)} problems, "
          f"{stats.bytes / 1e6:.1f} MB under {root}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.download import DownloadConfig, count_lines, download
    from data_download_tools.http_fetch import FetchConfig
    from data_interface_for_model.schema import validate_label

    if not args.output:
        raise UsageError("download needs --output ROOT, the dataset root to download into")
    if not os.path.isfile(args.info):
        raise FileNotFoundError(f"info file {args.info} does not exist")
    categories = frozenset(validate_label(c) for c in args.categories) if args.categories else None
    config = DownloadConfig(
        workers=args.workers, categories=categories, limit=args.limit, verify=not args.no_verify,
        failures_path=args.failures, parse_limits=parse_limits_from_args(args),
        fetch=FetchConfig(timeout_s=args.timeout, retries=args.retries, backoff_s=args.backoff,
                          max_per_host=args.max_per_host, delay_s=args.delay, deadline_s=args.deadline,
                          max_video_bytes=args.max_video_bytes, max_cover_bytes=args.max_cover_bytes,
                          max_redirects=args.max_redirects, allowed_hosts=frozenset(args.allow_host or ())),
    )
    total = None if categories else count_lines(args.info)
    if args.limit is not None:
        total = min(total, args.limit) if total is not None else args.limit
    with tqdm(total=total, desc="download", unit="item", disable=args.quiet) as bar:
        summary = download(args.info, args.output, config, progress=lambda result: bar.update(1))
    for error in summary.line_errors:
        print(f"invalid record {error}", file=sys.stderr)
    for message in summary.duplicates + summary.conflicts:
        print(f"duplicate: {message}", file=sys.stderr)
    print(summary.line())
    return 0 if summary.ok else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from data_download_tools.check import check_dataset, plot_items_per_category

    root = data_root(args)
    with tqdm(desc="check --deep" if args.deep else "check", unit="item", disable=args.quiet) as bar:
        report = check_dataset(root, deep=args.deep, workers=args.workers, progress=bar.update,
                               max_image_pixels=args.max_image_pixels, parse_limits=parse_limits_from_args(args))
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
        _write_json(args.json, report.to_dict())
    if args.plot:
        plot_items_per_category(report, args.plot)
    print(report.line())
    return 0 if report.ok else 1


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from data_download_tools.aggregate import aggregate_info_file
    from data_interface_for_model.info_file import INFO_FILE_NAME

    root = data_root(args)
    output = args.output or os.path.join(root, INFO_FILE_NAME)
    summary = aggregate_info_file(root, output, complete_only=args.complete_only,
                                  parse_limits=parse_limits_from_args(args))
    for problem in summary.problems:
        print(f"problem: {problem}", file=sys.stderr)
    print(summary.line(output))
    return 0


def _add_make_demo(verbs) -> None:
    summary = "write a synthetic demo dataset in the xinpianchang layout"
    demo = verbs.add_parser(
        "make-demo", help=summary,
        description=summary.capitalize() + ": real H.264 clips, JPEG covers, briefs and the info file for all "
                    "31 categories. Same seed, same bytes.")
    add_output(demo, required=False, default=defaults.DATA_ROOT, metavar="ROOT",
               help="the dataset root to write", aliases=("--out",))
    demo.add_argument("output_positional", nargs="?", metavar="ROOT", help=argparse.SUPPRESS)
    demo.add_argument("--per-category", type=positive_int, default=10, help="items per category (default 10)")
    demo.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same bytes (default 0)")
    demo.add_argument("--base-url", default="https://demo.invalid/xinpianchang",
                      help="URLs in multimodal_data_info.json point under this (a server serving the root)")
    demo.add_argument("--width", type=positive_int, default=160, help="clip width in pixels, even (default 160)")
    demo.add_argument("--height", type=positive_int, default=96, help="clip height in pixels, even (default 96)")
    demo.add_argument("--fps", type=positive_int, default=12, help="clip frame rate (default 12)")
    demo.add_argument("--min-seconds", type=positive_int, default=2, help="shortest clip in seconds (default 2)")
    demo.add_argument("--max-seconds", type=positive_int, default=4, help="longest clip in seconds (default 4)")
    demo.add_argument("--cover-width", type=positive_int, default=224, help="cover width (default 224)")
    demo.add_argument("--cover-height", type=positive_int, default=128, help="cover height (default 128)")
    demo.add_argument("--ambiguous-fraction", type=float, default=0.15,
                      help="share of items whose pictures or brief come from another category (default 0.15)")
    demo.add_argument("--workers", type=non_negative_int, default=0, help="processes (default 0: one per core)")
    demo.add_argument("--audio", action="store_true",
                      help="give clips a sound track whose character depends on the category (see docs/audio.md)")
    demo.add_argument("--silent-fraction", type=float, default=0.1,
                      help="with --audio, share of clips whose track is silence (default 0.1)")
    demo.add_argument("--music", metavar="immich|DIR",
                      help="with --audio, real background music instead of the category tone: 'immich' (the 28 "
                           "tracks of immich-memories-music) or a music library folder; writes ROOT/music_pairs.csv")
    demo.add_argument("--music-tone", type=float, default=0.0,
                      help="with --music, weight of the category tone mixed under the music (default 0: none)")
    demo.add_argument("--categories", nargs="+", metavar="LABEL",
                      help="make only these categories (default: all 31; ids stay those of the full dataset)")
    add_common_arguments(demo)
    demo.set_defaults(func=_cmd_make_demo)


def _configure_download(parser: argparse.ArgumentParser) -> None:
    from data_download_tools.http_fetch import FetchConfig

    defaults_fetch = FetchConfig()
    parser.add_argument("--info", required=True, metavar="FILE",
                        help="multimodal_data_info.json (or a failures file from an earlier run)")
    add_output(parser, required=False, metavar="ROOT", help="the dataset root to download into (required)",
               aliases=("--out",))
    parser.add_argument("--categories", nargs="+", metavar="LABEL", help="only these labels (default: all)")
    parser.add_argument("--limit", type=non_negative_int, help="stop after this many records")
    parser.add_argument("--workers", type=positive_int, default=16, help="items fetched at once (default 16)")
    parser.add_argument("--retries", type=non_negative_int, default=4,
                        help="retries of a timeout, reset or 5xx, with exponential backoff (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to connect and for any byte to arrive (default 30)")
    parser.add_argument("--deadline", type=float, default=defaults_fetch.deadline_s, metavar="SECONDS",
                        help=f"longest one attempt at one file may take in all (default {defaults_fetch.deadline_s:g})")
    parser.add_argument("--max-video-bytes", type=positive_int, default=defaults_fetch.max_video_bytes, metavar="N",
                        help=f"largest clip accepted (default {defaults_fetch.max_video_bytes})")
    parser.add_argument("--max-cover-bytes", type=positive_int, default=defaults_fetch.max_cover_bytes, metavar="N",
                        help=f"largest cover accepted (default {defaults_fetch.max_cover_bytes})")
    parser.add_argument("--max-redirects", type=non_negative_int, default=defaults_fetch.max_redirects,
                        metavar="N", help=f"redirects followed per request (default {defaults_fetch.max_redirects})")
    parser.add_argument("--allow-host", action="append", metavar="HOST",
                        help="a host redirects may lead to besides the URL's own (repeatable; default: none; "
                             "https never redirects to http)")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="first backoff in seconds, doubling per retry, with jitter (default 1)")
    parser.add_argument("--max-per-host", type=positive_int, default=8,
                        help="requests in flight per host (default 8)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="least seconds between request starts to one host (default 0; the original used 3.5)")
    parser.add_argument("--failures", metavar="FILE", help="failures file (default ROOT/download_failures.json)")
    parser.add_argument("--no-verify", action="store_true",
                        help="do not decode files: any non-empty file on disk counts as done (the Content-Type "
                             "must then say video or image)")
    add_parse_limit_arguments(parser, info_file=True)
    add_common_arguments(parser)
    parser.set_defaults(func=_cmd_download)


def _add_download(verbs) -> None:
    summary = "download the clips and covers an info file lists into ROOT/<label>/<id>/"
    description = ("Concurrent, resumable, verified download of what an info file lists. A re-run skips "
                   "what is complete and verified; failures go to a JSON-lines file that --info accepts. "
                   "Exit code 1 when anything failed.")
    _configure_download(verbs.add_parser("download", help=summary, description=description))
    _configure_download(verbs.add_parser("fetch", description=description))  # the old name, not listed


def _add_check(verbs) -> None:
    check = verbs.add_parser(
        "check", help="per-category completeness, disk usage, durations; --deep decodes every file",
        description="Check a dataset root. Exit code 1 when anything is incomplete, misplaced or corrupt.")
    add_root_arguments(check)
    check.add_argument("--json", metavar="FILE", help="also write the report to this JSON file")
    check.add_argument("--plot", metavar="FILE", help="write a bar chart of items per category to this image (.png)")
    check.add_argument("--deep", action="store_true", help="decode every clip and cover; list the corrupt ones")
    check.add_argument("--workers", type=non_negative_int, default=0,
                       help="decoding threads with --deep (default 0: one per core)")
    add_image_pixels_argument(check)
    add_parse_limit_arguments(check)
    add_common_arguments(check)
    check.set_defaults(func=_cmd_check)


def _add_aggregate(verbs) -> None:
    aggregate = verbs.add_parser(
        "aggregate", help="rebuild multimodal_data_info.json from the item folders",
        description="Write one JSON line per item (from its .txt, label from its folder), sorted by label and id.")
    add_root_arguments(aggregate)
    add_output(aggregate, required=False, metavar="FILE",
               help="the info file to write (default ROOT/multimodal_data_info.json)", aliases=("--out",))
    aggregate.add_argument("--complete-only", action="store_true",
                           help="only items that also have their clip and cover")
    add_parse_limit_arguments(aggregate)
    add_common_arguments(aggregate)
    aggregate.set_defaults(func=_cmd_aggregate)


def _add_stats(verbs) -> None:
    stats = verbs.add_parser(
        "stats", help="per-category counts, sizes and durations of a dataset root",
        description="Per category: items, complete items, MB on disk and mean duration; layout problems on stderr.")
    add_root_arguments(stats)
    stats.add_argument("--json", metavar="FILE", help="also write the statistics to this JSON file")
    add_parse_limit_arguments(stats)
    add_common_arguments(stats)
    stats.set_defaults(func=_cmd_stats)


def add_verbs(verbs) -> None:
    """Add make-demo, download, check, aggregate and stats to an argparse subparsers action."""
    _add_make_demo(verbs)
    _add_download(verbs)
    _add_check(verbs)
    _add_aggregate(verbs)
    _add_stats(verbs)


def build_parser(prog: str = "python -m data_download_tools") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
