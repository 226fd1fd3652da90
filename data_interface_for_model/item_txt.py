"""The per-item ``<mp4_id>.txt``: read JSON or the original's Python-dict repr safely, write JSON.

The original wrote ``str(dict)`` and read it back with ``eval()``, which runs whatever a downloaded file
says. Here a ``.txt`` is parsed as JSON first and, failing that, with :func:`ast.literal_eval`, which
accepts only literals: ``__import__('os').system(...)`` is a malformed record, never executed.
"""
from __future__ import annotations

import ast
import json
import os
from typing import Any, Dict, Optional, Union

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.schema import RecordError, VideoRecord

PathLike = Union[str, "os.PathLike[str]"]
#: A ``.txt`` larger than this is refused before parsing (literal_eval on huge input is slow).
MAX_TXT_BYTES = 1 << 20


def parse_item_text(text: str) -> Dict[str, Any]:
    """Parse the contents of a ``.txt`` into a dict (JSON or a Python literal dict; never code)."""
    stripped = text.strip()
    if not stripped:
        raise RecordError("empty .txt")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        try:
            data = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise RecordError(f"neither JSON nor a Python literal dict ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise RecordError(f"expected a dict, got {type(data).__name__}")
    return data


def read_item_txt(path: PathLike, label: Optional[str] = None) -> VideoRecord:
    """Read a ``.txt`` into a record; ``label`` is the folder's label (the original files carry none).

    Raises :class:`RecordError` naming the file for anything malformed.
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > MAX_TXT_BYTES:
            raise RecordError(f"{size} bytes, more than {MAX_TXT_BYTES}")
        with open(name, "r", encoding="utf-8") as handle:
            text = handle.read()
        return VideoRecord.from_dict(parse_item_text(text), label=label)
    except UnicodeDecodeError:
        raise RecordError(f"{name}: not UTF-8 text") from None
    except RecordError as exc:
        raise RecordError(f"{name}: {exc}") from None


def write_item_txt(path: PathLike, record: VideoRecord) -> None:
    """Write a record as a JSON ``.txt`` atomically (the label included, for self-describing items)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(record.to_dict(include_label=True), handle, ensure_ascii=False)
        handle.write("\n")


def format_original_txt(record: VideoRecord) -> str:
    """The original's ``str(dict)`` form of a record (for tests and for writing legacy trees)."""
    return str(record.to_dict(include_label=False))
