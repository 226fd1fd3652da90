"""The label set of a dataset root: which classes exist, and their ids.

1. A ``labels.txt`` at the root (one label per line; blank lines and ``#`` comments ignored) wins: its
   order gives the ids, and label folders not listed in it are reported and skipped.
2. Otherwise, when every label folder is one of the 31 xinpianchang categories: the 31 with the original
   ids (``categories.LABELS``), even if some folders are absent.
3. Otherwise the label folders found, sorted.

A label is one path component of printable text (no ``/``, ``\\`` or ``..``), so it is safe as a folder name.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Tuple, Union

from data_interface_for_model.categories import LABELS

LABELS_FILE = "labels.txt"
PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """``names[i]`` is class ``i``; ``source`` is ``labels.txt``, ``xinpianchang`` or ``folders``."""

    names: Tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.names)


def check_label_name(name: str, where: str = "label") -> str:
    if (not isinstance(name, str) or not name.strip() or name != name.strip() or name.startswith(".")
            or "/" in name or "\\" in name or ".." in name or any(ord(ch) < 32 for ch in name)):
        raise ValueError(f"{where}: {name!r} is not a usable label (one folder name, no separators or '..')")
    return name


def read_labels_file(path: PathLike) -> List[str]:
    """The labels listed in a ``labels.txt``, in order; ValueError naming the file and line if malformed."""
    names: List[str] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            check_label_name(text, f"{os.fspath(path)} line {number}")
            if text in names:
                raise ValueError(f"{os.fspath(path)} line {number}: label {text!r} is listed twice")
            names.append(text)
    if not names:
        raise ValueError(f"{os.fspath(path)} lists no label")
    return names


def label_folders(root: PathLike) -> List[str]:
    """The label folders under ``root`` (visible sub-folders), sorted."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def discover_labels(root: PathLike) -> LabelSet:
    """The label set of ``root`` by the rules above."""
    path = os.path.join(os.fspath(root), LABELS_FILE)
    if os.path.isfile(path):
        return LabelSet(tuple(read_labels_file(path)), LABELS_FILE)
    folders = label_folders(root)
    if not folders:
        raise ValueError(f"{os.fspath(root)} holds no label folder")
    if set(folders) <= set(LABELS):
        return LabelSet(tuple(LABELS), "xinpianchang")
    for name in folders:
        check_label_name(name, os.path.join(os.fspath(root), name))
    return LabelSet(tuple(folders), "folders")
