"""``tf.data`` pipelines for TensorFlow code: from prepared shards (fast) or straight from a layout root.

Both yield ``(features, label)`` batches::

    features = {
        "text":   tf.string  [B]                the brief
        "cover":  tf.float32 [B, S, S, 3]       RGB in [0, 1]
        "frames": tf.float32 [B, T, S, S, 3]    RGB in [0, 1]; frames past num_frames repeat the last real one
        "id":     tf.string  [B]                (only with include_id=True)
        "num_frames": tf.int32 [B]              (only with include_num_frames=True) real frames per clip
        "audio":  tf.float32 [B, P, 187, 96]    (only with audio_patches=P) log-mel of P 3 s windows of the
                                                sound track, musicnn's input; zeros when the sound is missing
        "audio_present": tf.bool [B]            (only with audio_patches=P) False: no audio stream, silence or
                                                an undecodable track (a missing modality)
    }
    label = tf.int64 [B]                         class id 0-30 (the original's video_label_to_id)

**Normalisation**: pixels are float32 in [0, 1] (``uint8 / 255``), nothing more. Each model applies its
own normalisation on top (MobileNet-style backbones map to [-1, 1] with ``x * 2 - 1``; ImageNet mean/std
models subtract and divide), so the input pipeline does not bake one model's choice in.

:func:`make_dataset` reads the TFRecord copy of the prepared shards (see :mod:`.prepare`): after reading,
everything is pure TF ops (JPEG decode, stack, cast): no ``py_function``, so it runs on TPU hosts and in
``tf.distribute`` input pipelines. :func:`make_raw_dataset` decodes mp4s with PyAV inside
``tf.numpy_function``: it needs no preparation but is much slower (every epoch decodes every clip again,
holding the GIL for part of it) and cannot run where Python functions cannot (TPU input pipelines).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from data_interface_for_model import audio as audio_lib
from data_interface_for_model import defaults
from data_interface_for_model.decoding import DecodeError, load_cover, sample_frames
from data_interface_for_model.layout import LayoutReader
from data_interface_for_model.splits import SPLIT_NAMES, stratified_split

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 1024


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def _batch_size(batch_size: int, input_context: Optional[tf.distribute.InputContext]) -> int:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


def _to_float(features: dict, label: tf.Tensor) -> Tuple[dict, tf.Tensor]:
    """uint8 pictures -> float32 in [0, 1], after batching (one vectorised op per batch)."""
    out = dict(features)
    for key in ("cover", "frames"):
        out[key] = tf.cast(features[key], tf.float32) * (1.0 / 255.0)
    return out, label


def _succeeded(features: dict, label: tf.Tensor, ok: tf.Tensor) -> tf.Tensor:
    return ok


def _drop_flag(features: dict, label: tf.Tensor, ok: tf.Tensor) -> Tuple[dict, tf.Tensor]:
    return features, label


def _finish(ds: tf.data.Dataset, batch_size: int, *, shuffle: bool, shuffle_buffer: int, repeat: bool,
            seed: int, deterministic: bool, drop_remainder: bool, decode, flagged: bool = False) -> tf.data.Dataset:
    """(repeat ->) shuffle (before batching) -> parallel decode -> batch -> to float -> prefetch.

    With ``flagged``, ``decode`` returns ``(features, label, ok)`` and the examples that failed are dropped.
    """
    if repeat:
        # indefinitely: the caller sets steps_per_epoch, Keras' epochs stay the caller's. Repeating before
        # shuffling lets the buffer run across epoch boundaries instead of refilling (a stall) at each one.
        ds = ds.repeat()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if flagged:
        ds = ds.filter(_succeeded).map(_drop_flag)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
                  deterministic=deterministic)
    ds = ds.map(_to_float, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.prefetch(AUTOTUNE).with_options(_options(deterministic))


def make_dataset(
    data_dir: Any,
    split: str,
    batch_size: int,
    *,
    num_frames: int = defaults.FRAMES,
    size: int = defaults.IMAGE_SIZE,
    shuffle: bool = True,
    repeat: bool = False,
    deterministic: bool = False,
    seed: int = 0,
    input_context: Optional[tf.distribute.InputContext] = None,
    include_id: bool = False,
    include_num_frames: bool = False,
    drop_remainder: bool = False,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    audio_patches: int = 0,
) -> tf.data.Dataset:
    """Batches of the prepared ``xinpianchang`` dataset (config ``frames{num_frames}_size{size}``, or
    ``frames{num_frames}_size{size}_audio{audio_patches}``).

    Args:
      data_dir: the TFDS data dir given to ``prepare``.
      split: ``"train"``, ``"validation"``, ``"test"`` or any TFDS split string (``"train[:10%]"``).
      batch_size: the global batch size; with ``input_context`` each pipeline batches
        ``input_context.get_per_replica_batch_size(batch_size)``.
      num_frames, size: which prepared config to read.
      shuffle: shuffle files and examples (examples are shuffled before batching).
      repeat: repeat indefinitely (then pass ``steps_per_epoch`` to ``fit``); never a fixed epoch count.
      deterministic: keep a fixed element order (slower); with a fixed ``seed`` the same run gives the same
        batches.
      seed: shuffle seed.
      input_context: from ``strategy.distribute_datasets_from_function``: pipeline ``input_pipeline_id``
        of ``num_input_pipelines`` reads only its own even, disjoint share of the split (sliced at read
        time with ``tfds.even_splits``, so no pipeline reads the others' records).
      include_id: add ``features["id"]``.
      include_num_frames: add ``features["num_frames"]`` (real frames per clip).
      drop_remainder: drop the last smaller batch (static batch dimension, needed on TPU).
      shuffle_buffer: examples in the shuffle buffer (encoded JPEGs, so it is cheap).
      audio_patches: read the audio config with this many sound windows and add ``features["audio"]`` and
        ``features["audio_present"]``.

    Returns:
      ``tf.data.Dataset`` of ``(features, label)``; see the module docstring for shapes and value ranges.
    """
    import tensorflow_datasets as tfds

    from data_interface_for_model.prepare import load_builder

    builder = load_builder(data_dir, num_frames, size, file_format="tfrecord", audio_patches=audio_patches)
    per_pipeline = _batch_size(batch_size, input_context)
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False, add_tfds_id=False,
                                  options=_options(deterministic))
    if input_context is not None and input_context.num_input_pipelines > 1:
        # each pipeline reads only its own 1/n of the split's examples (an even, disjoint slice chosen at
        # read time: the same partition as `dataset.shard(n, i)` up to order, without reading the rest)
        split = tfds.even_splits(split, n=input_context.num_input_pipelines)[input_context.input_pipeline_id]
    ds = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config,
                            decoders={"cover": tfds.decode.SkipDecoding(), "frames": tfds.decode.SkipDecoding()})

    def decode(example):
        frames = tf.stack([tf.io.decode_jpeg(example["frames"][i], channels=3) for i in range(num_frames)])
        cover = tf.io.decode_jpeg(example["cover"], channels=3)
        features = {
            "text": example["brief"],
            "cover": tf.ensure_shape(cover, (size, size, 3)),
            "frames": tf.ensure_shape(frames, (num_frames, size, size, 3)),
        }
        if include_id:
            features["id"] = example["id"]
        if include_num_frames:
            features["num_frames"] = example["num_frames"]
        if audio_patches:
            features["audio"] = example["audio"]
            features["audio_present"] = example["audio_present"]
        return features, example["label"]

    return _finish(ds, per_pipeline, shuffle=shuffle, shuffle_buffer=shuffle_buffer, repeat=repeat, seed=seed,
                   deterministic=deterministic, drop_remainder=drop_remainder, decode=decode)


def make_raw_dataset(
    root: Any,
    batch_size: int,
    num_frames: int = defaults.FRAMES,
    size: int = defaults.IMAGE_SIZE,
    *,
    split: Optional[str] = None,
    splits: Sequence[float] = defaults.SPLIT_FRACTIONS,
    split_seed: int = 0,
    shuffle: bool = True,
    repeat: bool = False,
    deterministic: bool = False,
    seed: int = 0,
    input_context: Optional[tf.distribute.InputContext] = None,
    include_id: bool = False,
    include_num_frames: bool = False,
    drop_remainder: bool = False,
    audio_patches: int = 0,
) -> tf.data.Dataset:
    """The same batches as :func:`make_dataset`, decoded from a layout root on the fly (no preparation).

    Slower: every epoch samples every clip again with PyAV through ``tf.numpy_function`` (see the
    README's benchmark), and it cannot run where Python cannot (TPU input pipelines). Items that fail to
    decode are logged and dropped from the stream. ``split`` (with ``splits``/``split_seed``) selects the
    same stratified share of the layout's items that ``prepare`` would (``None``: every item).
    ``audio_patches`` adds the sound windows (decoded with PyAV, log-mel in ``tf.signal``) as ``prepare``
    stores them; a clip whose sound is missing or undecodable keeps its place with ``audio_present=False``.
    """
    items = list(LayoutReader(os.fspath(root)))
    if split is not None:
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES} or None, got {split!r}")
        assignment = stratified_split(((f"{i.label}/{i.mp4_id}", i.label) for i in items), splits, split_seed)
        items = [i for i in items if assignment[f"{i.label}/{i.mp4_id}"] == split]
    if not items:
        raise ValueError(f"no complete item under {os.fspath(root)!r}" + (f" in split {split!r}" if split else ""))
    per_pipeline = _batch_size(batch_size, input_context)
    ds = tf.data.Dataset.from_tensor_slices({
        "video": [i.video_path for i in items],
        "cover": [i.cover_path for i in items],
        "text": [i.brief for i in items],
        "id": [i.mp4_id for i in items],
        "label": np.asarray([i.label_id for i in items], np.int64),
    })
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def load(video_path: bytes, cover_path: bytes):
        try:
            frames, real = sample_frames(video_path.decode(), num_frames, size)
            cover = load_cover(cover_path.decode(), size)
        except DecodeError as exc:
            logger.warning("dropped from the stream: %s", exc)
            blank = np.zeros((size, size, 3), np.uint8)
            return np.zeros((num_frames, size, size, 3), np.uint8), blank, np.int32(0), False
        return frames, cover, np.int32(real), True

    def load_sound(video_path: bytes):
        sampled = audio_lib.sample_audio_or_missing(video_path.decode(), audio_lib.AudioConfig(audio_patches))
        return sampled.waveform, np.bool_(sampled.present)

    def decode(item):
        frames, cover, real, ok = tf.numpy_function(load, [item["video"], item["cover"]],
                                                    [tf.uint8, tf.uint8, tf.int32, tf.bool], stateful=False)
        features = {"text": item["text"], "cover": tf.ensure_shape(cover, (size, size, 3)),
                    "frames": tf.ensure_shape(frames, (num_frames, size, size, 3))}
        if include_id:
            features["id"] = item["id"]
        if include_num_frames:
            features["num_frames"] = tf.ensure_shape(real, ())
        if audio_patches:
            waveform, present = tf.numpy_function(load_sound, [item["video"]], [tf.float32, tf.bool],
                                                  stateful=False)
            waveform = tf.ensure_shape(waveform, (audio_patches, audio_lib.PATCH_SAMPLES))
            present = tf.ensure_shape(present, ())
            # as prepare stores it (a missing track's windows are zeros, whose log-mel is exactly zero)
            features["audio"] = audio_lib.log_mel(waveform)
            features["audio_present"] = present
        return features, item["label"], tf.ensure_shape(ok, ())

    return _finish(ds, per_pipeline, shuffle=shuffle, shuffle_buffer=len(items), repeat=repeat, seed=seed,
                   deterministic=deterministic, drop_remainder=drop_remainder, decode=decode, flagged=True)
