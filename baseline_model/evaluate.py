"""Evaluating a run: accuracy, top-5, macro-F1, per-class precision/recall, a confusion-matrix PNG, and the
same numbers with only one modality present."""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from baseline_model import data as data_lib
from baseline_model.metrics import classification_report, plot_confusion_matrix
from baseline_model.run import LoadedRun, load_run
from data_interface_for_model.atomic import atomic_write

logger = logging.getLogger(__name__)

#: Presence of (text, cover, video) for each evaluated condition.
CONDITIONS = {"all": (1, 1, 1), "text_only": (1, 0, 0), "cover_only": (0, 1, 0), "video_only": (0, 0, 1)}


def _mask_raw(presence):
    text_on, cover_on, video_on = presence

    def mask(features, label):
        features = dict(features)
        if not text_on:
            features["text"] = tf.fill(tf.shape(features["text"]), "")
        if not cover_on:
            features["cover"] = tf.zeros_like(features["cover"])
        if not video_on:
            features["frames"] = tf.zeros_like(features["frames"])
        return features, label

    return mask


def predict_split(run: LoadedRun, split: str, presence=(1, 1, 1), batch_size: int = 64):
    """``(labels [N], probabilities [N, 31])`` of a prepared split under a modality mask."""
    if run.head is not None:
        from baseline_model.features import features_dataset
        from baseline_model.train import feature_arrays_for

        arrays = feature_arrays_for(run.model_config, run.train_config, splits=(split,), extractor=run.extractor)[split]
        dataset = features_dataset(arrays, batch_size, shuffle=False, presence_override=presence)
        return arrays["label"].astype(int), run.head.predict(dataset, verbose=0)
    dataset = data_lib.raw_dataset(run.train_config, run.model_config, split, batch_size, shuffle=False)
    labels, probabilities = [], []
    for features, label in dataset.map(_mask_raw(presence)):  # one pass: labels and predictions stay paired
        labels.append(label.numpy())
        probabilities.append(np.asarray(run.classifier.predict_on_batch(features)))
    return np.concatenate(labels).astype(int), np.concatenate(probabilities)


def evaluate_run(run_dir: str, split: str = "test", json_out: Optional[str] = None,
                 run: Optional[LoadedRun] = None) -> Dict:
    """Evaluate a run on a split; write ``report.json`` (or ``json_out``) and the confusion-matrix PNG."""
    run = run or load_run(run_dir)
    report: Dict = {"run": run_dir, "split": split, "model": run.model_config.kind}
    for name, presence in CONDITIONS.items():
        labels, probabilities = predict_split(run, split, presence)
        full = classification_report(labels, probabilities)
        if name == "all":
            report.update(full)
            png = os.path.join(run_dir, f"confusion_matrix_{split}.png")
            plot_confusion_matrix(np.asarray(full["confusion_matrix"]), png,
                                  title=f"{run.model_config.kind}, {split} split")
            report["confusion_matrix_png"] = png
        else:
            report[name] = {k: full[k] for k in ("accuracy", "top5_accuracy", "macro_f1")}
    out = json_out or os.path.join(run_dir, "report.json")
    with atomic_write(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    report["report_json"] = out
    return report
