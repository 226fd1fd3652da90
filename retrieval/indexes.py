"""Top-k indexes over every catalog item, and the recommender module that wraps query tower + index.

* :func:`scann_params_for` picks ScaNN parameters from the data size (ScaNN's own guidance): under ~20k
  points brute force is best, so the tree is searched exhaustively (every leaf) with AH scoring + exact
  reordering; under ~100k AH(2) + reorder, still every leaf; above, a tree with about sqrt(n) leaves, a few
  percent of them searched, AH(2), and reordering well over k.
* :func:`build_index` makes a ``tfrs.layers.factorized_top_k.BruteForce`` or ``ScaNN`` over candidate
  embeddings ``[N, E]`` with item ids as identifiers, and calls it once (a TFRS index must be called before
  it is saved).
* :class:`RecommenderModule` (a ``tf.Module``) holds a content lookup, the query tower and an index, with
  two ``tf.function`` s: ``recommend(history [B, L] str)`` and ``similar_items(item_id [B] str)``, both
  returning ``{"item_ids": str [B, k], "scores": float32 [B, k], "titles": str [B, k]}``; when the query tower
  reads the user (a user-id embedding or user features) a third, ``recommend_for_user(history [B, L] str,
  user_id [B] str)``, the same outputs with the user's term in the query (``recommend`` leaves it out; an
  unknown user gets the unknown vectors). :meth:`RecommenderModule.with_items`
  adds or replaces items from their content embedding alone, without retraining.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from retrieval.model import embed_catalog, embed_queries
from retrieval.rundir import Towers
from retrieval.towers import ContentLookup

logger = logging.getLogger(__name__)

INDEX_KINDS = ("bruteforce", "scann")


@dataclasses.dataclass(frozen=True)
class ScannParams:
    """``tfrs.layers.factorized_top_k.ScaNN`` parameters (see ScaNN's docs for their meaning)."""

    num_leaves: int
    num_leaves_to_search: int
    dimensions_per_block: int = 2
    num_reordering_candidates: Optional[int] = None
    training_iterations: int = 12


def scann_params_for(n: int, k: int = 10) -> ScannParams:
    """ScaNN parameters for ``n`` points and ``k`` results, following ScaNN's size guidance."""
    if n < 1:
        raise ValueError("an index needs at least one item")
    reorder = min(n, max(100, 4 * k))
    leaves = max(1, min(n, int(round(math.sqrt(n)))))
    if n < 100_000:
        # Small: brute force is what ScaNN recommends; TFRS' layer always builds a tree, so search all of it.
        return ScannParams(num_leaves=leaves, num_leaves_to_search=leaves, num_reordering_candidates=reorder)
    return ScannParams(num_leaves=leaves, num_leaves_to_search=max(10, leaves // 25),
                       num_reordering_candidates=max(reorder, 200))


def build_index(kind: str, candidates: np.ndarray, identifiers: Sequence[str], k: int,
                scann: Optional[ScannParams] = None) -> tfrs.layers.factorized_top_k.TopK:
    """An index over candidate embeddings ``[N, E]`` returning ``k`` (scores ``[B, k]``, ids ``[B, k]``)."""
    candidates = tf.constant(np.asarray(candidates, dtype=np.float32))
    ids = tf.constant(np.asarray(list(identifiers), dtype=object).astype(str))
    n = int(candidates.shape[0])
    k = min(k, n)
    if kind == "bruteforce":
        index = tfrs.layers.factorized_top_k.BruteForce(k=k)
    elif kind == "scann":
        params = scann or scann_params_for(n, k)
        index = tfrs.layers.factorized_top_k.ScaNN(
            k=k, num_leaves=min(params.num_leaves, n), num_leaves_to_search=min(params.num_leaves_to_search, n),
            dimensions_per_block=params.dimensions_per_block, training_iterations=params.training_iterations,
            num_reordering_candidates=params.num_reordering_candidates)
    else:
        raise ValueError(f"unknown index kind {kind!r} (expected one of {INDEX_KINDS})")
    index.index(candidates, ids)
    index(candidates[:1])  # a TFRS index layer must be called once before saving
    return index


class RecommenderModule(tf.Module):
    """Query tower + content lookup + index, ready to query or save.

    Args:
      towers: trained towers.
      catalog_ids: item ids ``[N]``; catalog_vectors: their content embeddings float32 ``[N, D]``.
      kind: ``"bruteforce"`` or ``"scann"``.
      k: results per query.
      max_history: the most recent items of a history that are used (and excluded from the results).
      scann: ScaNN parameters (default: :func:`scann_params_for`).
      titles: item id -> title, returned beside the ids (``""`` for items without one).
    """

    def __init__(self, towers: Towers, catalog_ids: Sequence[str], catalog_vectors: np.ndarray, kind: str = "bruteforce",
                 k: int = 10, max_history: int = 20, scann: Optional[ScannParams] = None,
                 titles: Optional[Dict[str, str]] = None) -> None:
        super().__init__(name=f"recommender_{kind}")
        self.titles = dict(titles or {})
        keys = list(self.titles) or [""]
        self.title_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant([self.titles.get(k, "") for k in keys])),
            default_value="")
        self.towers = towers
        self.catalog_ids = np.asarray(list(catalog_ids), dtype=object).astype(str)
        self.catalog_vectors = np.asarray(catalog_vectors, dtype=np.float32)
        self.kind, self.max_history, self.scann_params = kind, int(max_history), scann
        self.k = min(int(k), len(self.catalog_ids))
        self.content = ContentLookup(self.catalog_ids, self.catalog_vectors)
        self.query_tower = towers.query
        self.candidate_embeddings = embed_catalog(towers.candidate, self.content, self.catalog_ids)
        # Ask the index for k + max_history so that k remain after the history is excluded.
        self.index_k = min(self.k + self.max_history, len(self.catalog_ids))
        self.index = build_index(kind, self.candidate_embeddings, self.catalog_ids, self.index_k, scann)
        self.recommend = tf.function(self._recommend, input_signature=[tf.TensorSpec([None, None], tf.string)])
        self.similar_items = tf.function(self._similar_items, input_signature=[tf.TensorSpec([None], tf.string)])
        self.recommend_for_user = None
        if towers.config.uses_user_ids:  # the same search with the user's term in the query
            self.recommend_for_user = tf.function(self._recommend, input_signature=[
                tf.TensorSpec([None, None], tf.string), tf.TensorSpec([None], tf.string)])

    def with_items(self, ids: Sequence[str], vectors: np.ndarray) -> "RecommenderModule":
        """A new module whose catalog also holds ``ids`` (content ``vectors [M, D]``); an id already in the
        catalog gets the new vector. New items are embedded by the candidate tower from content alone (their
        id falls in the out-of-vocabulary bucket): no retraining."""
        vectors = np.asarray(vectors, dtype=np.float32)
        row = {item: n for n, item in enumerate(self.catalog_ids.tolist())}
        all_ids, all_vectors = self.catalog_ids.tolist(), self.catalog_vectors.copy()
        extra_ids, extra_vectors = [], []
        for item, vec in zip(map(str, ids), vectors):
            if item in row:
                all_vectors[row[item]] = vec
            else:
                row[item] = len(all_ids) + len(extra_ids)
                extra_ids.append(item)
                extra_vectors.append(vec)
        if extra_vectors:
            all_vectors = np.concatenate([all_vectors, np.stack(extra_vectors)])
        return RecommenderModule(self.towers, all_ids + extra_ids, all_vectors, self.kind, self.k, self.max_history,
                                 self.scann_params, self.titles)

    def _search(self, history: tf.Tensor, exclude: tf.Tensor,
                user_ids: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
        """history ``[B, L]`` (and the users ``[B]``) -> top k, leaving out any item of ``exclude [B, X]``."""
        query = embed_queries(self.query_tower, self.content, history, user_ids)
        scores, ids = self.index(query, k=self.index_k)
        excluded = tf.reduce_any(tf.equal(ids[:, :, None], exclude[:, None, :]), axis=-1)
        scores = tf.where(excluded, tf.fill(tf.shape(scores), tf.constant(-np.inf, tf.float32)), scores)
        top = tf.math.top_k(scores, k=self.k)
        item_ids = tf.gather(ids, top.indices, batch_dims=1)
        return {"item_ids": item_ids, "scores": top.values, "titles": self.title_table.lookup(item_ids)}

    def _recommend(self, history: tf.Tensor, user_id: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
        """history str ``[B, L]`` (oldest first, ``""`` = padding, unknown ids ignored) -> item_ids str ``[B, k]``,
        scores float32 ``[B, k]``; only the last ``max_history`` entries are used, and they are not recommended.
        ``user_id`` str ``[B]`` (``recommend_for_user``): the query with the user's term (id embedding, features)."""
        recent = history[:, -self.max_history:]
        return self._search(recent, recent, user_id)

    def _similar_items(self, item_id: tf.Tensor) -> Dict[str, tf.Tensor]:
        """item_id str ``[B]`` -> the items to watch next after it (the query is a one-item history), itself
        excluded: item_ids str ``[B, k]``, scores float32 ``[B, k]``."""
        history = item_id[:, None]
        return self._search(history, history)

    def query(self, histories: Sequence[Sequence[str]]) -> Dict[str, np.ndarray]:
        """Python convenience: a list of histories (ragged) -> numpy ``item_ids`` ``[B, k]`` and ``scores``."""
        width = max([len(h) for h in histories] + [1])
        padded = [[""] * (width - len(h)) + list(h) for h in histories]
        out = self.recommend(tf.constant(padded, dtype=tf.string))
        return {"item_ids": out["item_ids"].numpy().astype(str), "scores": out["scores"].numpy(),
                "titles": out["titles"].numpy().astype(str)}
