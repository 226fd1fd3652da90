"""The two-tower retrieval model (``tfrs.Model``) and the functions that embed queries and items.

Training features (a dict of tensors): ``history_ids`` str ``[B, L]`` (left-padded with ``""``), ``item_id``
str ``[B]`` (the next item), ``user_id`` str ``[B]``. The loss is ``tfrs.tasks.Retrieval``'s in-batch softmax
with a temperature, accidental hits (the same item twice in a batch) removed; the metric (evaluation only)
is ``tfrs.metrics.FactorizedTopK`` over every catalog item.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from retrieval.towers import CandidateTower, ContentLookup, QueryTower, TowerConfig


def embed_queries(query_tower: QueryTower, content: ContentLookup, history_ids: tf.Tensor,
                  user_ids: Optional[tf.Tensor] = None, training: bool = False) -> tf.Tensor:
    """history ids str ``[B, L]`` (``""`` = padding; ids unknown to ``content`` are ignored) -> ``[B, E]``."""
    history_content, known = content(history_ids)
    inputs = {"history_ids": history_ids, "history_content": history_content,
              "history_mask": tf.logical_and(known, tf.not_equal(history_ids, ""))}
    if user_ids is not None:
        inputs["user_id"] = user_ids
    return query_tower(inputs, training=training)


def embed_items(candidate_tower: CandidateTower, content: ContentLookup, item_ids: tf.Tensor,
                training: bool = False) -> tf.Tensor:
    """item ids str ``[B]`` -> ``[B, E]``."""
    vectors, _ = content(item_ids)
    return candidate_tower({"item_id": item_ids, "content": vectors}, training=training)


def embed_catalog(candidate_tower: CandidateTower, content: ContentLookup, item_ids: Sequence[str],
                  batch_size: int = 4096) -> np.ndarray:
    """All ``item_ids`` -> float32 ``[N, E]``."""
    ids = np.asarray(list(item_ids), dtype=object).astype(str)
    parts = [embed_items(candidate_tower, content, tf.constant(ids[i:i + batch_size])).numpy()
             for i in range(0, len(ids), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, candidate_tower.items.config.embedding_dim), np.float32)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Loss options: softmax temperature, accidental-hit removal, logQ correction (in-batch negatives are
    drawn by popularity; the features then carry ``sampling_probability [B]``), metric cut-offs."""

    temperature: float = 0.1
    remove_accidental_hits: bool = True
    logq_correction: bool = True
    metric_ks: Sequence[int] = (10, 50)


class TwoTowerModel(tfrs.Model):
    """Query tower + candidate tower + ``tfrs.tasks.Retrieval``.

    Args:
      tower_config: tower shapes.
      content: the catalog's content lookup.
      item_vocabulary: items seen in training.
      user_vocabulary: users seen in training (used when ``tower_config.use_user_id``).
      task_config: loss options.
      catalog_ids: the items the metric ranks (default: the content lookup's catalog).
    """

    def __init__(self, tower_config: TowerConfig, content: ContentLookup, item_vocabulary: Sequence[str],
                 user_vocabulary: Sequence[str] = (), task_config: TaskConfig = TaskConfig(),
                 catalog_ids: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.content = content
        self.query_tower = QueryTower(tower_config, item_vocabulary, user_vocabulary)
        self.candidate_tower = CandidateTower(tower_config, item_vocabulary)
        catalog = tf.data.Dataset.from_tensor_slices(np.asarray(list(catalog_ids or []), dtype=str))
        metrics = None
        if catalog_ids is not None and len(catalog_ids):
            candidates = catalog.batch(512).map(lambda ids: (ids, embed_items(self.candidate_tower, self.content, ids)))
            metrics = tfrs.metrics.FactorizedTopK(candidates=candidates, ks=tuple(task_config.metric_ks))
        self.task = tfrs.tasks.Retrieval(metrics=metrics, temperature=task_config.temperature,
                                         remove_accidental_hits=task_config.remove_accidental_hits)

    def call(self, features: Dict[str, tf.Tensor], training: bool = False):
        """features -> (query ``[B, E]``, candidate ``[B, E]``)."""
        query = embed_queries(self.query_tower, self.content, features["history_ids"],
                              features.get("user_id"), training=training)
        candidate = embed_items(self.candidate_tower, self.content, features["item_id"], training=training)
        return query, candidate

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query, candidate = self(features, training=training)
        return self.task(query, candidate, candidate_ids=features["item_id"],
                         candidate_sampling_probability=features.get("sampling_probability"),
                         compute_metrics=not training and self.task.factorized_metrics is not None)
