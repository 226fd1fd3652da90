"""The linear probe inside the model: averaged with the fusion head's prediction at inference."""
from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import ops

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.probe import LinearProbe

#: The logit given to a class the probe never saw in training (its probability is then 0, as in
#: :meth:`baseline_model.probe.LinearProbe.predict_proba`).
UNSEEN_CLASS_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="xinpianchang")
class LinearProbeEnsemble(keras.layers.Layer):
    """Average a head's probabilities with those of a fitted linear probe, once the head is trained.

    Inputs: ``[probabilities [B, C], text_features [B, Dt], cover_features [B, Di], frame_features
    [B, T, Di], frame_mask [B, T], presence [B, 3]]``, and for an audio run ``presence [B, 4]`` and a
    seventh input, ``audio_features [B, P, Da]``. The probe's input is what
    :func:`baseline_model.probe.probe_inputs` computes (each modality gated by its presence column: text,
    cover, the mean of the real frames, presence,
    then the mean of the sound windows; ``D = Dt + 2 Di + 3``, or ``Dt + 2 Di + 4 + Da``), standardised,
    then an affine map to ``C`` logits and a softmax.

    The output is ``(1 - mix) * head + mix * probe``. ``mix`` (a non-trainable weight) is 0 while the head
    trains, so the head learns from its own loss and early stopping watches the head's own validation
    accuracy (the two stay independent members of an ensemble); :meth:`activate` sets it to 0.5 once the
    head is trained, before the model is saved, so evaluation, export and serving see the ensemble. In
    training mode the head's probabilities always pass unchanged. The probe's parameters (``mean``,
    ``scale`` ``[D]``, ``kernel [D, C]``, ``bias [C]``) are non-trainable weights set by :meth:`set_probe`.
    """

    def __init__(self, input_dim: int, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.num_classes = int(input_dim), int(num_classes)

    def build(self, input_shape):
        d, c = self.input_dim, self.num_classes
        self.mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False, name="mean")
        self.scale = self.add_weight(shape=(d,), initializer="ones", trainable=False, name="scale")
        self.kernel = self.add_weight(shape=(d, c), initializer="zeros", trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(c,), initializer="zeros", trainable=False, name="bias")
        self.mix = self.add_weight(shape=(), initializer="zeros", trainable=False, name="mix")
        super().build(input_shape)

    def activate(self, mix: float = 0.5) -> None:
        """Blend the probe in (``mix`` 0.5: the mean of the two; 0: the head alone)."""
        if not 0.0 <= mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {mix}")
        self.mix.assign(mix)

    def probe_probabilities(self, text, cover, frames, frame_mask, presence, audio=None):
        """The probe alone: ``[B, C]``."""
        mask = ops.expand_dims(ops.cast(frame_mask, frames.dtype), -1)
        mean_frames = ops.sum(frames * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        presence = ops.cast(presence, text.dtype)  # gates each modality, as probe_inputs does
        parts = [text * presence[:, 0:1], cover * presence[:, 1:2], mean_frames * presence[:, 2:3], presence]
        if audio is not None:
            parts.append(ops.mean(audio, axis=1) * presence[:, 3:4])
        x = ops.concatenate(parts, axis=-1)
        logits = ops.matmul((x - self.mean) / self.scale, self.kernel) + self.bias
        return ops.softmax(logits, axis=-1)

    def call(self, inputs, training=None):
        probabilities, text, cover, frames, frame_mask, presence, *audio = inputs
        if training:
            return probabilities
        probe = ops.cast(self.probe_probabilities(text, cover, frames, frame_mask, presence, *audio),
                         probabilities.dtype)
        mix = ops.cast(self.mix, probabilities.dtype)
        return (1.0 - mix) * probabilities + mix * probe

    def set_probe(self, probe: "LinearProbe") -> None:
        """Copy a fitted :class:`~baseline_model.probe.LinearProbe` (scikit-learn) into the weights."""
        kernel, bias = probe_affine(probe, self.num_classes)
        if kernel.shape[0] != self.input_dim:
            raise ValueError(f"the probe takes {kernel.shape[0]} features, this layer {self.input_dim}")
        self.mean.assign(probe.scaler.mean_.astype(np.float32))
        self.scale.assign(probe.scaler.scale_.astype(np.float32))
        self.kernel.assign(kernel)
        self.bias.assign(bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "num_classes": self.num_classes}


def probe_affine(probe: "LinearProbe", num_classes: int):
    """A fitted probe's logistic regression as ``kernel [D, C]``, ``bias [C]`` over all ``num_classes``
    (softmax of the standardised input times the kernel plus the bias gives its ``predict_proba``)."""
    classifier = probe.classifier
    classes = np.asarray(classifier.classes_, dtype=int)
    coef, intercept = np.asarray(classifier.coef_, np.float32), np.asarray(classifier.intercept_, np.float32)
    kernel = np.zeros((coef.shape[1], num_classes), np.float32)
    bias = np.full((num_classes,), UNSEEN_CLASS_LOGIT, np.float32)
    if len(classes) == 2 and coef.shape[0] == 1:  # binary: p(classes[1]) = sigmoid(w.x + b)
        bias[classes[0]] = 0.0
        kernel[:, classes[1]], bias[classes[1]] = coef[0], intercept[0]
    else:
        kernel[:, classes], bias[classes] = coef.T, intercept
    return kernel, bias


def activate_probe_ensemble(model: keras.Model) -> None:
    """Blend the probe into a trained head that has one (a no-op for a head without ``probe_ensemble``)."""
    try:
        layer = model.get_layer("probe_ensemble")
    except ValueError:
        return
    layer.activate()
