"""The trainable part of the pretrained classifier: per-modality projections, temporal pooling, gated
fusion with modality dropout, the embedding and the softmax head. It runs on encoder features, so it can
be trained on a feature cache."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import keras

from baseline_model.encoders.musicnn import EMBEDDING_DIM
from baseline_model.layers import AttentionPooling, GatedModalityFusion, LinearProbeEnsemble, ModalityDropout
from baseline_model.models.audio_branch import AUDIO_FEATURES, project_audio
from data_interface_for_model.categories import NUM_CLASSES

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.kinds.pretrained import PretrainedConfig
    from baseline_model.probe import LinearProbe

#: The head's inputs, in the order of the presence columns where they apply.
FEATURE_KEYS = ("text_features", "cover_features", "frame_features", "presence", "frame_mask")


def build_fusion_head(config: "PretrainedConfig", text_dim: int, image_dim: int,
                      num_classes: int = NUM_CLASSES, probe: Optional["LinearProbe"] = None) -> keras.Model:
    """Build the head.

    With a fitted linear ``probe`` (over the same features, :mod:`baseline_model.probe`), the head is an
    ensemble: at inference its probabilities are averaged with the probe's (layer ``probe_ensemble``,
    :class:`~baseline_model.layers.LinearProbeEnsemble`); in training the fusion path learns alone.

    Inputs (a dict): ``text_features [B, text_dim]``, ``cover_features [B, image_dim]``,
    ``frame_features [B, T, image_dim]``, ``presence [B, 3]`` (text, cover, video in {0, 1}),
    ``frame_mask [B, T]``. Output: probabilities ``[B, num_classes]``; the layer ``embedding`` gives the
    ``[B, embedding_dim]`` penultimate embedding.

    An audio run (``config.audio_windows = P > 0``) also takes ``audio_features [B, P, 200]`` (musicnn's
    embedding of each log-mel window) and a fourth presence column: sound is a fourth modality of the gated
    fusion and of modality dropout (:mod:`baseline_model.models.audio_branch`).
    """
    d, t = config.fusion_dim, config.num_frames
    windows = config.audio_windows
    inputs = {
        "text_features": keras.Input((text_dim,), name="text_features"),
        "cover_features": keras.Input((image_dim,), name="cover_features"),
        "frame_features": keras.Input((t, image_dim), name="frame_features"),
        "presence": keras.Input((4 if windows else 3,), name="presence"),
        "frame_mask": keras.Input((t,), name="frame_mask"),
    }
    if windows:
        inputs[AUDIO_FEATURES] = keras.Input((windows, EMBEDDING_DIM), name=AUDIO_FEATURES)
    presence = ModalityDropout(config.modality_dropout, seed=17, name="modality_dropout")(inputs["presence"])

    def project(x, name):
        x = keras.layers.LayerNormalization(name=f"{name}_norm")(x)
        return keras.layers.Dense(d, activation="gelu", name=f"{name}_projection")(x)

    text = project(inputs["text_features"], "text")
    cover = project(inputs["cover_features"], "cover")
    frames = keras.layers.TimeDistributed(keras.layers.LayerNormalization(), name="frame_norm")(inputs["frame_features"])
    video = AttentionPooling(128, name="temporal_pooling")(frames, frame_mask=inputs["frame_mask"])
    video = keras.layers.Dense(d, activation="gelu", name="video_projection")(video)

    modalities = [text, cover, video]
    if windows:
        modalities.append(project_audio(inputs[AUDIO_FEATURES], d))
    fused = GatedModalityFusion(d, name="fusion")([*modalities, presence])
    fused = keras.layers.Dropout(config.dropout, name="fusion_dropout")(fused)
    embedding = keras.layers.Dense(config.embedding_dim, name="embedding")(fused)
    hidden = keras.layers.Dropout(config.dropout, name="head_dropout")(keras.layers.Activation("gelu")(embedding))
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(hidden)
    if probe is not None:
        members = [probabilities, inputs["text_features"], inputs["cover_features"], inputs["frame_features"],
                   inputs["frame_mask"], inputs["presence"]]
        probe_dim = text_dim + 2 * image_dim + 3
        if windows:  # the probe also reads the fourth presence column and the mean sound embedding
            members.append(inputs[AUDIO_FEATURES])
            probe_dim += 1 + EMBEDDING_DIM
        ensemble = LinearProbeEnsemble(probe_dim, num_classes, name="probe_ensemble")
        probabilities = ensemble(members)
        ensemble.set_probe(probe)
    return keras.Model(inputs, probabilities, name="fusion_head")
