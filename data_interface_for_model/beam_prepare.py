"""Prepare the ``xinpianchang`` TFDS dataset through an Apache Beam pipeline (DirectRunner, Dataflow, Flink, Spark).

``prepare_with_beam(root, data_dir, runner="direct", ...)`` writes what
:func:`data_interface_for_model.prepare.prepare_dataset` writes (the same features, the same keys, the same
stratified splits for the same seed, byte for byte the same serialized examples) but generates the examples in
a Beam pipeline, so decoding spreads over the runner's workers:

1. the launcher scans the layout root (a local folder, or a bucket path such as ``gs://bucket/root`` read with
   Beam's file systems) and lists every layout defect, exactly as the in-process scan does;
2. the pipeline decodes each item on a worker with the in-process path's own function
   (:func:`data_interface_for_model.parallel.run_task`: same frame sampling, resizing and JPEG encoding); a
   clip or cover that does not decode is counted (Beam counter ``xinpianchang.prepare/decode_error``) and
   written to a side file of skipped items, never failing the pipeline;
3. the keys and labels of the decoded items are gathered into one stratified split
   (:func:`data_interface_for_model.splits.stratified_split`, a side input), and each split's examples go to
   TFDS's Beam writer.

Files written under ``data_dir/xinpianchang/frames{T}_size{S}/<version>/``: on a local data dir the
ArrayRecord shards plus their TFRecord copy (as the in-process path); on a bucket data dir TFRecord shards only
(what ``tf.data`` and TPU input pipelines read from a bucket); and ``prepare_report.json`` with the counts, the
skipped items, the runner and the Beam counters.

Importing this module needs neither Beam nor TensorFlow (the command-line flags live here too); the pipeline
functions import Beam when they run.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from data_interface_for_model import defaults
from data_interface_for_model.decoding import DEFAULT_JPEG_QUALITY
from data_interface_for_model.splits import SPLIT_NAMES, check_fractions

logger = logging.getLogger(__name__)

#: ``--runner`` names and the Beam runner each selects.
RUNNERS = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner",
           "spark": "SparkRunner"}
#: Namespace of the Beam counters (``decoded``, ``decode_error``).
METRICS_NAMESPACE = "xinpianchang.prepare"
INSTALL_HINT = 'Apache Beam is not installed: pip install -e ".[beam]" (".[beam-gcp]" for Dataflow)'

PathLike = Any


# ------------------------------------------------------------------------------------------ options
@dataclasses.dataclass(frozen=True)
class BeamOptions:
    """Which runner runs the pipeline and how.

    Attributes:
      runner: ``direct``, ``dataflow``, ``flink`` or ``spark`` (:data:`RUNNERS`).
      workers: DirectRunner worker processes (0: one per core); other runners size their workers with
        their own pipeline options (``--num_workers``, ``--parallelism``...).
      running_mode: DirectRunner's ``multi_processing`` (default), ``multi_threading`` or ``in_memory``.
      pipeline_args: further pipeline options, passed to Beam as they are (``--project=...``).
    """

    runner: str = "direct"
    workers: int = 0
    running_mode: str = "multi_processing"
    pipeline_args: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.runner not in RUNNERS:
            raise ValueError(f"unknown runner {self.runner!r}: choose from {', '.join(RUNNERS)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")

    def flags(self) -> List[str]:
        """The pipeline options as Beam flags (the runner first; explicit pipeline args win)."""
        from data_interface_for_model.parallel import resolve_workers

        flags = [f"--runner={RUNNERS[self.runner]}"]
        if self.runner == "direct":
            flags += [f"--direct_num_workers={resolve_workers(self.workers)}",
                      f"--direct_running_mode={self.running_mode}"]
        return flags + list(self.pipeline_args)

    def pipeline_options(self):
        """``apache_beam.options.pipeline_options.PipelineOptions`` for these flags (never the script's argv)."""
        options_module = _beam_module("apache_beam.options.pipeline_options")
        return options_module.PipelineOptions(flags=self.flags())


def _beam_module(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc


def pipeline_option(value: str) -> str:
    """``KEY=VALUE`` or ``--KEY=VALUE`` (or a bare ``KEY`` for a switch) -> ``--KEY=VALUE`` for Beam."""
    text = value.strip()
    body = text.lstrip("-")
    if not body or body.startswith("="):
        raise argparse.ArgumentTypeError(f"{value!r} is not a pipeline option (KEY=VALUE)")
    return "--" + body


def add_runner_arguments(parser: argparse.ArgumentParser, *, what: str = "the work") -> None:
    """``--runner direct|dataflow|flink|spark`` and repeated ``--pipeline-option KEY=VALUE``."""
    parser.add_argument("--runner", choices=sorted(RUNNERS), default=None,
                        help=f"run {what} as an Apache Beam pipeline on this runner (needs the beam extra; "
                             "default: in this process)")
    parser.add_argument("--pipeline-option", dest="pipeline_options", action="append", default=[],
                        type=pipeline_option, metavar="KEY=VALUE",
                        help="a Beam pipeline option passed as it is, repeatable (e.g. project=my-project, "
                             "region=europe-west4, temp_location=gs://bucket/tmp, flink_master=host:8081)")


def options_from_args(args: argparse.Namespace) -> BeamOptions:
    """The :class:`BeamOptions` of parsed ``--runner``/``--pipeline-option`` (and ``--workers`` if present)."""
    return BeamOptions(runner=args.runner, workers=max(0, int(getattr(args, "workers", 0) or 0)),
                       pipeline_args=tuple(args.pipeline_options))


# ------------------------------------------------------------------------------------------ paths
def is_remote(path: PathLike) -> bool:
    """Whether ``path`` is a URL such as ``gs://bucket/x`` (read and written with Beam's file systems)."""
    return "://" in os.fspath(path)


def _join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


@contextlib.contextmanager
def _local_copy(path: str) -> Iterator[str]:
    """``path`` itself when local; a bucket file copied to a temporary local file (PyAV and Pillow read files)."""
    if not is_remote(path):
        yield path
        return
    from apache_beam.io.filesystems import FileSystems

    suffix = os.path.splitext(path)[1]
    handle, local = tempfile.mkstemp(suffix=suffix, prefix="xinpianchang-")
    try:
        with os.fdopen(handle, "wb") as out, FileSystems.open(path) as source:
            shutil.copyfileobj(source, out, 1 << 20)
        yield local
    finally:
        os.unlink(local)


# ------------------------------------------------------------------------------------------ scan
@dataclasses.dataclass(frozen=True)
class ItemTask:
    """One item to decode, as it travels through the pipeline (plain and picklable).

    ``index`` is the item's position in the sorted scan, ``key`` is ``label/mp4_id`` (the TFDS key).
    """

    index: int
    key: str
    label: str
    mp4_id: str
    brief: str
    folder: str
    video_path: str
    cover_path: str


def scan_root(root: str, options=None) -> Tuple[List[ItemTask], List[Dict[str, str]], int]:
    """Scan a layout root as the in-process builder does (``options``: its ``BuildOptions``, for the
    ``.txt`` limits and the label set).

    Returns:
      ``(tasks, skipped, found)``: the items to decode (sorted: labels, then ids), the layout defects and
      empty briefs as ``{"path", "kind", "message"}`` (in the in-process order), and how many complete items
      the layout holds.
    """
    from data_interface_for_model.layout import LayoutReader

    from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS

    limits = getattr(options, "parse_limits", DEFAULT_PARSE_LIMITS)
    known_labels = getattr(options, "labels", None)
    if is_remote(root):
        items, problems = _scan_bucket(root, limits, known_labels)
    else:
        reader = LayoutReader(root, limits=limits, **({"known_labels": known_labels} if known_labels else {}))
        items = list(reader)
        problems = [(p.path, p.kind, p.message) for p in reader.problems]
    tasks, skipped = [], []
    for item in items:
        if not item.brief.strip():
            skipped.append({"path": item.txt_path or item.folder, "kind": "empty_brief",
                            "message": f"item {item.label}/{item.mp4_id} has an empty brief"})
            continue
        tasks.append(ItemTask(len(tasks), f"{item.label}/{item.mp4_id}", item.label, item.mp4_id, item.brief,
                              item.folder, item.video_path, item.cover_path))
    seen = set()
    for path, kind, message in problems:  # an empty file is also reported as missing: list it once
        if path not in seen:
            seen.add(path)
            skipped.append({"path": path, "kind": kind, "message": message})
    return tasks, skipped, len(items)


def _scan_bucket(root: str, limits, known_labels: Optional[Sequence[str]] = None):
    """A bucket root listed with Beam's file systems: the same items and defects as ``LayoutReader``."""
    from apache_beam.io.filesystems import FileSystems

    from data_interface_for_model.categories import LABEL_TO_ID
    from data_interface_for_model.item_txt import parse_item_text
    from data_interface_for_model.layout import EXTENSIONS, LayoutItem
    from data_interface_for_model.schema import RecordError, VideoRecord, validate_mp4_id

    known = frozenset(known_labels) if known_labels else frozenset(LABEL_TO_ID)
    where = "in the dataset's label set" if known_labels else "one of the 31 categories"

    root = root.rstrip("/")
    sizes: Dict[Tuple[str, str], Dict[str, int]] = {}
    unknown = set()
    for metadata in FileSystems.match([root + "/*/*/*"])[0].metadata_list:
        parts = metadata.path[len(root) + 1:].split("/")
        if len(parts) != 3 or any(part.startswith(".") for part in parts):
            continue
        label, mp4_id, name = parts
        if label not in known:
            unknown.add(label)
            continue
        sizes.setdefault((label, mp4_id), {})[name] = metadata.size_in_bytes
    # problems in the local reader's order: label folders sorted, then ids, then each item's files
    problems: List[Tuple[str, str, str]] = []
    pending_unknown = sorted(unknown)
    candidates = sorted(sizes.items())
    texts = _read_texts([_join(root, label, mp4_id, mp4_id + ".txt") for (label, mp4_id), files in candidates
                         if 0 < files.get(mp4_id + ".txt", 0) <= limits.max_txt_bytes], limits.max_txt_bytes)
    items = []
    for (label, mp4_id), files in candidates:
        while pending_unknown and pending_unknown[0] < label:
            name = pending_unknown.pop(0)
            problems.append((_join(root, name), "unknown_label", f"{name!r} is not {where}"))
        folder = _join(root, label, mp4_id)
        try:
            validate_mp4_id(mp4_id)
        except RecordError as exc:
            problems.append((folder, "unsafe_id", str(exc)))
            continue
        paths: Dict[str, Optional[str]] = {}
        for modality, ext in EXTENSIONS.items():
            path = _join(folder, mp4_id + ext)
            size = files.get(mp4_id + ext)
            if size == 0:
                problems.append((path, "empty_file", "zero bytes"))
            paths[modality] = path if size else None
        record = None
        if paths["text"] is not None:
            try:
                if files[mp4_id + ".txt"] > limits.max_txt_bytes:
                    raise RecordError(f"{files[mp4_id + '.txt']} bytes, more than the limit of "
                                      f"{limits.max_txt_bytes}")
                text = texts[paths["text"]].decode("utf-8")
                with _label_scope(known_labels):
                    record = VideoRecord.from_dict(parse_item_text(text, limits), label=label)
            except UnicodeDecodeError:
                problems.append((paths["text"], "malformed_txt", f"{paths['text']}: not UTF-8 text"))
                paths["text"] = None
            except RecordError as exc:
                problems.append((paths["text"], "malformed_txt", f"{paths['text']}: {exc}"))
                paths["text"] = None
            else:
                if record.mp4_id != mp4_id:
                    problems.append((paths["text"], "id_mismatch",
                                     f"the .txt says mp4_id {record.mp4_id!r}, the folder {mp4_id!r}"))
                    record, paths["text"] = None, None
        missing = [m for m, p in paths.items() if p is None]
        for modality in missing:
            problems.append((_join(folder, mp4_id + EXTENSIONS[modality]), f"missing_{modality}",
                             f"item {label}/{mp4_id} has no usable {modality}"))
        if not missing:
            items.append(LayoutItem(mp4_id, label, folder, paths["video"], paths["cover"], paths["text"], record))
    problems += [(_join(root, name), "unknown_label", f"{name!r} is not {where}") for name in pending_unknown]
    return items, problems


def _read_texts(paths: Sequence[str], limit: int, threads: int = 32) -> Dict[str, bytes]:
    """The first ``limit + 1`` bytes of each bucket file, read by ``threads`` threads (a bucket answers each
    read in tens of milliseconds: 562k ``.txt`` files one by one would take hours)."""
    import concurrent.futures

    from apache_beam.io.filesystems import FileSystems

    def read(path: str) -> bytes:
        with FileSystems.open(path) as handle:
            return handle.read(limit + 1)

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(paths, pool.map(read, paths)))


def _label_scope(labels):
    """Records validated against the dataset's label set (the 31 categories when it has none of its own)."""
    try:
        from data_interface_for_model.schema import label_scope
    except ImportError:  # a version without per-dataset label sets
        return contextlib.nullcontext()
    return label_scope(labels or None)


def _label_set(root: str):
    """``(names or None, source)``: a local root's own label set (``labels.txt``, the 31 categories or its
    folders), as the in-process build discovers it; a bucket root uses the 31 categories."""
    if is_remote(root):
        return None, "xinpianchang"
    try:
        from data_interface_for_model.label_set import discover_labels
    except ImportError:  # a version without per-dataset label sets
        return None, ""
    found = discover_labels(root)
    return tuple(found.names), found.source


# ------------------------------------------------------------------------------------------ pipeline steps
def read_listed(pipeline, name: str, rows: Sequence[Dict[str, Any]], path: str):
    """``rows`` (JSON-able dicts) as a PCollection, through a JSON-lines file at ``path`` the workers read.

    ``beam.Create`` would embed the whole list in the job graph, and Dataflow refuses a job graph over 10 MB
    (562,342 items make 100 MB or more of it); a file is split between the workers instead and reshuffled, so the
    decoding spreads evenly. The caller deletes the file after the run."""
    import apache_beam as beam

    _write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return (pipeline
            | f"Read{name}" >> beam.io.ReadFromText(path)
            | f"Parse{name}" >> beam.Map(json.loads)
            | f"Spread{name}" >> beam.Reshuffle())


def task_from_dict(row: Dict[str, Any]) -> ItemTask:
    """An :class:`ItemTask` back from its ``dataclasses.asdict`` (a line of the item list)."""
    return ItemTask(**row)


def decode_task(task: ItemTask, num_frames: int, size: int, quality: int, max_image_pixels: Optional[int] = None):
    """Decode one item on a worker: ``(task, EncodedItem)`` on the main output, or a skipped-item JSON line
    on the ``skipped`` output (counted in the ``decode_error`` counter)."""
    from apache_beam import pvalue
    from apache_beam.metrics import Metrics

    from data_interface_for_model.parallel import EncodeTask, run_task

    with _local_copy(task.video_path) as video, _local_copy(task.cover_path) as cover:
        limit = {} if max_image_pixels is None else {"max_image_pixels": max_image_pixels}
        result = run_task(EncodeTask(video, cover, num_frames, size, quality, **limit))
        if isinstance(result, str):  # name the bucket file, not its local copy
            result = result.replace(video, task.video_path).replace(cover, task.cover_path)
    if isinstance(result, str):
        Metrics.counter(METRICS_NAMESPACE, "decode_error").inc()
        yield pvalue.TaggedOutput("skipped", json.dumps(
            {"index": task.index, "path": task.folder, "kind": "decode_error", "message": result},
            ensure_ascii=False))
        return
    Metrics.counter(METRICS_NAMESPACE, "decoded").inc()
    yield task, result


def assign_splits(keys_and_labels: List[Tuple[str, str]], fractions: Sequence[float], seed: int) -> Dict[str, str]:
    """The stratified split of every decoded item (one call over all of them, as in-process)."""
    from data_interface_for_model.splits import stratified_split

    return stratified_split(keys_and_labels, fractions, seed)


def example_of(decoded, split: str, assignment: Dict[str, str]):
    """``(key, feature dict)`` for the items of ``split`` (the in-process builder's features)."""
    import numpy as np

    task, encoded = decoded
    if assignment[task.key] != split:
        return
    yield task.key, {
        "id": task.mp4_id,
        "label": task.label,
        "brief": task.brief,
        "cover": encoded.cover,
        "frames": list(encoded.frames),
        "num_frames": np.int32(encoded.num_real),
        "duration": np.float32(encoded.duration_s),
    }


def _predicted_splits(tasks: Sequence[ItemTask], fractions, seed: int) -> List[str]:
    """The splits that would be non-empty if every item decodes (a split no item can reach is left out, as
    in-process; the Beam writer needs to know the splits before decoding)."""
    assignment = assign_splits([(t.key, t.label) for t in tasks], fractions, seed)
    return [name for name in SPLIT_NAMES if name in set(assignment.values())]


# ------------------------------------------------------------------------------------------ builder
def _builder_class():
    from data_interface_for_model.xinpianchang import NAME, Builder

    class BeamBuilder(Builder, skip_registration=True):
        """The ``xinpianchang`` builder whose examples come from a Beam pipeline (same name, folders, features).

        Workers never receive this object: every pipeline step gets its arguments explicitly.
        """

        name = NAME

        def __init__(self, *, root: str = "", **kwargs):
            super().__init__(**kwargs)
            self.root = root
            self.skipped_file_prefix = ""
            self.counters: Dict[str, int] = {}

        def _download_and_prepare(self, dl_manager, download_config=None):  # pylint: disable=arguments-differ
            # the in-process builder's decode cache is not used: go straight to TFDS's split generation
            return super(Builder, self)._download_and_prepare(dl_manager, download_config=download_config)

        def _split_generators(self, dl_manager, pipeline):  # pylint: disable=arguments-differ
            import apache_beam as beam

            options = self.build_options
            config = self.builder_config
            tasks, self.skipped, self.num_found = scan_root(self.root, options)
            if not tasks:
                raise ValueError(f"no item of {self.root!r} could be prepared ({len(self.skipped)} skipped)")
            logger.info("%s: %d items to decode on Beam", self.root, len(tasks))
            listed = read_listed(pipeline, "Items", [dataclasses.asdict(t) for t in tasks],
                                 _join(posixpath.dirname(self.skipped_file_prefix), "items.jsonl"))
            outputs = (listed
                       | "ToTask" >> beam.Map(task_from_dict)
                       | "Decode" >> beam.FlatMap(decode_task, config.num_frames, config.size, options.quality,
                                                  getattr(options, "max_image_pixels", None))
                       .with_outputs("skipped", main="decoded"))
            _ = outputs.skipped | "WriteSkipped" >> beam.io.WriteToText(self.skipped_file_prefix,
                                                                       file_name_suffix=".jsonl")
            assignment = (outputs.decoded
                          | "KeyAndLabel" >> beam.Map(lambda decoded: (decoded[0].key, decoded[0].label))
                          | "AllKeys" >> beam.combiners.ToList()
                          | "Split" >> beam.Map(assign_splits, options.fractions, options.seed))
            generators = {}
            for name in _predicted_splits(tasks, options.fractions, options.seed):
                generators[name] = outputs.decoded | f"Examples_{name}" >> beam.FlatMap(
                    example_of, name, beam.pvalue.AsSingleton(assignment))
            return generators

        def _generate_examples(self, **kwargs):  # the examples come from `_split_generators`' collections
            raise NotImplementedError

        def _process_pipeline_result(self, pipeline_result) -> None:
            self.counters = read_counters(pipeline_result, METRICS_NAMESPACE)

    return BeamBuilder


def read_counters(pipeline_result, namespace: str) -> Dict[str, int]:
    """``{counter name: value}`` of a finished pipeline's counters in ``namespace`` (committed values where
    the runner reports them, else attempted)."""
    from apache_beam.metrics.metric import MetricsFilter

    results = pipeline_result.metrics().query(MetricsFilter().with_namespace(namespace))
    counters: Dict[str, int] = {}
    for counter in results["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + int(value or 0)
    return counters


def _read_skipped(prefix: str) -> List[Dict[str, str]]:
    """The decode errors the workers wrote, in scan order (as in-process), and delete their files."""
    from apache_beam.io.filesystems import FileSystems

    matches = FileSystems.match([prefix + "*"])[0].metadata_list
    rows = []
    for metadata in matches:
        with FileSystems.open(metadata.path) as handle:
            rows += [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line.strip()]
    if matches:
        FileSystems.delete([m.path for m in matches])
    rows.sort(key=lambda row: row.pop("index"))
    return rows


def _write_text(path: str, text: str) -> None:
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(path) as handle:
            handle.write(text.encode("utf-8"))
        return
    from data_interface_for_model.atomic import atomic_write

    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _read_text(path: str) -> Optional[str]:
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def _remove_tree(path: str) -> None:
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(path):
        FileSystems.delete([path])


def prepare_with_beam(
    root: PathLike,
    data_dir: PathLike,
    num_frames: int = defaults.FRAMES,
    size: int = defaults.IMAGE_SIZE,
    splits: Sequence[float] = defaults.SPLIT_FRACTIONS,
    seed: int = 0,
    beam_options: Optional[BeamOptions] = None,
    *,
    quality: int = DEFAULT_JPEG_QUALITY,
    force: bool = False,
    max_image_pixels: Optional[int] = None,
    parse_limits=None,
):
    """Build the ``xinpianchang`` dataset, config ``frames{num_frames}_size{size}``, in a Beam pipeline.

    Args:
      root: the layout root: a folder, or a bucket path (``gs://bucket/root``) the workers can read.
      data_dir: the TFDS data dir to write into (a folder, or a bucket path for remote runners).
      num_frames, size, splits, seed, quality, max_image_pixels, parse_limits: as
        :func:`data_interface_for_model.prepare.prepare_dataset` (``None``: its defaults).
      beam_options: the runner and pipeline options (default: DirectRunner, multi_processing, one worker
        process per core).
      force: rebuild even if a matching build exists.

    Returns:
      the :class:`~data_interface_for_model.prepare.PrepareReport` (``reused=True`` when a matching build was
      found); the report file also records the runner and the Beam counters.

    Raises:
      FileNotFoundError: a local ``root`` is not a folder.
      ValueError: bad fractions, an unknown runner, or not a single item could be prepared.
      ImportError: Apache Beam is not installed.
    """
    beam_options = beam_options or BeamOptions()
    _beam_module("apache_beam")
    import tensorflow_datasets as tfds

    from data_interface_for_model.prepare import REPORT_NAME, PrepareReport, _add_tfrecord_copy
    from data_interface_for_model.xinpianchang import BuildOptions, make_config

    root, data_dir = os.fspath(root), os.fspath(data_dir)
    if not is_remote(root):
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"layout root {root!r} is not a folder")
    remote_output = is_remote(data_dir)
    if not remote_output:
        data_dir = os.path.abspath(data_dir)
    fractions = check_fractions(splits)
    config = make_config(num_frames, size)
    labels, label_source = _label_set(root)
    extra = {"max_image_pixels": max_image_pixels, "parse_limits": parse_limits, "labels": labels}
    fields = {f.name for f in dataclasses.fields(BuildOptions)}
    options = BuildOptions(fractions=fractions, seed=seed, workers=beam_options.workers, quality=quality,
                           progress=False, **{k: v for k, v in extra.items() if v is not None and k in fields})
    builder = _builder_class()(root=root, config=config, data_dir=data_dir, build_options=options,
                               file_format="tfrecord" if remote_output else "array_record")
    version_dir = os.fspath(builder.data_dir)
    report_path = _join(version_dir, REPORT_NAME)
    previous_text = _read_text(report_path)
    if previous_text is not None and not force:
        previous = PrepareReport.from_json(previous_text)
        if previous.matches(root, fractions, seed, quality, *([labels] if labels else [])):
            previous.reused = True
            logger.info("reusing %s", version_dir)
            return previous
        logger.warning("%s was built with other arguments: rebuilding it", version_dir)
    _remove_tree(version_dir)  # an old, mismatched or unfinished build
    builder.skipped_file_prefix = _join(data_dir, f".xinpianchang-skipped-{uuid.uuid4().hex}", "skipped")
    started = time.perf_counter()
    tfds.disable_progress_bar()
    try:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=root, beam_options=beam_options.pipeline_options()))
        decode_errors = _read_skipped(builder.skipped_file_prefix)
    finally:
        _remove_tree(posixpath.dirname(builder.skipped_file_prefix) if remote_output
                     else os.path.dirname(builder.skipped_file_prefix))
    if not remote_output:
        _add_tfrecord_copy(builder)
    skipped = builder.skipped + decode_errors
    if builder.counters.get("decode_error", len(decode_errors)) != len(decode_errors):
        logger.warning("Beam counted %s decode errors but %d were written", builder.counters.get("decode_error"),
                       len(decode_errors))
    for row in decode_errors:
        logger.warning("skipped %s: %s", row["path"], row["message"])
    report = PrepareReport(
        dataset_dir=version_dir,
        config_name=config.name,
        num_frames=num_frames,
        size=size,
        root=root,
        fractions=list(fractions),
        seed=seed,
        quality=quality,
        found=builder.num_found,
        split_counts={name: int(split.num_examples) for name, split in builder.info.splits.items()},
        skipped=skipped,
        seconds=time.perf_counter() - started,
        **{k: v for k, v in (("labels", list(labels or ())), ("label_source", label_source))
           if k in {f.name for f in dataclasses.fields(PrepareReport)}},
    )
    record = json.loads(report.to_json())
    record["runner"] = RUNNERS[beam_options.runner]
    record["pipeline_options"] = beam_options.flags()
    record["counters"] = dict(sorted(builder.counters.items()))
    _write_text(report_path, json.dumps(record, indent=1, ensure_ascii=False))
    return report


def prepare_from_args(args: argparse.Namespace, root: str):
    """``prepare --runner ...``: :func:`prepare_with_beam` with the verb's parsed flags; the report."""
    limits = None
    if hasattr(args, "max_txt_bytes"):
        from data_interface_for_model.limits import parse_limits_from_args

        limits = parse_limits_from_args(args)
    return prepare_with_beam(root, args.data_dir, num_frames=args.frames, size=args.image_size,
                             splits=tuple(args.splits), seed=args.seed, beam_options=options_from_args(args),
                             quality=args.quality, force=args.force,
                             max_image_pixels=getattr(args, "max_image_pixels", None), parse_limits=limits)


__all__ = ["BeamOptions", "ItemTask", "METRICS_NAMESPACE", "RUNNERS", "add_runner_arguments", "is_remote",
           "options_from_args", "pipeline_option", "prepare_from_args", "prepare_with_beam", "read_counters",
           "read_listed", "scan_root"]
