"""Bulk sources for the catalog, detected from one path.

* a **dataset folder** in the xinpianchang layout (``ROOT/<label>/<id>/<id>.mp4|.jpeg|.txt``);
* an **info file** (``multimodal_data_info.json``, one JSON object per line): each record's clip is looked up
  in the layout beside the file (``<folder of the file>/<label>/<id>/<id>.mp4``);
* a **MicroLens-style items file** (``.csv``/``.tsv`` with an ``item``/``item_id``/``video_id`` column and a
  ``title`` column, e.g. ``MicroLens-50k_titles.csv``), clips in ``videos/<id>.mp4`` beside it and covers, if
  any, in ``covers/<id>.jpg``; a folder holding such a file and a ``videos/`` folder is read the same way.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import os
from typing import Iterator, Optional

from data_interface_for_model.info_file import iter_info_file
from data_interface_for_model.layout import item_paths, iter_layout


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """One item to index; ``video_path`` None means its clip is missing (counted as a failure)."""

    video_id: str
    video_path: Optional[str]
    title: str = ""
    brief: str = ""
    label: Optional[str] = None
    cover_path: Optional[str] = None


def _existing(path: str) -> Optional[str]:
    return path if os.path.isfile(path) else None


def _microlens_file(folder: str) -> Optional[str]:
    if not os.path.isdir(os.path.join(folder, "videos")):
        return None
    for pattern in ("*titles*.csv", "*items*.csv", "*titles*.tsv", "*items*.tsv"):
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            return found[0]
    return None


def iter_microlens(path: str) -> Iterator[SourceItem]:
    """Items of a MicroLens-style items file (see the module docstring)."""
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = "\t" if path.endswith(".tsv") or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        id_column = next((columns[c] for c in ("item", "item_id", "video_id", "id") if c in columns), None)
        if id_column is None:
            raise ValueError(f"{path}: no item id column (expected item, item_id, video_id or id; "
                             f"found {reader.fieldnames})")
        title_column = columns.get("title")
        for row in reader:
            video_id = (row.get(id_column) or "").strip()
            if not video_id:
                continue
            title = (row.get(title_column) or "").strip() if title_column else ""
            cover = next(filter(None, (_existing(os.path.join(folder, "covers", video_id + ext))
                                       for ext in (".jpg", ".jpeg"))), None)
            yield SourceItem(video_id, _existing(os.path.join(folder, "videos", video_id + ".mp4")), title, title,
                             None, cover)


def iter_info(path: str) -> Iterator[SourceItem]:
    """Items of an info file, their clips looked up in the layout beside it."""
    root = os.path.dirname(os.path.abspath(path))
    for record in iter_info_file(path):
        paths = item_paths(root, record.label, record.mp4_id)
        yield SourceItem(record.mp4_id, _existing(paths["video"]), record.brief.strip(), record.brief.strip(),
                         record.label, _existing(paths["cover"]))


def iter_folder(root: str) -> Iterator[SourceItem]:
    """Items of a dataset folder in the xinpianchang layout (a missing cover or text is accepted)."""
    for item in iter_layout(root, allow_missing=("cover", "text")):
        brief = item.brief.strip()
        yield SourceItem(item.mp4_id, item.video_path, brief, brief, item.label, item.cover_path)


def iter_source(path: str) -> Iterator[SourceItem]:
    """The items of ``path``, whichever of the three kinds it is."""
    if os.path.isdir(path):
        items_file = _microlens_file(path)
        return iter_microlens(items_file) if items_file else iter_folder(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"source {path!r} not found")
    if path.endswith((".csv", ".tsv")):
        return iter_microlens(path)
    if path.endswith((".json", ".jsonl")):
        return iter_info(path)
    raise ValueError(f"source {path!r}: expected a dataset folder, an info file (.json) or an items file (.csv)")
