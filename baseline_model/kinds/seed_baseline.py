"""``seed_baseline``: the original xinpianchang architecture, trained from pixels and words."""
from __future__ import annotations

import dataclasses
from typing import Sequence

from baseline_model.config import ClassifierConfig, TrainConfig
from baseline_model.kinds.base import ModelKind, TrainingPlan


@dataclasses.dataclass
class SeedBaselineConfig(ClassifierConfig):
    """Sizes of the seed's architecture (see :mod:`baseline_model.models.seed_baseline`)."""

    kind = "seed_baseline"
    vocabulary_size: int = 5000
    text_length: int = 20
    word_embedding_dim: int = 64
    lstm_units: int = 64
    branch_units: int = 50
    fusion_units: int = 100
    conv_filters: int = 16
    conv3d_blocks: int = 3


class SeedBaseline(ModelKind):
    name = "seed_baseline"
    summary = "the original architecture (BiLSTM, Conv2D, Conv3D), trained from scratch"
    config_class = SeedBaselineConfig
    default_epochs = 15
    default_learning_rate = 1e-3

    def training_plan(self, train: TrainConfig, labels: Sequence[str]) -> TrainingPlan:
        from baseline_model import data as data_lib
        from baseline_model.models.seed_baseline import build_seed_baseline

        config = self.config
        texts = [t.decode("utf-8") for batch, _ in data_lib.raw_dataset(train, config, "train", 64, shuffle=False)
                 for t in batch["text"].numpy()]
        return TrainingPlan(
            build_model=lambda: build_seed_baseline(config, vocabulary_texts=texts, num_classes=len(labels)),
            train_fn=data_lib.raw_input_fn(train, config, "train", train.batch_size, training=True),
            val_fn=data_lib.raw_input_fn(train, config, "validation", train.batch_size, training=False),
            train_size=data_lib.split_size(train, config, "train"))

    def load(self, run_dir: str, train: TrainConfig, labels: Sequence[str]):
        import keras

        import baseline_model.layers  # noqa: F401  (registers the custom layers for deserialisation)
        from baseline_model.models.submodels import embedding_submodel
        from baseline_model.run import LoadedRun

        saved = keras.saving.load_model(self._weights_path(run_dir))
        return LoadedRun(run_dir, self, train, list(labels), saved, embedding_submodel(saved))
