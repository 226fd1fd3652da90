"""Evaluate a run the MicroLens way: leave-one-out, full ranking over every catalog item with the history
masked, HR@K and NDCG@K (K = 10, 20, 50), for the two-tower model and every baseline on the same split.

Two populations:

* ``all``: every user's case (test: last item; validation: second-to-last);
* ``cold_start``: the cases whose target is a cold item (held out of training entirely: the two-tower
  model knows it only from its content embedding; the ID-only model gives every such item the same
  out-of-vocabulary vector, and the interaction-based baselines have never seen it);
* ``warm``: the cases whose target was seen in training, each ranked among the training items only (the
  cold items left out of every list). In ``all`` a model that lists cold items pays for it on the warm
  cases, while one that cannot score them (the ID-only model, the interaction baselines) never lists them:
  ``warm`` compares the warm rankings alone.

Cases are scored in chunks of users, so memory stays ``chunk x N`` whatever the number of users.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from retrieval import baselines
from retrieval.metrics import DEFAULT_KS, bootstrap_intervals, ndcg, ranking_metrics, target_ranks, user_gains
from retrieval.model import embed_catalog, embed_queries
from retrieval.rundir import Run, Towers
from retrieval.splits import EvalCase, cases_to_arrays
from retrieval.towers import ContentLookup

logger = logging.getLogger(__name__)

CHUNK = 1024


def main_method(run: Run) -> str:
    """The trained model's row name, e.g. ``two-tower sasrec (content + id)``."""
    config = run.model.config
    inputs = " + ".join(n for n, used in (("content", config.use_content), ("id", config.use_item_id),
                                          ("user id", config.use_user_id), ("user features", config.user_features))
                        if used)
    return f"two-tower {config.query} ({inputs})"


class TowerScorer:
    """Query-tower embeddings of the cases' recent histories against every catalog item."""

    def __init__(self, name: str, towers: Towers, content: ContentLookup, catalog_ids: Sequence[str],
                 max_history: int) -> None:
        self.name, self.towers, self.content, self.max_history = name, towers, content, max_history
        self.candidates = embed_catalog(towers.candidate, content, catalog_ids)

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        users, history, _ = cases_to_arrays(cases, self.max_history)
        user_ids = tf.constant(users) if self.towers.config.uses_user_ids else None
        queries = embed_queries(self.towers.query, self.content, tf.constant(history), user_ids).numpy()
        return queries @ self.candidates.T


def scored_chunks(scorer, cases: Sequence[EvalCase], row: Dict[str, int],
                  chunk: int = CHUNK) -> Iterator[Tuple[np.ndarray, np.ndarray, List[List[int]]]]:
    """The cases ``chunk`` at a time: (scores ``[C, N]``, target columns int ``[C]``, each case's history
    columns to mask, its target never among them)."""
    for start in range(0, len(cases), chunk):
        part = cases[start:start + chunk]
        targets = np.asarray([row[c.target] for c in part], dtype=np.int64)
        exclude = [[row[i] for i in set(c.history) if i in row and i != c.target] for c in part]
        yield scorer.scores(part), targets, exclude


def case_ranks(scorer, cases: Sequence[EvalCase], row: Dict[str, int], chunk: int = CHUNK,
               left_out: Optional[np.ndarray] = None):
    """0-based rank of each case's target among the catalog items, history masked: int ``[U]``.

    With ``left_out`` (bool ``[N]``, catalog columns), also each target's rank among the items not left out
    (from the same scores): a pair of int ``[U]`` arrays."""
    parts, left_parts = [], []
    left_cols = np.flatnonzero(left_out) if left_out is not None else None
    for scores, targets, exclude in scored_chunks(scorer, cases, row, chunk):
        parts.append(target_ranks(scores, targets, exclude))
        if left_cols is not None:
            left_parts.append(target_ranks(scores, targets, [np.concatenate([np.asarray(cols, np.int64),
                                                                            left_cols[left_cols != t]])
                                                             for cols, t in zip(exclude, targets)]))
    empty = np.zeros(0, np.int64)
    ranks = np.concatenate(parts) if parts else empty
    if left_cols is None:
        return ranks
    return ranks, (np.concatenate(left_parts) if left_parts else empty)


def build_scorers(run: Run, catalog: Sequence[str], row: Dict[str, int]) -> list:
    """The two-tower model and every baseline, fitted on the run's training sequences."""
    train = run.split.train
    scorers = [TowerScorer(main_method(run), run.model, run.content, catalog, run.max_history)]
    if run.id_only is not None:
        scorers.append(TowerScorer("id-only two-tower", run.id_only, run.content, catalog, run.max_history))
    scorers.append(baselines.MostPopular(catalog, train))
    scorers.append(baselines.Markov(catalog, train))
    scorers.append(baselines.ItemKNN(catalog, train))
    ease = baselines.Ease(catalog, train)
    ease.tune(list(run.split.validation), lambda model, cases: ndcg(case_ranks(model, cases, row), 10))
    scorers.append(ease)
    if run.has_content:
        scorers.append(baselines.ContentCosine(catalog, run.table.vectors))
    return scorers


def evaluate_run(run: Run, split_name: str = "test", ks: Sequence[int] = DEFAULT_KS,
                 progress: bool = True) -> dict:
    """Metrics for every method on ``split_name`` (``test`` or ``validation``).

    Returns:
      ``{"split", "items", "cold_items", "main": the model's row name, "settings": {method: ...},
      "all", "cold_start", "warm": {method: metrics}}`` (a population without cases: empty) where metrics is
      ``{"HR@10": .., "NDCG@10": .., ..., "users": n}``; and ``"intervals"``: population -> metric
      (``HR@10``, ``NDCG@10``, ``HR@50``) -> method -> 95% bootstrap interval over users, with the model's lead over
      each other method and its paired interval (:func:`retrieval.metrics.bootstrap_intervals`).
    """
    if split_name not in ("test", "validation"):
        raise ValueError(f"evaluation split must be test or validation, got {split_name!r}")
    cases: List[EvalCase] = list(getattr(run.split, split_name))
    catalog = run.table.ids.astype(str).tolist()
    row = {item: n for n, item in enumerate(catalog)}
    scorers = build_scorers(run, catalog, row)
    cold_mask = np.asarray([c.target in run.split.cold_items for c in cases], dtype=bool)
    cold_columns = np.asarray([item in run.split.cold_items for item in catalog], dtype=bool)
    result = {"split": split_name, "items": len(catalog), "cold_items": len(run.split.cold_items),
              "main": main_method(run), "settings": {}, "all": {}, "cold_start": {}, "warm": {}, "intervals": {}}
    has_warm = cold_columns.any() and not cold_mask.all()  # else the warm rows are the all-users rows, or none
    ranks_by = {"all": {}, "cold_start": {}, "warm": {}}  # population -> method -> its cases' ranks
    for scorer in tqdm(scorers, desc="evaluate", unit="method", disable=not progress):
        if has_warm:
            ranks, warm_ranks = case_ranks(scorer, cases, row, left_out=cold_columns)
            ranks_by["warm"][scorer.name] = warm_ranks[~cold_mask]
        else:
            ranks = case_ranks(scorer, cases, row)
        ranks_by["all"][scorer.name] = ranks
        if cold_mask.any():
            ranks_by["cold_start"][scorer.name] = ranks[cold_mask]
        if getattr(scorer, "l2", None) is not None:
            result["settings"][scorer.name] = {"l2": scorer.l2, "items": int(scorer.columns.size)}
    for population, by_method in ranks_by.items():
        if not by_method:  # no cold targets, or no warm population
            continue
        result[population] = {name: ranking_metrics(r, ks) for name, r in by_method.items()}
        result["intervals"][population] = {
            metric: bootstrap_intervals({name: user_gains(r, metric) for name, r in by_method.items()},
                                        reference=result["main"])
            for metric in dict.fromkeys((f"HR@{ks[0]}", f"NDCG@{ks[0]}", f"HR@{ks[-1]}"))}
    return result
