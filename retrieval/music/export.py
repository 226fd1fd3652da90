"""Export a music-matching run as a TF Serving model with a ``recommend_music`` signature.

``recommend_music``: ``video_embedding`` float32 ``[B, D]`` (the video's content embedding, as in the run's
video table) and, when the run uses the category (``MusicRun.uses_label``: a label embedding in the video
tower or a prior weight), ``video_label`` str ``[B]`` (the video's category, as in the embeddings file's
labels; an unknown one falls back to the unseen-category slot and the usage prior) -> ``music_ids`` str
``[B, k]``, ``scores`` float32 ``[B, k]`` (``cos / temperature + beta * log P(track | category)``, as
``run.recommend``), ``moods`` str ``[B, k]``. The library's tower embeddings are computed at export and
searched by brute force (plain TF ops, stock TF Serving). It is also the ``serving_default`` signature. Written through
``data_interface_for_model.tf_serving_format.write_version`` (atomic, immutable versions).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from data_interface_for_model.tf_serving_format import next_version, write_version, write_warmup_requests
from retrieval.music.run import MusicRun, load_run

MODEL_NAME = "music_matcher"
SIGNATURE = "recommend_music"


class MusicMatcherModule(tf.Module):
    def __init__(self, run: MusicRun, k: int = 10) -> None:
        super().__init__(name="music_matcher")
        self.video_tower = run.model.video_tower
        self.tower_label = bool(run.model.uses_label)
        self.uses_label = run.uses_label
        self.inverse_temperature = 1.0 / float(run.info["config"]["temperature"])
        self.beta = float(run.beta)
        library = run.model.music_tower(tf.constant(run.index.vectors, tf.float32), training=False)
        self.library = tf.Variable(library, trainable=False, name="library_embeddings")
        categories, table = run.prior_table()
        self.prior = tf.Variable(table, trainable=False, name="category_log_prior")  # [C + 1, M]; last: unseen
        self.categories = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(categories or [""], tf.string),
                                                tf.range(max(len(categories), 1), dtype=tf.int64)),
            default_value=len(categories))
        self.ids = tf.constant(run.index.ids.astype(str))
        self.moods = tf.constant(run.index.moods.astype(str))
        self.k = min(int(k), len(run.index))
        video = tf.TensorSpec([None, run.info["video_dim"]], tf.float32, name="video_embedding")
        if self.uses_label:
            self.recommend_music = tf.function(
                self._recommend, input_signature=[video, tf.TensorSpec([None], tf.string, name="video_label")])
        else:
            self.recommend_music = tf.function(lambda video_embedding: self._recommend(video_embedding),
                                               input_signature=[video])

    def _recommend(self, video_embedding: tf.Tensor, video_label: Optional[tf.Tensor] = None):
        inputs = [video_embedding, video_label] if self.tower_label else video_embedding
        query = self.video_tower(inputs, training=False)
        scores = tf.matmul(query, self.library, transpose_b=True) * self.inverse_temperature
        if self.beta:
            scores += self.beta * tf.gather(self.prior, self.categories.lookup(video_label))
        top = tf.math.top_k(scores, k=self.k)
        return {"music_ids": tf.gather(self.ids, top.indices), "scores": top.values,
                "moods": tf.gather(self.moods, top.indices)}


def export_run(run_dir: str, model_base: str, version: Optional[int] = None, k: int = 10) -> str:
    """Write ``model_base/music_matcher/<version>``; returns its path."""
    run = load_run(run_dir)
    module = MusicMatcherModule(run, k=k)
    version = version or next_version(model_base, [MODEL_NAME])
    with write_version(model_base, MODEL_NAME, version) as tmp:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE: module.recommend_music,
                                                     "serving_default": module.recommend_music})
        example = {"video_embedding": run.videos.vectors[:2]}  # TF Serving warm-up: real videos
        if module.uses_label:
            example["video_label"] = run.videos.labels[:2].astype(str)
        write_warmup_requests(tmp, MODEL_NAME, {SIGNATURE: example, "serving_default": example})
    from data_interface_for_model.tf_serving_format import version_path

    return version_path(model_base, MODEL_NAME, version)


def check_export(path: str, vectors: np.ndarray, labels: Optional[np.ndarray] = None) -> dict:
    """Load an export in this process and run ``recommend_music`` on ``vectors`` (and ``labels`` when the
    signature takes ``video_label``); numpy results."""
    loaded = tf.saved_model.load(path)
    inputs = {"video_embedding": tf.constant(vectors, tf.float32)}
    if labels is not None:
        inputs["video_label"] = tf.constant(np.asarray(labels).astype(str))
    out = loaded.signatures[SIGNATURE](**inputs)
    return {key: value.numpy() for key, value in out.items()}
