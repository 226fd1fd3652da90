"""Item-embedding files: the classifier writes them (``python -m baseline_model embed``), the recommender
reads them.

Two formats, chosen by extension:

* ``.parquet``: columns ``mp4_id`` (string), ``label`` (string), ``embedding`` (list of float32);
* ``.npz``: arrays ``ids`` (str ``[N]``), ``labels`` (str ``[N]``), ``vectors`` (float32 ``[N, D]``).

Reading validates: unique safe ids, one dimension for every vector, no NaN or infinity. Labels are free:
one of the 31 xinpianchang categories, any other catalog's label, or ``""`` for none (one line of text).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence, Union

import numpy as np

from data_interface_for_model.atomic import atomic_output_path
from data_interface_for_model.schema import RecordError, validate_mp4_id

PathLike = Union[str, "os.PathLike[str]"]


class EmbeddingFileError(ValueError):
    """An embedding file that cannot be used (mixed dimensions, NaNs, duplicate ids, unknown labels...)."""


@dataclasses.dataclass(frozen=True)
class EmbeddingTable:
    """Item embeddings.

    Attributes:
      ids: item ids, ``[N]``.
      labels: labels ``[N]``: any one-line text (the 31 xinpianchang categories or another catalog's), ``""``
        for an item without one.
      vectors: float32 ``[N, D]``.
    """

    ids: np.ndarray
    labels: np.ndarray
    vectors: np.ndarray

    def __post_init__(self) -> None:
        _validate(self.ids, self.labels, self.vectors, "<in memory>")

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def index_of(self) -> "dict[str, int]":
        """Map item id -> row."""
        return {str(i): n for n, i in enumerate(self.ids)}


def _validate(ids: np.ndarray, labels: np.ndarray, vectors: np.ndarray, name: str) -> None:
    if vectors.ndim != 2:
        raise EmbeddingFileError(f"{name}: vectors must be [N, D], got shape {vectors.shape}")
    if not (len(ids) == len(labels) == vectors.shape[0]):
        raise EmbeddingFileError(
            f"{name}: {len(ids)} ids, {len(labels)} labels and {vectors.shape[0]} vectors do not match")
    if vectors.shape[0] == 0:
        raise EmbeddingFileError(f"{name}: no embeddings")
    bad_rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad_rows.size:
        raise EmbeddingFileError(
            f"{name}: {bad_rows.size} vectors hold NaN or infinity (first: item {ids[bad_rows[0]]!r})")
    if len(set(ids.tolist())) != len(ids):
        raise EmbeddingFileError(f"{name}: duplicate item ids")
    try:
        for item_id, label in zip(ids.tolist(), labels.tolist()):
            validate_mp4_id(item_id)
            if any(ord(ch) < 32 for ch in label):
                raise RecordError(f"item {item_id!r}: label {label!r} holds a control character")
    except RecordError as exc:
        raise EmbeddingFileError(f"{name}: {exc}") from None


def _stack(rows: Sequence, name: str, ids: Sequence) -> np.ndarray:
    dims = {len(row) for row in rows}
    if len(dims) > 1:
        first = {}
        for item_id, row in zip(ids, rows):
            first.setdefault(len(row), item_id)
        detail = ", ".join(f"{d} (e.g. item {i!r})" for d, i in sorted(first.items()))
        raise EmbeddingFileError(f"{name}: vectors have mixed dimensions: {detail}")
    return np.asarray([np.asarray(row, dtype=np.float32) for row in rows], dtype=np.float32).reshape(len(rows), -1)


def read_embeddings(path: PathLike) -> EmbeddingTable:
    """Read and validate an embedding file (``.parquet`` or ``.npz``)."""
    name = os.fspath(path)
    if name.endswith(".npz"):
        with np.load(name, allow_pickle=False) as data:
            missing = {"ids", "labels", "vectors"} - set(data.files)
            if missing:
                raise EmbeddingFileError(f"{name}: missing arrays {sorted(missing)}")
            ids, labels, raw = data["ids"].astype(str), data["labels"].astype(str), data["vectors"]
        if raw.dtype == object or raw.ndim != 2:
            raise EmbeddingFileError(f"{name}: vectors must be a 2-D float array, got shape {raw.shape}")
        vectors = raw.astype(np.float32)
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(name)
        missing = {"mp4_id", "label", "embedding"} - set(table.column_names)
        if missing:
            raise EmbeddingFileError(f"{name}: missing columns {sorted(missing)}")
        ids = np.asarray(table.column("mp4_id").to_pylist(), dtype=str)
        labels = np.asarray(table.column("label").to_pylist(), dtype=str)
        vectors = _stack(table.column("embedding").to_pylist(), name, ids.tolist())
    else:
        raise EmbeddingFileError(f"{name}: unknown format (expected .parquet or .npz)")
    _validate(ids, labels, vectors, name)
    return EmbeddingTable(ids=ids, labels=labels, vectors=vectors)


def write_embeddings(path: PathLike, ids: Sequence[str], labels: Sequence[str], vectors: np.ndarray) -> None:
    """Write an embedding file atomically; the format follows the extension."""
    name = os.fspath(path)
    ids_arr = np.asarray(list(ids), dtype=str)
    labels_arr = np.asarray(list(labels), dtype=str)
    vectors = np.asarray(vectors, dtype=np.float32)
    _validate(ids_arr, labels_arr, vectors, name)
    if name.endswith(".npz"):
        with atomic_output_path(name, suffix=".npz") as tmp:
            np.savez(tmp, ids=ids_arr, labels=labels_arr, vectors=vectors)
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({
            "mp4_id": pa.array(ids_arr.tolist(), pa.string()),
            "label": pa.array(labels_arr.tolist(), pa.string()),
            "embedding": pa.array(list(vectors), pa.list_(pa.float32())),
        })
        with atomic_output_path(name, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
    else:
        raise EmbeddingFileError(f"{name}: unknown format (expected .parquet or .npz)")
