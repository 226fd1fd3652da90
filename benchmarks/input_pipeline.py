"""Input pipeline benchmark: examples/s of four ways to feed (text, cover, frames, label) to a model.

1. the seed's way: a Python generator that decodes every frame of every clip with OpenCV (up to 100
   frames, each resized to the original's default 640x360, float32, as the original's
   ``multimodal_encode_data_generator``), fed through ``tf.data.Dataset.from_generator``, the cover decoded
   and resized to 270x480 in [-1, 1]; also with frames kept at the clip's own size (a kinder baseline:
   the demo clips are smaller than 640x360);
2. our raw path: ``tf_dataset.make_raw_dataset`` (PyAV sampling of T frames inside ``tf.numpy_function``);
3. our prepared path: ``tf_dataset.make_dataset`` over the prepared TFRecord shards (pure TF decode);
4. the decode limit: the same stored JPEG frames and covers, already in memory, decoded by the same
   parallel ``tf.data`` map with nothing else to do.

Then preparation (``prepare_dataset``, decoding in worker processes and writing the shards) against the
bare PyAV sampling rate (``sample_frames`` + ``load_cover`` in the same number of worker processes, nothing
written).

Usage::

    xinpianchang data make-demo --output data/demo --per-category 10 --seed 0
    python benchmarks/input_pipeline.py --data-root data/demo

Prints the figures side by side and the ratios; exits 1 only when a step fails.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_interface_for_model import LayoutReader, defaults  # noqa: E402  (no TensorFlow at import: spawn workers import this)
from data_interface_for_model.cli import add_data_root, add_frames, add_image_size  # noqa: E402
from data_interface_for_model.decoding import load_cover, sample_frames  # noqa: E402
from data_interface_for_model.parallel import resolve_workers  # noqa: E402


def _sample_only(paths: Tuple[str, str, int, int]) -> int:
    """Bare PyAV sampling of one item (what preparation must at least do), in a worker process."""
    video, cover, num_frames, size = paths
    frames, _ = sample_frames(video, num_frames, size)
    load_cover(cover, size)
    return int(frames.shape[0])


def bare_sampling_rate(items, num_frames: int, size: int, workers: int) -> float:
    """Items/s of sample_frames + load_cover over ``workers`` spawned processes (start-up included)."""
    tasks = [(i.video_path, i.cover_path, num_frames, size) for i in items]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for _ in pool.map(_sample_only, tasks, chunksize=4):
            pass
    return len(tasks) / (time.perf_counter() - started)


def _seed_generator(items, video_size: Optional[Tuple[int, int]], max_video_frame_number: int = 100):
    """The original's generator: every frame (up to 100) read with OpenCV, resized to ``video_size``
    (width, height; ``None``: the clip's own size), as float32."""
    import cv2
    import numpy as np

    for item in items:
        capture = cv2.VideoCapture(item.video_path)
        frames = []
        success, frame = capture.read()
        while success and frame is not None and len(frames) < max_video_frame_number:
            if video_size is not None:
                frame = cv2.resize(frame, dsize=video_size)
            frames.append(frame.astype(np.float32))
            success, frame = capture.read()
        capture.release()
        if frames:
            yield np.stack(frames), item.cover_path, item.brief, item.label_id


def seed_dataset(items, batch_size: int, video_size: Optional[Tuple[int, int]] = (640, 360)):
    import tensorflow as tf

    height, width = 270, 480

    def cover(video, cover_path, text, label):
        image = tf.image.decode_jpeg(tf.io.read_file(cover_path), channels=3)
        image = tf.image.resize(image, [height, width]) / 127.5 - 1.0
        return {"video": video, "image": image, "text": text}, label

    ds = tf.data.Dataset.from_generator(
        lambda: _seed_generator(items, video_size),
        output_signature=(tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([], tf.string),
                          tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)))
    ds = ds.map(cover, num_parallel_calls=tf.data.AUTOTUNE)
    # clips differ in length: batch them padded (the original dropped every clip that was not 100 frames)
    return ds.padded_batch(batch_size).prefetch(tf.data.AUTOTUNE)


def examples_per_second(ds, min_seconds: float, max_examples: Optional[int] = None, warmup: int = 1) -> float:
    """Iterate ``ds`` (batches of (features, label)) for at least ``min_seconds`` or until it ends."""
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    count, started = 0, time.perf_counter()
    for _, label in iterator:
        count += int(label.shape[0])
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds or (max_examples is not None and count >= max_examples):
            break
    return count / (time.perf_counter() - started)


def decode_limit_dataset(data_dir: str, num_frames: int, size: int, batch_size: int):
    """The stored JPEGs of every example held in memory, decoded by the same parallel map, repeated."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from data_interface_for_model.prepare import load_builder

    builder = load_builder(data_dir, num_frames, size, file_format="tfrecord")
    raw = builder.as_dataset(split="train+validation+test", shuffle_files=False,
                             decoders={"cover": tfds.decode.SkipDecoding(), "frames": tfds.decode.SkipDecoding()})
    frames, covers, labels = [], [], []
    for example in raw:
        frames.append(example["frames"].numpy())
        covers.append(example["cover"].numpy())
        labels.append(int(example["label"]))
    ds = tf.data.Dataset.from_tensor_slices((frames, covers, labels)).cache()

    def decode(encoded_frames, cover, label):
        pictures = tf.stack([tf.io.decode_jpeg(encoded_frames[i], channels=3) for i in range(num_frames)])
        return {"frames": pictures, "cover": tf.io.decode_jpeg(cover, channels=3)}, label

    def to_float(features, label):
        return {k: tf.cast(v, tf.float32) * (1.0 / 255.0) for k, v in features.items()}, label

    ds = ds.repeat().map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), len(labels)


def _row(name: str, rate: float, reference: Optional[float] = None, label: str = "") -> str:
    ratio = f"{rate / reference:8.1f}x {label}" if reference else ""
    return f"  {name:<46} {rate:10.1f} /s   {ratio}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_root(parser, required=False, default=defaults.DATA_ROOT,
                  help="a dataset root (xinpianchang data make-demo --output ROOT)")
    parser.add_argument("--data-dir", help="where to prepare (default: a temporary folder)")
    add_frames(parser)
    add_image_size(parser, aliases=("--size",))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="preparation processes (0: one per core)")
    parser.add_argument("--seconds", type=float, default=6.0, help="minimum time per tf.data measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating measurements of the prepared path and the decode limit (medians)")
    args = parser.parse_args(argv)

    from data_interface_for_model.prepare import prepare_dataset
    from data_interface_for_model.tf_dataset import make_dataset, make_raw_dataset

    items = list(LayoutReader(args.data_root))
    if not items:
        print(f"input_pipeline: no complete item under {args.data_root}", file=sys.stderr)
        return 1
    workers = resolve_workers(args.workers)
    print(f"{len(items)} items under {args.data_root}; T={args.frames} frames at "
          f"{args.image_size}x{args.image_size}, "
          f"batch {args.batch_size}, {workers} worker processes, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="input-pipeline-") as tmp:
        data_dir = args.data_dir or tmp
        started = time.perf_counter()
        report = prepare_dataset(args.data_root, data_dir, args.frames, args.image_size, workers=args.workers,
                                 progress=False,
                                 force=True)
        prepare_wall = len(items) / (time.perf_counter() - started)
        bare = bare_sampling_rate(items, args.frames, args.image_size, workers)

        import tensorflow as tf  # noqa: F401  (after the worker pools: they must not inherit it)

        seed = examples_per_second(seed_dataset(items, args.batch_size), args.seconds)
        seed_native = examples_per_second(seed_dataset(items, args.batch_size, None), args.seconds)
        raw = examples_per_second(make_raw_dataset(args.data_root, args.batch_size, args.frames, args.image_size),
                                  args.seconds)
        limit_ds, _ = decode_limit_dataset(data_dir, args.frames, args.image_size, args.batch_size)
        prepared_rates, limit_rates = [], []
        for _ in range(args.rounds):  # alternate, then take medians: the ratio survives a busy machine better
            prepared_rates.append(examples_per_second(
                make_dataset(data_dir, "train+validation+test", args.batch_size, num_frames=args.frames,
                             size=args.image_size, repeat=True), args.seconds, warmup=2))
            limit_rates.append(examples_per_second(limit_ds, args.seconds, warmup=2))
        prepared, limit = statistics.median(prepared_rates), statistics.median(limit_rates)

    print("\ntraining input (examples/s; one epoch or at least --seconds, whichever ends first)")
    print(_row("seed's way (OpenCV, every frame at 640x360)", seed))
    print(_row("seed's way, frames at the clip's own size", seed_native))
    print(_row("raw layout path (PyAV in tf.numpy_function)", raw, seed, "the seed's way"))
    print(_row(f"prepared shards (make_dataset), median of {args.rounds}", prepared, seed, "the seed's way"))
    print(_row("", prepared, seed_native, "the seed's way at the clip's own size"))
    print(_row(f"decode limit (stored JPEGs in memory), median of {args.rounds}", limit))
    print(f"  prepared / decode limit: {prepared / limit:.0%}    prepared / seed's way: {prepared / seed:.0f}x   "
          f"(goals: >= 70%, >= 50x)")
    print("\npreparation (items/s)")
    print(_row("prepare_dataset, build only (report)", report.items_per_second))
    print(_row("prepare_dataset, whole call (process start-up included)", prepare_wall))
    print(_row(f"bare PyAV sampling, {workers} processes, nothing written", bare))
    print(f"  preparation / bare sampling: {report.items_per_second / bare:.0%} (build), "
          f"{prepare_wall / bare:.0%} (whole call)   (goal: >= 70%)")
    print(f"\ninput_pipeline: prepared {prepared:.0f}/s = {prepared / seed:.0f}x the seed's way, "
          f"{prepared / limit:.0%} of the decode limit; preparation {report.items_per_second / bare:.0%} of bare "
          f"sampling ({report.summary()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
