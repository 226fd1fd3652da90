"""The two towers and the content lookup they share (tf.keras = tf-keras, for TFRS).

* :class:`ContentLookup`: item ids ``[...]`` str -> content embeddings ``[..., D]`` and a known mask ``[...]``;
  unknown ids and ``""`` get zeros and ``known = False``.
* :class:`ItemEncoder`: (item ids ``[...]``, content ``[..., D]``) -> ``[..., E]``: an MLP over the content
  embedding plus an optional item-id embedding whose out-of-vocabulary bucket is shared by every item not seen
  in training, so a new item gets a vector from its content alone.
* :class:`QueryTower`: a user's recent items (ids ``[B, L]``, content ``[B, L, D]``, mask ``[B, L]``) and an
  optional user id ``[B]`` -> ``[B, E]``, over the same item encoder as the candidates. Three kinds
  (``TowerConfig.query``):

  - ``bag``: item encodings pooled two ways (masked mean and recency-weighted mean) -> Dense;
  - ``gru``: a GRU over the history (masked steps skipped), its last state -> Dense;
  - ``sasrec``: SASRec-style causal self-attention over the last ``max_positions`` items: item encodings plus
    learned positional embeddings counted from the most recent item, ``blocks`` pre-norm Transformer blocks
    (multi-head attention with a causal and padding mask, then a GELU feed-forward), the most recent
    position's output -> Dense.

  plus the optional user-id embedding and user-feature embeddings (:class:`UserFeatureEmbedding`),
  L2-normalised. Every kind is causal: with ``every_position=True`` the tower returns ``[B, L, E]``, the query
  after each prefix of the history (running means for ``bag``, the GRU's state at each step, each position's
  attention output), which the every-position objective trains.
* :class:`CandidateTower`: (item id ``[B]``, content ``[B, D]``) -> ``[B, E]``, L2-normalised.

With ``content_skip`` both towers also append the unit content (the query: the mean of its history's, times
a learned weight) before the final normalisation: ``[B, E + D]``.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from retrieval.defaults import (CANDIDATE_SKIP_WEIGHT, COLD_ENCODER, ID_DROPOUT, ID_DROPOUT_HISTORY, QUERY_TOWER,
                                QUERY_TOWERS, USER_FEATURE_MIN_USERS, WARM_CANDIDATE_CONTENT, ZERO_INIT_CONTENT)
from retrieval.users import UserTable, feature_codes


@dataclasses.dataclass(frozen=True)
class TowerConfig:
    """Tower shapes.

    Attributes:
      embedding_dim: E, the output size of both towers.
      hidden_dims: hidden layer sizes of the content MLP.
      use_content: encode items from their content embedding.
      use_item_id: add an item-id embedding (with one OOV bucket).
      use_user_id: add a user-id embedding to the query (with one OOV bucket).
      user_features: columns of the user table (:mod:`retrieval.users`) whose embeddings are added to the
        query, one embedding table per column (empty: none). A user missing from the table, or a value held by
        fewer than ``user_feature_min_users`` users, gets the column's "unknown" vector.
      user_feature_min_users: see ``user_features``.
      id_dropout: training-time probability of replacing an item id by the OOV bucket, so the OOV vector
        learns to stand for "an item known only by content".
      id_dropout_history: drop ids in the query's history too (True), or only in the candidate tower
        (False): the candidates' dropped ids are what teach the out-of-vocabulary vector to stand for a
        cold item; in the history they only blur what the query knows about a warm user.
      id_dropout_rare: with ``n > 0``, an item with ``c`` training interactions has its id dropped with
        probability ``id_dropout * min(1, n / c)``: rare items (the ones most like cold items) are dropped at
        ``id_dropout``, popular ones (whose ids carry the most signal) seldom; 0: every item at ``id_dropout``.
      recency_decay: weight ratio between consecutive history positions in the recency-weighted pooling.
      content_skip: append the raw (unit) content to both towers' outputs (the query's is the mean of its
        history's, scaled by a learned weight), so the model starts from content-only cosine similarity
        and learns what to add; the output size is then E + D.
      candidate_skip_weight: with ``content_skip``, the candidate's appended content is scaled by a learned
        weight too (starting at 1), so the model can shrink the content cosine's share on both sides and give
        the learned embeddings the whole range of the score; without it the candidate's content share is fixed
        at half its length.
      zero_init_content: start the content MLP's last layer at zero, so an item's encoding starts as its id
        embedding alone and the content part grows only as far as it helps (with item ids only).
      cold_encoder: the candidate tower encodes an item without a trained id (unknown, held out of training,
        or its id dropped) by a content MLP of its own instead of the out-of-vocabulary vector plus the warm
        content MLP; it is trained by the cold loss (``TaskConfig.cold_loss_weight``) with the query held
        fixed, so learning cold start does not move the warm model (needs content and item ids).
      warm_candidate_content: False: the candidate tower encodes an item with a trained id by that id alone
        (content still shapes the query, and reaches candidates through the cold encoder, which this needs).
      query: the query tower's kind, ``bag``, ``gru`` or ``sasrec``.
      max_positions: the most recent items ``sasrec`` attends over (its positional embeddings).
      blocks, heads, dropout: ``sasrec``'s Transformer blocks, attention heads and dropout rate.
    """

    embedding_dim: int = 64
    hidden_dims: Tuple[int, ...] = (128,)
    use_content: bool = True
    use_item_id: bool = True
    use_user_id: bool = False
    user_features: Tuple[str, ...] = ()
    user_feature_min_users: int = USER_FEATURE_MIN_USERS
    id_dropout: float = ID_DROPOUT
    id_dropout_history: bool = ID_DROPOUT_HISTORY
    id_dropout_rare: int = 0
    recency_decay: float = 0.7
    content_skip: bool = True
    candidate_skip_weight: bool = CANDIDATE_SKIP_WEIGHT
    zero_init_content: bool = ZERO_INIT_CONTENT
    cold_encoder: bool = COLD_ENCODER
    warm_candidate_content: bool = WARM_CANDIDATE_CONTENT
    query: str = QUERY_TOWER
    max_positions: int = 50
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not (self.use_content or self.use_item_id):
            raise ValueError("a tower needs content, item ids, or both")
        if self.cold_encoder and not (self.use_content and self.use_item_id):
            raise ValueError("cold_encoder needs both content and item ids")
        if not self.warm_candidate_content and not self.cold_encoder:
            raise ValueError("warm_candidate_content=False needs cold_encoder (else cold items get no content)")
        if self.id_dropout_rare < 0:
            raise ValueError(f"id_dropout_rare must be >= 0, got {self.id_dropout_rare}")
        if self.query not in QUERY_TOWERS:
            raise ValueError(f"unknown query tower {self.query!r} (expected one of {', '.join(QUERY_TOWERS)})")
        if self.user_feature_min_users < 1:
            raise ValueError(f"user_feature_min_users must be >= 1, got {self.user_feature_min_users}")
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "user_features", tuple(str(c) for c in self.user_features))

    @property
    def uses_user_ids(self) -> bool:
        """Whether the query tower reads the user's id (its embedding, or its row of the user table)."""
        return self.use_user_id or bool(self.user_features)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TowerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        # runs written before these settings existed: a bag, a fixed candidate content share, default init
        data = {"query": "bag", "candidate_skip_weight": False, "zero_init_content": False, "cold_encoder": False,
                "id_dropout_history": True, **data}
        return cls(**{k: (tuple(v) if k in ("hidden_dims", "user_features") else v) for k, v in data.items()
                      if k in known})


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


class UserFeatureEmbedding(tf.keras.layers.Layer):
    """user ids ``[B]`` str -> ``[B, E]``: the sum over the user table's columns of an embedding of the user's
    value in that column; a user missing from the table gets every column's "unknown" vector (code 0).

    Args:
      users: the user table, with just the feature columns (see :func:`retrieval.users.feature_codes` for
        ``min_users``).
      dim: E.
    """

    def __init__(self, users: UserTable, dim: int, min_users: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        codes, vocabularies = feature_codes(users, min_users)
        self.user_lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, users.ids)), num_oov_indices=1,
                                                        mask_token=None)
        table = np.concatenate([np.zeros((1, codes.shape[1]), np.int32), codes])  # row 0: an unknown user
        self.codes = self.add_weight(name="codes", shape=table.shape, dtype=tf.int32, trainable=False,
                                     initializer="zeros")
        self.codes.assign(table)
        self.embeddings = [tf.keras.layers.Embedding(len(vocabulary) + 1, dim, name=f"user_{n}",
                                                     embeddings_initializer=tf.keras.initializers.RandomNormal(
                                                         stddev=0.05))
                           for n, vocabulary in enumerate(vocabularies)]

    def call(self, user_ids: tf.Tensor) -> tf.Tensor:
        codes = tf.gather(self.codes, self.user_lookup(user_ids))  # [B, F]
        return tf.add_n([embedding(codes[:, f]) for f, embedding in enumerate(self.embeddings)])


class ItemEncoder(tf.keras.layers.Layer):
    """(item ids ``[...]``, content ``[..., D]``) -> ``[..., E]``.

    Args:
      config: the tower configuration.
      item_vocabulary: items seen in training (the id embedding's vocabulary).
      cold_path: with ``config.cold_encoder``, encode items without a trained id by a content MLP of their
        own (the candidate tower's encoder; the query tower's keeps the OOV vector).
    """

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str], cold_path: bool = False,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.content_mlp = self.cold_mlp = None
        self.id_lookup = self.id_embedding = None
        self.dropout_by_row = None  # [V + 1] per-row id dropout (see set_item_counts)
        self.drop_ids = cold_path or config.id_dropout_history  # off: a query history keeps its ids
        cold_only = cold_path and config.cold_encoder and not config.warm_candidate_content
        if config.use_content and not cold_only:  # cold_only: content reaches candidates by the cold MLP alone
            layers = [tf.keras.layers.Dense(h, activation="gelu") for h in config.hidden_dims]
            last = tf.keras.layers.Dense(config.embedding_dim, kernel_initializer=(
                "zeros" if config.zero_init_content and config.use_item_id else "glorot_uniform"))
            self.content_mlp = tf.keras.Sequential(layers + [last])
        if cold_path and config.cold_encoder:
            self.cold_mlp = tf.keras.Sequential([tf.keras.layers.Dense(h, activation="gelu") for h in config.hidden_dims]
                                                + [tf.keras.layers.Dense(config.embedding_dim)], name="cold_mlp")
        if config.use_item_id:
            self.id_lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, item_vocabulary)),
                                                          num_oov_indices=1, mask_token=None)
            self.id_embedding = tf.keras.layers.Embedding(len(item_vocabulary) + 1, config.embedding_dim,
                                                          embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.05))

    def set_item_counts(self, counts: Sequence[int]) -> None:
        """Training interaction counts of ``item_vocabulary`` (same order), for ``config.id_dropout_rare``
        (training only: not saved with the weights)."""
        if self.id_embedding is None or not self.config.id_dropout_rare:
            return
        counts = np.maximum(np.asarray(counts, np.float32), 1.0)
        rates = self.config.id_dropout * np.minimum(1.0, self.config.id_dropout_rare / counts)
        self.dropout_by_row = tf.constant(np.concatenate([[self.config.id_dropout], rates]).astype(np.float32))

    def call(self, item_ids: tf.Tensor, content: tf.Tensor, training: Optional[bool] = None,
             content_only: bool = False) -> tf.Tensor:
        """``content_only``: every item as an item unseen in training would be (the OOV id vector), which is
        how a cold item is encoded.

        Each distinct id of ``item_ids`` is encoded once (a history batch ``[B, L]`` repeats items many
        times: the content MLP and the id lookup run over the distinct ones, then are gathered back); the
        id dropout still draws per occurrence."""
        shape = tf.shape(item_ids)
        flat_ids = tf.reshape(item_ids, [-1])
        unique, where = tf.unique(flat_ids)
        out = 0.0
        if self.content_mlp is not None or self.cold_mlp is not None:
            flat_content = tf.reshape(content, [-1, tf.shape(content)[-1]])
            first = tf.math.unsorted_segment_min(tf.range(tf.size(flat_ids)), where, tf.size(unique))
            unique_content = tf.gather(flat_content, first)
            if self.content_mlp is not None:
                out = tf.gather(self.content_mlp(unique_content), where)
        if self.id_embedding is not None:
            rows = tf.gather(self.id_lookup(unique), where)
            if content_only:
                rows = tf.zeros_like(rows)
            elif training and self.config.id_dropout > 0 and self.drop_ids:
                rate = self.config.id_dropout
                if self.dropout_by_row is not None:  # per item, by its training count
                    rate = tf.gather(self.dropout_by_row, rows)
                keep = tf.random.uniform(tf.shape(rows)) >= rate
                rows = tf.where(keep, rows, tf.zeros_like(rows))
            out = out + self.id_embedding(rows)
            if self.cold_mlp is not None:  # no trained id: the cold encoder's vector instead
                cold = tf.gather(self.cold_mlp(unique_content), where)
                out = tf.where(tf.equal(rows, 0)[:, None], cold, out)
        return tf.reshape(out, tf.concat([shape, [self.config.embedding_dim]], axis=0))


def prefix_recency_weights(mask: tf.Tensor, decay: float) -> tf.Tensor:
    """mask ``[B, L]`` (1 = item) -> ``[B, L, L]``: row ``t`` holds the recency weights of the prefix
    ``mask[:, :t+1]``: the most recent item up to ``t`` weighs 1, the one before ``decay``, then ``decay**2``
    (item ``s <= t`` weighs ``decay`` to the number of items after it up to ``t``), normalised to sum to 1;
    rows with no item are 0. Row ``L-1`` weighs the whole history."""
    mask = tf.cast(mask, tf.float32)
    count = tf.cumsum(mask, axis=1)  # items up to and including each position
    after = count[:, :, None] - count[:, None, :]  # [B, t, s]: items in (s, t]
    length = tf.shape(mask)[1]
    causal = tf.linalg.band_part(tf.ones([length, length]), -1, 0)[None]  # s <= t
    weights = causal * mask[:, None, :] * tf.pow(tf.constant(decay, tf.float32), tf.maximum(after, 0.0))
    return tf.math.divide_no_nan(weights, tf.reduce_sum(weights, axis=2, keepdims=True))


class SelfAttentionBlock(tf.keras.layers.Layer):
    """Pre-norm Transformer block: x + MHA(LN(x)) with a causal and padding mask, then x + FFN(LN(x)).
    ``[B, L, E]`` -> ``[B, L, E]``."""

    def __init__(self, dim: int, heads: int, dropout: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.norm1 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention = tf.keras.layers.MultiHeadAttention(heads, key_dim=max(dim // heads, 1), dropout=dropout)
        self.norm2 = tf.keras.layers.LayerNormalization(epsilon=1e-6)
        self.ffn1 = tf.keras.layers.Dense(2 * dim, activation="gelu")
        self.ffn2 = tf.keras.layers.Dense(dim)
        self.drop = tf.keras.layers.Dropout(dropout)

    def call(self, x: tf.Tensor, mask: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        length = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)  # query i sees keys <= i
        attend = tf.logical_and(causal[None], mask[:, None, :])
        attend = tf.logical_or(attend, tf.eye(length, dtype=tf.bool)[None])  # every row attends somewhere
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, attention_mask=attend, training=training), training=training)
        h = self.norm2(x)
        return x + self.drop(self.ffn2(self.ffn1(h)), training=training)


class QueryTower(tf.keras.Model):
    """A user's recent items (and optionally their id) -> ``[B, E]``.

    Inputs (a dict): ``history_ids`` str ``[B, L]``, ``history_content`` float32 ``[B, L, D]``,
    ``history_mask`` bool ``[B, L]``, optionally ``user_id`` str ``[B]``.

    ``users``: the user table, needed with ``config.user_features`` (its other columns are not used).
    """

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str],
                 user_vocabulary: Sequence[str] = (), users: Optional[UserTable] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.items = ItemEncoder(config, item_vocabulary)
        self.project = tf.keras.layers.Dense(config.embedding_dim)
        self.gru = self.positions = None
        self.blocks = []
        if config.query == "gru":
            self.gru = tf.keras.layers.GRU(config.embedding_dim, return_sequences=True)
        elif config.query == "sasrec":
            self.positions = tf.keras.layers.Embedding(config.max_positions, config.embedding_dim,
                                                       embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
            self.blocks = [SelfAttentionBlock(config.embedding_dim, config.heads, config.dropout)
                           for _ in range(config.blocks)]
            self.final_norm = tf.keras.layers.LayerNormalization(epsilon=1e-6)
            self.input_drop = tf.keras.layers.Dropout(config.dropout)
        self.user_lookup = self.user_embedding = None
        if config.use_user_id:
            self.user_lookup = tf.keras.layers.StringLookup(vocabulary=list(map(str, user_vocabulary)),
                                                            num_oov_indices=1, mask_token=None)
            self.user_embedding = tf.keras.layers.Embedding(len(user_vocabulary) + 1, config.embedding_dim)
        self.user_features = None
        if config.user_features:
            if users is None:
                raise ValueError(f"user features {list(config.user_features)} need a user table")
            self.user_features = UserFeatureEmbedding(users.select(config.user_features), config.embedding_dim,
                                                      config.user_feature_min_users)
        self.skip_weight = None  # only where the content skip is used (an unused weight gets no gradient)
        if config.content_skip and config.use_content:
            self.skip_weight = self.add_weight(name="skip_weight", shape=(), initializer="ones", trainable=True)

    def _sequence(self, encoded: tf.Tensor, mask: tf.Tensor, training: Optional[bool]) -> tf.Tensor:
        """encoded ``[B, L, E]``, mask ``[B, L]`` bool -> ``[B, L, E']``: at each position, the summary of the
        items up to and including it (causal), by the configured kind."""
        if self.gru is not None:
            return self.gru(encoded, mask=mask, training=training)  # masked steps carry the state on
        if self.blocks:
            length = tf.shape(encoded)[1]
            from_end = tf.range(length - 1, -1, -1)  # the most recent position is 0, whatever L is
            x = encoded + self.positions(tf.minimum(from_end, self.config.max_positions - 1))[None]
            x = self.input_drop(x, training=training) * tf.cast(mask, tf.float32)[..., None]
            for block in self.blocks:
                x = block(x, mask, training=training)
            return self.final_norm(x)
        weights = tf.cast(mask, tf.float32)
        mean = tf.math.divide_no_nan(tf.cumsum(weights[..., None] * encoded, axis=1),
                                     tf.cumsum(weights, axis=1)[..., None])
        return tf.concat([mean, tf.einsum("bts,bse->bte", prefix_recency_weights(weights, self.config.recency_decay),
                                          encoded)], axis=-1)

    def call(self, inputs: Dict[str, tf.Tensor], training: Optional[bool] = None,
             every_position: bool = False) -> tf.Tensor:
        """-> ``[B, E']`` (the query after the whole history), or with ``every_position`` ``[B, L, E']`` (the
        query after each prefix of the history: what the every-position objective trains)."""
        mask = tf.cast(inputs["history_mask"], tf.bool)
        if not every_position:
            keep = self.config.max_positions if self.blocks else None  # sasrec attends over the most recent only
            if keep is not None:
                inputs = {k: (v[:, -keep:] if k.startswith("history") else v) for k, v in inputs.items()}
                mask = mask[:, -keep:]
        encoded = self.items(inputs["history_ids"], inputs["history_content"], training=training)  # [B, L, E]
        states = self._sequence(encoded, mask, training)
        if not every_position:
            states = states[:, -1:]
        query = self.project(states)  # [B, L', E]
        if self.user_embedding is not None and "user_id" in inputs:
            query = query + self.user_embedding(self.user_lookup(inputs["user_id"]))[:, None, :]
        if self.user_features is not None and "user_id" in inputs:
            query = query + self.user_features(inputs["user_id"])[:, None, :]
        query = tf.math.l2_normalize(query, axis=-1)
        if self.skip_weight is not None:
            weights = tf.cast(mask, tf.float32)[..., None]
            unit = tf.math.l2_normalize(inputs["history_content"], axis=-1)
            skip = tf.math.l2_normalize(tf.cumsum(weights * unit, axis=1), axis=-1)  # the prefix mean's direction
            if not every_position:
                skip = skip[:, -1:]
            query = tf.concat([query, self.skip_weight * skip], axis=-1)
        query = tf.math.l2_normalize(query, axis=-1)
        return query if every_position else query[:, 0]


class CandidateTower(tf.keras.Model):
    """An item -> ``[B, E]``. Inputs (a dict): ``item_id`` str ``[B]``, ``content`` float32 ``[B, D]``."""

    def __init__(self, config: TowerConfig, item_vocabulary: Sequence[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.items = ItemEncoder(config, item_vocabulary, cold_path=True)
        self.skip_weight = None
        if config.content_skip and config.use_content and config.candidate_skip_weight:
            self.skip_weight = self.add_weight(name="skip_weight", shape=(), initializer="ones", trainable=True)

    def call(self, inputs: Dict[str, tf.Tensor], training: Optional[bool] = None,
             content_only: bool = False) -> tf.Tensor:
        """``content_only``: each item encoded as a cold item (the OOV id vector and its content)."""
        out = tf.math.l2_normalize(self.items(inputs["item_id"], inputs["content"], training=training,
                                              content_only=content_only), axis=-1)
        if self.config.content_skip and self.config.use_content:
            skip = tf.math.l2_normalize(inputs["content"], axis=-1)
            if self.skip_weight is not None:
                skip = self.skip_weight * skip
            out = tf.concat([out, skip], axis=-1)
        return tf.math.l2_normalize(out, axis=-1)
