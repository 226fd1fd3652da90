"""The penultimate embedding of every item of a dataset, for the recommender."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from baseline_model import data as data_lib
from baseline_model.run import LoadedRun, load_run
from data_interface_for_model.embeddings_file import write_embeddings

logger = logging.getLogger(__name__)


def embed_dataset(run: LoadedRun, data_root: str, data_dir: Optional[str] = None):
    """``(ids [N], labels [N], vectors [N, D])`` over every split of ``data_root`` (prepared once into
    ``data_dir``, by default the run's own data dir when the root is the run's, else ``RUN/embed_data``).
    Labels are names from the run's label set."""
    same_root = os.path.abspath(data_root) == os.path.abspath(run.train_config.data_root)
    train = dataclasses.replace(run.train_config, data_root=data_root,
                                data_dir=data_dir or (run.train_config.data_dir if same_root
                                                      else os.path.join(run.run_dir, "embed_data")))
    report = data_lib.prepare(train, run.model_config)
    logger.info("prepared %s: %s", data_root, report)
    parts = run.embed_splits(train, [s for s in data_lib.SPLITS if report.split_counts.get(s)])
    ids = np.concatenate([p[0] for p in parts.values()])
    label_ids = np.concatenate([p[1] for p in parts.values()])
    vectors = np.concatenate([p[2] for p in parts.values()]).astype(np.float32)
    names = np.asarray([run.labels[int(i)] for i in label_ids])
    return ids, names, vectors


def embed_run(run_dir: str, data_root: str, out: str, data_dir: Optional[str] = None) -> int:
    """Write the embeddings of every item under ``data_root`` to ``out`` (.parquet or .npz); return N."""
    ids, labels, vectors = embed_dataset(load_run(run_dir), data_root, data_dir)
    write_embeddings(out, ids, labels, vectors)
    return len(ids)


#: Column names accepted for an items CSV's id, title and cover (first present wins).
ITEM_ID_COLUMNS = ("id", "item_id", "mp4_id")
ITEM_TITLE_COLUMNS = ("title", "brief", "text", "name")
ITEM_COVER_COLUMNS = ("cover", "cover_path", "image", "image_path")


@dataclasses.dataclass(frozen=True)
class CatalogItem:
    """One row of an items CSV: its id, title ("" = none), cover path (None = none) and label ("" = none)."""

    item_id: str
    title: str
    cover: Optional[str]
    label: str
    line: int


def _column(fields, names, path: str, what: str, required: bool) -> Optional[str]:
    for name in names:
        if name in fields:
            return name
    if required:
        raise ValueError(f"{path}: an items CSV needs {what} column (one of {', '.join(names)}); it has "
                         f"{', '.join(fields) or 'no header'}")
    return None


def read_items_csv(path: str) -> "list[CatalogItem]":
    """The rows of an items CSV (header: ``id``, ``title`` and/or ``cover``, optional ``label``; covers
    relative to the CSV's folder).

    Raises ValueError naming the line: a missing or repeated id, an id holding whitespace, a comma or a
    control character, a row with neither title nor cover, a cover file that does not exist."""
    import csv

    folder = os.path.dirname(os.path.abspath(path))
    items, seen = [], {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        id_col = _column(fields, ITEM_ID_COLUMNS, path, "an id", True)
        title_col = _column(fields, ITEM_TITLE_COLUMNS, path, "a title", False)
        cover_col = _column(fields, ITEM_COVER_COLUMNS, path, "a cover", False)
        if title_col is None and cover_col is None:
            raise ValueError(f"{path}: an items CSV needs a title column ({', '.join(ITEM_TITLE_COLUMNS)}) "
                             f"and/or a cover column ({', '.join(ITEM_COVER_COLUMNS)})")
        for row in reader:
            line = reader.line_num
            item_id = (row.get(id_col) or "").strip()
            if not item_id:
                raise ValueError(f"{path}, line {line}: empty id")
            if any(c.isspace() or c == "," or ord(c) < 32 for c in item_id):
                raise ValueError(f"{path}, line {line}: id {item_id!r} holds whitespace, a comma or a control "
                                 f"character")
            if item_id in seen:
                raise ValueError(f"{path}, line {line}: id {item_id!r} repeats line {seen[item_id]}")
            seen[item_id] = line
            title = " ".join((row.get(title_col) or "").split()) if title_col else ""
            cover = (row.get(cover_col) or "").strip() if cover_col else ""
            if cover:
                cover = cover if os.path.isabs(cover) else os.path.join(folder, cover)
                if not os.path.isfile(cover):
                    raise ValueError(f"{path}, line {line}: item {item_id!r}: cover {cover} does not exist")
            if not title and not cover:
                raise ValueError(f"{path}, line {line}: item {item_id!r} has neither a title nor a cover")
            items.append(CatalogItem(item_id, title, cover or None, (row.get("label") or "").strip(), line))
    if not items:
        raise ValueError(f"{path}: no items")
    return items


def embed_items(run_dir: str, items_csv: str, out: str, batch_size: int = 32, progress: bool = True) -> int:
    """Embed catalog items that have a title and/or a cover but no video with the run's own text and image
    encoders: the embedder's inputs are the title as the brief, the cover (or an all-zero cover: missing)
    and all-zero frames (the video is missing), exactly how the classifier sees an item without a clip.
    Writes the embeddings file ``out`` (.parquet or .npz) with the CSV's labels (any label set, ``""`` for
    none); returns the number of items. Nothing is written when a row or a cover is bad (named)."""
    from tqdm.auto import tqdm

    from data_interface_for_model.decoding import load_cover

    items = read_items_csv(items_csv)
    run = load_run(run_dir)
    config = run.model_config
    size, frames = config.image_size, config.num_frames
    zero_cover = np.zeros((size, size, 3), np.float32)
    zero_frames = np.zeros((frames, size, size, 3), np.float32)
    parts = []
    with tqdm(total=len(items), desc="embed items", unit="item", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            covers = []
            for item in batch:
                if item.cover is None:
                    covers.append(zero_cover)
                    continue
                try:
                    image = load_cover(item.cover, size, require_jpeg=False)
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{items_csv}, line {item.line}: item {item.item_id!r}: {exc}") from None
                covers.append(image.astype(np.float32) / np.float32(255.0))
            features = {"text": np.asarray([i.title for i in batch], dtype=object), "cover": np.stack(covers),
                        "frames": np.broadcast_to(zero_frames, (len(batch),) + zero_frames.shape).copy()}
            parts.append(np.asarray(run.embedder.predict_on_batch(features), dtype=np.float32))
            bar.update(len(batch))
    write_embeddings(out, [i.item_id for i in items], [i.label for i in items], np.concatenate(parts))
    logger.info("embedded %d items of %s with %s -> %s", len(items), items_csv, run_dir, out)
    return len(items)
