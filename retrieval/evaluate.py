"""Evaluate a run the MicroLens way: leave-one-out, full ranking over every catalog item with the history
masked, HR@K and NDCG@K (K = 10, 20, 50), for the two-tower model and every baseline on the same split.

Two populations:

* ``all``: every user's case (test: last item; validation: second-to-last);
* ``cold_start``: the cases whose target is a cold item (held out of training entirely: the two-tower
  model knows it only from its content embedding; the ID-only model gives every such item the same
  out-of-vocabulary vector, and the interaction-based baselines have never seen it).

Cases are scored in chunks of users, so memory stays ``chunk x N`` whatever the number of users.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

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
    inputs = " + ".join(n for n, used in (("content", config.use_content), ("id", config.use_item_id)) if used)
    return f"two-tower {config.query} ({inputs})"


class TowerScorer:
    """Query-tower embeddings of the cases' recent histories against every catalog item."""

    def __init__(self, name: str, towers: Towers, content: ContentLookup, catalog_ids: Sequence[str],
                 max_history: int) -> None:
        self.name, self.towers, self.content, self.max_history = name, towers, content, max_history
        self.candidates = embed_catalog(towers.candidate, content, catalog_ids)

    def scores(self, cases: Sequence[EvalCase]) -> np.ndarray:
        users, history, _ = cases_to_arrays(cases, self.max_history)
        user_ids = tf.constant(users) if self.towers.config.use_user_id else None
        queries = embed_queries(self.towers.query, self.content, tf.constant(history), user_ids).numpy()
        return queries @ self.candidates.T


def case_ranks(scorer, cases: Sequence[EvalCase], row: Dict[str, int], chunk: int = CHUNK) -> np.ndarray:
    """0-based rank of each case's target among the catalog items, history masked: int ``[U]``."""
    parts = []
    for start in range(0, len(cases), chunk):
        part = cases[start:start + chunk]
        targets = np.asarray([row[c.target] for c in part], dtype=np.int64)
        exclude = [[row[i] for i in set(c.history) if i in row and i != c.target] for c in part]
        parts.append(target_ranks(scorer.scores(part), targets, exclude))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


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
      "all": {method: metrics}, "cold_start": {method: metrics}}`` where metrics is
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
    result = {"split": split_name, "items": len(catalog), "cold_items": len(run.split.cold_items),
              "main": main_method(run), "settings": {}, "all": {}, "cold_start": {}, "intervals": {}}
    all_ranks = {}
    for scorer in tqdm(scorers, desc="evaluate", unit="method", disable=not progress):
        ranks = all_ranks[scorer.name] = case_ranks(scorer, cases, row)
        result["all"][scorer.name] = ranking_metrics(ranks, ks)
        if cold_mask.any():
            result["cold_start"][scorer.name] = ranking_metrics(ranks[cold_mask], ks)
        if getattr(scorer, "l2", None) is not None:
            result["settings"][scorer.name] = {"l2": scorer.l2, "items": int(scorer.columns.size)}
    for population, keep in (("all", slice(None)), ("cold_start", cold_mask)):
        if population == "cold_start" and not cold_mask.any():
            continue
        result["intervals"][population] = {
            metric: bootstrap_intervals({name: user_gains(r[keep], metric) for name, r in all_ranks.items()},
                                        reference=result["main"])
            for metric in dict.fromkeys((f"HR@{ks[0]}", f"NDCG@{ks[0]}", f"HR@{ks[-1]}"))}
    return result
