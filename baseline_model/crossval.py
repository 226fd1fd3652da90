"""Stratified K-fold cross-validation of a run's model and of the linear probe, on every item of its data.

Each fold holds out one K-th of the items (stratified by label) as its test set; of the rest, one more
stratified part is the validation set (early stopping for the model, ``C`` for the probe) and the remainder
trains. The model kind retrains from the cached encoder features (no encoder runs again), so K folds cost K
head trainings. Reported: mean, standard deviation and per-fold values of each metric.
"""
from __future__ import annotations

import logging
from typing import Dict, List

import numpy as np

from baseline_model.metrics import classification_report
from baseline_model.run import LoadedRun
from data_interface_for_model.defaults import SPLITS

logger = logging.getLogger(__name__)
METRICS = ("accuracy", "macro_f1")


def _subset(arrays: Dict[str, np.ndarray], index: np.ndarray) -> Dict[str, np.ndarray]:
    return {key: value[index] for key, value in arrays.items()}


def _summary(values: List[float]) -> Dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": [float(v) for v in values]}


def cross_validate(run: LoadedRun, folds: int, seed: int = 0) -> Dict:
    """``{"folds", "items", "model": {metric: {mean, std, values}}, "linear_probe": {...}}`` over every item
    of the run's prepared data.

    Raises ValueError when the run's model does not train on cached features (K end-to-end trainings are
    not what a user asking for a quick honest estimate expects) or a label has fewer than ``folds`` items."""
    if not run.kind.uses_feature_cache:
        raise ValueError(f"--cv retrains the model on cached encoder features; this {run.kind.name} run trains "
                         f"end to end (evaluate it on its test split, or train a cached-feature model)")
    parts = run.frozen_features(SPLITS)
    arrays = {key: np.concatenate([parts[s][key] for s in SPLITS if s in parts]) for key in parts["train"]}
    return cross_validate_arrays(run.kind, run.kind.with_defaults(run.train_config), arrays, run.labels, folds,
                                 seed)


def cross_validate_arrays(kind, train, arrays: Dict[str, np.ndarray], labels, folds: int, seed: int = 0,
                          progress: bool = True) -> Dict:
    """Cross-validate ``kind`` (trained with ``train``) and the linear probe on cached feature ``arrays``."""
    from sklearn.model_selection import StratifiedKFold
    from tqdm import tqdm

    from baseline_model.features import features_dataset
    from baseline_model.probe import fit_probe, probe_inputs

    y = arrays["label"].astype(int)
    counts = np.bincount(y)
    if counts[counts > 0].min() < folds:
        raise ValueError(f"--cv {folds}: the smallest label has {counts[counts > 0].min()} items; use fewer folds")
    x = probe_inputs(arrays)
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: Dict[str, Dict[str, List[float]]] = {"model": {m: [] for m in METRICS},
                                                 "linear_probe": {m: [] for m in METRICS}}
    splits = list(outer.split(x, y))
    for fold, (rest, test) in enumerate(tqdm(splits, desc="cross-validation", unit="fold", disable=not progress)):
        inner = StratifiedKFold(n_splits=max(2, folds - 1), shuffle=True, random_state=seed + 1 + fold)
        train_at, val_at = next(inner.split(x[rest], y[rest]))
        train_idx, val_idx = rest[train_at], rest[val_at]
        model = kind.fit_on_features(train, _subset(arrays, train_idx), _subset(arrays, val_idx), len(labels))
        probabilities = model.predict(features_dataset(_subset(arrays, test), 64, shuffle=False), verbose=0)
        probe = fit_probe(x[train_idx], y[train_idx], x[val_idx], y[val_idx], len(labels), seed=seed)
        for name, probs in (("model", probabilities), ("linear_probe", probe.predict_proba(x[test]))):
            report = classification_report(y[test], probs, labels)
            for metric in METRICS:
                scores[name][metric].append(report[metric])
        logger.info("fold %d: model %.3f, probe %.3f", fold, scores["model"]["accuracy"][-1],
                    scores["linear_probe"]["accuracy"][-1])
    return {"folds": folds, "items": int(len(y)),
            **{name: {m: _summary(v) for m, v in by_metric.items()} for name, by_metric in scores.items()}}
