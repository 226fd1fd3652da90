"""Configuration of a classifier run, as dataclasses that round-trip through ``run_config.json``.

:class:`TrainConfig` says how to train (every model kind); each model kind owns its own config dataclass
(:mod:`baseline_model.kinds`), derived from :class:`ClassifierConfig` (the input shape every kind takes).
Every default is defined here or in :mod:`data_interface_for_model.defaults`, once; the command line reads
it from the dataclasses.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar, Dict, Optional, Sequence, Tuple

from data_interface_for_model import defaults
from data_interface_for_model.atomic import atomic_write

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
RUN_CONFIG = "run_config.json"


@dataclasses.dataclass
class ClassifierConfig:
    """What every model kind takes: frames ``[T, S, S, 3]`` and a cover ``[S, S, 3]`` in [0, 1], a brief.

    Attributes:
      num_frames, image_size: ``T`` and ``S``.
      dropout: dropout before the softmax head.
    """

    kind: ClassVar[str] = ""
    #: sound windows per clip: 0 for kinds without an audio branch (``PretrainedConfig`` makes it a field)
    audio_windows = 0
    num_frames: int = defaults.FRAMES
    image_size: int = defaults.IMAGE_SIZE
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.image_size < 32:
            raise ValueError(f"frames must be >= 1 and image size >= 32, got {self.num_frames} and "
                             f"{self.image_size}")


@dataclasses.dataclass
class TrainConfig:
    """How to train (any model kind).

    ``epochs`` and ``learning_rate`` left at ``None`` take the model kind's own defaults
    (``ModelKind.default_epochs`` / ``default_learning_rate``), filled in when the run starts.
    """

    data_root: str = defaults.DATA_ROOT
    data_dir: str = defaults.DATA_DIR
    output: str = defaults.RUN
    epochs: Optional[int] = None
    batch_size: int = 32
    learning_rate: Optional[float] = None
    strategy: str = "auto"
    tpu: Optional[str] = None
    resume: bool = False
    seed: int = 0
    split_seed: int = 0
    early_stopping_patience: int = 8
    mixed_precision: bool = False
    steps_per_epoch: Optional[int] = None
    demo_per_category: int = 20

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if ((self.epochs is not None and self.epochs < 1) or self.batch_size < 1
                or (self.learning_rate is not None and self.learning_rate <= 0)):
            raise ValueError("epochs and batch_size must be >= 1 and learning_rate > 0")


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (what a command line shows and uses)."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return field.default_factory()  # type: ignore[misc]
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


def save_run_config(run_dir: str, model: ClassifierConfig, train: TrainConfig, labels: Sequence[str],
                    extra: Optional[Dict[str, Any]] = None) -> None:
    """Write ``run_dir/run_config.json`` (what evaluate, export, embed and predict rebuild the model from)."""
    data = {"kind": model.kind, "model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
            "labels": list(labels), "num_frames": model.num_frames, "image_size": model.image_size}
    data.update(extra or {})
    os.makedirs(run_dir, exist_ok=True)
    with atomic_write(os.path.join(run_dir, RUN_CONFIG), "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)


def load_run_config(run_dir: str) -> Tuple[ClassifierConfig, TrainConfig, Dict[str, Any]]:
    """Read a run's configuration; raise FileNotFoundError naming the file if the run is incomplete.

    Returns the model kind's config, the training config and the whole JSON document (``labels``...)."""
    from baseline_model.kinds import get_kind

    path = os.path.join(run_dir, RUN_CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {run_dir!r} a training run folder?")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    model = dict(data["model"])
    kind = get_kind(data.get("kind") or model.pop("kind", "pretrained"))
    model.pop("kind", None)
    fields = {f.name for f in dataclasses.fields(kind.config_class)}
    if "feature_cache" in fields and "feature_cache" in data["train"]:  # older runs kept it with training
        model.setdefault("feature_cache", data["train"]["feature_cache"])
    train = {k: v for k, v in data["train"].items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    if "labels" not in data:  # runs written before the label set was stored: the 31 categories
        from data_interface_for_model.categories import LABELS

        data["labels"] = list(LABELS)
    return kind.config_class(**{k: v for k, v in model.items() if k in fields}), TrainConfig(**train), data
