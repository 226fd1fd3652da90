"""Baselines scored on the same cases, split and history masking as the two-tower model.

A scorer is fitted on the training sequences and maps a chunk of evaluation cases to a score matrix
``[C, N]`` over the catalog (higher is better; the history is masked afterwards by the evaluation):

* :class:`MostPopular`: training interaction counts, the same for everyone.
* :class:`Markov`: first-order item-to-item transitions: how often each item followed the case's last history
  item in the training sequences, backed off to popularity (a small popularity term breaks ties and covers
  items with no recorded successor).
* :class:`Ease`: EASE (Steck, 2019): the closed-form item-item regression ``B = I - P diag(1/diag(P))`` with
  ``P = (X^T X + l2 I)^-1``, ``X`` the binary user x item training matrix; the L2 weight is chosen on the
  validation cases. Above ``max_items`` catalog items, where the dense ``N x N`` inverse gets too slow and
  large, it is fitted on the ``max_items`` most popular items only (the row says so).
* :class:`ItemKNN`: cosine similarity between item columns of ``X``, summed over the history items.
* :class:`ContentCosine`: cosine between the mean of the history's (unit) content embeddings and each item's.

The ID-only two-tower model is trained with the main model (see :mod:`retrieval.train`).
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from retrieval.interactions import item_counts
from retrieval.splits import EvalCase

logger = logging.getLogger(__name__)

#: Above this many catalog items EASE keeps only the most popular ones. Measured on the shared 2-core machine (load ~14): one dense
#: inverse (one L2 weight) takes 2 s at 1,000 items, 5.5 s at 2,000 and 38 s (0.75 GB resident) at 4,000,
#: growing as N^3 in time and N^2 in memory; four weights are tried, so 5,000 items cost a few minutes.
EASE_MAX_ITEMS = 5000
#: L2 weights tried for EASE (the one with the best validation NDCG@10 is kept).
EASE_L2_GRID = (1.0, 10.0, 100.0, 1000.0)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def training_matrix(train: Mapping[str, Sequence[str]], row: Mapping[str, int]) -> sp.csr_matrix:
    """Binary user x item matrix ``[U, N]`` of the training sequences (columns: catalog rows)."""
    rows, cols = [], []
    for u, items in enumerate(train.values()):
        for item in set(items):
            if item in row:
                rows.append(u)
                cols.append(row[item])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(train), len(row)), dtype=np.float32)


def history_matrix(cases: Sequence[EvalCase], row: Mapping[str, int]) -> sp.csr_matrix:
    """Binary case x item matrix ``[C, N]`` of the cases' histories."""
    rows, cols = [], []
    for u, case in enumerate(cases):
        for item in set(case.history):
            if item in row:
                rows.append(u)
                cols.append(row[item])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(cases), len(row)))


class MostPopular:
    """Every query gets the training interaction counts (ties broken by catalog order, smaller than a count,
    so equal counts do not all rank against the target)."""

    name = "most popular"

    def __init__(self, catalog_ids: Sequence[str], train: Mapping[str, Sequence[str]]) -> None:
        counts = item_counts(train)
        n = len(catalog_ids)
        self.vector = np.asarray([counts.get(str(i), 0) for i in catalog_ids], dtype=np.float64)
        self.vector -= np.arange(n) / (n + 1.0)

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        return np.broadcast_to(self.vector, (len(cases), self.vector.size)).copy()


class Markov:
    """Successor counts of the last history item (the last one in the catalog), plus popularity / (max + 1)
    so that ties and items never seen after it fall back to the popularity order."""

    name = "item-to-item Markov"

    def __init__(self, catalog_ids: Sequence[str], train: Mapping[str, Sequence[str]]) -> None:
        self.row = {str(i): n for n, i in enumerate(catalog_ids)}
        n = len(self.row)
        src, dst = [], []
        for items in train.values():
            rows = [self.row[i] for i in items if i in self.row]
            src.extend(rows[:-1])
            dst.extend(rows[1:])
        self.transitions = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(n, n))
        popular = MostPopular(catalog_ids, train).vector
        popular = popular - popular.min()
        self.backoff = popular / (popular.max() + 1.0)  # in [0, 1): below one transition count

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        last = [next((self.row[i] for i in reversed(c.history) if i in self.row), -1) for c in cases]
        out = np.broadcast_to(self.backoff, (len(cases), self.backoff.size)).copy()
        known = [u for u, r in enumerate(last) if r >= 0]
        if known:
            out[known] += self.transitions[[last[u] for u in known]].toarray()
        return out


class ItemKNN:
    """Item-item cosine over the training matrix's columns; a case scores the sum over its history items."""

    name = "item-kNN cosine"

    def __init__(self, catalog_ids: Sequence[str], train: Mapping[str, Sequence[str]]) -> None:
        self.row = {str(i): n for n, i in enumerate(catalog_ids)}
        x = training_matrix(train, self.row)
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        scaled = x @ sp.diags(1.0 / np.maximum(norms, 1e-12))
        sim = (scaled.T @ scaled).tocsr()
        sim.setdiag(0.0)
        sim.eliminate_zeros()
        self.similarity = sim

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        return np.asarray((history_matrix(cases, self.row) @ self.similarity).todense(), dtype=np.float64)


class Ease:
    """EASE with the L2 weight picked on validation cases (see the module docstring).

    Above ``max_items`` catalog items it is fitted on the ``max_items`` most popular training items only
    (named ``EASE (top N items)``); every other item scores below them.
    """

    name = "EASE"

    def __init__(self, catalog_ids: Sequence[str], train: Mapping[str, Sequence[str]],
                 max_items: int = EASE_MAX_ITEMS) -> None:
        self.row = {str(i): k for k, i in enumerate(catalog_ids)}
        x = training_matrix(train, self.row)
        n = len(self.row)
        self.columns = np.arange(n)
        if n > max_items:
            counts = np.asarray(x.sum(axis=0)).ravel()
            self.columns = np.sort(np.argsort(-counts, kind="stable")[:max_items])
            self.name = f"EASE (top {max_items} items)"
            logger.warning("EASE: %d catalog items is above its limit of %d; fitted on the %d most popular",
                           n, max_items, max_items)
        x = x[:, self.columns]
        self.gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        self.l2: Optional[float] = None
        self.weights: Optional[np.ndarray] = None

    def fit(self, l2: float) -> "Ease":
        regularised = self.gram.copy()
        regularised[np.diag_indices_from(regularised)] += l2
        inverse = np.linalg.inv(regularised)
        weights = -inverse / np.diag(inverse)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.l2, self.weights = float(l2), weights.astype(np.float32)
        return self

    def tune(self, validation: Sequence[EvalCase], metric: Callable[["Ease", Sequence[EvalCase]], float],
             grid: Sequence[float] = EASE_L2_GRID) -> Dict[float, float]:
        """Fit every L2 weight of ``grid``, keep the best by ``metric(self, validation)``; returns weight -> metric."""
        results: Dict[float, float] = {}
        best = None
        for l2 in grid:
            results[float(l2)] = metric(self.fit(l2), validation)
            if best is None or results[float(l2)] > results[best]:
                best = float(l2)
        self.fit(best)
        logger.info("EASE: L2 %s chosen on validation (NDCG@10 by weight: %s)", best, results)
        return results

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("EASE is not fitted")
        history = history_matrix(cases, self.row)[:, self.columns]
        if self.columns.size == len(self.row):
            return np.asarray(history @ self.weights, dtype=np.float64)
        out = np.full((len(cases), len(self.row)), -1e9)
        out[:, self.columns] = history @ self.weights
        return out


class ContentCosine:
    """Cosine between the mean of each history's (unit) content embeddings and every item, no training.

    Args:
      vectors: float32 ``[N, D]``, the catalog's content embeddings, rows in ``catalog_ids`` order.
    """

    name = "content-only cosine"

    def __init__(self, catalog_ids: Sequence[str], vectors: np.ndarray) -> None:
        self.unit = _unit(np.asarray(vectors, dtype=np.float32))
        self.row = {str(i): n for n, i in enumerate(catalog_ids)}

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        queries = np.zeros((len(cases), self.unit.shape[1]), dtype=np.float32)
        for u, case in enumerate(cases):
            rows = [self.row[i] for i in case.history if i in self.row]
            if rows:
                queries[u] = self.unit[rows].mean(axis=0)
        return _unit(queries) @ self.unit.T
