"""Scorers without a trained two-tower model: most popular, and content-only cosine.

A scorer maps evaluation cases to a score matrix ``[U, N]`` over the catalog (higher is better).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from retrieval.interactions import item_counts
from retrieval.splits import EvalCase


def most_popular_scores(cases: Sequence[EvalCase], catalog_ids: Sequence[str],
                        train: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Every query gets the training interaction counts ``[U, N]`` (ties broken by catalog order, so equal
    counts do not all rank against the target)."""
    counts = item_counts(train)
    n = len(catalog_ids)
    scores = np.asarray([counts.get(str(i), 0) for i in catalog_ids], dtype=np.float64)
    scores = scores - np.arange(n) / (n + 1.0)  # deterministic tie-break, smaller than one count
    return np.broadcast_to(scores, (len(cases), n))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def content_only_scores(cases: Sequence[EvalCase], catalog_ids: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """Cosine between the mean of each history's (unit) content embeddings and every item, no training.

    Args:
      vectors: float32 ``[N, D]``, the catalog's content embeddings, rows in ``catalog_ids`` order.
    Returns:
      float ``[U, N]``.
    """
    unit = _unit(np.asarray(vectors, dtype=np.float32))
    row = {str(i): n for n, i in enumerate(catalog_ids)}
    queries = np.zeros((len(cases), unit.shape[1]), dtype=np.float32)
    for u, case in enumerate(cases):
        rows = [row[i] for i in case.history if i in row]
        if rows:
            queries[u] = unit[rows].mean(axis=0)
    return _unit(queries) @ unit.T
