"""The ``xinpianchang`` TFDS builder: a local layout root -> prepared, randomly addressable shards.

There is no download step: the layout root (``ROOT/<label>/<mp4_id>/<mp4_id>.mp4|.jpeg|.txt``) is the
builder's manual directory. Building runs in three passes:

1. scan the root with :class:`~data_interface_for_model.LayoutReader`; items with a missing or empty
   file, an unreadable ``.txt``, an unknown label folder or an empty brief are skipped and listed;
2. decode every item in worker processes (:mod:`data_interface_for_model.parallel`): ``num_frames``
   frames sampled uniformly by timestamp and the cover, short side resized to ``size`` and centre-cropped,
   JPEG-encoded, appended to a temporary cache file; a clip or cover that does not decode is skipped and
   listed (never fatal);
3. split the decoded items (stratified by label, fixed seed: :mod:`data_interface_for_model.splits`) and let
   TFDS write the examples from the cache (the JPEG bytes are stored as they are, not re-encoded).

Features of one example::

    id          Text      the mp4 id
    label       ClassLabel(31 names, ids as the original's video_label_to_id)
    brief       Text      the one-line description
    cover       Image     uint8 [size, size, 3], JPEG
    frames      Sequence(Image uint8 [size, size, 3], JPEG, length num_frames)
    num_frames  int32     how many of the frames are real (short clips repeat their last frame)
    duration    float32   the clip's duration in seconds

An **audio config** (``frames{T}_size{S}_audio{P}``, :func:`make_config` with ``audio_patches=P``) adds the
sound track as musicnn's input (:mod:`data_interface_for_model.audio`)::

    audio          Tensor float32 [P, 187, 96]  log-mel of P 3 s windows sampled like the frames
    audio_present  bool                         False: no audio stream, silence or an undecodable track
                                                (a missing modality, the log-mel is then all zeros)

The sound is decoded in a second pass of worker processes (PyAV, 16 kHz mono windows, log-mel in numpy:
the values of the ``tf.signal`` version within 1e-5, without importing TensorFlow in the workers nor, for
this, in the build). A clip whose sound is missing or corrupt is kept, with
``audio_present=False``; only its pictures decide whether an item is skipped. Configs without audio are
built exactly as before.

Use :func:`data_interface_for_model.prepare.prepare_dataset` (or ``xinpianchang data
prepare``) rather than this class directly: it also records the skipped items, reuses a finished build and
adds the TFRecord copy that tf.data reads.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import struct
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from data_interface_for_model import defaults
from data_interface_for_model.categories import LABELS
from data_interface_for_model.decoding import DEFAULT_JPEG_QUALITY, EncodedItem
from data_interface_for_model.layout import LayoutItem, LayoutReader
from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.parallel import EncodeTask, default_chunksize, encode_all
from data_interface_for_model.splits import SPLIT_NAMES, check_fractions, stratified_split

logger = logging.getLogger(__name__)

NAME = "xinpianchang"


def config_name(num_frames: int, size: int, audio_patches: int = 0) -> str:
    """The builder config name for ``num_frames`` frames of ``size x size``: ``frames8_size112``; with
    ``audio_patches`` log-mel windows of the sound track: ``frames8_size112_audio2``."""
    name = f"frames{int(num_frames)}_size{int(size)}"
    return f"{name}_audio{int(audio_patches)}" if audio_patches else name


@dataclasses.dataclass(eq=False)
class XinpianchangConfig(tfds.core.BuilderConfig):
    """A frame count and a picture size (frames and cover are ``size x size``), and how many log-mel
    windows of the sound track each example carries (0: no audio features)."""

    num_frames: int = defaults.FRAMES
    size: int = defaults.IMAGE_SIZE
    audio_patches: int = 0


def make_config(num_frames: int, size: int, audio_patches: int = 0) -> XinpianchangConfig:
    """The config for ``num_frames`` frames at ``size`` (and ``audio_patches`` sound windows): a predefined
    one, or a new one made on the fly."""
    if num_frames < 1 or size < 8 or audio_patches < 0:
        raise ValueError(f"need num_frames >= 1, size >= 8 and audio_patches >= 0, got {num_frames}, {size} "
                         f"and {audio_patches}")
    name = config_name(num_frames, size, audio_patches)
    for config in Builder.BUILDER_CONFIGS:
        if config.name == name:
            return config
    description = f"{num_frames} frames and the cover at {size}x{size}"
    if audio_patches:
        description += f", log-mel of {audio_patches} 3 s windows of the sound track"
    return XinpianchangConfig(name=name, num_frames=num_frames, size=size, audio_patches=audio_patches,
                              description=description)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """How a build runs (not part of the config's identity).

    Attributes:
      fractions: train, validation, test shares.
      seed: the split seed.
      workers: decoding processes (0: one per core, 1: in this process).
      quality: JPEG quality of the stored frames and cover.
      progress: show a progress bar while decoding.
      max_image_pixels: a cover whose header declares more pixels is skipped (decode_error).
      parse_limits: bounds on each item's ``.txt``.
      labels: the dataset's label set, class ``i`` is ``labels[i]`` (default: the 31 categories; see
        :mod:`data_interface_for_model.label_set`).
    """

    fractions: Tuple[float, float, float] = defaults.SPLIT_FRACTIONS
    seed: int = 0
    workers: int = 0
    quality: int = DEFAULT_JPEG_QUALITY
    progress: bool = True
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS
    labels: Optional[Tuple[str, ...]] = None


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """An item left out of the build: where, what kind of defect, and the message."""

    path: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


class _Cache:
    """An append-only file of encoded items (length-prefixed JSON header + JPEG bytes); read back by offset."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, "items.bin")
        self._handle = open(self.path, "wb")

    def append(self, item: EncodedItem) -> int:
        header = json.dumps({"n": item.num_real, "d": item.duration_s,
                             "sizes": [len(item.cover)] + [len(f) for f in item.frames]}).encode("utf-8")
        offset = self._handle.tell()
        self._handle.write(struct.pack("<I", len(header)) + header + item.cover + b"".join(item.frames))
        return offset

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def read(self, handle, offset: int) -> EncodedItem:
        handle.seek(offset)
        (length,) = struct.unpack("<I", handle.read(4))
        header = json.loads(handle.read(length))
        blobs = [handle.read(size) for size in header["sizes"]]
        return EncodedItem(blobs[0], tuple(blobs[1:]), int(header["n"]), float(header["d"]))


def audio_shape(patches: int) -> Tuple[int, int, int]:
    """The ``audio`` feature's shape: ``[patches, 187 frames, 96 mel bands]`` (musicnn's patches)."""
    from data_interface_for_model.audio import N_MELS, PATCH_FRAMES

    return (int(patches), PATCH_FRAMES, N_MELS)


class _AudioCache:
    """Fixed-size records of (present flag, float32 log-mel) in item order, looked up by the item's offset
    in the picture cache."""

    def __init__(self, folder: str, patches: int):
        self.path = os.path.join(folder, "audio.bin")
        self.shape = audio_shape(patches)
        self._size = 1 + int(np.prod(self.shape)) * 4
        self._index: Dict[int, int] = {}
        self._handle = open(self.path, "wb")

    def append(self, mel: np.ndarray, present: bool) -> None:
        self._index[len(self._index)] = self._handle.tell()
        self._handle.write(bytes([bool(present)]) + np.ascontiguousarray(mel, "<f4").tobytes())

    def bind(self, picture_offsets: Sequence[int]) -> None:
        """Key the records (appended in the order of ``picture_offsets``) by those offsets."""
        self._index = {offset: self._index[i] for i, offset in enumerate(picture_offsets)}

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def read(self, handle, picture_offset: int) -> Tuple[np.ndarray, bool]:
        handle.seek(self._index[picture_offset])
        data = handle.read(self._size)
        return np.frombuffer(data[1:], "<f4").reshape(self.shape), bool(data[0])


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the xinpianchang multimodal short videos, from a local layout root."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Frames sampled uniformly by timestamp, stratified splits."}
    BUILDER_CONFIGS = [
        XinpianchangConfig(name=config_name(defaults.FRAMES, defaults.IMAGE_SIZE), num_frames=defaults.FRAMES,
                           size=defaults.IMAGE_SIZE,
                           description=f"{defaults.FRAMES} frames and the cover at "
                                       f"{defaults.IMAGE_SIZE}x{defaults.IMAGE_SIZE}"),
        XinpianchangConfig(name=config_name(16, 224), num_frames=16, size=224,
                           description="16 frames and the cover at 224x224"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Point the manual dir at a layout root: ROOT/<label>/<mp4_id>/<mp4_id>.mp4|.jpeg|.txt "
        "(download it with data_download_tools, or make a demo with `xinpianchang data make-demo`)."
    )

    def __init__(self, *, build_options: Optional[BuildOptions] = None, **kwargs):
        self.build_options = build_options or BuildOptions()  # before TFDS calls _info() (the label names)
        super().__init__(**kwargs)
        check_fractions(self.build_options.fractions)
        #: Items left out of the last build, with the reason.
        self.skipped: List[SkippedItem] = []
        #: Items found complete in the layout at the last build (before briefs and decoding are checked).
        self.num_found = 0
        self._cache: Optional[_Cache] = None
        self._cache_dir: Optional[str] = None
        #: Items whose sound is missing in the last build of an audio config: ``(item key, reason)``.
        self.audio_missing: List[Tuple[str, str]] = []
        self._audio: Optional[_AudioCache] = None

    def _info(self) -> tfds.core.DatasetInfo:
        config: XinpianchangConfig = self.builder_config
        picture = (config.size, config.size, 3)
        features = {
            "id": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(self.build_options.labels or LABELS)),
            "brief": tfds.features.Text(),
            "cover": tfds.features.Image(shape=picture, encoding_format="jpeg"),
            "frames": tfds.features.Sequence(
                tfds.features.Image(shape=picture, encoding_format="jpeg"), length=config.num_frames),
            "num_frames": tfds.features.Scalar(dtype=np.int32),
            "duration": tfds.features.Scalar(dtype=np.float32),
        }
        if config.audio_patches:
            features["audio"] = tfds.features.Tensor(shape=audio_shape(config.audio_patches), dtype=np.float32)
            features["audio_present"] = tfds.features.Scalar(dtype=np.bool_)
        return self.dataset_info_from_configs(
            description="xinpianchang short videos: brief, cover and sampled frames, 31 categories.",
            features=tfds.features.FeaturesDict(features),
            supervised_keys=None,
            homepage="https://www.xinpianchang.com/",
        )

    # ------------------------------------------------------------------------------------------ build
    def _download_and_prepare(self, dl_manager, download_config=None):  # pylint: disable=arguments-differ
        self._cache_dir = tempfile.mkdtemp(prefix=".xinpianchang-cache-", dir=os.fspath(self._data_dir_root))
        try:
            return super()._download_and_prepare(dl_manager, download_config=download_config)
        finally:
            for cache in (self._cache, self._audio):
                if cache is not None:
                    cache.close()
            shutil.rmtree(self._cache_dir, ignore_errors=True)
            self._cache = self._audio = None

    def _scan(self, root: str) -> List[LayoutItem]:
        reader = LayoutReader(root, limits=self.build_options.parse_limits, known_labels=self.build_options.labels)
        items = []
        for item in reader:
            self.num_found += 1
            if not item.brief.strip():
                self.skipped.append(SkippedItem(item.txt_path or item.folder, "empty_brief",
                                                f"item {item.label}/{item.mp4_id} has an empty brief"))
                continue
            items.append(item)
        seen = set()
        for problem in reader.problems:  # an empty file is also reported as missing: list it once
            if problem.path not in seen:
                seen.add(problem.path)
                self.skipped.append(SkippedItem(problem.path, problem.kind, problem.message))
        return items

    def _decode(self, items: Sequence[LayoutItem]) -> Dict[int, int]:
        """Decode every item into the cache; ``{item index: cache offset}`` for those that decoded."""
        config: XinpianchangConfig = self.builder_config
        options = self.build_options
        tasks = [EncodeTask(item.video_path, item.cover_path, config.num_frames, config.size, options.quality,
                            options.max_image_pixels)
                 for item in items]
        self._cache = _Cache(self._cache_dir)
        offsets: Dict[int, int] = {}
        results = encode_all(tasks, options.workers, default_chunksize(len(tasks), options.workers))
        bar = tqdm(results, total=len(tasks), desc=f"decoding {config.name}", unit="item",
                   disable=not options.progress)
        for index, (_, result) in enumerate(bar):
            if isinstance(result, str):
                item = items[index]
                self.skipped.append(SkippedItem(item.folder, "decode_error", result))
                logger.warning("skipped %s/%s: %s", item.label, item.mp4_id, result)
            else:
                offsets[index] = self._cache.append(result)
        self._cache.close()
        if config.audio_patches:
            self._decode_audio(items, offsets)
        return offsets

    def _decode_audio(self, items: Sequence[LayoutItem], offsets: Dict[int, int]) -> None:
        """The sound of every item that decoded (windows and their log-mel in worker processes), appended to
        the audio cache in the order of ``offsets``."""
        from data_interface_for_model import audio

        config: XinpianchangConfig = self.builder_config
        options = self.build_options
        kept = list(offsets)
        self._audio = _AudioCache(self._cache_dir, config.audio_patches)
        results = audio.map_clips(audio.clip_log_mel, [items[i].video_path for i in kept],
                                  audio.AudioConfig(patches=config.audio_patches), options.workers)
        bar = tqdm(zip(kept, results), total=len(kept), desc=f"sound of {config.name}", unit="item",
                   disable=not options.progress)
        for index, (mel, present, reason) in bar:
            if not present:
                self.audio_missing.append((f"{items[index].label}/{items[index].mp4_id}", reason))
            self._audio.append(mel, present)
        self._audio.close()
        self._audio.bind([offsets[i] for i in kept])
        if self.audio_missing:
            reasons = collections.Counter(reason.split(":")[0] for _, reason in self.audio_missing)
            logger.warning("%d of %d items have no sound (a missing modality): %s", len(self.audio_missing),
                           len(kept), ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))

    def _split_generators(self, dl_manager):
        root = os.fspath(dl_manager.manual_dir)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"layout root {root!r} is not a folder")
        self.skipped = []
        self.num_found = 0
        self.audio_missing = []
        items = self._scan(root)
        offsets = self._decode(items)
        keys = {index: f"{items[index].label}/{items[index].mp4_id}" for index in offsets}
        assignment = stratified_split(((keys[i], items[i].label) for i in offsets),
                                      self.build_options.fractions, self.build_options.seed)
        per_split: Dict[str, List[int]] = {name: [] for name in SPLIT_NAMES}
        for index in offsets:
            per_split[assignment[keys[index]]].append(index)
        generators = {}
        for name in SPLIT_NAMES:
            if per_split[name]:
                generators[name] = self._generate_examples([(items[i], offsets[i]) for i in per_split[name]])
            else:
                logger.warning("split %r is empty (%d items decoded): it is left out", name, len(offsets))
        if not generators:
            raise ValueError(f"no item of {root!r} could be prepared ({len(self.skipped)} skipped)")
        return generators

    def _generate_examples(self, entries: Sequence[Tuple[LayoutItem, int]]) -> Iterator[Tuple[str, dict]]:
        with contextlib.ExitStack() as stack:
            handle = stack.enter_context(open(self._cache.path, "rb"))
            sound = stack.enter_context(open(self._audio.path, "rb")) if self._audio is not None else None
            for item, offset in entries:
                encoded = self._cache.read(handle, offset)
                example = {
                    "id": item.mp4_id,
                    "label": item.label,
                    "brief": item.brief,
                    "cover": encoded.cover,
                    "frames": list(encoded.frames),
                    "num_frames": np.int32(encoded.num_real),
                    "duration": np.float32(encoded.duration_s),
                }
                if sound is not None:
                    example["audio"], example["audio_present"] = self._audio.read(sound, offset)
                yield f"{item.label}/{item.mp4_id}", example
