"""The original xinpianchang baseline architecture, with its sizes as arguments.

text  : TextVectorization -> Embedding -> BiLSTM(64) -> Dense(50)
cover : 4 x (Conv2D + MaxPool2D) -> Flatten -> Dense(50)
frames: N x (Conv3D + MaxPool3D) -> Flatten -> FC256 -> FC128 -> Dense(50)
concat -> Dense(100) -> softmax(31)

Fixed here: covers and frames are both scaled to [-1, 1] (the original left frames unnormalised); the
vocabulary is adapted on the training split only; the time axis is pooled only while it is longer than 1,
so short clips (8 frames) work as well as the seed's 100.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

import keras

from data_interface_for_model.categories import NUM_CLASSES

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.kinds.seed_baseline import SeedBaselineConfig


def _cover_branch(cover, config: "SeedBaselineConfig"):
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="cover_scale")(cover)
    for i in range(4):
        x = keras.layers.Conv2D(config.conv_filters * (2 ** min(i, 2)), 3, padding="same", activation="relu",
                                name=f"cover_conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"cover_pool{i}")(x)
    x = keras.layers.Flatten(name="cover_flatten")(x)
    return keras.layers.Dense(config.branch_units, activation="relu", name="cover_dense")(x)


def _video_branch(frames, config: "SeedBaselineConfig", num_frames: int, size: int):
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="frames_scale")(frames)
    t, s = num_frames, size
    for i in range(config.conv3d_blocks):
        x = keras.layers.Conv3D(config.conv_filters, 3, padding="same", activation="relu",
                                name=f"video_conv{i}")(x)
        pool = (2 if t > 1 else 1, 2 if s > 1 else 1, 2 if s > 1 else 1)
        x = keras.layers.MaxPooling3D(pool, padding="same", name=f"video_pool{i}")(x)
        t, s = (t + 1) // pool[0], (s + 1) // pool[1]
    x = keras.layers.Flatten(name="video_flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="video_fc256")(x)
    x = keras.layers.Dense(128, activation="relu", name="video_fc128")(x)
    return keras.layers.Dense(config.branch_units, activation="relu", name="video_dense")(x)


def build_seed_baseline(
    config: "SeedBaselineConfig",
    vocabulary_texts: Optional[Iterable[str]] = None,
    cover_shape: Optional[tuple] = None,
    num_classes: int = NUM_CLASSES,
) -> keras.Model:
    """Build the seed's model.

    Inputs: ``{"text": string [B], "cover": float32 [B,H,W,3] in [0,1], "frames": float32 [B,T,S,S,3] in [0,1]}``.
    Output: probabilities ``[B, num_classes]``. The penultimate ``Dense(100)`` layer is named ``embedding``.

    Args:
      config: sizes (:class:`~baseline_model.kinds.seed_baseline.SeedBaselineConfig`).
      vocabulary_texts: training briefs to adapt the word vocabulary on (None: an empty vocabulary, for
        shape tests and benchmarks).
      cover_shape: ``(H, W)`` of the cover if it differs from ``image_size`` square (the seed used 270x480).
    """
    t, s = config.num_frames, config.image_size
    ch, cw = cover_shape or (s, s)
    text = keras.Input(shape=(), dtype="string", name="text")
    cover = keras.Input(shape=(ch, cw, 3), name="cover")
    frames = keras.Input(shape=(t, s, s, 3), name="frames")

    vectorizer = keras.layers.TextVectorization(
        max_tokens=config.vocabulary_size, output_sequence_length=config.text_length, name="vectorizer")
    if vocabulary_texts is not None:
        vectorizer.adapt(list(vocabulary_texts))
    tokens = vectorizer(text)
    x = keras.layers.Embedding(config.vocabulary_size, config.word_embedding_dim, name="word_embedding")(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(config.lstm_units), name="text_bilstm")(x)
    text_vec = keras.layers.Dense(config.branch_units, activation="relu", name="text_dense")(x)

    fused = keras.layers.Concatenate(name="concat")(
        [text_vec, _cover_branch(cover, config), _video_branch(frames, config, t, s)])
    embedding = keras.layers.Dense(config.fusion_units, activation="relu", name="embedding")(fused)
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(
        keras.layers.Dropout(config.dropout, name="head_dropout")(embedding))
    return keras.Model({"text": text, "cover": cover, "frames": frames}, probabilities, name="seed_baseline")
