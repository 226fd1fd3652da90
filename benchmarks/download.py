"""Benchmark the downloader: items/s against a local server that adds latency to every response, a plain
sequential loop (one request at a time: the seed's scrapy way without its 3.5 s delay) side by side with
``data_download_tools.download`` at 16 workers; then the time and peak memory to stream and validate a
generated info file as large as the real one (562,342 lines), and to push it through the downloader's
bounded feed.

    python benchmarks/download.py [--per-category 4] [--latency 0.05] [--workers 16] [--lines 562342]

The server runs in its own process (so it does not share the downloader's GIL) and binds 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from data_download_tools.bounded import bounded_map  # noqa: E402
from data_download_tools.demo import DemoConfig, make_demo_dataset  # noqa: E402
from data_download_tools.download import (  # noqa: E402
    DownloadConfig,
    DownloadSummary,
    download,
    select_records,
    unique_targets,
)
from data_download_tools.http_fetch import FetchConfig  # noqa: E402
from data_interface_for_model import LABELS, VideoRecord, iter_info_file  # noqa: E402
from data_interface_for_model.info_file import INFO_FILE_NAME, parse_info_line, record_to_line  # noqa: E402


def _serve(folder: str, latency: float, ready) -> None:
    from tests.fault_server import FaultServer

    server = FaultServer(folder, latency_s=latency)
    ready.send(server.base_url)
    server._server.serve_forever()


def _rewrite_info(source: str, target: str, old: str, new: str) -> None:
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line.replace(old, new))


def sequential(info: str, out: str) -> int:
    """The plain loop: for each record, GET the clip, then the cover, write them, next."""
    session = requests.Session()
    count = 0
    for record in iter_info_file(info):
        folder = os.path.join(out, record.label, record.mp4_id)
        os.makedirs(folder, exist_ok=True)
        for url, extension in ((record.video_url, ".mp4"), (record.cover_url, ".jpeg")):
            response = session.get(url, timeout=30)
            response.raise_for_status()
            with open(os.path.join(folder, record.mp4_id + extension), "wb") as handle:
                handle.write(response.content)
        count += 1
    return count


def bench_download(args: argparse.Namespace, work: str) -> None:
    site = os.path.join(work, "site")
    placeholder = "http://placeholder.invalid"
    config = DemoConfig(per_category=args.per_category, seed=1, width=96, height=64, min_seconds=1, max_seconds=3,
                        base_url=placeholder)
    t0 = time.perf_counter()
    make_demo_dataset(site, config)
    print(f"demo dataset: {31 * args.per_category} items ({config.width}x{config.height}, "
          f"{config.min_seconds}-{config.max_seconds} s clips) made in {time.perf_counter() - t0:.1f} s")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(site, args.latency, child), daemon=True)
    server.start()
    try:
        base = parent.recv()
        info = os.path.join(work, "info.json")
        _rewrite_info(os.path.join(site, INFO_FILE_NAME), info, placeholder, base)
        items = 31 * args.per_category

        t0 = time.perf_counter()
        assert sequential(info, os.path.join(work, "seq")) == items
        seq_s = time.perf_counter() - t0

        fetch = FetchConfig(timeout_s=30, max_per_host=args.workers)
        t0 = time.perf_counter()
        summary = download(info, os.path.join(work, "ours"), DownloadConfig(workers=args.workers, fetch=fetch))
        ours_s = time.perf_counter() - t0
        assert summary.ok and summary.downloaded == items, summary.line()

        t0 = time.perf_counter()
        again = download(info, os.path.join(work, "ours"), DownloadConfig(workers=args.workers, fetch=fetch))
        rerun_s = time.perf_counter() - t0
        assert again.skipped == items
    finally:
        server.terminate()
        server.join()
    seq_rate, ours_rate = items / seq_s, items / ours_s
    print(f"\n{items} items (clip + cover each), {args.latency * 1000:.0f} ms latency per response, "
          f"{os.cpu_count()} cores")
    print(f"{'':<44} {'seconds':>8} {'items/s':>8}")
    print(f"{'sequential loop (requests, one at a time)':<44} {seq_s:>8.2f} {seq_rate:>8.1f}")
    print(f"{f'download, {args.workers} workers, verified':<44} {ours_s:>8.2f} {ours_rate:>8.1f}")
    print(f"{'re-run (all verified on disk, no request)':<44} {rerun_s:>8.2f} {items / rerun_s:>8.1f}")
    print(f"speed-up: {ours_rate / seq_rate:.1f}x (goal >= 8x)")


def generate_info_file(path: str, lines: int, seed: int = 0) -> None:
    """``lines`` plausible records (8-digit ids, 31 labels, xpccdn-like URLs), written one at a time."""
    rng = random.Random(seed)
    words = ("woman walking beach sunset city aerial drone ocean waves timelapse clouds night stars "
             "business team office wedding couple forest mountain river explosion abstract background").split()
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(lines):
            mp4_id = f"{10_000_000 + index * 17 % 89_999_989:08d}"
            record = VideoRecord(
                mp4_id=mp4_id, label=LABELS[index % len(LABELS)], duration_s=rng.randint(3, 180),
                video_url=f"https://p5-v1.xpccdn.com/0{mp4_id}_main_xl.mp4",
                cover_url=f"https://p5-i1.xpccdn.com/0{mp4_id}_iconl.jpeg",
                brief=" " + " ".join(rng.choice(words) for _ in range(rng.randint(5, 14))),
            )
            handle.write(record_to_line(record) + "\n")


def _measure(fn):
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak


def bench_info_file(args: argparse.Namespace, work: str) -> None:
    path = os.path.join(work, "big_info.json")
    t0 = time.perf_counter()
    generate_info_file(path, args.lines)
    size = os.path.getsize(path)
    print(f"\ninfo file: {args.lines} lines, {size / 1e6:.0f} MB, generated in {time.perf_counter() - t0:.1f} s")

    count, seconds, peak = _measure(lambda: sum(1 for _ in iter_info_file(path, strict=True)))
    assert count == args.lines
    print(f"{'':<52} {'seconds':>8} {'lines/s':>9} {'peak MB':>8}")
    print(f"{'stream + validate (iter_info_file)':<52} {seconds:>8.2f} {count / seconds:>9.0f} {peak / 1e6:>8.2f}")

    def feed() -> int:
        records = unique_targets(select_records(iter_info_file(path, strict=True)), DownloadSummary())
        return sum(1 for _ in bounded_map(lambda record: record.mp4_id, records, workers=16))

    count, seconds, peak = _measure(feed)
    assert count == args.lines
    print(f"{'download feed (stream, dedupe, 16-thread pool)':<52} {seconds:>8.2f} {count / seconds:>9.0f}"
          f" {peak / 1e6:>8.2f}")
    print("(peak MB: tracemalloc's peak of Python allocations during a second, traced pass)")
    bench_parse_bounds(path)


def bench_parse_bounds(path: str, lines: int = 20_000, rounds: int = 7) -> None:
    """CPU time per line of the bounded parse (size, nesting and number checks, then JSON with bounded
    numbers) beside the unbounded one (``json.loads`` + ``VideoRecord.from_dict``), alternating rounds,
    best of each: what the limits cost on real-looking lines."""
    with open(path, encoding="utf-8") as handle:
        sample = [line.rstrip("\n") for _, line in zip(range(lines), handle)]

    def unbounded() -> None:
        for line in sample:
            VideoRecord.from_dict(json.loads(line))

    def bounded() -> None:
        for line in sample:
            parse_info_line(line)

    times: dict = {"unbounded": [], "bounded": []}
    for _ in range(rounds):
        for name, fn in (("unbounded", unbounded), ("bounded", bounded)):
            started = time.process_time()
            fn()
            times[name].append(time.process_time() - started)
    plain, checked = (min(times[name]) / len(sample) * 1e6 for name in ("unbounded", "bounded"))
    print(f"parse one line, CPU time, best of {rounds} alternating rounds of {len(sample)} lines: "
          f"json.loads + from_dict {plain:.1f} us, bounded parse_info_line {checked:.1f} us ({checked / plain:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-category", type=int, default=4, help="demo items per category (default 4: 124)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per response (default 0.05)")
    parser.add_argument("--workers", type=int, default=16, help="downloader workers (default 16)")
    parser.add_argument("--lines", type=int, default=562_342, help="info-file lines (default 562342)")
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-info", action="store_true")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench_download_")
    try:
        if not args.skip_download:
            bench_download(args, work)
        if not args.skip_info:
            bench_info_file(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
