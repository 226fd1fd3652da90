"""The feature cache: with frozen encoders, each split's encoder outputs are computed once and the fusion
head trains on them (orders of magnitude faster than running MobileNetV2 on every frame every epoch)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from baseline_model.config import ModelConfig
from baseline_model.models.fusion_head import FEATURE_KEYS
from data_interface_for_model.atomic import atomic_output_path

logger = logging.getLogger(__name__)


def cache_key(config: ModelConfig, data_dir: str) -> str:
    """Features depend on the encoders, the frame count and size, and the prepared data."""
    parts = {"text_preset": config.text_preset, "image_weights": config.image_weights,
             "num_frames": config.num_frames, "image_size": config.image_size,
             "text_sequence_length": config.text_sequence_length, "data_dir": os.path.abspath(data_dir)}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def compute_features(extractor, dataset: tf.data.Dataset,
                     progress: Optional[callable] = None) -> Dict[str, np.ndarray]:
    """Run the feature extractor over ``({"text","cover","frames"[,"id"]}, label)`` batches.

    Returns numpy arrays: the head's inputs (``FEATURE_KEYS``), ``label`` ``[N]`` and, when the dataset has
    ids, ``id`` ``[N]``.
    """
    chunks: Dict[str, list] = {}
    for features, labels in dataset:
        outputs = extractor.predict_on_batch({k: features[k] for k in ("text", "cover", "frames")})
        for key in FEATURE_KEYS:
            chunks.setdefault(key, []).append(np.asarray(outputs[key]))
        chunks.setdefault("label", []).append(labels.numpy())
        if "id" in features:
            chunks.setdefault("id", []).append(features["id"].numpy().astype(str))
        if progress:
            progress(int(labels.shape[0]))
    if not chunks:
        raise ValueError("no examples to compute features for")
    return {key: np.concatenate(value) for key, value in chunks.items()}


def load_or_compute(path: str, compute) -> Dict[str, np.ndarray]:
    """Read the cached arrays at ``path`` or compute and cache them (atomically)."""
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    arrays = compute()
    with atomic_output_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    logger.info("cached features at %s", path)
    return arrays


def features_dataset(arrays: Dict[str, np.ndarray], batch_size: int, shuffle: bool, seed: int = 0,
                     presence_override: Optional[np.ndarray] = None, repeat: bool = False,
                     input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """``(head inputs, label)`` batches from cached arrays.

    ``presence_override`` ``[3]`` masks modalities (single-modality evaluation); ``input_context`` shards
    the examples between input pipelines (``batch_size`` is then the per-replica batch)."""
    inputs = {key: arrays[key].astype(np.float32) for key in FEATURE_KEYS}
    if presence_override is not None:
        inputs["presence"] = inputs["presence"] * np.asarray(presence_override, np.float32)[None, :]
    dataset = tf.data.Dataset.from_tensor_slices((inputs, arrays["label"].astype(np.int32)))
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle:
        dataset = dataset.shuffle(len(arrays["label"]), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
