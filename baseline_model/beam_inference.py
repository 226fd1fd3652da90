"""Embed or classify every item of a prepared dataset with Apache Beam's RunInference, into sharded parquet.

The stock ``TFModelHandlerNumpy``/``TFModelHandlerTensor`` cannot load our exports (a Keras 3 ``ExportArchive``
SavedModel: tf-keras loads it as a ``_UserObject``, Keras 3 refuses SavedModels), so :class:`SavedModelHandler`
loads the version folder with ``tf.saved_model.load`` and calls one of its signatures, exactly as TF Serving
would: ``embed`` / the embedder's ``serving_default`` -> ``embedding [B, D]``, the classifier's
``serving_default`` -> ``probabilities [B, C]``, ``label_id``, ``label``.

The pipeline reads the prepared TFRecord shards of each split (``DATA_DIR/xinpianchang/frames{T}_size{S}/
<version>/xinpianchang-{split}.tfrecord-*``: local or a bucket), parses each example into the signature's raw
inputs (brief, JPEG cover, JPEG frames), runs the model in batches on the workers and writes
``OUTPUT/embeddings-SSSSS-of-NNNNN.parquet`` (columns ``mp4_id``, ``label``, ``split``, ``embedding``: each shard
reads with :func:`data_interface_for_model.embeddings_file.read_embeddings`, the folder with
``pyarrow.parquet.read_table(OUTPUT)``) or ``OUTPUT/predictions-*.parquet`` (``mp4_id``, ``label``, ``split``,
``predicted_label``, ``predicted_label_id``, ``probability``, ``probabilities``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import posixpath
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from data_interface_for_model import defaults
from data_interface_for_model.beam_prepare import RUNNERS, BeamOptions, is_remote, options_from_args

logger = logging.getLogger(__name__)

#: What each kind of pass asks of a model: the signature, and the output file stem.
KINDS = {"embed": "embeddings", "predict": "predictions"}


# ------------------------------------------------------------------------------------------ model handler
class SavedModelHandler(ModelHandler[Dict[str, Any], PredictionResult, Any]):
    """RunInference over a SavedModel whose signature takes ``brief [B]``, ``cover [B]``, ``frames [B, n]``
    (tf.string: text, JPEG bytes, JPEG bytes) -- our classifier and embedder exports.

    Each element is a dict with ``brief`` (str), ``cover`` (bytes) and ``frames`` (a sequence of bytes); other
    keys are ignored. The result's ``inference`` is ``{output name: numpy value of this element}``.

    Args:
      model_path: the SavedModel folder (``MODELS/<name>/<version>``; local or a bucket path).
      signature: which signature to call (``serving_default``, ``embed``).
      min_batch_size, max_batch_size: the batch sizes RunInference forms.
    """

    def __init__(self, model_path: str, signature: str = "serving_default", *, min_batch_size: int = 1,
                 max_batch_size: int = 64):
        super().__init__()
        self.model_path = model_path
        self.signature = signature
        self._batch = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}

    def load_model(self):
        import tensorflow as tf

        try:  # a pretrained export tokenizes in the graph with TF Text's ops: register them first
            import tensorflow_text  # noqa: F401  pylint: disable=unused-import
        except ImportError:
            pass
        loaded = tf.saved_model.load(self.model_path)
        if self.signature not in loaded.signatures:
            raise KeyError(f"{self.model_path} has no signature {self.signature!r} "
                           f"(has {sorted(loaded.signatures.keys())})")
        return loaded

    def run_inference(self, batch: Sequence[Dict[str, Any]], model, inference_args=None
                      ) -> Iterable[PredictionResult]:
        outputs = call_signature(model.signatures[self.signature], batch)
        for index, example in enumerate(batch):
            yield PredictionResult(example, {name: value[index] for name, value in outputs.items()},
                                   model_id=self.model_path)

    def batch_elements_kwargs(self) -> Dict[str, int]:
        return dict(self._batch)

    def get_num_bytes(self, batch: Sequence[Dict[str, Any]]) -> int:
        return sum(len(e["brief"].encode("utf-8")) + len(e["cover"]) + sum(len(f) for f in e["frames"])
                   for e in batch)

    def get_metrics_namespace(self) -> str:
        return "xinpianchang.inference"


def call_signature(function, batch: Sequence[Dict[str, Any]]) -> Dict[str, np.ndarray]:
    """Call a ``brief/cover/frames`` signature on a list of examples; ``{output: numpy [B, ...]}``.

    Frames lists of different lengths are padded with ``b""`` (a missing frame to the model).
    """
    import tensorflow as tf

    count = max((len(e["frames"]) for e in batch), default=0)
    if count:
        frames = tf.constant([list(e["frames"]) + [b""] * (count - len(e["frames"])) for e in batch], tf.string)
    else:
        frames = tf.zeros([len(batch), 0], tf.string)
    outputs = function(brief=tf.constant([e["brief"] for e in batch], tf.string),
                       cover=tf.constant([e["cover"] for e in batch], tf.string), frames=frames)
    return {name: value.numpy() for name, value in outputs.items()}


# ------------------------------------------------------------------------------------------ examples
def parse_example(serialized: bytes, split: str, labels: Optional[Sequence[str]] = None
                  ) -> Tuple[Tuple[str, str, str], Dict[str, Any]]:
    """A prepared example -> ``((mp4_id, label name, split), {"brief", "cover", "frames"})``; ``labels``: the
    dataset's class names (default: the 31 categories)."""
    from tensorflow.core.example import example_pb2

    from data_interface_for_model.categories import LABELS

    features = example_pb2.Example.FromString(serialized).features.feature
    mp4_id = features["id"].bytes_list.value[0].decode("utf-8")
    label = (labels or LABELS)[int(features["label"].int64_list.value[0])]
    return (mp4_id, label, split), {"brief": features["brief"].bytes_list.value[0].decode("utf-8"),
                                    "cover": bytes(features["cover"].bytes_list.value[0]),
                                    "frames": [bytes(f) for f in features["frames"].bytes_list.value]}


def _join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def dataset_dir(data_dir: str, num_frames: int, size: int) -> str:
    """``DATA_DIR/xinpianchang/frames{T}_size{S}/<version>`` (local or a bucket path)."""
    from data_interface_for_model.xinpianchang import NAME, Builder, config_name

    return _join(data_dir, NAME, config_name(num_frames, size), str(Builder.VERSION))


def label_names(data_dir: str, num_frames: int, size: int) -> Optional[List[str]]:
    """The prepared dataset's class names (TFDS's ``label.labels.txt``), or None when it has none."""
    from apache_beam.io.filesystems import FileSystems

    path = _join(dataset_dir(data_dir, num_frames, size), "label.labels.txt")
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        return [line for line in handle.read().decode("utf-8").splitlines() if line]


def split_patterns(data_dir: str, num_frames: int, size: int, splits: Sequence[str]) -> Dict[str, str]:
    """``{split: TFRecord shard pattern}`` for the splits that have shards; FileNotFoundError if none."""
    from apache_beam.io.filesystems import FileSystems

    folder = dataset_dir(data_dir, num_frames, size)
    patterns = {}
    for split in splits:
        pattern = _join(folder, f"xinpianchang-{split}.tfrecord-*")
        if FileSystems.match([pattern])[0].metadata_list:
            patterns[split] = pattern
    if not patterns:
        raise FileNotFoundError(
            f"no TFRecord shards of {', '.join(splits)} under {folder}: prepare the dataset first "
            f"(xinpianchang data prepare --data-dir {data_dir} --frames {num_frames} --image-size {size})")
    return patterns


# ------------------------------------------------------------------------------------------ rows
def _embedding_row(keyed) -> Dict[str, Any]:
    (mp4_id, label, split), result = keyed
    return {"mp4_id": mp4_id, "label": label, "split": split,
            "embedding": np.asarray(result.inference["embedding"], np.float32).tolist()}


def _prediction_row(keyed) -> Dict[str, Any]:
    (mp4_id, label, split), result = keyed
    probabilities = np.asarray(result.inference["probabilities"], np.float32)
    predicted = result.inference["label"]
    return {"mp4_id": mp4_id, "label": label, "split": split,
            "predicted_label": predicted.decode("utf-8") if isinstance(predicted, bytes) else str(predicted),
            "predicted_label_id": int(result.inference["label_id"]),
            "probability": float(probabilities.max()), "probabilities": probabilities.tolist()}


def parquet_schema(kind: str):
    """The pyarrow schema of the ``embed`` or ``predict`` output rows."""
    import pyarrow as pa

    common = [("mp4_id", pa.string()), ("label", pa.string()), ("split", pa.string())]
    if kind == "embed":
        return pa.schema(common + [("embedding", pa.list_(pa.float32()))])
    return pa.schema(common + [("predicted_label", pa.string()), ("predicted_label_id", pa.int64()),
                               ("probability", pa.float32()), ("probabilities", pa.list_(pa.float32()))])


# ------------------------------------------------------------------------------------------ pipeline
@dataclasses.dataclass
class InferenceReport:
    """What a Beam inference pass wrote: how many items, the shards, how long it took."""

    kind: str
    model_path: str
    items: int
    shards: List[str]
    seconds: float
    runner: str

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.kind}: {self.items} items with {self.model_path} on {self.runner} in {self.seconds:.1f} s "
                f"({self.items_per_second:.1f} items/s) -> {len(self.shards)} parquet shards")


def run_beam_inference(
    model_path: str,
    data_dir: str,
    output: str,
    kind: str = "embed",
    num_frames: int = defaults.FRAMES,
    size: int = defaults.IMAGE_SIZE,
    splits: Sequence[str] = defaults.SPLITS,
    beam_options: Optional[BeamOptions] = None,
    *,
    signature: Optional[str] = None,
    num_shards: int = 0,
    max_batch_size: int = 64,
) -> InferenceReport:
    """Run ``kind`` (``embed`` or ``predict``) over every item of the prepared ``splits`` with RunInference.

    Args:
      model_path: the exported SavedModel version folder (embedder or classifier for ``embed``, classifier for
        ``predict``).
      data_dir: the prepared TFDS data dir (local or a bucket path the workers can read).
      output: the folder the parquet shards are written into (must not hold shards of this kind yet).
      num_frames, size: which prepared config to read (the model's).
      beam_options: runner and pipeline options (default: DirectRunner, multi_processing, one process per core).
      signature: the signature to call (default: ``embed`` if the model has it, else ``serving_default``, for
        ``embed``; ``serving_default`` for ``predict``).
      num_shards: output shards (0: the runner decides).
      max_batch_size: the largest batch RunInference forms.
    """
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    beam_options = beam_options or BeamOptions()
    if not is_remote(model_path):
        model_path = os.path.abspath(model_path)
        if not os.path.isfile(os.path.join(model_path, "saved_model.pb")):
            raise FileNotFoundError(f"{model_path} is not a SavedModel version folder (no saved_model.pb)")
    if not is_remote(data_dir):
        data_dir = os.path.abspath(data_dir)
    if not is_remote(output):
        output = os.path.abspath(output)
    stem = KINDS[kind]
    prefix = _join(output, stem)
    if FileSystems.match([prefix + "-*.parquet"])[0].metadata_list:
        raise FileExistsError(f"{output} already holds {stem} shards: choose another --output or remove them")
    signature = signature or _default_signature(model_path, kind)
    patterns = split_patterns(data_dir, num_frames, size, splits)
    names = label_names(data_dir, num_frames, size)
    handler = KeyedModelHandler(SavedModelHandler(model_path, signature, max_batch_size=max_batch_size))
    to_row = _embedding_row if kind == "embed" else _prediction_row
    started = time.perf_counter()
    with beam.Pipeline(options=beam_options.pipeline_options()) as pipeline:
        examples = [pipeline
                    | f"Read_{split}" >> beam.io.ReadFromTFRecord(pattern)
                    | f"Parse_{split}" >> beam.Map(parse_example, split, names)
                    for split, pattern in patterns.items()]
        _ = (examples
             | "AllSplits" >> beam.Flatten()
             | "RunInference" >> RunInference(handler)
             | "Rows" >> beam.Map(to_row)
             | "WriteParquet" >> beam.io.WriteToParquet(prefix, parquet_schema(kind), num_shards=num_shards,
                                                        file_name_suffix=".parquet"))
    seconds = time.perf_counter() - started
    shards = sorted(m.path for m in FileSystems.match([prefix + "-*.parquet"])[0].metadata_list)
    report = InferenceReport(kind, model_path, _count_rows(shards), shards, seconds,
                             beam_options.flags()[0].split("=", 1)[1])
    logger.info("%s", report.summary())
    return report


def _default_signature(model_path: str, kind: str) -> str:
    """``embed`` for embed passes when the model has it (the classifier), else ``serving_default``."""
    if kind == "predict":
        return "serving_default"
    import tensorflow as tf

    try:
        import tensorflow_text  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        pass
    return "embed" if "embed" in tf.saved_model.load(model_path).signatures else "serving_default"


def _count_rows(shards: Sequence[str]) -> int:
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    total = 0
    for shard in shards:
        with FileSystems.open(shard) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def read_output(output: str, kind: str = "embed"):
    """All shards of an output folder as one pandas DataFrame, sorted by ``mp4_id``."""
    import pandas as pd
    import pyarrow.parquet as pq

    shards = sorted(p for p in os.listdir(output) if p.startswith(KINDS[kind] + "-") and p.endswith(".parquet"))
    if not shards:
        raise FileNotFoundError(f"no {KINDS[kind]} shards in {output}")
    frame = pd.concat([pq.read_table(os.path.join(output, s)).to_pandas() for s in shards], ignore_index=True)
    return frame.sort_values("mp4_id").reset_index(drop=True)


# ------------------------------------------------------------------------------------------ predict over videos
#: Namespace of the Beam counters of ``predict`` over videos (``decoded``, ``decode_error``).
PREDICT_NAMESPACE = "xinpianchang.predict"
#: ``--output`` extensions that select CSV / JSON lines shards (anything else is a folder of parquet shards).
TEXT_EXTENSIONS = (".csv", ".jsonl", ".json", ".ndjson")


def png_bytes(image: np.ndarray) -> bytes:
    """``uint8 [H, W, 3]`` -> PNG bytes: lossless, so the SavedModel's in-graph decode gives back exactly the
    pixels the single-process ``predict`` feeds its Keras model (a JPEG would not)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_video(row: Dict[str, Any], num_frames: int, size: int):
    """Decode one video (a line of the input list: ``index`` and the ``VideoInput`` fields) on a worker with
    ``predict``'s own decoding: ``((index, VideoInput), signature inputs)`` on the main output, or a
    skipped-item JSON line on the ``skipped`` output (counted in ``decode_error``)."""
    from apache_beam import pvalue
    from apache_beam.metrics import Metrics

    from baseline_model.predict import UNREADABLE, VideoInput, decode_item

    index, item = row["index"], VideoInput(row["path"], row["item_id"], row["cover"], row["brief"])
    try:
        brief, cover, frames = decode_item(item, num_frames, size)
    except UNREADABLE as exc:
        Metrics.counter(PREDICT_NAMESPACE, "decode_error").inc()
        yield pvalue.TaggedOutput("skipped", json.dumps(
            {"index": index, "path": item.path, "message": str(exc) or type(exc).__name__}, ensure_ascii=False))
        return
    Metrics.counter(PREDICT_NAMESPACE, "decoded").inc()
    yield (index, item), {"brief": brief, "cover": png_bytes(cover), "frames": [png_bytes(f) for f in frames]}


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> Tuple[List[str], List[float]]:
    """The ``k`` most probable labels and their probabilities (ties: the lower class id first, as argsort)."""
    order = np.argsort(-probabilities)[:k]
    return [labels[i] for i in order], [float(probabilities[i]) for i in order]


def _video_row(keyed, labels: Sequence[str], k: int) -> Dict[str, Any]:
    (_, item), result = keyed
    probabilities = np.asarray(result.inference["probabilities"], np.float32)
    names, values = top_k(probabilities, labels, k)
    return {"id": item.item_id, "path": item.path, "label": names[0], "probability": values[0],
            "top_labels": names, "top_probabilities": values, "probabilities": probabilities.tolist()}


def _video_text_row(keyed, labels: Sequence[str], k: int, jsonl: bool) -> str:
    from baseline_model.predict import format_row

    (_, item), result = keyed
    names, values = top_k(np.asarray(result.inference["probabilities"], np.float32), labels, k)
    return format_row(item, names, values, jsonl)


def video_schema():
    """The pyarrow schema of ``predict`` rows over videos (``predictions-*.parquet``)."""
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("path", pa.string()), ("label", pa.string()),
                      ("probability", pa.float32()), ("top_labels", pa.list_(pa.string())),
                      ("top_probabilities", pa.list_(pa.float32())), ("probabilities", pa.list_(pa.float32()))])


@dataclasses.dataclass
class VideoPredictReport:
    """What ``predict`` on Beam wrote: rows, the videos it could not read (``{"path", "message"}``, in input
    order), the Beam counters, the output shards and the report file."""

    model_path: str
    items: int
    written: int
    failed: List[Dict[str, str]]
    counters: Dict[str, int]
    shards: List[str]
    report_path: str
    seconds: float
    runner: str

    @property
    def clips_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"predict: {self.written} clips -> {len(self.shards)} shards ({self.report_path}); "
                f"{len(self.failed)} unreadable skipped; {self.clips_per_second:.2f} clips/s on {self.runner}")


def _output_layout(output: str) -> Tuple[str, str, str, str]:
    """``(shard prefix, shard suffix, report path, folder)`` of an ``--output``: ``OUT.csv`` ->
    ``OUT-SSSSS-of-NNNNN.csv`` and ``OUT.report.json``; a folder -> ``OUT/predictions-*.parquet`` and
    ``OUT/_predict_report.json`` (a leading ``_``: ``pyarrow.parquet.read_table(OUT)`` skips it)."""
    if output.lower().endswith(TEXT_EXTENSIONS):
        stem, suffix = os.path.splitext(output)
        folder = posixpath.dirname(output) if is_remote(output) else os.path.dirname(output)
        return stem, suffix, stem + ".report.json", folder
    return _join(output, KINDS["predict"]), ".parquet", _join(output, "_predict_report.json"), output


def predict_with_beam(
    run_dir: str,
    inputs: Sequence[str],
    output: str,
    beam_options: Optional[BeamOptions] = None,
    *,
    top_k_labels: int = 5,
    model_path: Optional[str] = None,
    num_shards: int = 0,
    max_batch_size: int = 16,
) -> VideoPredictReport:
    """``predict`` as a Beam pipeline: classify every video of ``inputs`` with RunInference over the run's
    exported classifier.

    Inputs are found exactly as the single-process ``predict`` finds them
    (:func:`baseline_model.predict.iter_inputs`: folders, globs, videos, list files; the paths must be
    readable by every worker), each is decoded on a worker with ``predict``'s own decoding
    (:func:`baseline_model.predict.decode_item`), and its cover and frames reach the SavedModel as PNG bytes
    (lossless: the same pixels, hence the same probabilities as the single-process verb's Keras model).

    Args:
      run_dir: the training run (its ``run_config.json``: frames, size, labels).
      inputs: videos, folders, glob patterns or list files.
      output: a folder of ``predictions-SSSSS-of-NNNNN.parquet`` shards (columns ``id``, ``path``, ``label``,
        ``probability``, ``top_labels``, ``top_probabilities``, ``probabilities``), or ``OUT.csv`` /
        ``OUT.jsonl``: shards ``OUT-SSSSS-of-NNNNN.csv`` with the single-process verb's rows (a header in each
        CSV shard).
      beam_options: runner and pipeline options (default: DirectRunner, multi_processing, one process per core).
      top_k_labels: labels per clip (capped at the run's label count).
      model_path: the classifier SavedModel version folder (default: the run's latest ``export/classifier``).
      num_shards: output shards (0: the runner decides).
      max_batch_size: the largest batch RunInference forms.

    A video that cannot be read is counted (Beam counter ``xinpianchang.predict/decode_error``), written to a
    side file and listed in the report (``OUT/_predict_report.json`` or ``OUT.report.json``); the pipeline goes
    on.
    """
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    from baseline_model.config import load_run_config
    from baseline_model.predict import CSV_COLUMNS, VIDEO_EXTENSIONS, iter_inputs
    from data_interface_for_model.beam_prepare import (
        _read_skipped,
        _remove_tree,
        _write_text,
        read_counters,
        read_listed,
    )

    beam_options = beam_options or BeamOptions()
    items = list(iter_inputs(inputs))  # paths only, on the launcher: the pixels are decoded on the workers
    if not items:
        raise FileNotFoundError(f"no video ({', '.join(VIDEO_EXTENSIONS)}) found in {', '.join(inputs)}")
    num_frames, size, exported = _run_model(run_dir, "classifier")
    model_path = model_path or exported
    if not is_remote(model_path):
        model_path = os.path.abspath(model_path)
    labels = list(load_run_config(run_dir)[2]["labels"])
    k = max(1, min(top_k_labels, len(labels)))
    if not is_remote(output):
        output = os.path.abspath(output)
    prefix, suffix, report_path, folder = _output_layout(output)
    if FileSystems.match([f"{prefix}-*{suffix}"])[0].metadata_list:
        raise FileExistsError(f"{output}: shards {prefix}-*{suffix} already exist: choose another --output or "
                              "remove them")
    side = _join(folder, f".xinpianchang-skipped-{uuid.uuid4().hex}")
    handler = KeyedModelHandler(SavedModelHandler(model_path, "serving_default", max_batch_size=max_batch_size))
    started = time.perf_counter()
    try:
        pipeline = beam.Pipeline(options=beam_options.pipeline_options())
        listed = read_listed(pipeline, "Videos", [dict(dataclasses.asdict(item), index=index)
                                                  for index, item in enumerate(items)], _join(side, "videos.jsonl"))
        decoded = (listed
                   | "Decode" >> beam.FlatMap(decode_video, num_frames, size).with_outputs("skipped", main="decoded"))
        _ = decoded.skipped | "WriteSkipped" >> beam.io.WriteToText(_join(side, "skipped"), file_name_suffix=".jsonl")
        results = decoded.decoded | "RunInference" >> RunInference(handler)
        if suffix == ".parquet":
            _ = (results
                 | "Rows" >> beam.Map(_video_row, labels, k)
                 | "WriteParquet" >> beam.io.WriteToParquet(prefix, video_schema(), num_shards=num_shards,
                                                            file_name_suffix=suffix))
        else:
            jsonl = suffix.lower() != ".csv"
            _ = (results
                 | "Rows" >> beam.Map(_video_text_row, labels, k, jsonl)
                 | "WriteText" >> beam.io.WriteToText(prefix, file_name_suffix=suffix, num_shards=num_shards,
                                                      header=None if jsonl else ",".join(CSV_COLUMNS)))
        result = pipeline.run()
        result.wait_until_finish()
        failed = _read_skipped(_join(side, "skipped"))
    finally:
        _remove_tree(side)
    seconds = time.perf_counter() - started
    counters = read_counters(result, PREDICT_NAMESPACE)
    shards = sorted(m.path for m in FileSystems.match([f"{prefix}-*{suffix}"])[0].metadata_list)
    written = counters.get("decoded", len(items) - len(failed))
    report = VideoPredictReport(model_path, len(items), written, failed, dict(sorted(counters.items())), shards,
                                report_path, seconds, RUNNERS[beam_options.runner])
    record = dataclasses.asdict(report)
    record["inputs"], record["pipeline_options"] = list(inputs), beam_options.flags()
    _write_text(report_path, json.dumps(record, indent=1, ensure_ascii=False))
    logger.info("%s", report.summary())
    return report


def predict_verb(args: argparse.Namespace) -> int:
    """``predict --runner ...``: :func:`predict_with_beam` with the verb's flags; names every unreadable video
    on stderr and exits 1 when there was one (as the single-process verb)."""
    import sys

    from data_interface_for_model.cli import UsageError

    if getattr(args, "embeddings", None):
        raise UsageError("predict --runner writes predictions only: run `classifier embed --input ... --runner` "
                         "for embeddings")
    report = predict_with_beam(args.run, args.input, args.output, options_from_args(args), top_k_labels=args.top_k,
                               max_batch_size=args.batch_size)
    for row in report.failed:
        print(f"skipped {row['path']}: {row['message']}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


# ------------------------------------------------------------------------------------------ verbs
def inference_verb(args: argparse.Namespace, kind: str) -> int:
    """``embed --runner ...`` (``kind="embed"``), or ``kind="predict"``: the exported model of ``--run`` (or
    ``--model``) over a prepared dataset. (``predict --runner`` over videos is :func:`predict_verb`.)

    Reads ``args.run`` or ``args.model``, ``args.output`` (a folder), ``args.runner``,
    ``args.pipeline_options``, and the data: ``args.data_dir`` (prepared shards) and, when ``args.data_root``
    is given, that root prepared first through the same runner (a matching build is reused; default data dir
    ``RUN/embed_data``, as the single-process ``embed``). ``args.frames``/``args.image_size`` default to the
    run's.
    """
    from data_interface_for_model.beam_prepare import prepare_with_beam
    from data_interface_for_model.cli import UsageError

    model_path = getattr(args, "model", None)
    num_frames, size = getattr(args, "frames", None), getattr(args, "image_size", None)
    data_dir = getattr(args, "data_dir", None)
    if getattr(args, "run", None):
        run_frames, run_size, exported = _run_model(args.run, "classifier" if kind == "predict" else "embedder")
        model_path = model_path or exported
        num_frames, size = num_frames or run_frames, size or run_size
        data_dir = data_dir or os.path.join(args.run, "embed_data")
    if not model_path:
        raise UsageError(f"{kind} --runner needs --run RUN (with an export) or --model SAVEDMODEL")
    if not data_dir or not getattr(args, "output", None):
        raise UsageError(f"{kind} --runner needs --data-dir (prepared shards) and --output (a folder)")
    num_frames, size = num_frames or defaults.FRAMES, size or defaults.IMAGE_SIZE
    options = options_from_args(args)
    if getattr(args, "data_root", None):
        prepared = prepare_with_beam(args.data_root, data_dir, num_frames, size, beam_options=options)
        logger.info("%s", prepared.summary())
    report = run_beam_inference(model_path, data_dir, args.output, kind, num_frames, size, beam_options=options)
    print(report.summary())
    return 0


def _run_model(run_dir: str, name: str) -> Tuple[int, int, str]:
    """A run's frame count, image size and the latest export of ``name`` (under ``RUN/export``)."""
    import json

    from data_interface_for_model.tf_serving_format import list_versions, version_path

    with open(os.path.join(run_dir, "run_config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    model = config.get("model", {})
    base = os.path.join(run_dir, "export")
    versions = list_versions(os.path.join(base, name)) if os.path.isdir(os.path.join(base, name)) else {}
    if not versions:
        raise FileNotFoundError(f"{run_dir} has no exported {name}: run `xinpianchang classifier export --run "
                                f"{run_dir}` first, or pass --model")
    return (int(config.get("num_frames", model.get("num_frames", defaults.FRAMES))),
            int(config.get("image_size", model.get("image_size", defaults.IMAGE_SIZE))),
            version_path(base, name, max(versions)))


__all__ = ["InferenceReport", "KINDS", "PREDICT_NAMESPACE", "SavedModelHandler", "VideoPredictReport",
           "call_signature", "decode_video", "inference_verb", "parse_example", "parquet_schema", "png_bytes",
           "predict_verb", "predict_with_beam", "read_output", "run_beam_inference", "video_schema"]
