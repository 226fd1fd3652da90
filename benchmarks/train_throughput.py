"""Training throughput of the classifiers: examples/s and peak memory, side by side.

    python benchmarks/train_throughput.py [--steps 5] [--batch-size 8]

Rows (each measured in its own process, so peak RSS is that configuration's own):
  seed_baseline at the seed's input sizes (text 20 tokens, cover 270x480, 100 frames at 360x640, the
  original defaults: ~276 MB of float32 per example), seed_baseline at our default sizes (8 frames at
  112x112), the pretrained model trained end to end from pixels (frozen MiniLM + MobileNetV2 run every
  step), and the pretrained model's head trained on cached encoder features (the default).
Inputs are random tensors of the right shapes, so the figures are the models' cost, not the input pipeline's.
Uses the GPU when TensorFlow sees one, else the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {
    "seed_baseline @ seed sizes (100x360x640)": dict(kind="seed_baseline", frames=100, size=(360, 640), cover=(270, 480),
                                                      blocks=8),
    "seed_baseline @ ours (8x112x112)": dict(kind="seed_baseline", frames=8, size=(112, 112), cover=(112, 112), blocks=3),
    "pretrained end to end (8x112x112)": dict(kind="pretrained_e2e", frames=8, size=(112, 112), cover=(112, 112)),
    "pretrained on cached features": dict(kind="pretrained_cached", frames=8, size=(112, 112), cover=(112, 112)),
}


def _measure(case: dict, steps: int, batch_size: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from baseline_model.kinds import PretrainedConfig, SeedBaselineConfig
    from baseline_model.train import compile_classifier

    t, (h, w), (ch, cw) = case["frames"], case["size"], case["cover"]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 31, size=(batch_size,)).astype("int32")
    if case["kind"] == "seed_baseline":
        config = SeedBaselineConfig(num_frames=t, image_size=h, conv3d_blocks=case["blocks"])
        model = _seed_model(config, (ch, cw), (h, w))
        x = {"text": np.array(["a beach with waves at sunset"] * batch_size),
             "cover": rng.random((batch_size, ch, cw, 3), dtype=np.float32),
             "frames": rng.random((batch_size, t, h, w, 3), dtype=np.float32)}
    else:
        from baseline_model.models.pretrained import build_encoders, build_pretrained_classifier

        config = PretrainedConfig(num_frames=t, image_size=h)
        encoders = build_encoders(config)
        models = build_pretrained_classifier(config, encoders)
        raw = {"text": np.array(["a beach with waves at sunset"] * batch_size),
               "cover": rng.random((batch_size, h, w, 3), dtype=np.float32),
               "frames": rng.random((batch_size, t, h, w, 3), dtype=np.float32)}
        if case["kind"] == "pretrained_e2e":
            model, x = models.classifier, raw
        else:
            model = models.head
            x = {k: np.asarray(v) for k, v in models.extractor(raw).items()}
    compile_classifier(model, 1e-3)
    dataset = tf.data.Dataset.from_tensors((x, labels)).repeat()
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"examples_per_s": steps * batch_size / seconds, "step_s": seconds / steps,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params": int(model.count_params()), "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU"}


def _seed_model(config, cover_shape, frame_shape):
    """The seed model at non-square frame sizes (the builder takes square frames; the seed's are 360x640)."""
    import keras

    from baseline_model.models import seed_baseline as sb

    if frame_shape[0] == frame_shape[1]:
        return sb.build_seed_baseline(config, ["a beach with waves"], cover_shape=cover_shape)
    text = keras.Input(shape=(), dtype="string", name="text")
    cover = keras.Input(shape=cover_shape + (3,), name="cover")
    frames = keras.Input(shape=(config.num_frames,) + frame_shape + (3,), name="frames")
    vectorizer = keras.layers.TextVectorization(max_tokens=config.vocabulary_size,
                                                output_sequence_length=config.text_length)
    vectorizer.adapt(["a beach with waves"])
    x = keras.layers.Embedding(config.vocabulary_size, config.word_embedding_dim, name="word_embedding")(
        vectorizer(text))
    x = keras.layers.Bidirectional(keras.layers.LSTM(config.lstm_units))(x)
    text_vec = keras.layers.Dense(config.branch_units, activation="relu")(x)
    video = sb._video_branch(frames, config, config.num_frames, max(frame_shape))
    fused = keras.layers.Concatenate()([text_vec, sb._cover_branch(cover, config), video])
    embedding = keras.layers.Dense(config.fusion_units, activation="relu", name="embedding")(fused)
    out = keras.layers.Dense(31, activation="softmax")(embedding)
    return keras.Model({"text": text, "cover": cover, "frames": frames}, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per case (default 5)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--seed-batch-size", type=int, default=1,
                        help="batch size at the seed's sizes (default 1: ~276 MB per example before activations)")
    parser.add_argument("--only", help="run only the case whose name contains this")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = CASES[args.case]
        batch = args.seed_batch_size if case["frames"] == 100 else args.batch_size
        print(json.dumps({**_measure(case, args.steps, batch), "batch": batch}))
        return 0
    results = {}
    for name in CASES:
        if args.only and args.only not in name:
            continue
        command = [sys.executable, __file__, "--case", name, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--seed-batch-size", str(args.seed_batch_size)]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"{name}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})")
            continue
        results[name] = json.loads(lines[-1])
        print(f"measured {name}", file=sys.stderr)
    if not results:
        return 1
    first = next(iter(results.values()))["examples_per_s"]
    print(f"{'configuration':<44} {'batch':>5} {'examples/s':>11} {'x seed':>8} {'step s':>8} {'peak MB':>8} {'params':>10}")
    for name, r in results.items():
        print(f"{name:<44} {r['batch']:>5} {r['examples_per_s']:>11.2f} {r['examples_per_s'] / first:>8.1f} "
              f"{r['step_s']:>8.3f} {r['peak_rss_mb']:>8.0f} {r['params']:>10,}")
    print(f"device: {first and next(iter(results.values()))['device']}; {args.steps} timed steps per case")
    return 0


if __name__ == "__main__":
    sys.exit(main())
