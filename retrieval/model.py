"""The two-tower retrieval model (``tfrs.Model``) and the functions that embed queries and items.

Training features (a dict of tensors): ``history_ids`` str ``[B, L]`` (left-padded with ``""``), ``item_id``
str ``[B]`` (the next item), ``user_id`` str ``[B]``. The loss is an in-batch sampled softmax with a temperature,
logQ correction, accidental hits (the same item twice in a batch) removed, and optionally M global negatives
drawn uniformly from the training items (mixed negative sampling). Validation during training is full
ranking (see :mod:`retrieval.train`).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from retrieval.defaults import COLD_LOSS_MIXED, COLD_LOSS_WEIGHT
from retrieval.towers import CandidateTower, ContentLookup, QueryTower, TowerConfig
from retrieval.users import UserTable


def embed_queries(query_tower: QueryTower, content: ContentLookup, history_ids: tf.Tensor,
                  user_ids: Optional[tf.Tensor] = None, training: bool = False,
                  every_position: bool = False) -> tf.Tensor:
    """history ids str ``[B, L]`` (``""`` = padding; ids unknown to ``content`` are ignored) -> ``[B, E]``, or
    with ``every_position`` ``[B, L, E]`` (the query after each prefix)."""
    history_content, known = content(history_ids)
    inputs = {"history_ids": history_ids, "history_content": history_content,
              "history_mask": tf.logical_and(known, tf.not_equal(history_ids, ""))}
    if user_ids is not None:
        inputs["user_id"] = user_ids
    return query_tower(inputs, training=training, every_position=every_position)


def embed_items(candidate_tower: CandidateTower, content: ContentLookup, item_ids: tf.Tensor,
                training: bool = False, content_only: bool = False) -> tf.Tensor:
    """item ids str ``[B]`` -> ``[B, E]`` (``content_only``: as cold items, by their content alone)."""
    vectors, _ = content(item_ids)
    return candidate_tower({"item_id": item_ids, "content": vectors}, training=training, content_only=content_only)


def embed_catalog(candidate_tower: CandidateTower, content: ContentLookup, item_ids: Sequence[str],
                  batch_size: int = 4096) -> np.ndarray:
    """All ``item_ids`` -> float32 ``[N, E]``."""
    ids = np.asarray(list(item_ids), dtype=object).astype(str)
    parts = [embed_items(candidate_tower, content, tf.constant(ids[i:i + batch_size])).numpy()
             for i in range(0, len(ids), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, candidate_tower.items.config.embedding_dim), np.float32)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Loss options.

    Attributes:
      temperature: softmax temperature over cosine scores.
      remove_accidental_hits: an in-batch candidate that is the example's own item is not a negative.
      remove_same_user: an in-batch candidate that is another training target of the same user (their past or
        future item: a window's other positions, or another example of theirs) is not a negative either.
      logq_correction: subtract the log of each candidate's sampling probability from its logit (in-batch
        negatives are drawn by popularity; the features carry ``sampling_probability [B]``, the target's
        share of the training examples), so popular items are not over-penalised.
      global_negatives: M extra negatives per batch drawn uniformly from the training items (mixed negative
        sampling; 0: in-batch only); their logQ term is ``log(M / N)``.
      cold_loss_weight: with content and item ids, add this times a second softmax loss in which every
        in-batch candidate is encoded as a cold item (the OOV id vector and its content): it trains the
        content path for items unseen in training without dropping ids from the main loss (0: off); with
        ``TowerConfig.cold_encoder`` it trains only the cold encoder (the queries held fixed).
      cold_loss_mixed: the cold loss scores the cold encodings against the warm ones too, as a cold item is
        ranked at serving time (among every warm item, by its id): each query is scored twice over the batch's
        items in both encodings, once with its item's cold encoding as the label and once with its warm one,
        the other encoding of the same item blocked. So a cold item learns to outscore the warm items its
        users did not pick, and to stay below the warm item a user did pick (False: cold encodings only
        compete with each other, and nothing sets their scale against the warm items').
    """

    temperature: float = 0.1
    remove_accidental_hits: bool = True
    remove_same_user: bool = True
    logq_correction: bool = True
    global_negatives: int = 0
    cold_loss_weight: float = COLD_LOSS_WEIGHT
    cold_loss_mixed: bool = COLD_LOSS_MIXED

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.global_negatives < 0 or not self.cold_loss_weight >= 0:
            raise ValueError(f"global_negatives and cold_loss_weight must be >= 0, got {self.global_negatives} "
                             f"and {self.cold_loss_weight}")


class TwoTowerModel(tfrs.Model):
    """Query tower + candidate tower + a sampled-softmax retrieval loss.

    Args:
      tower_config: tower shapes.
      content: the catalog's content lookup.
      item_vocabulary: items seen in training (also the pool of global negatives).
      user_vocabulary: users seen in training (used when ``tower_config.use_user_id``).
      users: the user table (needed with ``tower_config.user_features``).
      task_config: loss options.
      item_counts: training interactions of each ``item_vocabulary`` item (for ``id_dropout_rare``).
    """

    def __init__(self, tower_config: TowerConfig, content: ContentLookup, item_vocabulary: Sequence[str],
                 user_vocabulary: Sequence[str] = (), task_config: TaskConfig = TaskConfig(),
                 item_counts: Optional[Sequence[int]] = None, users: Optional[UserTable] = None) -> None:
        super().__init__()
        self.content = content
        self.task_config = task_config
        self.query_tower = QueryTower(tower_config, item_vocabulary, user_vocabulary, users)
        self.candidate_tower = CandidateTower(tower_config, item_vocabulary)
        if item_counts is not None:
            for encoder in (self.query_tower.items, self.candidate_tower.items):
                encoder.set_item_counts(item_counts)
        self.negative_pool = tf.constant(np.asarray(list(item_vocabulary), dtype=object).astype(str))

    def call(self, features: Dict[str, tf.Tensor], training: bool = False):
        """features -> (query ``[Q, E]``, candidate ``[Q, E]``, candidate ids ``[Q]``): one row an example, or
        with ``target_ids`` (the every-position objective) one row a window position, ``""`` where no target."""
        if "target_ids" in features:
            query = embed_queries(self.query_tower, self.content, features["history_ids"], features.get("user_id"),
                                  training=training, every_position=True)  # [B, L, E]
            ids = tf.reshape(features["target_ids"], [-1])
            query = tf.reshape(query, [tf.size(ids), tf.shape(query)[-1]])
            return query, embed_items(self.candidate_tower, self.content, ids, training=training), ids
        query = embed_queries(self.query_tower, self.content, features["history_ids"],
                              features.get("user_id"), training=training)
        candidate = embed_items(self.candidate_tower, self.content, features["item_id"], training=training)
        return query, candidate, features["item_id"]

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Mean softmax cross-entropy of each query's own item against the batch's items (and M global
        negatives): ``[Q, Q (+ M)]`` logits, the diagonal is the label. With window features (the
        every-position objective) the queries are the window positions, and positions without a target are
        neither queries nor candidates.

        Under a tf.distribute strategy with several replicas, each replica's queries are scored against the
        items of the whole global batch (gathered from every replica), so the loss is the single-device
        loss of the global batch whatever the number of replicas; this replica's labels are offset by its
        position in the gathered batch (the per-replica batches are equal: the pipeline drops a remainder). With
        windows each replica's loss is the mean over its own trained positions, so replicas whose windows hold
        different numbers of targets weigh them a little differently from one device."""
        config = self.task_config
        query, candidate, ids = self(features, training=training)
        valid = tf.not_equal(ids, "")  # every row of an example batch; the trained positions of a window batch
        keys = tf.strings.to_hash_bucket_fast(ids, 2 ** 62)  # ids as int64 (strings cannot be gathered)
        owners = None  # the user of each row: a user's other items are not their negatives
        if config.remove_same_user and "user_id" in features:
            owners = tf.strings.to_hash_bucket_fast(features["user_id"], 2 ** 62)
            if "target_ids" in features:
                owners = tf.reshape(tf.repeat(owners[:, None], tf.shape(features["target_ids"])[1], axis=1), [-1])
        probability = features.get("sampling_probability")
        if probability is not None:
            probability = tf.reshape(probability, [-1])
        context = tf.distribute.get_replica_context()
        several = context is not None and context.num_replicas_in_sync > 1
        if not several and "target_ids" in features:  # one device: drop the untrained positions before scoring
            rows = tf.reshape(tf.where(valid), [-1])
            query, candidate, ids, keys, valid = (tf.gather(t, rows) for t in (query, candidate, ids, keys, valid))
            if owners is not None:
                owners = tf.gather(owners, rows)
            if probability is not None:
                probability = tf.gather(probability, rows)
        local = tf.shape(query)[0]
        offset = 0
        if several:
            offset = tf.cast(context.replica_id_in_sync_group, tf.int32) * local
            candidate, keys_all = context.all_gather(candidate, axis=0), context.all_gather(keys, axis=0)
            valid_all = tf.cast(context.all_gather(tf.cast(valid, tf.int32), axis=0), tf.bool)
            owners_all = context.all_gather(owners, axis=0) if owners is not None else None
            if probability is not None:
                probability = context.all_gather(probability, axis=0)
        else:
            keys_all, valid_all, owners_all = keys, valid, owners
        labels = tf.range(local) + offset
        batch = tf.shape(keys_all)[0]
        bias = tf.zeros([batch])
        if config.logq_correction and probability is not None:
            expected = tf.reduce_sum(tf.cast(valid_all, tf.float32)) * probability
            bias = -tf.math.log(tf.maximum(expected, 1e-9))
        blocked = tf.logical_not(valid_all)[None, :]  # no target: no candidate
        if config.remove_accidental_hits or owners is not None:
            same = tf.equal(keys[:, None], keys_all[None, :])
            if not config.remove_accidental_hits:
                same = tf.zeros_like(same)
            if owners is not None:
                same = tf.logical_or(same, tf.equal(owners[:, None], owners_all[None, :]))
            hits = tf.logical_and(same, tf.logical_not(tf.one_hot(labels, batch, on_value=True, off_value=False)))
            blocked = tf.logical_or(blocked, hits)

        def scored(candidates: tf.Tensor, queries: tf.Tensor = query) -> tf.Tensor:
            """[Q, E] x [B_global, E] -> masked logits [Q, B_global]."""
            logits = tf.matmul(queries, candidates, transpose_b=True) / config.temperature + bias[None, :]
            return tf.where(blocked, tf.fill(tf.shape(logits), -1e9), logits)

        logits = scored(candidate)
        weight = tf.cast(valid, tf.float32)
        cold_loss = 0.0
        cold = self.candidate_tower.config
        if config.cold_loss_weight > 0 and training and cold.use_content and cold.use_item_id:
            as_cold = embed_items(self.candidate_tower, self.content, ids, training=training, content_only=True)
            if several:
                as_cold = context.all_gather(as_cold, axis=0)
            # with a cold encoder only it learns from this loss: the warm model's queries are held fixed
            cold_queries = tf.stop_gradient(query) if cold.cold_encoder else query
            cold_logits = scored(as_cold, cold_queries)  # [Q, B]
            if config.cold_loss_mixed:  # [Q, 2B]: each query against both encodings, the item's other one blocked
                warm = tf.stop_gradient(candidate) if cold.cold_encoder else candidate
                warm_logits = scored(warm, cold_queries)
                own = tf.equal(keys[:, None], keys_all[None, :])

                def hide(logits: tf.Tensor) -> tf.Tensor:
                    return tf.where(own, tf.fill(tf.shape(logits), -1e9), logits)

                cold_ce = 0.5 * (
                    tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=labels, logits=tf.concat([cold_logits, hide(warm_logits)], axis=1))
                    + tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=labels, logits=tf.concat([warm_logits, hide(cold_logits)], axis=1)))
            else:
                cold_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=cold_logits)
            cold_loss = config.cold_loss_weight * tf.math.divide_no_nan(tf.reduce_sum(cold_ce * weight),
                                                                        tf.reduce_sum(weight))
        if config.global_negatives > 0:
            pool = tf.shape(self.negative_pool)[0]
            picks = tf.random.uniform([config.global_negatives], 0, pool, dtype=tf.int32)
            negative_ids = tf.gather(self.negative_pool, picks)
            negatives = embed_items(self.candidate_tower, self.content, negative_ids, training=training)
            extra = tf.matmul(query, negatives, transpose_b=True) / config.temperature  # [B, M]
            if config.logq_correction:
                extra -= tf.math.log(config.global_negatives / tf.cast(pool, tf.float32))
            extra = tf.where(tf.equal(ids[:, None], negative_ids[None, :]), tf.fill(tf.shape(extra), -1e9), extra)
            logits = tf.concat([logits, extra], axis=1)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return tf.math.divide_no_nan(tf.reduce_sum(loss * weight), tf.reduce_sum(weight)) + cold_loss

    def train_step(self, inputs):
        """TFRS's step, correct under a strategy with several replicas: each replica's gradient is of its
        share of the global loss (the optimizer sums them), and the reported loss is the mean over replicas."""
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.reduce_sum([tf.reduce_sum(extra) for extra in self.losses])
            total_loss = loss + regularization_loss
            scaled = total_loss / float(replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        if replicas > 1:  # sparse gradients differ in length between replicas; the all-reduce needs one shape
            gradients = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        if replicas > 1:
            loss = context.all_reduce(tf.distribute.ReduceOp.MEAN, loss)
            total_loss = context.all_reduce(tf.distribute.ReduceOp.MEAN, total_loss)
        return {"loss": loss, "regularization_loss": regularization_loss, "total_loss": total_loss}
