"""What one signature call costs in-process: the SavedModel run as TF Serving runs it (TF1 loader + Session,
what the server does) against the restored ``tf.function`` (``tf.saved_model.load``), same inputs, calls
interleaved so that a busy machine slows both alike.

    python benchmarks/serving_runtime.py                        # test models built here (says which)
    python benchmarks/serving_runtime.py --calls 500

Prints the median and p90 microseconds per call for each model and runtime, and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _inputs(name: str):
    if "recommender" in name:
        return {"history": np.array([["item001", "item002", "item010", ""]], dtype=object)}
    if "half_plus_two" in name:
        return {"x": np.array([[1.0]], np.float32)}
    return {"brief": np.array([b"waves at sunset"], dtype=object), "cover": np.array([b""], dtype=object),
            "frames": np.array([[b"", b""]], dtype=object)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per model and runtime (default 300)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
    import tensorflow as tf

    from serving.model_manager import ServableVersion, import_custom_ops
    from tests.serving_fixtures import build_half_plus_two, build_toy_classifier, build_toy_recommender

    import_custom_ops()
    base = tempfile.mkdtemp(prefix="runtime-")
    paths = {"half_plus_two (TF1 graph)": build_half_plus_two(base),
             "toy_classifier (string ops)": build_toy_classifier(base),
             "toy_recommender (hash table, brute force)": build_toy_recommender(base, num_items=10_000, dim=64),
             "toy_recommender_scann (ScaNN index)": build_toy_recommender(base, name="scann", num_items=10_000,
                                                                          dim=64, scann=True)}
    rows = {}
    for name, path in paths.items():
        servable = ServableVersion(name, 1, path)
        servable.load(None)
        session_sig = servable.signature("serving_default")
        function = tf.saved_model.load(path).signatures["serving_default"]
        inputs = _inputs(name)
        feed = {k: tf.constant(v) for k, v in inputs.items()}
        session_sig(inputs), function(**feed)  # first calls build what they build
        times = {"session": [], "tf.function": []}
        for _ in range(args.calls):
            started = time.perf_counter()
            session_sig(inputs)
            times["session"].append(time.perf_counter() - started)
            started = time.perf_counter()
            {k: v.numpy() for k, v in function(**feed).items()}
            times["tf.function"].append(time.perf_counter() - started)
        stats = {k: (float(np.median(v) * 1e6), float(np.percentile(v, 90) * 1e6)) for k, v in times.items()}
        rows[name] = {"session_us": round(stats["session"][0], 1), "session_p90_us": round(stats["session"][1], 1),
                      "tf_function_us": round(stats["tf.function"][0], 1),
                      "tf_function_p90_us": round(stats["tf.function"][1], 1),
                      "tf_function_over_session": round(stats["tf.function"][0] / stats["session"][0], 2)}
        servable.drain_and_unload(1)
        print(f"{name:45s} session {rows[name]['session_us']:8.1f} us  tf.function "
              f"{rows[name]['tf_function_us']:8.1f} us  ({rows[name]['tf_function_over_session']}x)", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
