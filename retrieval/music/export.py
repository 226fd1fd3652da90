"""Export a music-matching run as a TF Serving model with a ``recommend_music`` signature.

``recommend_music``: ``video_embedding`` float32 ``[B, D]`` (the video's content embedding, as in the run's
video table) -> ``music_ids`` str ``[B, k]``, ``scores`` float32 ``[B, k]``, ``moods`` str ``[B, k]``. The
library's tower embeddings are computed at export and searched by brute force (plain TF ops, stock TF
Serving). It is also the ``serving_default`` signature. Written through
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
        library = run.model.music_tower(tf.constant(run.index.vectors, tf.float32), training=False)
        self.library = tf.Variable(library, trainable=False, name="library_embeddings")
        self.ids = tf.constant(run.index.ids.astype(str))
        self.moods = tf.constant(run.index.moods.astype(str))
        self.k = min(int(k), len(run.index))
        self.recommend_music = tf.function(
            self._recommend, input_signature=[tf.TensorSpec([None, run.info["video_dim"]], tf.float32,
                                                            name="video_embedding")])

    def _recommend(self, video_embedding: tf.Tensor):
        query = self.video_tower(video_embedding, training=False)
        top = tf.math.top_k(tf.matmul(query, self.library, transpose_b=True), k=self.k)
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
        example = {"video_embedding": run.videos.vectors[:2]}  # TF Serving warm-up: real video embeddings
        write_warmup_requests(tmp, MODEL_NAME, {SIGNATURE: example, "serving_default": example})
    from data_interface_for_model.tf_serving_format import version_path

    return version_path(model_base, MODEL_NAME, version)


def check_export(path: str, vectors: np.ndarray) -> dict:
    """Load an export in this process and run ``recommend_music`` on ``vectors`` (numpy results)."""
    loaded = tf.saved_model.load(path)
    out = loaded.signatures[SIGNATURE](video_embedding=tf.constant(vectors, tf.float32))
    return {key: value.numpy() for key, value in out.items()}
