"""Fusing modalities that may be missing: modality dropout and gated attention fusion."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="xinpianchang")
class ModalityDropout(keras.layers.Layer):
    """In training, hide each present modality with probability ``rate`` (never all of them).

    Input and output: presence ``[B, M]`` in {0, 1}. At inference the presence passes unchanged. A row
    whose draw would hide every present modality keeps its original presence, so every example still has
    something to predict from.
    """

    def __init__(self, rate: float = 0.25, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, presence, training=None):
        if not training or self.rate <= 0:
            return presence
        keep = ops.cast(keras.random.uniform(ops.shape(presence), seed=self.seed_generator) >= self.rate,
                        presence.dtype)
        dropped = presence * keep
        any_left = ops.sum(dropped, axis=-1, keepdims=True) > 0
        return ops.where(any_left, dropped, presence)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="xinpianchang")
class GatedModalityFusion(keras.layers.Layer):
    """Gated attention fusion of M modality vectors: ``[m_1 [B, D], ..., m_M [B, D], presence [B, M]]`` -> ``[B, D]``.

    Each modality gets an attention score (softmax over the *present* modalities) and an element-wise
    sigmoid gate computed from all present modalities' mean; the output is the attention-weighted sum of
    the gated vectors. Missing modalities contribute nothing, so one present modality is enough.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.attention_hidden = keras.layers.Dense(units, activation="tanh", name="attention_hidden")
        self.attention_score = keras.layers.Dense(1, use_bias=False, name="attention_score")
        self.gate = keras.layers.Dense(units, activation="sigmoid", name="gate")

    def build(self, input_shape):
        first = tuple(input_shape[0])
        stacked_shape = (first[0], len(input_shape) - 1, first[-1])
        self.attention_hidden.build(stacked_shape)
        self.attention_score.build(tuple(stacked_shape[:-1]) + (self.units,))
        self.gate.build(tuple(stacked_shape[:-1]) + (2 * stacked_shape[-1],))
        super().build(input_shape)

    def call(self, inputs):
        *modalities, presence = inputs
        stacked = ops.stack(modalities, axis=1)  # [B, M, D]
        presence = ops.cast(presence, stacked.dtype)
        scores = ops.squeeze(self.attention_score(self.attention_hidden(stacked)), -1)
        scores = scores + (1.0 - presence) * ops.cast(-1e9, scores.dtype)
        weights = ops.softmax(scores, axis=-1) * presence
        weights = weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1e-9)
        context = ops.sum(stacked * ops.expand_dims(presence, -1), axis=1, keepdims=True)
        context = context / ops.maximum(ops.sum(presence, axis=-1)[:, None, None], 1.0)
        context = ops.broadcast_to(context, ops.shape(stacked))
        gates = self.gate(ops.concatenate([stacked, context], axis=-1))
        return ops.sum(ops.expand_dims(weights, -1) * gates * stacked, axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
