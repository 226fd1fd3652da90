"""Check that a built set is not separable by what the builder made up, only by what the photos show.

Nearest-centroid probes (standardised features, stratified K-fold cross-validation, the same folds):

* ``background``: mean and spread of each colour channel in the cover's outer border (what the photo is
  composited on, mostly);
* ``motion``: how much the clip moves (mean absolute change from the first frame, at 4 points in time) and
  how much it zooms (the first and last frames' sharpness ratio);
* ``softness``: how blurred the cover's centre is (fine-detail energy against the energy at half resolution,
  two numbers): upscaling small photos more than large ones would show here. It also reflects what the
  photos show (fur against smooth fruit), so it is read against the same probe on a set built with
  ``--source-side 0``;
* ``colour`` (a contrast that SHOULD carry the label): a 4x4x4 colour histogram of the cover's centre.

Each is reported with a 95% Wilson interval, beside the majority-class rate and the same probe's accuracy
with the labels shuffled (mean and 95th percentile over 50 shuffles). The builder passes when the two
artefact probes stay within the shuffled range while the colour probe is well above it.

Usage::

    python benchmarks/real_data/check_artefacts.py --data-root data/real/photos
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from data_interface_for_model.cli import (  # noqa: E402
    UsageError, add_common_arguments, add_data_root, positive_int, run_verb,
)
from data_interface_for_model.info_file import INFO_FILE_NAME  # noqa: E402


def wilson(successes: int, total: int, z: float = 1.96) -> Tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def stratified_folds(labels: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """A fold number for each item; each label's items dealt round-robin over the folds after a shuffle."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), dtype=int)
    for label in sorted(set(labels)):
        index = np.flatnonzero(np.asarray(labels) == label)
        rng.shuffle(index)
        folds[index] = np.arange(len(index)) % k
    return folds


def nearest_centroid_cv(features: np.ndarray, labels: Sequence[str], folds: np.ndarray) -> int:
    """How many items a nearest-centroid classifier gets right, each predicted by a model without its fold."""
    labels = np.asarray(labels)
    correct = 0
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        mean, std = features[train].mean(0), features[train].std(0) + 1e-6
        x_train, x_test = (features[train] - mean) / std, (features[test] - mean) / std
        names = sorted(set(labels[train]))
        centroids = np.stack([x_train[labels[train] == n].mean(0) for n in names])
        distance = ((x_test[:, None, :] - centroids[None]) ** 2).sum(-1)
        correct += int((np.asarray(names)[distance.argmin(1)] == labels[test]).sum())
    return correct


def item_features(cover_path: str, video_path: str) -> Dict[str, np.ndarray]:
    """The three feature vectors of one item."""
    import av
    from PIL import Image

    with Image.open(cover_path) as image:
        cover = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = cover.shape[:2]
    b = max(2, int(0.06 * min(h, w)))
    border = np.concatenate([cover[:b].reshape(-1, 3), cover[-b:].reshape(-1, 3), cover[:, :b].reshape(-1, 3),
                             cover[:, -b:].reshape(-1, 3)])
    centre = cover[h // 4: 3 * h // 4, w // 4: 3 * w // 4].reshape(-1, 3)
    histogram = np.histogramdd(centre, bins=(4, 4, 4), range=((0, 256),) * 3)[0].ravel() / len(centre)
    with av.open(video_path) as container:
        frames = [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]
    points = [frames[int(round(t * (len(frames) - 1)))] for t in (0.25, 0.5, 0.75, 1.0)]
    change = [float(np.abs(p - frames[0]).mean()) for p in points]

    def sharpness(frame: np.ndarray) -> float:
        return float(np.abs(np.diff(frame, axis=0)).mean() + np.abs(np.diff(frame, axis=1)).mean())

    zoom = math.log((sharpness(frames[-1]) + 1e-3) / (sharpness(frames[0]) + 1e-3))
    grey = cover[h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean(-1)
    even = grey[: grey.shape[0] // 2 * 2, : grey.shape[1] // 2 * 2]
    half = even.reshape(even.shape[0] // 2, 2, -1, 2).mean((1, 3))

    def detail(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image, 2, axis=0)).mean() + np.abs(np.diff(image, 2, axis=1)).mean()) + 1e-3

    softness = np.asarray([math.log(detail(grey) / detail(half)), math.log(detail(grey))], dtype=np.float32)
    return {"background": np.concatenate([border.mean(0), border.std(0)]), "softness": softness,
            "motion": np.asarray(change + [zoom], dtype=np.float32), "colour": histogram}


def check(root: str, k: int = 5, seed: int = 0, permutations: int = 50) -> Dict[str, object]:
    """Run the three probes over the items listed in ``root``'s info file.

    Beside each probe's accuracy: its mean and 95th percentile over ``permutations`` random shufflings of
    the labels (what the same probe scores when the features carry no label at all).
    """
    from tqdm import tqdm

    info = os.path.join(root, INFO_FILE_NAME)
    if not os.path.isfile(info):
        raise FileNotFoundError(f"{info} not found: is {root} a set built by build_photos.py?")
    with open(info, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    labels: List[str] = []
    features: Dict[str, List[np.ndarray]] = {"background": [], "motion": [], "softness": [], "colour": []}
    for record in tqdm(records, desc="items", unit="item"):
        label, item = record["video_label"], record["mp4_id"]
        folder = os.path.join(root, label, item)
        values = item_features(os.path.join(folder, item + ".jpeg"), os.path.join(folder, item + ".mp4"))
        labels.append(label)
        for name, vector in values.items():
            features[name].append(vector)
    if len(set(labels)) < 2:
        raise UsageError(f"{root}: need at least two labels, found {sorted(set(labels))}")
    folds = stratified_folds(labels, k, seed)
    majority = max(labels.count(label) for label in set(labels))
    result: Dict[str, object] = {"items": len(labels), "labels": len(set(labels)), "folds": k,
                                 "majority": round(majority / len(labels), 3)}
    rng = np.random.default_rng(seed)
    shuffles = [list(rng.permutation(labels)) for _ in range(permutations)]
    for name, vectors in features.items():
        matrix = np.stack(vectors)
        correct = nearest_centroid_cv(matrix, labels, folds)
        low, high = wilson(correct, len(labels))
        shuffled = [nearest_centroid_cv(matrix, s, stratified_folds(s, k, seed)) / len(labels) for s in shuffles]
        result[name] = {"accuracy": round(correct / len(labels), 3), "interval": [round(low, 3), round(high, 3)],
                        "shuffled_labels": round(float(np.mean(shuffled)), 3),
                        "shuffled_labels_p95": round(float(np.percentile(shuffled, 95)), 3)}
    return result


def build_parser(prog: str = "check_artefacts.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Probe a built real set for label-revealing "
                                     "artefacts of the builder (backgrounds, camera motion) against a colour "
                                     "probe that should carry the label.")
    add_data_root(parser, help="the set built by build_photos.py")
    parser.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    result = check(args.data_root, args.folds, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    parts = [f"{name} {result[name]['accuracy']:.3f} [{result[name]['interval'][0]:.3f}, "
             f"{result[name]['interval'][1]:.3f}] (shuffled labels {result[name]['shuffled_labels']:.3f}, "
             f"p95 {result[name]['shuffled_labels_p95']:.3f})"
             for name in ("background", "motion", "softness", "colour")]
    print(f"{result['items']} items, {result['labels']} labels, {result['folds']}-fold nearest-centroid accuracy: "
          f"majority {result['majority']:.3f}; " + "; ".join(parts))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_verb(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
