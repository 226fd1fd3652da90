"""The two towers and the content lookup they share (tf.keras = tf-keras, for TFRS).

* :class:`ContentLookup`: item ids ``[...]`` str -> content embeddings ``[..., D]`` and a known mask ``[...]``;
  unknown ids and ``""`` get zeros and ``known = False``.
* :class:`ItemEncoder`: (item ids ``[...]``, content ``[..., D]``) -> ``[..., E]``: an MLP over the content
  embedding plus an optional item-id embedding whose out-of-vocabulary bucket is shared by every item not seen
  in training, so a new item gets a vector from its content alone.
* :class:`QueryTower`: a user's recent items (ids ``[B, L]``, content ``[B, L, D]``, mask ``[B, L]``) and an
  optional user id ``[B]`` -> ``[B, E]``: item encodings pooled two ways (masked mean and recency-weighted
  mean) -> Dense, plus the optional user-id embedding, L2-normalised.
* :class:`CandidateTower`: (item id ``[B]``, content ``[B, D]``) -> ``[B, E]``, L2-normalised.

With ``content_skip`` both towers also append the unit content (the query: the mean of its history's, times
a learned weight) before the final normalisation: ``[B, E + D]``.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class TowerConfig:
    """Tower shapes.

    Attributes:
      embedding_dim: E, the output size of both towers.
      hidden_dims: hidden layer sizes of the content MLP.
      use_content: encode items from their content embedding.
      use_item_id: add an item-id embedding (with one OOV bucket).
      use_user_id: add a user-id embedding to the query (with one OOV bucket).
      id_dropout: training-time probability of replacing an item id by the OOV bucket, so the OOV vector
        learns to stand for "an item known only by content".
      recency_decay: weight ratio between consecutive history positions in the recency-weighted pooling.
      content_skip: append the raw (unit) content to both towers' outputs (the query's is the mean of its
        history's, scaled by a learned weight), so the model starts from content-only cosine similarity
        and learns what to add; the output size is then E + D.
    """

    embedding_dim: int = 64
    hidden_dims: Tuple[int, ...] = (128,)
    use_content: bool = True
    use_item_id: bool = True
    use_user_id: bool = False
    id_dropout: float = 0.1
    recency_decay: float = 0.7
    content_skip: bool = True

    def __post_init__(self) -> None:
        if not (self.use_content or self.use_item_id):
            raise ValueError("a tower needs content, item ids, or both")
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TowerConfig":
        return cls(**{k: (tuple(v) if k == "hidden_dims" else v) for k, v in data.items()})


class ContentLookup(tf.keras.layers.Layer):
    """Item id -> content embedding, from a fixed catalog.

    Args:
      ids: catalog item ids ``[N]``.
      vectors: float32 ``[N, D]``.
    """

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.dimension = int(vectors.shape[1])
        self.size = int(vectors.shape[0])
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, ids)), num_oov_indices=1,
                                                   mask_token=None)
        table = np.concatenate([np.zeros((1, self.dimension), np.float32), vectors])
        self.table = self.add_weight(name="content", shape=table.shape, dtype=tf.float32, trainable=False,
                                     initializer="zeros")
        self.table.assign(table)

    def call(self, item_ids: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """ids ``[...]`` -> (content ``[..., D]``, known ``[...]`` bool)."""
        rows = self.lookup(item_ids)
        return tf.gather(self.table, rows), tf.not_equal(rows, 0)


class ItemEncoder(tf.keras.layers.Layer):
    """(item ids ``[...]``, content ``[..., D]``) -> ``[..., E]``.

    Args:
      config: the tower configuration.
      item_vocabulary: items seen in training (the id embedding's vocabulary).
    """

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.content_mlp = None
        self.id_lookup = self.id_embedding = None
        if config.use_content:
            layers = [tf.keras.layers.Dense(h, activation="gelu") for h in config.hidden_dims]
            self.content_mlp = tf.keras.Sequential(layers + [tf.keras.layers.Dense(config.embedding_dim)])
        if config.use_item_id:
            self.id_lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, item_vocabulary)),
                                                          num_oov_indices=1, mask_token=None)
            self.id_embedding = tf.keras.layers.Embedding(len(item_vocabulary) + 1, config.embedding_dim,
                                                          embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    def call(self, item_ids: tf.Tensor, content: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        out = 0.0
        if self.content_mlp is not None:
            out = self.content_mlp(content)
        if self.id_embedding is not None:
            rows = self.id_lookup(item_ids)
            if training and self.config.id_dropout > 0:
                keep = tf.random.uniform(tf.shape(rows)) >= self.config.id_dropout
                rows = tf.where(keep, rows, tf.zeros_like(rows))
            out = out + self.id_embedding(rows)
        return out


def recency_weights(mask: tf.Tensor, decay: float) -> tf.Tensor:
    """mask ``[B, L]`` (1 = item) -> weights ``[B, L]`` summing to 1 per row (0 for an empty row): the most recent
    item (the last 1 in the row, whatever the padding side) weighs 1, the one before ``decay``, then ``decay**2``..."""
    mask = tf.cast(mask, tf.float32)
    from_end = tf.cumsum(mask, axis=1, reverse=True)  # 1 at the most recent item
    weights = mask * tf.pow(tf.constant(decay, tf.float32), tf.maximum(from_end - 1.0, 0.0))
    return tf.math.divide_no_nan(weights, tf.reduce_sum(weights, axis=1, keepdims=True))


class QueryTower(tf.keras.Model):
    """A user's recent items (and optionally their id) -> ``[B, E]``.

    Inputs (a dict): ``history_ids`` str ``[B, L]``, ``history_content`` float32 ``[B, L, D]``,
    ``history_mask`` bool ``[B, L]``, optionally ``user_id`` str ``[B]``.
    """

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str],
                 user_vocabulary: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.items = ItemEncoder(config, item_vocabulary)
        self.project = tf.keras.layers.Dense(config.embedding_dim)
        self.user_lookup = self.user_embedding = None
        if config.use_user_id:
            self.user_lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, user_vocabulary)),
                                                            num_oov_indices=1, mask_token=None)
            self.user_embedding = tf.keras.layers.Embedding(len(user_vocabulary) + 1, config.embedding_dim)
        self.skip_weight = None  # only where the content skip is used (an unused weight gets no gradient)
        if config.content_skip and config.use_content:
            self.skip_weight = self.add_weight(name="skip_weight", shape=(), initializer="ones", trainable=True)

    def call(self, inputs: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        mask = tf.cast(inputs["history_mask"], tf.float32)
        encoded = self.items(inputs["history_ids"], inputs["history_content"], training=training)  # [B, L, E]
        mean_w = tf.math.divide_no_nan(mask, tf.reduce_sum(mask, axis=1, keepdims=True))
        recent_w = recency_weights(mask, self.config.recency_decay)
        pooled = tf.concat([tf.einsum("bl,ble->be", mean_w, encoded),
                            tf.einsum("bl,ble->be", recent_w, encoded)], axis=-1)
        query = self.project(pooled)
        if self.user_embedding is not None and "user_id" in inputs:
            query = query + self.user_embedding(self.user_lookup(inputs["user_id"]))
        query = tf.math.l2_normalize(query, axis=-1)
        if self.skip_weight is not None:
            unit = tf.math.l2_normalize(inputs["history_content"], axis=-1)
            skip = tf.math.l2_normalize(tf.einsum("bl,bld->bd", mean_w, unit), axis=-1)
            query = tf.concat([query, self.skip_weight * skip], axis=-1)
        return tf.math.l2_normalize(query, axis=-1)


class CandidateTower(tf.keras.Model):
    """An item -> ``[B, E]``. Inputs (a dict): ``item_id`` str ``[B]``, ``content`` float32 ``[B, D]``."""

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.items = ItemEncoder(config, item_vocabulary)

    def call(self, inputs: Dict[str, tf.Tensor], training: Optional[bool] = None) -> tf.Tensor:
        out = tf.math.l2_normalize(self.items(inputs["item_id"], inputs["content"], training=training), axis=-1)
        if self.config.content_skip and self.config.use_content:
            out = tf.concat([out, tf.math.l2_normalize(inputs["content"], axis=-1)], axis=-1)
        return tf.math.l2_normalize(out, axis=-1)
