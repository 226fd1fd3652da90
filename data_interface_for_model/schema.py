"""The typed record of one multimodal item and its validation.

A record is what one line of ``multimodal_data_info.json`` (or one per-item ``.txt``) describes::

    {"mp4_id": "80328682", "mp4_download_url": "https://.../080328682_main_xl.mp4", "mp4_time": "0:16",
     "mp4_background_image_url": "https://.../080328682_iconl.jpeg",
     "mp4_txt_brief": " Woman in swimsuit and cover up walking at the beach", "video_label": "Beach"}
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import re
from typing import Any, Collection, Dict, Iterator, Mapping, Optional

from data_interface_for_model.categories import LABEL_TO_ID, UnknownLabelError, label_to_id

#: Keys of a line of ``multimodal_data_info.json``, in the original's order.
INFO_KEYS = ("mp4_id", "mp4_download_url", "mp4_time", "mp4_background_image_url", "mp4_txt_brief", "video_label")
#: Keys of the original per-item ``.txt`` (it has no label: the folder says it).
TXT_KEYS = INFO_KEYS[:-1]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_TIME = re.compile(r"^\s*(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?\s*$")


class RecordError(ValueError):
    """A record that is malformed: a missing key, a wrong type, an unknown label, a hostile id."""


def validate_mp4_id(mp4_id: Any) -> str:
    """Return ``mp4_id`` as a string if it is safe to use as a file and folder name.

    Refuses anything with a path separator, ``..``, a leading dot, control characters or other punctuation,
    so that an id can never make a path escape the dataset root.
    """
    if isinstance(mp4_id, bool) or not isinstance(mp4_id, (str, int)):
        raise RecordError(f"mp4_id must be a string, got {type(mp4_id).__name__}")
    text = str(mp4_id)
    if "/" in text or "\\" in text or ".." in text:
        raise RecordError(f"mp4_id {text!r} contains a path separator or '..'")
    if not _SAFE_ID.match(text):
        raise RecordError(f"mp4_id {text!r} is not a safe id (letters, digits, '_', '-', '.'; 1-128 chars)")
    return text


#: The label set records are validated against: ``None`` is the 31 categories; a dataset with its own label
#: set (see :mod:`data_interface_for_model.label_set`) reads its records inside :func:`label_scope`.
_LABEL_SCOPE: "contextvars.ContextVar[Optional[Collection[str]]]" = contextvars.ContextVar("labels", default=None)


@contextlib.contextmanager
def label_scope(labels: Optional[Collection[str]]) -> Iterator[None]:
    """Validate records against ``labels`` (``None``: the 31 categories) inside the block."""
    token = _LABEL_SCOPE.set(None if labels is None else frozenset(labels))
    try:
        yield
    finally:
        _LABEL_SCOPE.reset(token)


def validate_label(label: Any) -> str:
    """Return ``label`` if it is one of the 31 categories, or of the label set of the enclosing
    :func:`label_scope` (a hostile path is refused before the lookup)."""
    if not isinstance(label, str):
        raise RecordError(f"video_label must be a string, got {type(label).__name__}")
    if "/" in label or "\\" in label or ".." in label:
        raise RecordError(f"video_label {label!r} contains a path separator or '..'")
    scope = _LABEL_SCOPE.get()
    if scope is not None:
        if label not in scope:
            raise RecordError(f"unknown label {label!r}: not in the dataset's label set")
        return label
    try:
        label_to_id(label)
    except UnknownLabelError as exc:
        raise RecordError(str(exc)) from None
    return label


def parse_duration(mp4_time: Any) -> int:
    """Parse ``"0:16"`` (M:SS), ``"1:02:03"`` (H:MM:SS) or ``"16"`` (seconds) into whole seconds."""
    if isinstance(mp4_time, bool):
        raise RecordError("mp4_time must be a string like '0:16'")
    if isinstance(mp4_time, (int, float)):
        if isinstance(mp4_time, float) and not math.isfinite(mp4_time):
            raise RecordError(f"mp4_time {mp4_time!r} is not a finite number")
        if mp4_time < 0:
            raise RecordError(f"mp4_time {mp4_time!r} is negative")
        return int(mp4_time)
    if not isinstance(mp4_time, str):
        raise RecordError(f"mp4_time must be a string like '0:16', got {type(mp4_time).__name__}")
    match = _TIME.match(mp4_time)
    if not match:
        raise RecordError(f"mp4_time {mp4_time!r} is not M:SS, H:MM:SS or seconds")
    parts = [int(p) for p in match.groups() if p is not None]
    if any(p >= 60 for p in parts[1:]):
        raise RecordError(f"mp4_time {mp4_time!r} has minutes or seconds >= 60")
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def format_duration(seconds: int) -> str:
    """Format whole seconds the way the site does: ``"0:16"``, ``"12:05"``, ``"1:02:03"``."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _string_field(data: Mapping[str, Any], key: str) -> str:
    if key not in data:
        raise RecordError(f"missing key {key!r}")
    value = data[key]
    if not isinstance(value, str):
        raise RecordError(f"{key} must be a string, got {type(value).__name__}")
    return value


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One multimodal item.

    Attributes:
      mp4_id: the item's id, safe as a file name.
      label: one of the 31 English labels.
      duration_s: clip length in whole seconds (from ``mp4_time``).
      video_url: where the mp4 is downloaded from.
      cover_url: where the JPEG cover is downloaded from.
      brief: the one-line description (kept as written, leading space included).
    """

    mp4_id: str
    label: str
    duration_s: int
    video_url: str
    cover_url: str
    brief: str

    def __post_init__(self) -> None:
        validate_mp4_id(self.mp4_id)
        validate_label(self.label)

    @property
    def label_id(self) -> int:
        """The class id, 0-30."""
        return LABEL_TO_ID[self.label]

    @property
    def mp4_time(self) -> str:
        """The duration formatted like the original's ``mp4_time``."""
        return format_duration(self.duration_s)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], label: Optional[str] = None) -> "VideoRecord":
        """Build a record from an info-file line or a ``.txt`` dict.

        ``label`` supplies the label where the dict has none (the original ``.txt`` files); where both are
        given they must agree.
        """
        if not isinstance(data, Mapping):
            raise RecordError(f"a record must be a JSON object, got {type(data).__name__}")
        record_label = data.get("video_label")
        if record_label is None:
            if label is None:
                raise RecordError("missing key 'video_label'")
            record_label = label
        elif label is not None and record_label != label:
            raise RecordError(f"video_label {record_label!r} does not match the expected label {label!r}")
        if "mp4_id" not in data:
            raise RecordError("missing key 'mp4_id'")
        if "mp4_time" not in data:
            raise RecordError("missing key 'mp4_time'")
        return cls(
            mp4_id=validate_mp4_id(data["mp4_id"]),
            label=validate_label(record_label),
            duration_s=parse_duration(data["mp4_time"]),
            video_url=_string_field(data, "mp4_download_url"),
            cover_url=_string_field(data, "mp4_background_image_url"),
            brief=_string_field(data, "mp4_txt_brief"),
        )

    def to_dict(self, include_label: bool = True) -> Dict[str, Any]:
        """The original's dict, keys in the original's order."""
        data: Dict[str, Any] = {
            "mp4_id": self.mp4_id,
            "mp4_download_url": self.video_url,
            "mp4_time": self.mp4_time,
            "mp4_background_image_url": self.cover_url,
            "mp4_txt_brief": self.brief,
        }
        if include_label:
            data["video_label"] = self.label
        return data
