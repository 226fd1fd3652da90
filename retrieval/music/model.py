"""The two-tower music matcher in TFRS: video content embedding -> music embedding, trained contrastively.

* query tower: standardised video content embedding ``[B, D]`` -> Dense(hidden, relu) -> Dense(E) -> L2;
* candidate tower: standardised musicnn embedding ``[B, 200]`` -> Dense(hidden, relu) -> Dense(E) -> L2;
* loss: ``tfrs.tasks.Retrieval`` softmax over the batch's tracks with a temperature, accidental hits (the
  same track twice in a batch) removed, so every track of the library competes as a negative.

Both towers see content only: a track added to the library later is matched without retraining.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from retrieval.music.config import MatcherConfig


class Standardize(tf.keras.layers.Layer):
    """``(x - mean) / std`` with constants fitted on training data (saved with the weights)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mean = tf.constant(np.asarray(mean, np.float32))
        self.std = tf.constant(np.maximum(np.asarray(std, np.float32), 1e-6))

    def call(self, x):
        return (x - self.mean) / self.std


def tower(input_dim: int, config: MatcherConfig, mean: np.ndarray, std: np.ndarray, name: str) -> tf.keras.Model:
    inputs = tf.keras.Input((input_dim,), name=f"{name}_input")
    x = Standardize(mean, std, name=f"{name}_standardize")(inputs)
    x = tf.keras.layers.Dropout(config.dropout, name=f"{name}_dropout")(x)
    x = tf.keras.layers.Dense(config.hidden, activation="relu", name=f"{name}_hidden")(x)
    x = tf.keras.layers.Dense(config.embedding_dim, name=f"{name}_out")(x)
    x = tf.keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1), name=f"{name}_l2")(x)
    return tf.keras.Model(inputs, x, name=name)


class MusicMatcher(tfrs.Model):
    """features ``{"video": [B, D], "music": [B, 200], "music_id": str [B]}``."""

    def __init__(self, video_tower: tf.keras.Model, music_tower: tf.keras.Model, config: MatcherConfig) -> None:
        super().__init__()
        self.video_tower, self.music_tower = video_tower, music_tower
        self.task = tfrs.tasks.Retrieval(temperature=config.temperature, remove_accidental_hits=True)

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.video_tower(features["video"], training=training)
        candidate = self.music_tower(features["music"], training=training)
        return self.task(query, candidate, candidate_ids=features["music_id"], compute_metrics=False)


def build_matcher(video_dim: int, music_dim: int, config: MatcherConfig, video_stats, music_stats) -> MusicMatcher:
    tf.keras.utils.set_random_seed(config.seed)
    video_tower = tower(video_dim, config, *video_stats, name="video_tower")
    music_tower = tower(music_dim, config, *music_stats, name="music_tower")
    model = MusicMatcher(video_tower, music_tower, config)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    return model


def pair_dataset(video: np.ndarray, music: np.ndarray, music_ids: np.ndarray, config: MatcherConfig,
                 shuffle: bool = True) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices({"video": video.astype(np.float32), "music": music.astype(np.float32),
                                             "music_id": music_ids.astype(str)})
    if shuffle:
        ds = ds.shuffle(len(video), seed=config.seed, reshuffle_each_iteration=True)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def score_matrix(model: MusicMatcher, video: np.ndarray, library: np.ndarray) -> np.ndarray:
    """float ``[N, M]``: cosine similarity of each video's query embedding with each track's."""
    q = model.video_tower(tf.constant(video, tf.float32), training=False).numpy()
    c = model.music_tower(tf.constant(library, tf.float32), training=False).numpy()
    return q @ c.T
