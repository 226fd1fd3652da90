"""The interface every model kind implements, in the spirit of TF Model Garden's ``base_task.Task``.

A kind owns its config dataclass, how its trainable model and input pipelines are built, whether it
trains on the feature cache, how its trained weights are saved and loaded back, and (through the loaded
run) what it exports. ``train``, ``evaluate``, ``embed``, ``predict`` and ``export`` only talk to this
interface. Importing this module needs no TensorFlow: the methods import it when they run.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING, Callable, ClassVar, Sequence, Type

from baseline_model.config import ClassifierConfig, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import tensorflow as tf

    from baseline_model.run import LoadedRun


@dataclasses.dataclass
class TrainingPlan:
    """What ``train_run`` needs from a kind.

    Attributes:
      build_model: builds the trainable model (called inside the strategy's scope); it takes the inputs
        ``train_fn`` yields and outputs probabilities ``[B, num_classes]``.
      train_fn, val_fn: ``InputContext -> tf.data.Dataset`` of ``(inputs, label)`` at the per-replica batch
        size (``train_fn`` shuffled and repeated).
      train_size: examples in the training split (for the steps per epoch).
    """

    build_model: Callable[[], "keras.Model"]
    train_fn: Callable[["tf.distribute.InputContext"], "tf.data.Dataset"]
    val_fn: Callable[["tf.distribute.InputContext"], "tf.data.Dataset"]
    train_size: int


class ModelKind:
    """One classifier architecture. Subclasses set the class attributes and implement the methods."""

    #: the name used on the command line (``--model``) and in run_config.json
    name: ClassVar[str] = ""
    #: one line for ``--help``
    summary: ClassVar[str] = ""
    config_class: ClassVar[Type[ClassifierConfig]] = ClassifierConfig
    default_epochs: ClassVar[int] = 1
    default_learning_rate: ClassVar[float] = 1e-3

    def __init__(self, config: ClassifierConfig):
        if not isinstance(config, self.config_class):
            raise TypeError(f"{self.name} takes a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    # ------------------------------------------------------------------ command line
    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add this kind's own flags (defaults read from :attr:`config_class`)."""

    @classmethod
    def config_kwargs(cls, args: argparse.Namespace) -> dict:
        """This kind's own config fields from parsed flags (beyond frames and image size)."""
        return {}

    @classmethod
    def config_from_args(cls, args: argparse.Namespace) -> ClassifierConfig:
        return cls.config_class(num_frames=args.frames, image_size=args.image_size, **cls.config_kwargs(args))

    def with_defaults(self, train: TrainConfig) -> TrainConfig:
        """``train`` with this kind's epochs and learning rate where they were left unset."""
        return dataclasses.replace(
            train, epochs=train.epochs if train.epochs is not None else self.default_epochs,
            learning_rate=train.learning_rate if train.learning_rate is not None else self.default_learning_rate)

    # ------------------------------------------------------------------ training and weights
    @property
    def uses_feature_cache(self) -> bool:
        """Does training run on cached encoder features (frozen encoders)?"""
        return False

    @property
    def weights_file(self) -> str:
        """The file (inside the run folder) holding the trained weights."""
        return "model.keras"

    def training_plan(self, train: TrainConfig, labels: Sequence[str]) -> TrainingPlan:
        raise NotImplementedError

    def fit_on_features(self, train: TrainConfig, train_arrays: dict, val_arrays: dict,
                        num_classes: int) -> "keras.Model":
        """A fresh trainable model fitted on cached feature arrays (cross-validation); kinds that do not
        train on cached features cannot."""
        raise ValueError(f"the {self.name} model does not train on cached encoder features")

    def save_trained(self, model: "keras.Model", run_dir: str) -> str:
        """Save the trained model's weights into ``run_dir`` (atomically); returns the file."""
        from data_interface_for_model.atomic import atomic_output_path

        path = os.path.join(run_dir, self.weights_file)
        with atomic_output_path(path, suffix=os.path.basename(path)) as tmp:
            self._save(model, tmp)
        return path

    def _save(self, model: "keras.Model", path: str) -> None:
        model.save(path)

    def load(self, run_dir: str, train: TrainConfig, labels: Sequence[str]) -> "LoadedRun":
        """Rebuild the run's models from its config and trained weights."""
        raise NotImplementedError

    def _weights_path(self, run_dir: str) -> str:
        path = os.path.join(run_dir, self.weights_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: the run has no trained model yet")
        return path

