"""Pick the classifier's defaults by measurement: stratified K-fold cross-validation of head variants and of
the linear probe on the same cached features, per image size, on any dataset in the xinpianchang layout.

    python benchmarks/classifier_defaults.py --data-root data/real/photos --data-dir /tmp/tfds_real \
        --image-size 112 224 --folds 5 [--variants default small_head strong_dropout] [--json out.json]

Every variant sees the same folds (each fold: one K-th held out as test, one more stratified part of the rest
as validation for early stopping and the probe's C, the remainder trains), so differences are paired. Only
the held-out folds are scored; nothing is tuned on them. Prints one row per (size, variant): mean +- std of
accuracy and macro-F1 over the folds, the probe's on the same folds, and seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: name -> (PretrainedConfig overrides, TrainConfig overrides)
VARIANTS = {
    "default": ({}, {}),
    "head_alone": ({"probe_ensemble": False}, {}),
    "head_alone_strong_dropout": ({"probe_ensemble": False, "dropout": 0.5, "modality_dropout": 0.4}, {}),
    "small_head": ({"fusion_dim": 64, "embedding_dim": 64}, {}),
    "strong_dropout": ({"dropout": 0.5, "modality_dropout": 0.4}, {}),
    "no_modality_dropout": ({"modality_dropout": 0.0}, {}),
    "short": ({}, {"epochs": 15}),
    "low_lr": ({}, {"learning_rate": 5e-4, "epochs": 80}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--image-size", type=int, nargs="+", default=[112])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", help="write every result here")
    args = parser.parse_args()

    import numpy as np

    from baseline_model import data as data_lib
    from baseline_model.config import TrainConfig
    from baseline_model.crossval import cross_validate_arrays
    from baseline_model.features import feature_arrays
    from baseline_model.kinds import Pretrained, PretrainedConfig
    from data_interface_for_model.defaults import SPLITS

    rows = []
    print(f"{'size':>4} {'variant':<20} {'accuracy':>15} {'macro-F1':>15} {'probe accuracy':>15} {'probe F1':>15} "
          f"{'s':>6}")
    for size in args.image_size:
        base = PretrainedConfig(num_frames=args.frames, image_size=size)
        train = TrainConfig(data_root=args.data_root, data_dir=args.data_dir)
        prepared = data_lib.prepare(train, base)
        labels = prepared.labels
        parts = feature_arrays(Pretrained(base), train, [s for s in SPLITS if prepared.split_counts.get(s)])
        arrays = {k: np.concatenate([p[k] for p in parts.values()]) for k in parts["train"]}
        for name in args.variants:
            model_over, train_over = VARIANTS[name]
            kind = Pretrained(dataclasses.replace(base, **model_over))
            variant_train = kind.with_defaults(dataclasses.replace(train, **train_over))
            start = time.perf_counter()
            result = cross_validate_arrays(kind, variant_train, arrays, labels, args.folds, progress=False)
            seconds = time.perf_counter() - start
            m, p = result["model"], result["linear_probe"]
            print(f"{size:>4} {name:<20} {m['accuracy']['mean']:>8.3f} +-{m['accuracy']['std']:.3f} "
                  f"{m['macro_f1']['mean']:>8.3f} +-{m['macro_f1']['std']:.3f} "
                  f"{p['accuracy']['mean']:>8.3f} +-{p['accuracy']['std']:.3f} "
                  f"{p['macro_f1']['mean']:>8.3f} +-{p['macro_f1']['std']:.3f} {seconds:>6.0f}", flush=True)
            rows.append({"image_size": size, "variant": name, "items": result["items"], "folds": args.folds,
                         "model": m, "linear_probe": p, "seconds": seconds})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
