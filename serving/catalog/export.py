"""A TF Serving recommender version from the current catalog (stock TF ops only: brute force).

The SavedModel ``MODELS/<name>/<version>/`` holds every item's id and L2-normalised embedding and has:

* ``serving_default`` = ``similar_items(item_id tf.string [B])`` -> ``item_ids`` tf.string ``[B, k]``,
  ``scores`` float32 ``[B, k]`` (the item itself left out; an unknown id gets empty ids and ``-inf``);
* ``recommend(history tf.string [B, L])`` -> the same, for the mean of a history's known items ("" pads);
* ``similar_to_embedding(embedding float32 [B, D])`` -> the same, for a clip embedded elsewhere;
* with a classifier SavedModel (``clip_model``): ``recommend_clip(brief [B], cover [B], frames [B, n])`` ->
  the same, for a brand-new clip in one call. The classifier's ``embed`` signature is wrapped in a tf-keras
  model with ``tensorflow_hub.KerasLayer``, so the version holds the embedder and the catalog together.

Written with ``data_interface_for_model.tf_serving_format.write_version`` (a new version each time, renamed
into place), so a running TF Serving picks it up without restarting.
"""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from data_interface_for_model.tf_serving_format import next_version, sample_jpeg, write_version, write_warmup_requests

from serving.catalog.index import normalise
from serving.catalog.store import CatalogStore

logger = logging.getLogger(__name__)

DEFAULT_NAME = "catalog_recommender"


def clip_embedder(classifier_path: str):
    """A tf-keras model ``[brief [B], cover [B], frames [B, n]] -> embedding [B, D]`` wrapping the ``embed``
    signature of a classifier SavedModel with ``tensorflow_hub.KerasLayer``."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    try:  # a pretrained classifier tokenises in the graph with TF Text ops
        import tensorflow_text  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    layer = hub.KerasLayer(classifier_path, signature="embed", signature_outputs_as_dict=True, trainable=False)
    brief = tf_keras.Input(shape=(), dtype=tf.string, name="brief")
    cover = tf_keras.Input(shape=(), dtype=tf.string, name="cover")
    frames = tf_keras.Input(shape=(None,), dtype=tf.string, name="frames")
    embedding = layer({"brief": brief, "cover": cover, "frames": frames})["embedding"]
    return tf_keras.Model([brief, cover, frames], embedding, name="clip_embedder")


def build_module(ids, vectors: np.ndarray, k: int, classifier_path: Optional[str] = None):
    """A ``tf.Module`` with the signatures of the module docstring over ``ids`` / ``vectors [N, D]``."""
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

    module = CatalogRecommender()
    if classifier_path:
        module.clip_embedder = clip_embedder(classifier_path)

        def recommend_clip(brief, cover, frames):
            query = tf.math.l2_normalize(module.clip_embedder([brief, cover, frames]), axis=-1)
            return module._top(query, tf.zeros([tf.shape(query)[0], n], tf.bool))

        module.recommend_clip = tf.function(recommend_clip, input_signature=[
            tf.TensorSpec([None], tf.string, name="brief"), tf.TensorSpec([None], tf.string, name="cover"),
            tf.TensorSpec([None, None], tf.string, name="frames")])
    return module


def warmup_examples(ids, vectors: np.ndarray, with_clip: bool) -> dict:
    """Real example inputs of every signature (TF Serving replays them before the version serves)."""
    first = [str(item) for item in list(ids)[:2]]
    examples = {"serving_default": {"item_id": first}, "similar_items": {"item_id": first},
                "recommend": {"history": [first, [""] * len(first)]},
                "similar_to_embedding": {"embedding": np.asarray(vectors[:2], np.float32)}}
    if with_clip:
        jpeg = sample_jpeg(64)
        examples["recommend_clip"] = {"brief": ["waves on a beach at sunset", ""], "cover": [jpeg, b""],
                                      "frames": [[jpeg, jpeg], [b"", b""]]}
    return examples


def export_catalog(store: CatalogStore, model_base: str, k: int = 10, name: str = DEFAULT_NAME,
                   version: Optional[int] = None, classifier_path: Optional[str] = None) -> str:
    """Write the catalog as ``model_base/name/<version>`` (default: the next free version); return its path.
    ``classifier_path``: a classifier SavedModel to wrap in as ``recommend_clip``."""
    import tensorflow as tf

    ids, _labels, vectors = store.all_embeddings()
    if len(ids) < 2:
        raise ValueError(f"the catalog has {len(ids)} item(s): a recommender needs at least 2")
    module = build_module(ids, vectors, k, classifier_path)
    signatures = {"serving_default": module.similar_items, "similar_items": module.similar_items,
                  "recommend": module.recommend, "similar_to_embedding": module.similar_to_embedding}
    if classifier_path:
        signatures["recommend_clip"] = module.recommend_clip
    version = version or next_version(model_base, [name])
    with write_version(model_base, name, version) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        write_warmup_requests(tmp, name, warmup_examples(ids, vectors, classifier_path is not None))
    path = f"{model_base.rstrip('/')}/{name}/{version}"
    logger.info("exported %d items to %s", len(ids), path)
    return path
