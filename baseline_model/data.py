"""Where the classifier's data comes from: the layout root (made as demo data when it is the default and
missing), prepared once into TFDS shards, read back as tf.data pipelines."""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import tensorflow as tf

from baseline_model.config import ClassifierConfig, TrainConfig
from data_interface_for_model.defaults import SPLITS
from data_interface_for_model.info_file import INFO_FILE_NAME

logger = logging.getLogger(__name__)
__all__ = ["SPLITS", "ensure_demo_dataset", "prepare", "raw_dataset", "raw_input_fn", "split_size"]


def ensure_demo_dataset(data_root: str, per_category: int, seed: int,
                        progress: Optional[Callable[[int], None]] = None) -> bool:
    """Make the demo dataset at ``data_root`` unless a dataset is already there; True if it was made."""
    if os.path.exists(os.path.join(data_root, INFO_FILE_NAME)):
        return False
    from data_download_tools.demo import DemoConfig, make_demo_dataset

    logger.info("no dataset at %s: making the demo dataset (%d per category)", data_root, per_category)
    make_demo_dataset(data_root, DemoConfig(per_category=per_category, seed=seed), progress=progress)
    return True


def prepare(train: TrainConfig, model: ClassifierConfig):
    """Prepare (once) the TFDS shards of ``train.data_root`` at the model's frame count and size."""
    from data_interface_for_model.prepare import prepare_dataset

    # The split has its own seed: changing the training seed must not change (and rebuild) the test set.
    return prepare_dataset(train.data_root, train.data_dir, num_frames=model.num_frames,
                           size=model.image_size, seed=train.split_seed)


def raw_dataset(train: TrainConfig, model: ClassifierConfig, split: str, batch_size: int, shuffle: bool,
                input_context: Optional[tf.distribute.InputContext] = None, include_id: bool = False,
                repeat: bool = False) -> tf.data.Dataset:
    """``({"text", "cover", "frames"[, "id"]}, label)`` batches of a prepared split."""
    from data_interface_for_model.tf_dataset import make_dataset

    # Unshuffled reads (evaluation, features, embeddings) are also deterministic, so two passes agree.
    return make_dataset(train.data_dir, split, batch_size, num_frames=model.num_frames, size=model.image_size,
                        shuffle=shuffle, repeat=repeat, seed=train.seed, input_context=input_context,
                        include_id=include_id, deterministic=not shuffle)


def raw_input_fn(train: TrainConfig, model: ClassifierConfig, split: str, global_batch_size: int,
                 training: bool) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
    """``InputContext -> dataset`` of a prepared split at the per-replica batch size (shuffled and repeated
    when ``training``), for ``strategy.distribute_datasets_from_function``."""

    def input_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return raw_dataset(train, model, split, context.get_per_replica_batch_size(global_batch_size),
                           shuffle=training, input_context=context, repeat=training)

    return input_fn


def split_size(train: TrainConfig, model: ClassifierConfig, split: str) -> int:
    """Number of examples in a prepared split (from the shards' known cardinality)."""
    dataset = raw_dataset(train, model, split, batch_size=1, shuffle=False)
    count = int(dataset.cardinality().numpy())
    if count < 0:  # unknown: count it
        count = sum(1 for _ in dataset)
    return count
