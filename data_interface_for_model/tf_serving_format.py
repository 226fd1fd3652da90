"""TF Serving's on-disk format for model versions: the one place every exporter and the server use.

A *model base* holds one folder per model, each holding numbered version folders::

    MODELS/<model_name>/<version>/saved_model.pb + variables/ [+ assets.extra/]

TF Serving only loads folders whose names are all digits and that hold a SavedModel, and it treats a
version as immutable. So a writer builds the SavedModel under a hidden, non-numeric name beside its target
and renames it into place (:func:`write_version`): a server polling the folder never sees half a version.

Every exporter also writes TF Serving's warm-up file, ``<version>/assets.extra/tf_serving_warmup_requests`` (a
TFRecord of ``PredictionLog`` records holding real example requests, :func:`write_warmup_requests`), inside the
temporary folder before the rename, so a server replays them before the version turns AVAILABLE.

This module lives in the base package (which every other package imports) so that the classifier's and the
recommender's exporters and the server share it without importing one another. TensorFlow and
``tensorflow_serving.apis`` are imported only inside the warm-up functions.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Sequence, Union

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: TF Serving's warm-up file, relative to a version folder (saved_model_warmup.md), and its record limit.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000
_VERSION_RE = re.compile(r"^[0-9]{1,18}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class LayoutError(ValueError):
    """A model base, name, version or config file that does not follow TF Serving's layout."""


def validate_model_name(name: str) -> str:
    """A model name is one path component of letters, digits, ``_ . -`` (it appears in URLs and paths)."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise LayoutError(f"invalid model name {name!r}: use letters, digits, '_', '.', '-'")
    return name


def validate_version(version: int) -> int:
    """A version is a positive integer of at most 18 digits (TF Serving parses it as int64)."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 10 ** 18:
        raise LayoutError(f"invalid model version {version!r}: a positive integer below 10**18")
    return version


def is_saved_model_dir(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in SAVED_MODEL_FILES)


def list_versions(model_path: str) -> Dict[int, str]:
    """``{version: folder}`` for the numbered sub-folders of ``model_path`` that hold a SavedModel.

    Names that are not all digits (``.export-1a2b``, ``1.tmp``) are ignored, as TF Serving ignores them.
    """
    versions: Dict[int, str] = {}
    try:
        entries = os.listdir(model_path)
    except (FileNotFoundError, NotADirectoryError):
        return versions
    for entry in entries:
        full = os.path.join(model_path, entry)
        if _VERSION_RE.match(entry) and os.path.isdir(full) and is_saved_model_dir(full):
            versions[int(entry)] = full
    return versions


def next_version(model_base: str, names: Sequence[str]) -> int:
    """1 + the highest numbered folder under ``model_base/<name>/`` for any of ``names`` (1 if none).

    Every numbered folder counts, complete or not, so a new export never reuses a number that a half-copied
    or broken version already holds. Exporting several models with one call and one number keeps their
    versions in step (a classifier and its embedder, or the recommender's indexes).
    """
    highest = 0
    for name in names:
        folder = os.path.join(model_base, validate_model_name(name))
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if _VERSION_RE.match(entry) and os.path.isdir(os.path.join(folder, entry)):
                highest = max(highest, int(entry))
    return highest + 1


def version_path(model_base: str, name: str, version: int) -> str:
    return os.path.join(model_base, validate_model_name(name), str(validate_version(version)))


@contextlib.contextmanager
def write_version(model_base: str, name: str, version: int) -> Iterator[str]:
    """Yields an empty temporary folder to save a SavedModel into; on success it becomes
    ``model_base/name/version`` by one rename, on any error it is removed. The target must not exist
    (TF Serving versions are immutable: export a new version instead)::

        with write_version("models", "classifier", 3) as tmp:
            tf.saved_model.save(module, tmp)
    """
    target = version_path(model_base, name, version)
    if os.path.lexists(target):
        raise FileExistsError(f"{name} version {version} already exists in {model_base}; TF Serving versions "
                              f"are immutable, export a new version")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)  # hidden and not numeric: TF Serving ignores it
    try:
        yield tmp
        if not is_saved_model_dir(tmp):
            raise LayoutError(f"{name} version {version}: nothing was saved (no saved_model.pb)")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def warmup_path(version_dir: str) -> str:
    return os.path.join(version_dir, WARMUP_FILE)


WarmupRequests = Union[Mapping[str, Mapping[str, Any]], Iterable[Any]]


def write_warmup_requests(version_dir: str, model_name: str, requests: WarmupRequests) -> str:
    """Write TF Serving's warm-up file into ``version_dir`` (a SavedModel folder, normally the temporary one
    of :func:`write_version`, before its rename); returns its path.

    ``requests`` is ``{signature_name: {input_name: array-like [batch, ...]}}`` (real example inputs): each
    becomes a ``PredictLog`` holding a ``PredictRequest`` with the whole batch and, when the batch has more
    than one row, a second one with its first row alone (the online case). Inputs are checked against the
    SavedModel's own SignatureDef (every input present, no unknown one) and converted to its declared dtype,
    so each record is a request TF Serving accepts. ``requests`` may instead be an iterable of ready
    ``PredictionLog`` protos (classify, regress, multi-inference records), written as given.

    Raises:
      LayoutError: no SavedModel in ``version_dir``, an unknown signature or input, or over 1000 records.
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    logs: List[Any] = []
    if isinstance(requests, Mapping):
        signature_defs = _signature_defs(version_dir)
        for signature, inputs in requests.items():
            if signature not in signature_defs:
                raise LayoutError(f"{model_name} warm-up: the SavedModel in {version_dir} has no signature "
                                  f"{signature!r} (it has {sorted(signature_defs)})")
            declared = signature_defs[signature].inputs
            if set(inputs) != set(declared):
                raise LayoutError(f"{model_name} warm-up: signature {signature!r} takes inputs {sorted(declared)}, "
                                  f"got {sorted(inputs)}")
            arrays = {name: np.asarray(value, dtype=tf.dtypes.as_dtype(declared[name].dtype).as_numpy_dtype)
                      for name, value in inputs.items()}
            batches = [arrays]
            if all(a.ndim >= 1 and len(a) > 1 for a in arrays.values()):
                batches.append({name: a[:1] for name, a in arrays.items()})
            for batch in batches:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = signature
                for name, array in batch.items():
                    request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
                logs.append(prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)))
    else:
        logs = list(requests)
    if not logs or len(logs) > MAX_WARMUP_RECORDS:
        raise LayoutError(f"{model_name} warm-up: {len(logs)} records (TF Serving reads 1 to {MAX_WARMUP_RECORDS})")
    path = warmup_path(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def _signature_defs(version_dir: str) -> Dict[str, Any]:
    """The serving meta graph's SignatureDefs of the SavedModel in ``version_dir``."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(version_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise LayoutError(f"{version_dir}: no saved_model.pb to write warm-up requests for")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        saved.ParseFromString(handle.read())
    for meta_graph in saved.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise LayoutError(f"{version_dir}: the SavedModel has no 'serve' meta graph")


def read_warmup_requests(version_dir: str) -> List[Any]:
    """The ``PredictionLog`` records of ``version_dir``'s warm-up file ([] without one; at most 1000 read)."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(version_dir)
    if not os.path.isfile(path):
        return []
    logs = []
    for record in tf.compat.v1.io.tf_record_iterator(path):
        if len(logs) == MAX_WARMUP_RECORDS:
            break
        logs.append(prediction_log_pb2.PredictionLog.FromString(record))
    return logs


def sample_jpeg(size: int = 32) -> bytes:
    """A small real JPEG (a colour gradient, ``size`` x ``size``) for warm-up requests of image inputs."""
    import numpy as np
    import tensorflow as tf

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    image = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                      np.full((size, size), 128, np.float32)], axis=-1).astype(np.uint8)
    return tf.io.encode_jpeg(image).numpy()
