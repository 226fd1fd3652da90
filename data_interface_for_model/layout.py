"""Reading the on-disk layout ``ROOT/<label>/<mp4_id>/<mp4_id>.mp4|.jpeg|.txt``.

Every defect is reported item by item as a :class:`LayoutProblem` (never silently dropped): a missing
file, an empty file, an unknown label folder, an unsafe id folder, a ``.txt`` whose id or label disagrees
with its folder, an unreadable ``.txt``. Items that lack a modality can still be yielded when the caller
accepts that modality as missing (later models cope with missing modalities).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, FrozenSet, Iterable, Iterator, List, Optional, Union

from data_interface_for_model.categories import LABEL_TO_ID
from data_interface_for_model.info_file import INFO_FILE_NAME
from data_interface_for_model.item_txt import read_item_txt
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.schema import RecordError, VideoRecord, label_scope, validate_label, validate_mp4_id

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
MODALITIES = ("video", "cover", "text")
EXTENSIONS = {"video": ".mp4", "cover": ".jpeg", "text": ".txt"}
#: Files that may stand at the top of a root without being reported.
ROOT_FILES = frozenset({INFO_FILE_NAME, "README.md", "download_failures.json", "labels.txt"})


@dataclasses.dataclass(frozen=True)
class LayoutProblem:
    """One defect found in the layout.

    ``kind`` is one of: unknown_label, stray_file, unsafe_id, missing_video, missing_cover, missing_text,
    empty_file, malformed_txt, id_mismatch.
    """

    path: str
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


@dataclasses.dataclass(frozen=True)
class LayoutItem:
    """One item found on disk. A path is ``None`` when that modality is missing (and was accepted)."""

    mp4_id: str
    label: str
    folder: str
    video_path: Optional[str]
    cover_path: Optional[str]
    txt_path: Optional[str]
    record: Optional[VideoRecord]

    @property
    def label_id(self) -> int:
        return LABEL_TO_ID[self.label]

    @property
    def brief(self) -> str:
        """The description, or an empty string when the text is missing."""
        return self.record.brief if self.record is not None else ""

    @property
    def missing(self) -> FrozenSet[str]:
        """The modalities this item lacks."""
        present = {"video": self.video_path, "cover": self.cover_path, "text": self.txt_path}
        return frozenset(m for m, p in present.items() if p is None)


def _normalise_allowed(allow_missing: Union[bool, Iterable[str], None]) -> FrozenSet[str]:
    if allow_missing is True:
        return frozenset(MODALITIES)
    if not allow_missing:
        return frozenset()
    allowed = frozenset(allow_missing)
    unknown = allowed - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; expected a subset of {MODALITIES}")
    return allowed


class LayoutReader:
    """Iterate the items of a layout root, collecting problems as it goes.

    Args:
      root: the dataset root (the folder holding the 31 label folders).
      allow_missing: modalities an item may lack and still be yielded (``True`` for all of them); a
        missing modality that is not allowed makes the item a problem instead.
      labels: only read these label folders (default: every folder found).
      on_problem: called with each :class:`LayoutProblem` as it is found (default: collected in
        :attr:`problems` only).
      limits: bounds on each ``.txt`` (size, nesting, number length); one over them is a malformed_txt.
      known_labels: the dataset's label set (:mod:`~data_interface_for_model.label_set`); a label folder
        outside it is an unknown_label (default: the 31 xinpianchang categories).

    Iteration order is sorted (labels, then ids), so it is the same on every machine.
    """

    def __init__(
        self,
        root: PathLike,
        allow_missing: Union[bool, Iterable[str], None] = False,
        labels: Optional[Iterable[str]] = None,
        on_problem: Optional[Callable[[LayoutProblem], None]] = None,
        limits: ParseLimits = DEFAULT_PARSE_LIMITS,
        known_labels: Optional[Iterable[str]] = None,
    ):
        self.root = os.fspath(root)
        self.known_labels = None if known_labels is None else frozenset(known_labels)
        self.allow_missing = _normalise_allowed(allow_missing)
        self.labels = None if labels is None else frozenset(labels)
        self.on_problem = on_problem
        self.limits = limits
        self.problems: List[LayoutProblem] = []
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"dataset root {self.root!r} is not a folder")

    def _report(self, path: str, kind: str, message: str) -> None:
        problem = LayoutProblem(path, kind, message)
        self.problems.append(problem)
        if self.on_problem is not None:
            self.on_problem(problem)

    def __iter__(self) -> Iterator[LayoutItem]:
        self.problems = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not entry.is_dir():
                if entry.name not in ROOT_FILES and not entry.name.startswith("."):
                    self._report(entry.path, "stray_file", "a file where a label folder was expected")
                continue
            if entry.name.startswith("."):
                continue
            if entry.name not in (LABEL_TO_ID if self.known_labels is None else self.known_labels):
                where = "one of the 31 categories" if self.known_labels is None else "in the dataset's label set"
                self._report(entry.path, "unknown_label", f"{entry.name!r} is not {where}")
                continue
            if self.labels is not None and entry.name not in self.labels:
                continue
            yield from self._iter_label(entry.name, entry.path)

    def _iter_label(self, label: str, folder: str) -> Iterator[LayoutItem]:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                self._report(entry.path, "stray_file", "a file where an item folder was expected")
                continue
            try:
                mp4_id = validate_mp4_id(entry.name)
            except RecordError as exc:
                self._report(entry.path, "unsafe_id", str(exc))
                continue
            item = self._read_item(label, mp4_id, entry.path)
            if item is not None:
                yield item

    def _present(self, path: str) -> Optional[str]:
        """``path`` if it is a non-empty file; report an empty one."""
        if not os.path.isfile(path):
            return None
        if os.path.getsize(path) == 0:
            self._report(path, "empty_file", "zero bytes")
            return None
        return path

    def _read_item(self, label: str, mp4_id: str, folder: str) -> Optional[LayoutItem]:
        paths = {m: self._present(os.path.join(folder, mp4_id + ext)) for m, ext in EXTENSIONS.items()}
        record = None
        if paths["text"] is not None:
            try:
                with label_scope(self.known_labels):
                    record = read_item_txt(paths["text"], label=label, limits=self.limits)
            except RecordError as exc:
                self._report(paths["text"], "malformed_txt", str(exc))
                paths["text"] = None
            else:
                if record.mp4_id != mp4_id:
                    self._report(
                        paths["text"], "id_mismatch", f"the .txt says mp4_id {record.mp4_id!r}, the folder {mp4_id!r}"
                    )
                    record, paths["text"] = None, None
        missing = [m for m, p in paths.items() if p is None]
        fatal = [m for m in missing if m not in self.allow_missing]
        for modality in missing:
            if modality in fatal:
                self._report(
                    os.path.join(folder, mp4_id + EXTENSIONS[modality]),
                    f"missing_{modality}",
                    f"item {label}/{mp4_id} has no usable {modality}",
                )
        if fatal or len(missing) == len(MODALITIES):
            return None
        return LayoutItem(
            mp4_id=mp4_id,
            label=label,
            folder=folder,
            video_path=paths["video"],
            cover_path=paths["cover"],
            txt_path=paths["text"],
            record=record,
        )


def iter_layout(root: PathLike, allow_missing: Union[bool, Iterable[str], None] = False) -> Iterator[LayoutItem]:
    """Iterate the complete items under ``root``; problems are logged as warnings."""
    reader = LayoutReader(root, allow_missing=allow_missing, on_problem=lambda p: logger.warning("%s", p))
    return iter(reader)


def item_paths(root: PathLike, label: str, mp4_id: str) -> "dict[str, str]":
    """Where the three files of an item live under ``root`` (the id and label are validated first)."""
    validate_label(label)
    validate_mp4_id(mp4_id)
    folder = os.path.join(os.fspath(root), label, mp4_id)
    return {m: os.path.join(folder, mp4_id + ext) for m, ext in EXTENSIONS.items()}
