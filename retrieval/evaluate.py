"""Evaluate a run the MicroLens way: leave-one-out, full ranking over every catalog item with the history
masked, HR@K and NDCG@K (K = 10, 20, 50), for the two-tower model and the baselines on the same split.

Two populations:

* ``all``: every user's test case (last item);
* ``cold_start``: the test cases whose target is a cold item (held out of training entirely: the two-tower
  model knows it only from its content embedding; the ID-only model gives every such item the same
  out-of-vocabulary vector, and the popularity baseline has never seen it).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from retrieval.baselines import content_only_scores, most_popular_scores
from retrieval.metrics import DEFAULT_KS, ranking_metrics, target_ranks
from retrieval.model import embed_catalog, embed_queries
from retrieval.rundir import Run, Towers
from retrieval.splits import EvalCase, cases_to_arrays
from retrieval.towers import ContentLookup

logger = logging.getLogger(__name__)


def tower_scores(towers: Towers, content: ContentLookup, cases: Sequence[EvalCase], catalog_ids: Sequence[str],
                 max_history: int, use_user_ids: bool = True, batch_size: int = 1024) -> np.ndarray:
    """Query-tower embeddings of the cases' recent histories against every catalog item: ``[U, N]``."""
    candidates = embed_catalog(towers.candidate, content, catalog_ids)
    users, history, _ = cases_to_arrays(cases, max_history)
    parts = []
    for i in range(0, len(cases), batch_size):
        user_ids = tf.constant(users[i:i + batch_size]) if (use_user_ids and towers.config.use_user_id) else None
        parts.append(embed_queries(towers.query, content, tf.constant(history[i:i + batch_size]), user_ids).numpy())
    queries = np.concatenate(parts) if parts else np.zeros((0, candidates.shape[1]), np.float32)
    return queries @ candidates.T


def _ranks(scores: np.ndarray, cases: Sequence[EvalCase], row: Dict[str, int]) -> np.ndarray:
    targets = np.asarray([row[c.target] for c in cases], dtype=np.int64)
    exclude = [[row[i] for i in set(c.history) if i in row and i != c.target] for c in cases]
    return target_ranks(scores, targets, exclude)


def evaluate_run(run: Run, split_name: str = "test", ks: Sequence[int] = DEFAULT_KS,
                 progress: bool = True) -> dict:
    """Metrics for every method on ``split_name`` (``test`` or ``validation``).

    Returns:
      ``{"split", "items", "cold_items", "all": {method: metrics}, "cold_start": {method: metrics}}`` where
      metrics is ``{"HR@10": .., "NDCG@10": .., ..., "users": n}``.
    """
    cases: List[EvalCase] = list(getattr(run.split, split_name))
    catalog = run.table.ids.astype(str).tolist()
    row = {item: n for n, item in enumerate(catalog)}
    scorers = {
        "two-tower (content + id)": lambda: tower_scores(run.model, run.content, cases, catalog, run.max_history),
        "content-only cosine": lambda: content_only_scores(cases, catalog, run.table.vectors),
        "most popular": lambda: most_popular_scores(cases, catalog, run.split.train),
    }
    if run.id_only is not None:
        scorers["id-only two-tower"] = lambda: tower_scores(run.id_only, run.content, cases, catalog, run.max_history)
    cold_mask = np.asarray([c.target in run.split.cold_items for c in cases], dtype=bool)
    result = {"split": split_name, "items": len(catalog), "cold_items": len(run.split.cold_items),
              "all": {}, "cold_start": {}}
    for name, scorer in tqdm(scorers.items(), desc="evaluate", unit="method", disable=not progress):
        ranks = _ranks(scorer(), cases, row)
        result["all"][name] = ranking_metrics(ranks, ks)
        if cold_mask.any():
            result["cold_start"][name] = ranking_metrics(ranks[cold_mask], ks)
    return result
