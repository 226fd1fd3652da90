"""Learned pooling of per-frame features over time."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xinpianchang")
class AttentionPooling(keras.layers.Layer):
    """Attention pooling over time: ``[B, T, D]`` (+ ``frame_mask [B, T]`` of real frames) -> ``[B, D]``.

    Each frame gets a score ``w . tanh(W x_t)``; the softmax of the scores over the real frames weighs the
    sum. A row with no real frame pools to zeros.
    """

    def __init__(self, hidden_units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = hidden_units
        self.projection = keras.layers.Dense(hidden_units, activation="tanh", name="projection")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        self.projection.build(input_shape)
        self.score.build(tuple(input_shape[:-1]) + (self.hidden_units,))
        super().build(input_shape)

    def call(self, frames, frame_mask=None):
        scores = ops.squeeze(self.score(self.projection(frames)), axis=-1)  # [B, T]
        if frame_mask is None:
            weights = ops.softmax(scores, axis=-1)
        else:
            mask = ops.cast(frame_mask, scores.dtype)
            scores = scores + (1.0 - mask) * ops.cast(-1e9, scores.dtype)
            weights = ops.softmax(scores, axis=-1) * mask
            weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
        return ops.sum(frames * ops.expand_dims(weights, -1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="xinpianchang")
class FrameEncoder(keras.layers.Layer):
    """Apply an image encoder to every frame: ``[B, T, H, W, 3]`` -> ``[B, T, D]``.

    One batched call over ``B*T`` images (Keras 3's ``TimeDistributed`` loops over time steps instead).
    """

    def __init__(self, image_encoder: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.image_encoder = image_encoder

    def call(self, frames):
        shape = ops.shape(frames)
        flat = ops.reshape(frames, (-1,) + tuple(frames.shape[2:]))
        encoded = self.image_encoder(flat)
        return ops.reshape(encoded, (shape[0], shape[1], encoded.shape[-1]))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2]) + (self.image_encoder.output.shape[-1],)

    def get_config(self):
        return {**super().get_config(), "image_encoder": keras.saving.serialize_keras_object(self.image_encoder)}

    @classmethod
    def from_config(cls, config):
        config["image_encoder"] = keras.saving.deserialize_keras_object(config["image_encoder"])
        return cls(**config)
