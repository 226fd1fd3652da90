"""Prepare the ``xinpianchang`` TFDS dataset once from a layout root; every later read uses the shards.

``prepare_dataset(root, data_dir, num_frames=T, size=S)`` (defaults in :mod:`defaults`: 8 frames of 112 px) builds
``data_dir/xinpianchang/frames{T}_size{S}/<version>/`` with:

* ``xinpianchang-{split}.array_record-*``: the shards TFDS writes (random access: the numpy/PyTorch path);
* ``xinpianchang-{split}.tfrecord-*``: the same serialized examples, record for record, as TFRecord files,
  registered as an alternative file format (TFDS cannot read ArrayRecord into ``tf.data`` without Python
  in the loop; TFRecord is read by pure TF ops, which TPU input pipelines and ``tf.data`` speed need);
* ``prepare_report.json``: the arguments, per-split counts and every skipped item with its reason.

A second call with the same arguments finds the report and returns it without rebuilding; a call with
different split fractions, seed, root or JPEG quality rebuilds that config (``force=True`` always does).

The data dir may also be a URL that ``tf.io.gfile`` reads (``gs://bucket/tfds``; any registered file system)
holding a finished build (made with ``prepare --runner``, :mod:`data_interface_for_model.beam_prepare`): the
report is read with ``tf.io.gfile``, the root compared as written, nothing is rebuilt, and the readers
(:func:`load_builder`, ``tf.data``) read the TFRecord shards there. Building into a URL needs Beam.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import glob
import json
import logging
import multiprocessing
import os
import shutil
import struct
import time
from typing import Any, Dict, List, Optional, Sequence

from data_interface_for_model import defaults
from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.decoding import DEFAULT_JPEG_QUALITY
from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.parallel import spawn_is_safe
from data_interface_for_model.splits import SPLIT_NAMES, check_fractions

logger = logging.getLogger(__name__)

REPORT_NAME = "prepare_report.json"
PathLike = Any


@dataclasses.dataclass
class PrepareReport:
    """What a preparation produced.

    Attributes:
      dataset_dir: the version folder holding the shards.
      config_name: ``frames{T}_size{S}``.
      num_frames, size: the config.
      root: the layout root it was built from (absolute).
      fractions, seed, quality: the build options.
      found: complete items found in the layout (before decoding).
      split_counts: examples written per split.
      skipped: ``{"path", "kind", "message"}`` for every item left out (layout defects, empty briefs,
        decode errors).
      seconds: how long the build took (of the original build when reused).
      reused: ``True`` when this call found a finished build and did nothing.
      labels: the label set, class ``i`` is ``labels[i]``; label_source: where it came from (``labels.txt``,
        ``xinpianchang`` or ``folders``; see :mod:`data_interface_for_model.label_set`).
    """

    dataset_dir: str
    config_name: str
    num_frames: int
    size: int
    root: str
    fractions: List[float]
    seed: int
    quality: int
    found: int
    split_counts: Dict[str, int]
    skipped: List[Dict[str, str]]
    seconds: float
    reused: bool = False
    labels: List[str] = dataclasses.field(default_factory=list)
    label_source: str = ""

    @property
    def num_examples(self) -> int:
        return sum(self.split_counts.values())

    @property
    def skipped_by_kind(self) -> Dict[str, int]:
        return dict(sorted(collections.Counter(s["kind"] for s in self.skipped).items()))

    @property
    def items_per_second(self) -> float:
        return self.num_examples / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: counts per split, skipped items by kind, rate, where."""
        counts = ", ".join(f"{name} {self.split_counts.get(name, 0)}" for name in SPLIT_NAMES)
        kinds = ", ".join(f"{k} {n}" for k, n in self.skipped_by_kind.items())
        skipped = f"skipped {len(self.skipped)}" + (f" ({kinds})" if kinds else "")
        how = "reused" if self.reused else f"built in {self.seconds:.1f} s ({self.items_per_second:.1f} items/s)"
        return f"{self.config_name}: {counts}; {skipped}; {how} -> {self.dataset_dir}"

    def matches(self, root: str, fractions: Sequence[float], seed: int, quality: int,
                labels: Optional[Sequence[str]] = None) -> bool:
        return (self.root == root and [float(f) for f in fractions] == [float(f) for f in self.fractions]
                and self.seed == seed and self.quality == quality
                and (labels is None or list(labels) == list(self.labels)))

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data.pop("reused")
        return json.dumps(data, indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "PrepareReport":
        data = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def is_url(path: PathLike) -> bool:
    """Whether ``path`` is a URL (``gs://bucket/tfds``, ``ram://...``): read with ``tf.io.gfile``, not ``os``."""
    return "://" in os.fspath(path)


def read_text(path: str) -> Optional[str]:
    """The text of a local file or of a URL (``tf.io.gfile``; TensorFlow is imported only for a URL), or None
    when there is no such file."""
    if not is_url(path):
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as handle:
        return handle.read()


def file_exists(path: str) -> bool:
    """``os.path.isfile`` for a local path, ``tf.io.gfile.exists`` for a URL."""
    if not is_url(path):
        return os.path.isfile(path)
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def glob_files(pattern: str) -> List[str]:
    """``glob.glob`` for a local pattern, ``tf.io.gfile.glob`` for a URL (unsorted)."""
    if not is_url(pattern):
        return glob.glob(pattern)
    import tensorflow as tf

    return list(tf.io.gfile.glob(pattern))


def file_identity(path: str) -> list:
    """``[name, size in bytes, modification time in ns]`` of a local file or a URL."""
    if not is_url(path):
        stat = os.stat(path)
        return [os.path.basename(path), stat.st_size, stat.st_mtime_ns]
    import tensorflow as tf

    stat = tf.io.gfile.stat(path)
    return [os.path.basename(path), int(stat.length), int(stat.mtime_nsec)]


def read_bytes(path: str) -> bytes:
    """The bytes of a URL (``tf.io.gfile``) or a local file."""
    if not is_url(path):
        with open(path, "rb") as handle:
            return handle.read()
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as handle:
        return handle.read()


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically: a local file through :func:`atomic_write`; a URL as a temporary
    object renamed into place (``tf.io.gfile``; parents made as needed)."""
    if not is_url(path):
        with atomic_write(path, "wb") as handle:
            handle.write(data)
        return
    import uuid

    import tensorflow as tf

    tf.io.gfile.makedirs(os.path.dirname(path))
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(temporary, "wb") as handle:
        handle.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def config_dir(data_dir: PathLike, num_frames: int, size: int, *, audio_patches: int = 0) -> str:
    """``data_dir/xinpianchang/frames{T}_size{S}`` (``..._audio{P}`` with sound windows)."""
    from data_interface_for_model.xinpianchang import NAME, config_name

    return os.path.join(os.fspath(data_dir), NAME, config_name(num_frames, size, audio_patches))


def find_dataset_dir(data_dir: PathLike, num_frames: int, size: int, *, audio_patches: int = 0) -> str:
    """The prepared version folder for this config (the highest version); FileNotFoundError if none."""
    from data_interface_for_model.xinpianchang import Builder

    folder = os.path.join(config_dir(data_dir, num_frames, size, audio_patches=audio_patches),
                          str(Builder.VERSION))
    if not file_exists(os.path.join(folder, "dataset_info.json")):
        audio = f" --audio --audio-windows {audio_patches}" if audio_patches else ""
        raise FileNotFoundError(
            f"no prepared dataset at {folder}: run `xinpianchang data prepare --data-root ROOT "
            f"--data-dir {os.fspath(data_dir)} --frames {num_frames} --image-size {size}{audio}` first")
    return folder


def prepared_labels(data_dir: PathLike, num_frames: int, size: int, *, audio_patches: int = 0) -> List[str]:
    """The label set of the prepared build (class ``i`` is ``labels[i]``): as its report recorded it, or the
    31 categories for a build made before label sets were recorded."""
    from data_interface_for_model.categories import LABELS

    text = read_text(os.path.join(find_dataset_dir(data_dir, num_frames, size, audio_patches=audio_patches),
                                  REPORT_NAME))
    labels = json.loads(text).get("labels") if text is not None else None
    return list(labels) if labels else list(LABELS)


def load_builder(data_dir: PathLike, num_frames: int, size: int, *, file_format: Optional[str] = None,
                 audio_patches: int = 0):
    """The prepared builder for ``frames{T}_size{S}`` (``..._audio{P}``) under ``data_dir``, set to read
    ``file_format`` (``"tfrecord"`` for ``tf.data``, ``"array_record"`` for random access; default: as
    written)."""
    from data_interface_for_model.xinpianchang import Builder, BuildOptions, make_config

    labels = prepared_labels(data_dir, num_frames, size, audio_patches=audio_patches)
    builder = Builder(config=make_config(num_frames, size, audio_patches), data_dir=os.fspath(data_dir),
                      build_options=BuildOptions(labels=tuple(labels)))
    if file_format is not None and builder.info.file_format.value != file_format:
        # (DatasetInfo restores alternative formats into its proto only, not into `alternative_file_formats`)
        available = {builder.info.file_format.value, *builder.info.as_proto.alternative_file_formats}
        if file_format not in available:
            raise FileNotFoundError(f"{builder.data_dir} has no {file_format} shards (has {sorted(available)}); "
                                    "prepare it again with this version of the package")
        builder.info.set_file_format(file_format, override=True, override_if_initialized=True)
    return builder


def _masked_crc32c(data: bytes) -> bytes:
    """The TFRecord checksum: CRC-32C, rotated and offset ("masked"), little-endian."""
    import google_crc32c

    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def write_tfrecord(path: str, records) -> int:
    """Write ``records`` (bytes) as a TFRecord file at ``path`` atomically; returns how many.

    The format (TensorFlow's ``tf.io.TFRecordWriter``, uncompressed) written without importing TensorFlow:
    per record, uint64 length, masked CRC-32C of the length, the data, masked CRC-32C of the data.
    """
    count = 0
    with atomic_write(path, "wb") as handle:
        for record in records:
            length = struct.pack("<Q", len(record))
            handle.write(length + _masked_crc32c(length) + record + _masked_crc32c(record))
            count += 1
    return count


def _array_records(shard: str, chunk: int = 256):
    from array_record.python import array_record_module

    reader = array_record_module.ArrayRecordReader(shard)
    try:
        total = reader.num_records()
        for start in range(0, total, chunk):  # bounded memory
            yield from reader.read(start, min(total, start + chunk))
    finally:
        reader.close()


def _add_tfrecord_copy(builder) -> None:
    """Write every ArrayRecord shard again as a TFRecord file and register the alternative format."""
    folder = os.fspath(builder.data_dir)
    for shard in sorted(glob.glob(os.path.join(folder, "*.array_record-*"))):
        write_tfrecord(shard.replace(".array_record-", ".tfrecord-"), _array_records(shard))
    if "tfrecord" not in builder.info.as_proto.alternative_file_formats:
        builder.info.add_alternative_file_format("tfrecord")
    builder.info.write_to_directory(folder)


def prepare_dataset(
    root: PathLike,
    data_dir: PathLike,
    num_frames: int = defaults.FRAMES,
    size: int = defaults.IMAGE_SIZE,
    splits: Sequence[float] = defaults.SPLIT_FRACTIONS,
    seed: int = 0,
    workers: int = 0,
    *,
    quality: int = DEFAULT_JPEG_QUALITY,
    progress: bool = True,
    force: bool = False,
    isolate: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS,
    audio_patches: int = 0,
) -> PrepareReport:
    """Build the ``xinpianchang`` dataset, config ``frames{num_frames}_size{size}``, from ``root``.

    Args:
      root: the layout root (``ROOT/<label>/<mp4_id>/...``).
      data_dir: the TFDS data dir to write into.
      num_frames: frames sampled per clip (uniform by timestamp; short clips padded).
      size: side of the square frames and cover.
      splits: train / validation / test fractions (stratified by label).
      seed: split seed.
      workers: decoding processes (0: one per core; 1: in this process).
      quality: JPEG quality of the stored pictures.
      progress: show progress bars.
      force: rebuild even if a matching build exists.
      isolate: build in a fresh (spawned) process, so that this process never starts TensorFlow's runtime
        or ArrayRecord's thread pool (ArrayRecord is not fork-safe: after using it, forked DataLoader
        workers crash). ``False`` builds here.
      max_image_pixels: a cover whose header declares more pixels is skipped as a decode error.
      parse_limits: bounds on each item's ``.txt`` (one over them is skipped as malformed_txt).
      audio_patches: also store the log-mel of this many 3 s windows of each clip's sound track and an
        ``audio_present`` flag (config ``frames{T}_size{S}_audio{P}``; 0: no audio, the plain config).

    Returns:
      the :class:`PrepareReport` (``reused=True`` when a matching build was found).

    Raises:
      FileNotFoundError: ``root`` is not a folder.
      ValueError: bad fractions, or not a single item could be prepared.
    """
    from data_interface_for_model.xinpianchang import BuildOptions, Builder, make_config

    if is_url(data_dir):
        return _reuse_url_build(os.fspath(root), os.fspath(data_dir), num_frames, size, check_fractions(splits),
                                seed, quality, force, audio_patches)
    root = os.path.abspath(os.fspath(root))
    data_dir = os.path.abspath(os.fspath(data_dir))
    fractions = check_fractions(splits)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"layout root {root!r} is not a folder")
    make_config(num_frames, size, audio_patches)  # validates the arguments
    from data_interface_for_model.label_set import discover_labels

    label_set = discover_labels(root)
    version_dir = os.path.join(config_dir(data_dir, num_frames, size, audio_patches=audio_patches),
                               str(Builder.VERSION))
    report_path = os.path.join(version_dir, REPORT_NAME)
    if os.path.isfile(report_path) and not force:
        with open(report_path, encoding="utf-8") as handle:
            previous = PrepareReport.from_json(handle.read())
        if previous.matches(root, fractions, seed, quality, label_set.names):
            previous.reused = True
            logger.info("reusing %s", version_dir)
            return previous
        logger.warning("%s was built with other arguments: rebuilding it", version_dir)
    if os.path.isdir(version_dir):
        shutil.rmtree(version_dir)  # an old, mismatched or unfinished build

    options = BuildOptions(fractions=fractions, seed=seed, workers=workers, quality=quality, progress=progress,
                           max_image_pixels=max_image_pixels, parse_limits=parse_limits, labels=label_set.names)
    if not isolate or not spawn_is_safe():
        return _build(root, data_dir, num_frames, size, options, report_path, label_set.source, audio_patches)
    # build in a fresh process: TensorFlow's runtime and ArrayRecord's thread pool then never start in this
    # one (ArrayRecord is not fork-safe: a process that has used it must not fork DataLoader workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(_build, root, data_dir, num_frames, size, options, report_path,
                               label_set.source, audio_patches).result()


def _reuse_url_build(root: str, data_dir: str, num_frames: int, size: int, fractions: Sequence[float], seed: int,
                     quality: int, force: bool, audio_patches: int = 0) -> PrepareReport:
    """A data dir given as a URL: the finished build there when it matches, read with ``tf.io.gfile``.

    The root is compared as written (a bucket root as it is, a local one made absolute, as both builds record
    it) and need not exist here; its label set is compared when it is a local folder. The in-process pool
    cannot write to a URL: a missing or mismatched build is an error naming the command that builds it."""
    from data_interface_for_model.xinpianchang import Builder, make_config

    make_config(num_frames, size, audio_patches)  # validates the arguments
    if not is_url(root):
        root = os.path.abspath(root)
    labels = None
    if os.path.isdir(root):
        from data_interface_for_model.label_set import discover_labels

        labels = discover_labels(root).names
    version_dir = os.path.join(config_dir(data_dir, num_frames, size, audio_patches=audio_patches),
                               str(Builder.VERSION))
    build = (f"`xinpianchang data prepare --data-root {root} --data-dir {data_dir} --frames {num_frames} "
             f"--image-size {size} --seed {seed} --runner direct` (or --runner dataflow: docs/beam.md)")
    if force:
        raise ValueError(f"--data-dir {data_dir} is a URL: the in-process build cannot rewrite it; rebuild it "
                         f"with {build} and --force")
    text = read_text(os.path.join(version_dir, REPORT_NAME))
    if text is None:
        raise FileNotFoundError(f"no prepared build at {version_dir} (no {REPORT_NAME}): the in-process build "
                                f"cannot write to a URL; build it with {build}")
    previous = PrepareReport.from_json(text)
    if not previous.matches(root, fractions, seed, quality, labels):
        raise ValueError(
            f"{version_dir} was built from root {previous.root!r} (fractions {previous.fractions}, seed "
            f"{previous.seed}, quality {previous.quality}), not from {root!r} (fractions {list(fractions)}, seed "
            f"{seed}, quality {quality}){'' if labels is None else ' with its label set'}: rebuild it with "
            f"{build} and --force")
    previous.reused = True
    logger.info("reusing %s", version_dir)
    return previous


def _build(root: str, data_dir: str, num_frames: int, size: int, options, report_path: str,
           label_source: str = "", audio_patches: int = 0) -> PrepareReport:
    import tensorflow_datasets as tfds

    from data_interface_for_model.xinpianchang import Builder, make_config

    config = make_config(num_frames, size, audio_patches)
    builder = Builder(config=config, data_dir=data_dir, file_format="array_record", build_options=options)
    started = time.perf_counter()
    if not options.progress:
        tfds.disable_progress_bar()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    _add_tfrecord_copy(builder)
    report = PrepareReport(
        dataset_dir=os.fspath(builder.data_dir),
        config_name=config.name,
        num_frames=num_frames,
        size=size,
        root=root,
        fractions=list(options.fractions),
        seed=options.seed,
        quality=options.quality,
        found=builder.num_found,
        split_counts={name: int(split.num_examples) for name, split in builder.info.splits.items()},
        skipped=[dataclasses.asdict(s) for s in builder.skipped],
        seconds=time.perf_counter() - started,
        labels=list(options.labels or ()),
        label_source=label_source,
    )
    with atomic_write(report_path, "w", encoding="utf-8") as handle:
        handle.write(report.to_json())
    return report
