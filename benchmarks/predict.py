"""``classifier predict`` end to end against its two limits: the bare decode rate and the model alone.

Three figures in one run, same clips, same thread count, same batch size:

1. decode limit: every clip (and its cover) decoded exactly as ``predict`` decodes it
   (``baseline_model.predict.load_item``: PyAV sampling of T frames, resize, cover or middle frame), in
   the same number of threads, nothing else;
2. model limit: the run's predictor (frozen encoders + head, from raw pixels) on batches already decoded
   and in memory;
3. end to end: ``predict_videos`` (decode in threads, predict, write the CSV).

End to end can approach ``1 / (1/decode + 1/model)`` (decode and model alternate per batch) and never beats
the slower limit.

Usage::

    xinpianchang data make-demo --output data/demo --per-category 4
    python train_multimodal_baseline_model.py --data-root data/demo --output runs/latest --no-export
    python benchmarks/predict.py --run runs/latest --input data/demo [--limit 64] [--batch-size 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained classifier run folder")
    parser.add_argument("--input", nargs="+", required=True, help="folders, globs or videos (as predict takes)")
    parser.add_argument("--limit", type=int, default=64, help="clips to use (default 64)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per model call (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="decode threads (default 2, as predict)")
    args = parser.parse_args(argv)

    import baseline_model  # noqa: F401  (the Keras switch)
    from baseline_model.predict import batch_inputs, iter_inputs, load_item, predict_videos
    from baseline_model.run import load_run

    items = list(iter_inputs(args.input))[: args.limit]
    if not items:
        print(f"error: no video found in {args.input}", file=sys.stderr)
        return 1
    run = load_run(args.run)
    frames, size, windows = run.model_config.num_frames, run.model_config.image_size, run.model_config.audio_windows
    print(f"{len(items)} clips, {frames} frames at {size} px, batch {args.batch_size}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}")

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        decoded = list(pool.map(lambda item: load_item(item, frames, size, windows), items))
    decode_s = time.perf_counter() - start

    model = run.predictor(with_embedding=False)
    batches = [decoded[i:i + args.batch_size] for i in range(0, len(decoded), args.batch_size)]

    model.predict_on_batch(batch_inputs(batches[0]))  # trace once; not timed
    start = time.perf_counter()
    for batch in batches:
        model.predict_on_batch(batch_inputs(batch))
    model_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        summary = predict_videos(args.run, [item.path for item in items], os.path.join(tmp, "p.csv"),
                                 batch_size=args.batch_size, threads=args.threads, progress=False)
    end_s = summary.seconds
    rates = {"decode limit": len(items) / decode_s, "model limit": len(items) / model_s,
             "predict end to end": summary.written / end_s}
    bound = 1.0 / (1.0 / rates["decode limit"] + 1.0 / rates["model limit"])
    for name, rate in rates.items():
        print(f"{name:<20} {rate:8.1f} clips/s")
    print(f"end to end is {rates['predict end to end'] / rates['decode limit']:.2f}x the decode limit, "
          f"{rates['predict end to end'] / bound:.2f}x the serial bound ({bound:.1f} clips/s; excludes loading "
          f"the run, includes tracing the model's first call; {len(summary.failed)} failed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
