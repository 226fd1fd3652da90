"""The pretrained classifier's audio branch: frozen musicnn over the clip's log-mel windows, pooled over the
windows and projected to the fusion width, a fourth modality of the gated fusion.

* **Encoder side** (what the feature cache stores): ``audio`` float32 ``[B, P, 187, 96]`` (the prepared
  shards' field, :mod:`data_interface_for_model.audio`) -> musicnn's penultimate embedding of every window,
  ``audio_features [B, P, 200]``, and the audio presence ``[B, 1]``. A missing sound track is an all-zero
  log-mel (that is what silence gives: ``log10(1 + 0) = 0``), the same convention as an all-zero cover.
* **Head side**: the windows' embeddings are averaged, layer-normalised and projected to ``fusion_dim``
  (:func:`project_audio`); the gated fusion and modality dropout treat it like text, cover and video.

musicnn (``baseline_model.encoders.musicnn``, MagnaTagATune weights from the ``musicnn`` wheel) always runs
in inference mode here: its batch normalisation uses the checkpoint's statistics and its dropout is off,
also while the head trains.
"""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from baseline_model.layers import FrameEncoder
from data_interface_for_model.audio import N_MELS, PATCH_FRAMES

#: The head's extra input in an audio run (besides ``fusion_head.FEATURE_KEYS``).
AUDIO_FEATURES = "audio_features"
#: The raw input of an audio run: musicnn's log-mel windows.
AUDIO_INPUT = "audio"


def build_audio_encoder(model: str = "MTT_musicnn", weights: str | None = "offline") -> keras.Model:
    """Frozen musicnn: one log-mel window ``[B, 187, 96]`` -> its penultimate embedding ``[B, 200]``."""
    from baseline_model.encoders import musicnn

    net = musicnn.build_musicnn(model, weights=weights)
    for layer in net.layers:  # a frozen feature extractor: no dropout even when the caller trains
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    encoder = keras.Model(net.input, net.output["penultimate"], name=f"audio_encoder_{model.lower()}")
    encoder.trainable = False  # Keras 3 runs frozen batch normalisation with the checkpoint's statistics
    return encoder


@keras.saving.register_keras_serializable(package="xinpianchang")
class AudioPresence(keras.layers.Layer):
    """``audio [B, P, F, M]`` -> ``[B, 1]``: 1 where any log-mel value is non-zero (the clip has sound)."""

    def call(self, audio):
        return ops.cast(ops.max(ops.abs(audio), axis=[1, 2, 3]) > 0, "float32")[:, None]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def audio_input(windows: int) -> keras.KerasTensor:
    """The raw ``audio`` input of an audio run: float32 ``[B, windows, 187, 96]`` log-mel."""
    return keras.Input((windows, PATCH_FRAMES, N_MELS), name=AUDIO_INPUT)


def encode_audio(encoder: keras.Model, audio) -> tuple:
    """``(audio_features [B, P, 200], audio presence [B, 1])`` of the log-mel windows ``audio``."""
    return FrameEncoder(encoder, name="audio_window_encoder")(audio), AudioPresence(name="audio_presence")(audio)


def add_audio_features(inputs: dict, features: dict, encoder: keras.Model, windows: int) -> None:
    """Give an audio run's raw inputs and feature dict their sound, in place: ``inputs["audio"]``,
    ``features["audio_features"]`` and a fourth presence column (text, cover, video, audio)."""
    inputs[AUDIO_INPUT] = audio_input(windows)
    features[AUDIO_FEATURES], present = encode_audio(encoder, inputs[AUDIO_INPUT])
    features["presence"] = keras.layers.Concatenate(name="presence_with_audio")([features["presence"], present])


def project_audio(audio_features, fusion_dim: int):
    """Head side: ``[B, P, 200]`` -> mean over the windows -> LayerNorm -> Dense(fusion_dim, gelu) ``[B, D]``."""
    pooled = keras.layers.GlobalAveragePooling1D(name="audio_window_pooling")(audio_features)
    pooled = keras.layers.LayerNormalization(name="audio_norm")(pooled)
    return keras.layers.Dense(fusion_dim, activation="gelu", name="audio_projection")(pooled)


def serving_audio(audio: tf.Tensor, windows: int) -> tf.Tensor:
    """A served request's log-mel ``[B, n, 187, 96]`` (any ``n >= 0``) -> the model's ``[B, windows, 187, 96]``.

    ``n = 0`` (or all zeros) means no sound, a missing modality; other counts are resampled like the frames
    (the window nearest each of ``windows`` evenly spaced centres)."""
    audio = tf.convert_to_tensor(audio, tf.float32)
    batch, available = tf.shape(audio)[0], tf.shape(audio)[1]
    positions = (tf.range(windows, dtype=tf.float32) + 0.5) * tf.cast(available, tf.float32) / windows
    indices = tf.minimum(tf.cast(positions, tf.int32), tf.maximum(available - 1, 0))
    chosen = tf.cond(available > 0, lambda: tf.gather(audio, indices, axis=1),
                     lambda: tf.zeros([batch, windows, PATCH_FRAMES, N_MELS], tf.float32))
    return tf.ensure_shape(chosen, [None, windows, PATCH_FRAMES, N_MELS])


__all__ = ["AUDIO_FEATURES", "AUDIO_INPUT", "AudioPresence", "add_audio_features", "audio_input", "build_audio_encoder", "encode_audio",
           "project_audio", "serving_audio"]
