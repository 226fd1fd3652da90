"""The two-tower music matcher in TFRS: video content embedding -> music embedding, trained contrastively.

* query tower: standardised video content embedding ``[B, D]`` (beside a learned embedding of the video's
  category when ``label_dim`` > 0: StringLookup over the training categories, unseen ones share one slot)
  -> Dense(hidden, relu) -> Dense(E) -> L2;
* candidate tower: standardised musicnn embedding ``[B, 200]`` -> Dense(hidden, relu) -> Dense(E) -> L2;
* loss: ``tfrs.tasks.Retrieval`` softmax over the batch's tracks with a temperature, accidental hits (the
  same track twice in a batch) removed, so every track of the library competes as a negative.

The music tower sees content only: a track added to the library later is matched without retraining. The
score of a (video, track) is ``cos / temperature`` (the training logit), plus ``beta * log P(track | category)``
when the run chose a prior weight (``retrieval.music.run``).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

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


def tower(input_dim: int, config: MatcherConfig, mean: np.ndarray, std: np.ndarray, name: str,
          categories: Optional[Sequence[str]] = None) -> tf.keras.Model:
    """Content ``[B, input_dim]`` (and, with ``categories``, the category string ``[B]``) -> L2 embedding."""
    inputs = tf.keras.Input((input_dim,), name=f"{name}_input")
    x = Standardize(mean, std, name=f"{name}_standardize")(inputs)
    x = tf.keras.layers.Dropout(config.dropout, name=f"{name}_dropout")(x)
    model_inputs = [inputs]
    if categories is not None:
        label = tf.keras.Input((), dtype=tf.string, name=f"{name}_label")
        ids = tf.keras.layers.StringLookup(vocabulary=list(categories), num_oov_indices=1,
                                           name=f"{name}_label_lookup")(label)
        embedded = tf.keras.layers.Embedding(len(categories) + 1, config.label_dim,
                                             name=f"{name}_label_embedding")(ids)
        x = tf.keras.layers.Concatenate(name=f"{name}_with_label")([x, embedded])
        model_inputs.append(label)
    x = tf.keras.layers.Dense(config.hidden, activation="relu", name=f"{name}_hidden")(x)
    x = tf.keras.layers.Dense(config.embedding_dim, name=f"{name}_out")(x)
    x = tf.keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1), name=f"{name}_l2")(x)
    return tf.keras.Model(model_inputs if len(model_inputs) > 1 else inputs, x, name=name)


class MusicMatcher(tfrs.Model):
    """features ``{"video": [B, D], "music": [B, 200], "music_id": str [B]}`` (+ ``"label": str [B]`` when the
    video tower reads the category)."""

    def __init__(self, video_tower: tf.keras.Model, music_tower: tf.keras.Model, config: MatcherConfig,
                 uses_label: bool = False) -> None:
        super().__init__()
        self.video_tower, self.music_tower = video_tower, music_tower
        self.uses_label = uses_label
        self.task = tfrs.tasks.Retrieval(temperature=config.temperature, remove_accidental_hits=True)

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.query(features["video"], features.get("label"), training=training)
        candidate = self.music_tower(features["music"], training=training)
        return self.task(query, candidate, candidate_ids=features["music_id"], compute_metrics=False)


    def query(self, video, labels=None, training: bool = False):
        """The video tower's L2 embedding ``[B, E]``; ``labels`` (str ``[B]``) are required when it reads them."""
        if not self.uses_label:
            return self.video_tower(video, training=training)
        if labels is None:
            raise ValueError("this music matcher's video tower reads the video's category: pass its labels")
        return self.video_tower([video, labels], training=training)


def build_matcher(video_dim: int, music_dim: int, config: MatcherConfig, video_stats, music_stats,
                  categories: Optional[Sequence[str]] = None) -> MusicMatcher:
    """``categories`` (the training categories) are needed when ``config.label_dim`` > 0."""
    tf.keras.utils.set_random_seed(config.seed)
    uses_label = config.label_dim > 0
    if uses_label and not categories:
        raise ValueError("label_dim > 0 needs the training categories")
    video_tower = tower(video_dim, config, *video_stats, name="video_tower",
                        categories=categories if uses_label else None)
    music_tower = tower(music_dim, config, *music_stats, name="music_tower")
    model = MusicMatcher(video_tower, music_tower, config, uses_label=uses_label)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
    return model


def pair_dataset(video: np.ndarray, music: np.ndarray, music_ids: np.ndarray, config: MatcherConfig,
                 shuffle: bool = True, labels: Optional[np.ndarray] = None) -> tf.data.Dataset:
    features = {"video": video.astype(np.float32), "music": music.astype(np.float32),
                "music_id": music_ids.astype(str)}
    if labels is not None:
        features["label"] = np.asarray(labels).astype(str)
    ds = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        ds = ds.shuffle(len(video), seed=config.seed, reshuffle_each_iteration=True)
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def score_matrix(model: MusicMatcher, video: np.ndarray, library: np.ndarray,
                 labels: Optional[np.ndarray] = None) -> np.ndarray:
    """float ``[N, M]``: cosine similarity of each video's query embedding with each track's."""
    q = model.query(tf.constant(video, tf.float32),
                    None if labels is None else tf.constant(np.asarray(labels).astype(str)), training=False).numpy()
    c = model.music_tower(tf.constant(library, tf.float32), training=False).numpy()
    return q @ c.T
