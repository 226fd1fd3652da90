"""Apache Beam benchmark: items/s of `prepare` and `embed` on DirectRunner against the in-process paths.

For each of two sizes of the same dataset (the whole root, and a subset of ``--small-per-label`` items per
label copied from it), it times:

1. prepare, in-process pool (``prepare_dataset``, ``--workers`` 1 and 2 processes);
2. prepare, Beam DirectRunner ``multi_processing`` with 1 and 2 worker processes (``prepare_with_beam``);
3. embed, single process (the classifier's embedding step, ``LoadedRun.embed_splits``: the Keras embedder
   over the prepared shards, as ``embed`` runs it after preparing);
4. embed, Beam RunInference over the exported embedder, ``multi_processing`` with 1 and 2 workers.

Each measurement records the wall time and the CPU seconds of the stage (``getrusage`` of this process and of
its reaped children: the pool's processes, Beam's worker processes), so that a figure taken on a shared, loaded
machine still says what an item costs: wall seconds grow with the other processes' load, CPU seconds far less
(contention for caches and TensorFlow's spinning thread pools still adds some). The 1-minute
load average before and after each stage is recorded beside it.

From the two sizes it separates the fixed cost of a run (pipeline construction, worker start-up, model
loading) from the marginal per-item cost, in wall seconds and in CPU seconds, and projects the wall time of
``--project-items`` items (the real dataset: 562,342) on N workers of one core each from the marginal CPU
seconds per item ``c``: ``fixed wall + items * c / N``.

The model is an untrained seed-baseline run at the prepared config (``--frames``/``--image-size``) unless
``--run`` names a trained run with an export (its embedder is then used; weights do not change the cost, the
architecture does).

Usage::

    xinpianchang data make-demo --output data/demo4 --per-category 4 --seed 0
    python benchmarks/beam.py --data-root data/demo4 --small-per-label 1 --output beam_benchmark.json

Prints one line per measurement and the projection; writes everything as JSON with ``--output``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_interface_for_model import LayoutReader, defaults  # noqa: E402  (no TensorFlow at import)
from data_interface_for_model.cli import add_data_root, add_frames, add_image_size, positive_int  # noqa: E402

FULL_DATASET_ITEMS = 562_342


def subset_root(root: str, per_label: int, target: str) -> int:
    """``target`` holds copies of the first ``per_label`` items of each label of ``root``; how many."""
    count = 0
    taken: Dict[str, int] = {}
    for item in LayoutReader(root):
        if taken.get(item.label, 0) >= per_label:
            continue
        taken[item.label] = taken.get(item.label, 0) + 1
        shutil.copytree(item.folder, os.path.join(target, item.label, item.mp4_id))
        count += 1
    return count


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of every child process it has reaped."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child_processes() -> List[int]:
    """Process ids whose parent is this process, zombies included, multiprocessing's resource tracker left out
    (Linux ``/proc``; empty elsewhere)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == me and not _is_resource_tracker(entry):
                found.append(int(entry))
    return found


def _is_resource_tracker(pid: str) -> bool:
    """multiprocessing's resource tracker: a child that lives as long as this process (never waited for)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"resource_tracker" in handle.read()
    except OSError:
        return False


def wait_for_children(timeout: float = 30.0) -> None:
    """Wait until every child process has exited and been reaped (Beam reaps its workers in a thread): only
    then is their CPU time in ``RUSAGE_CHILDREN``."""
    deadline = time.monotonic() + timeout
    while child_processes() and time.monotonic() < deadline:
        time.sleep(0.2)


@contextlib.contextmanager
def measured(name: str, out: Dict[str, dict], key: str) -> Iterator[Callable[[int], None]]:
    """Time the block (wall and CPU seconds); the block calls the yielded function with its item count."""
    counted = {"items": 0}
    load_before, cpu, started = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    yield lambda items: counted.update(items=items)
    seconds = time.perf_counter() - started
    wait_for_children()  # Beam reaps its worker processes in a thread: let their CPU time reach RUSAGE_CHILDREN
    used = cpu_seconds() - cpu
    items = counted["items"]
    out[key] = {"items": items, "seconds": seconds, "items_per_second": items / seconds if seconds > 0 else 0.0,
                "cpu_seconds": used, "cpu_seconds_per_item": used / items if items else 0.0,
                "load_average": [load_before, os.getloadavg()[0]]}
    print(f"{name:<44} {items:>5} items {seconds:8.1f} s {out[key]['items_per_second']:7.2f} items/s "
          f"{used:8.1f} CPU-s {out[key]['cpu_seconds_per_item']:6.3f} CPU-s/item  load {load_before:.1f}",
          flush=True)


def time_prepare(root: str, work: str, frames: int, size: int, workers: List[int]) -> Dict[str, dict]:
    from data_interface_for_model.beam_prepare import BeamOptions, prepare_with_beam
    from data_interface_for_model.prepare import prepare_dataset

    out: Dict[str, dict] = {}
    for count in workers:
        with measured(f"prepare, in-process pool, {count} workers", out, f"prepare_pool_{count}") as done:
            done(prepare_dataset(root, os.path.join(work, f"pool{count}"), frames, size, workers=count,
                                 progress=False, force=True).num_examples)
        with measured(f"prepare, Beam DirectRunner multi_processing, {count}", out, f"prepare_beam_{count}") as done:
            done(prepare_with_beam(root, os.path.join(work, f"beam{count}"), frames, size, force=True,
                                   beam_options=BeamOptions(workers=count, running_mode="multi_processing")
                                   ).num_examples)
    return out


def time_embed(root: str, work: str, run_dir: str, embedder: str, frames: int, size: int,
               workers: List[int]) -> Dict[str, dict]:
    from baseline_model.beam_inference import run_beam_inference
    from baseline_model.run import load_run
    from baseline_model import data as data_lib
    from data_interface_for_model.beam_prepare import BeamOptions

    data_dir = os.path.join(work, "embed_data")
    out: Dict[str, dict] = {}
    run = load_run(run_dir)
    # prepared once, outside the timings (as embed_dataset prepares it: the run's split seed); then the
    # single-process verb's embedding step alone, as RunInference is timed without preparing
    train = dataclasses.replace(run.train_config, data_root=root, data_dir=data_dir)
    report = data_lib.prepare(train, run.model_config)
    splits = [s for s in data_lib.SPLITS if report.split_counts.get(s)]
    with measured("embed, single process (Keras)", out, "embed_single") as done:
        done(sum(len(p[0]) for p in run.embed_splits(train, splits).values()))
    for count in workers:
        with measured(f"embed, Beam RunInference multi_processing, {count}", out, f"embed_beam_{count}") as done:
            done(run_beam_inference(embedder, data_dir, os.path.join(work, f"embed{count}"), "embed", frames, size,
                                    beam_options=BeamOptions(workers=count, running_mode="multi_processing")
                                    ).items)
    return out


def seed_run(work: str, frames: int, size: int) -> str:
    """An untrained seed-baseline run at ``frames``/``size``, exported under ``RUN/export``."""
    from baseline_model.config import TrainConfig, save_run_config
    from baseline_model.export import export_run
    from baseline_model.kinds import SeedBaselineConfig
    from baseline_model.models import build_seed_baseline
    from data_interface_for_model.categories import LABELS

    run_dir = os.path.join(work, "run")
    config = SeedBaselineConfig(num_frames=frames, image_size=size)
    model = build_seed_baseline(config, ["beach sand waves", "city skyline at night", "stars in the sky"])
    save_run_config(run_dir, config, TrainConfig(output=run_dir), LABELS)
    model.save(os.path.join(run_dir, "model.keras"))
    export_run(run_dir)
    return run_dir


def project(small: Dict[str, dict], big: Dict[str, dict], items: int, nodes: List[int]) -> Dict[str, dict]:
    """Fixed and marginal cost of each measurement from two sizes, in wall and in CPU seconds; the wall time of
    ``items`` on N workers of one core each: ``fixed wall + items * marginal CPU-s per item / N``."""
    out = {}
    for name, b in big.items():
        s = small[name]
        extra_items = b["items"] - s["items"]
        extra = b["seconds"] - s["seconds"]
        rate = extra_items / extra if extra > 0 else b["items_per_second"]
        cpu_item = (b["cpu_seconds"] - s["cpu_seconds"]) / extra_items if extra_items else b["cpu_seconds_per_item"]
        if cpu_item <= 0:  # noise larger than the difference: fall back on the big size's average
            cpu_item = b["cpu_seconds_per_item"]
        fixed = max(0.0, s["seconds"] - s["items"] / rate)
        fixed_cpu = max(0.0, s["cpu_seconds"] - s["items"] * cpu_item)
        out[name] = {"fixed_seconds": fixed, "marginal_items_per_second": rate, "fixed_cpu_seconds": fixed_cpu,
                     "marginal_cpu_seconds_per_item": cpu_item,
                     "projection_hours": {str(n): (fixed + items * cpu_item / n) / 3600 for n in nodes}}
        print(f"{name:<20} fixed {fixed:6.1f} s ({fixed_cpu:6.1f} CPU-s), marginal {rate:7.2f} items/s, "
              f"{cpu_item:6.3f} CPU-s/item; {items} items on " + ", ".join(
                  f"{n}: {hours:.2f} h" for n, hours in out[name]["projection_hours"].items()), flush=True)
    return out


def warm_imports() -> None:
    """Import TensorFlow, TFDS and Beam before the first measurement (their import is not an item's cost)."""
    import apache_beam  # noqa: F401  pylint: disable=unused-import
    import tensorflow  # noqa: F401  pylint: disable=unused-import
    import tensorflow_datasets  # noqa: F401  pylint: disable=unused-import


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_root(parser)
    add_frames(parser)
    add_image_size(parser)
    parser.add_argument("--small-per-label", type=positive_int, default=2,
                        help="items per label of the small subset (default 2)")
    parser.add_argument("--workers", type=positive_int, nargs="+", default=[1, 2],
                        help="worker processes to compare (default 1 2)")
    parser.add_argument("--run", help="a trained run with an export (default: an untrained seed baseline)")
    parser.add_argument("--skip-embed", action="store_true", help="time prepare only")
    parser.add_argument("--project-items", type=positive_int, default=FULL_DATASET_ITEMS,
                        help=f"items of the projection (default {FULL_DATASET_ITEMS}: the real dataset)")
    parser.add_argument("--nodes", type=positive_int, nargs="+", default=[1, 2, 32, 128, 512],
                        help="worker counts of the projection (default 1 2 32 128 512)")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)

    warm_imports()
    work = tempfile.mkdtemp(prefix="beam-bench-")
    try:
        small_root = os.path.join(work, "small")
        sizes = {"small": (small_root, subset_root(args.data_root, args.small_per_label, small_root)),
                 "big": (os.path.abspath(args.data_root), sum(1 for _ in LayoutReader(args.data_root)))}
        results: Dict[str, dict] = {"frames": args.frames, "image_size": args.image_size,
                                    "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg()}
        if not args.skip_embed:
            run_dir = args.run or seed_run(work, args.frames, args.image_size)
            from data_interface_for_model.tf_serving_format import list_versions

            embedder = list_versions(os.path.join(run_dir, "export", "embedder"))
            embedder = embedder[max(embedder)]
        for size_name, (root, count) in sizes.items():
            print(f"--- {size_name}: {count} items ({root})", flush=True)
            folder = os.path.join(work, size_name)
            os.makedirs(folder, exist_ok=True)
            results[size_name] = time_prepare(root, folder, args.frames, args.image_size, args.workers)
            if not args.skip_embed:
                results[size_name].update(time_embed(root, folder, run_dir, embedder, args.frames,
                                                     args.image_size, args.workers))
        results["projection"] = project(results["small"], results["big"], args.project_items, args.nodes)
        results["load_average_after"] = os.getloadavg()
        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
