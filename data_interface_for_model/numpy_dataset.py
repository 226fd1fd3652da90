"""Map-style numpy datasets for PyTorch (or any) code: ``len(ds)``, ``ds[i] -> dict of numpy arrays``.

Every example is::

    {"text": str, "cover": uint8 [S, S, 3], "frames": uint8 [T, S, S, 3], "num_frames": int (real frames),
     "label": int (0-30), "id": str}

and with ``audio_patches=P`` (the sound track, :mod:`data_interface_for_model.audio`)::

    {..., "audio": float32 [P, 187, 96] (musicnn's log-mel of P 3 s windows; zeros when missing),
     "audio_present": bool (False: no audio stream, silence or an undecodable track)}

Pixels stay uint8 RGB (convert with ``x / 255`` and apply your model's normalisation).

* :class:`PreparedNumpyDataset` reads the prepared ArrayRecord shards by index through TFDS's random-access
  data source (no ``tf.data``; TensorFlow is not imported by it: TFDS parses the records and decodes the
  JPEGs with NumPy/Pillow, though the ``tensorflow-datasets`` package must be installed).
* :class:`RawNumpyDataset` decodes straight from a layout root with PyAV and Pillow and works where
  TensorFlow is not installed at all.

Both are safe to use from ``torch.utils.data.DataLoader`` worker processes (files are opened lazily in
each process).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from data_interface_for_model import defaults
from data_interface_for_model.decoding import DecodeError, load_cover, sample_clip
from data_interface_for_model.layout import LayoutItem, LayoutReader
from data_interface_for_model.splits import SPLIT_NAMES, stratified_split

logger = logging.getLogger(__name__)

Example = Dict[str, Any]


def _check_index(index: int, length: int) -> int:
    index = int(index)
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length}")
    return index


class PreparedNumpyDataset:
    """The prepared ``xinpianchang`` split as a map-style dataset.

    ArrayRecord's C++ library is not fork-safe: once a process has read or written any ArrayRecord file,
    processes forked from it crash when they read one (a segmentation fault). So the constructor opens no
    file and ``prepare_dataset`` builds in a spawned process: ``DataLoader(num_workers=2)`` with the default
    fork start works as long as the parent reads no example before its workers start (this object raises a
    clear error in a forked worker if it was read in the parent). A parent that reads examples itself should
    pass ``multiprocessing_context="spawn"`` (or ``"forkserver"``) to the ``DataLoader``.

    Args:
      data_dir: the TFDS data dir given to ``prepare``.
      split: ``"train"``, ``"validation"`` or ``"test"`` (or a TFDS split string such as ``"train[:50%]"``).
      num_frames, size: which prepared config to read (``frames{T}_size{S}``).
      audio_patches: read the audio config ``frames{T}_size{S}_audio{P}`` and add ``audio`` and
        ``audio_present`` to every example.
    """

    def __init__(self, data_dir: Any, split: str, num_frames: int = defaults.FRAMES,
                 size: int = defaults.IMAGE_SIZE, *, audio_patches: int = 0):
        self.data_dir = os.fspath(data_dir)
        self.split = split
        self.num_frames = num_frames
        self.size = size
        self.audio_patches = audio_patches
        from data_interface_for_model.prepare import load_builder

        # the length comes from the dataset's metadata: no ArrayRecord file is opened in this process until
        # an example is read (ArrayRecord is not fork-safe; see the class docstring)
        builder = load_builder(self.data_dir, num_frames, size, file_format="array_record",
                               audio_patches=audio_patches)
        self._length = int(builder.info.splits[split].num_examples)
        self._source = None
        self._pid: Optional[int] = None

    def _data_source(self):
        if self._source is not None and self._pid != os.getpid():
            raise RuntimeError(
                "this PreparedNumpyDataset was read in the parent process before DataLoader forked its workers, "
                "and ArrayRecord's reader is not fork-safe: create the DataLoader before reading examples in "
                "the parent, or pass multiprocessing_context='spawn' (or 'forkserver') to the DataLoader")
        if self._source is None:
            from data_interface_for_model.prepare import load_builder

            builder = load_builder(self.data_dir, self.num_frames, self.size, file_format="array_record",
                                   audio_patches=self.audio_patches)
            self._source = builder.as_data_source(split=self.split)
            self._pid = os.getpid()
        return self._source

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_source"] = None  # readers do not cross process boundaries (spawned workers open their own)
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Example:
        record = self._data_source()[_check_index(index, self._length)]
        example = {
            "text": record["brief"].decode("utf-8"),
            "cover": np.asarray(record["cover"], np.uint8),
            "frames": np.stack([np.asarray(f, np.uint8) for f in record["frames"]]),
            "num_frames": int(record["num_frames"]),
            "label": int(record["label"]),
            "id": record["id"].decode("utf-8"),
        }
        if self.audio_patches:
            example["audio"] = np.asarray(record["audio"], np.float32)
            example["audio_present"] = bool(record["audio_present"])
        return example


class RawNumpyDataset:
    """A layout root as a map-style dataset, decoding each item on access (PyAV + Pillow, no TensorFlow).

    Args:
      root: the layout root.
      num_frames, size: frames sampled per clip (uniform by timestamp, padded) and picture side.
      split: ``None`` for every item, or ``"train"``/``"validation"``/``"test"``: the same stratified
        assignment ``prepare`` uses (``splits``, ``split_seed``), over the layout's complete items.
      on_error: ``"raise"`` (a :class:`~data_interface_for_model.decoding.DecodeError` naming the file) or
        ``"next"`` (log it and return the next item that decodes instead).
      audio_patches: add ``audio`` and ``audio_present``, computed as ``prepare`` does
        (:func:`~data_interface_for_model.audio.clip_log_mel`). A missing or undecodable sound track is a
        missing modality, never an error.

    Slower than :class:`PreparedNumpyDataset`: every access decodes the clip again.
    """

    def __init__(self, root: Any, num_frames: int = defaults.FRAMES, size: int = defaults.IMAGE_SIZE, *,
                 split: Optional[str] = None, splits: Sequence[float] = defaults.SPLIT_FRACTIONS, split_seed: int = 0,
                 on_error: str = "raise", audio_patches: int = 0):
        if on_error not in ("raise", "next"):
            raise ValueError(f"on_error must be 'raise' or 'next', got {on_error!r}")
        self.root = os.fspath(root)
        self.num_frames = num_frames
        self.size = size
        self.on_error = on_error
        self.audio_patches = audio_patches
        reader = LayoutReader(self.root)
        items: List[LayoutItem] = list(reader)
        self.problems = reader.problems
        if split is not None:
            if split not in SPLIT_NAMES:
                raise ValueError(f"split must be one of {SPLIT_NAMES} or None, got {split!r}")
            assignment = stratified_split(((f"{i.label}/{i.mp4_id}", i.label) for i in items), splits, split_seed)
            items = [i for i in items if assignment[f"{i.label}/{i.mp4_id}"] == split]
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Example:
        """Decode item ``index``; raises :class:`DecodeError` naming the file."""
        item = self.items[_check_index(index, len(self.items))]
        clip = sample_clip(item.video_path, self.num_frames, self.size)
        example = {
            "text": item.brief,
            "cover": load_cover(item.cover_path, self.size),
            "frames": clip.frames,
            "num_frames": clip.num_real,
            "label": item.label_id,
            "id": item.mp4_id,
        }
        if self.audio_patches:
            from data_interface_for_model import audio

            example["audio"], example["audio_present"], _ = audio.clip_log_mel(
                item.video_path, audio.AudioConfig(self.audio_patches))
        return example

    def __getitem__(self, index: int) -> Example:
        index = _check_index(index, len(self.items))
        if self.on_error == "raise":
            return self.load(index)
        for step in range(len(self.items)):
            try:
                return self.load((index + step) % len(self.items))
            except DecodeError as exc:
                logger.warning("skipped: %s", exc)
        raise DecodeError(f"no item under {self.root} decodes")
