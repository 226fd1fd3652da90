"""The default classifier: frozen pretrained encoders (MiniLM for the brief, ImageNet MobileNetV2 for the
cover and every frame) feeding the trainable fusion head.

Raw inputs: ``{"text": string [B], "cover": float32 [B,S,S,3] in [0,1], "frames": float32 [B,T,S,S,3] in [0,1]}``.
A missing modality is an empty brief, an all-zero cover, or all-zero frames (see ``ModalityPresence``).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import keras

from baseline_model.layers import FrameEncoder, ModalityPresence
from baseline_model.models.fusion_head import build_fusion_head
from baseline_model.models.submodels import embedding_submodel
from data_interface_for_model.categories import NUM_CLASSES

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.kinds.pretrained import PretrainedConfig


@dataclasses.dataclass
class Encoders:
    """The frozen feature extractors. ``text``: string ``[B]`` -> ``[B, text_dim]``; ``image``:
    ``[B, S, S, 3]`` in [0, 1] -> ``[B, image_dim]``."""

    text: keras.Model
    image: keras.Model
    #: musicnn over one log-mel window ``[B, 187, 96]`` -> ``[B, 200]`` (audio runs only).
    audio: keras.Model | None = None

    @property
    def text_dim(self) -> int:
        return int(self.text.output.shape[-1])

    @property
    def image_dim(self) -> int:
        return int(self.image.output.shape[-1])


def build_encoders(config: "PretrainedConfig") -> Encoders:
    """Load the encoders named by the config (offline weights are converted once and cached)."""
    from baseline_model.encoders import build_image_encoder, build_text_encoder, freeze_top_layers

    weights = None if config.image_weights == "none" else config.image_weights
    image = build_image_encoder(weights=weights, input_size=config.image_size, pooling="avg")
    text = build_text_encoder(preset=config.text_preset, sequence_length=config.text_sequence_length)
    freeze_top_layers(text, config.fine_tune_top_layers)
    if weights is not None:  # a randomly initialised MobileNetV2 stays trainable: freezing it would be useless
        freeze_top_layers(image, config.fine_tune_top_layers)
    audio = None
    if config.audio_windows:
        from baseline_model.models.audio_branch import build_audio_encoder

        audio = build_audio_encoder(config.audio_model)
    return Encoders(text=text, image=image, audio=audio)


def encode_raw_inputs(encoders: Encoders, config: "PretrainedConfig"):
    """Symbolic raw inputs and the head's feature dict computed from them."""
    t, s = config.num_frames, config.image_size
    inputs = {
        "text": keras.Input(shape=(), dtype="string", name="text"),
        "cover": keras.Input(shape=(s, s, 3), name="cover"),
        "frames": keras.Input(shape=(t, s, s, 3), name="frames"),
    }
    presence, frame_mask = ModalityPresence(name="presence")([inputs["text"], inputs["cover"], inputs["frames"]])
    features = {
        "text_features": encoders.text(inputs["text"]),
        "cover_features": encoders.image(inputs["cover"]),
        "frame_features": FrameEncoder(encoders.image, name="frame_encoder")(inputs["frames"]),
        "presence": presence,
        "frame_mask": frame_mask,
    }
    if config.audio_windows:  # + inputs["audio"], features["audio_features"], presence [B, 4]
        from baseline_model.models.audio_branch import add_audio_features

        add_audio_features(inputs, features, encoders.audio, config.audio_windows)
    return inputs, features


def build_feature_extractor(encoders: Encoders, config: "PretrainedConfig") -> keras.Model:
    """Raw inputs -> the head's feature dict (what the feature cache stores)."""
    inputs, features = encode_raw_inputs(encoders, config)
    return keras.Model(inputs, features, name="feature_extractor")


@dataclasses.dataclass
class PretrainedModels:
    """The pretrained classifier's models, all sharing one set of layers.

    ``classifier``: raw inputs -> probabilities ``[B, num_classes]``; ``embedder``: raw inputs -> embedding
    ``[B, embedding_dim]``; ``head``: encoder features -> probabilities; ``head_embedder``: features ->
    embedding; ``extractor``: raw inputs -> the head's feature dict.
    """

    classifier: keras.Model
    embedder: keras.Model
    head: keras.Model
    head_embedder: keras.Model
    extractor: keras.Model


def build_pretrained_classifier(config: "PretrainedConfig", encoders: Encoders,
                                head: keras.Model | None = None, num_classes: int = NUM_CLASSES) -> PretrainedModels:
    """Compose the encoders and the fusion head (built fresh with ``num_classes`` outputs unless given) into
    :class:`PretrainedModels`."""
    head = head or build_fusion_head(config, encoders.text_dim, encoders.image_dim, num_classes)
    head_embedder = embedding_submodel(head)
    inputs, features = encode_raw_inputs(encoders, config)
    return PretrainedModels(
        classifier=keras.Model(inputs, head(features), name="pretrained_classifier"),
        embedder=keras.Model(inputs, head_embedder(features), name="pretrained_embedder"),
        head=head,
        head_embedder=head_embedder,
        extractor=keras.Model(inputs, features, name="feature_extractor"),
    )
