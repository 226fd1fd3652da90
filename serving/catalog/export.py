"""A TF Serving recommender version from the current catalog (stock TF ops only: brute force).

The SavedModel ``MODELS/<name>/<version>/`` holds every item's id and L2-normalised embedding and has:

* ``serving_default`` = ``similar_items(item_id tf.string [B])`` -> ``item_ids`` tf.string ``[B, k]``,
  ``scores`` float32 ``[B, k]`` (the item itself left out; an unknown id gets empty ids and ``-inf``);
* ``recommend(history tf.string [B, L])`` -> the same, for the mean of a history's known items ("" pads);
* ``similar_to_embedding(embedding float32 [B, D])`` -> the same, for a clip embedded elsewhere.

Written with ``data_interface_for_model.tf_serving_format.write_version`` (a new version each time, renamed
into place), so a running TF Serving picks it up without restarting.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from data_interface_for_model.tf_serving_format import next_version, write_version

from serving.catalog.index import normalise
from serving.catalog.store import CatalogStore

logger = logging.getLogger(__name__)

DEFAULT_NAME = "catalog_recommender"


def build_module(ids, vectors: np.ndarray, k: int):
    """A ``tf.Module`` with the three signatures of the module docstring over ``ids`` / ``vectors [N, D]``."""
    import tensorflow as tf

    vectors = normalise(vectors)
    n, dim = vectors.shape
    k = min(int(k), max(n - 1, 1))

    class CatalogRecommender(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="catalog_recommender")
            self.ids = tf.Variable(np.asarray(ids, dtype=object).astype(bytes), trainable=False, dtype=tf.string)
            self.vectors = tf.Variable(vectors, trainable=False)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(np.asarray(ids, dtype=object).astype(bytes)),
                                                    tf.range(n, dtype=tf.int64)), default_value=-1)

        def _top(self, queries, exclude):
            scores = tf.linalg.matmul(queries, self.vectors, transpose_b=True)  # [B, N]
            scores = tf.where(exclude, tf.constant(-np.inf, tf.float32), scores)
            top = tf.math.top_k(scores, k=k)
            found = tf.math.is_finite(top.values)
            return {"item_ids": tf.where(found, tf.gather(self.ids, top.indices), ""), "scores": top.values}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string, name="history")])
        def recommend(self, history):
            rows = self.table.lookup(history)  # [B, L], -1 = unknown or padding
            known = rows >= 0
            vectors = tf.gather(self.vectors, tf.maximum(rows, 0)) * tf.cast(known, tf.float32)[..., None]
            query = tf.math.l2_normalize(tf.reduce_sum(vectors, axis=1), axis=-1)
            exclude = tf.reduce_any(tf.equal(tf.range(n, dtype=tf.int64)[None, None, :], rows[..., None]), axis=1)
            exclude = tf.logical_or(exclude, ~tf.reduce_any(known, axis=1, keepdims=True))  # nothing known
            return self._top(query, exclude)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="item_id")])
        def similar_items(self, item_id):
            return self.recommend(item_id[:, None])

        @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32, name="embedding")])
        def similar_to_embedding(self, embedding):
            query = tf.math.l2_normalize(embedding, axis=-1)
            return self._top(query, tf.zeros([tf.shape(query)[0], n], tf.bool))

    return CatalogRecommender()


def export_catalog(store: CatalogStore, model_base: str, k: int = 10, name: str = DEFAULT_NAME,
                   version: Optional[int] = None) -> str:
    """Write the catalog as ``model_base/name/<version>`` (default: the next free version); return its path."""
    import tensorflow as tf

    ids, _labels, vectors = store.all_embeddings()
    if len(ids) < 2:
        raise ValueError(f"the catalog has {len(ids)} item(s): a recommender needs at least 2")
    module = build_module(ids, vectors, k)
    version = version or next_version(model_base, [name])
    with write_version(model_base, name, version) as tmp:
        tf.saved_model.save(module, tmp, signatures={
            "serving_default": module.similar_items, "similar_items": module.similar_items,
            "recommend": module.recommend, "similar_to_embedding": module.similar_to_embedding})
    path = f"{model_base.rstrip('/')}/{name}/{version}"
    logger.info("exported %d items to %s", len(ids), path)
    return path
