"""The per-item ``<mp4_id>.txt``: read JSON or the original's Python-dict repr safely, write JSON.

The original wrote ``str(dict)`` and read it back with ``eval()``, which runs whatever a downloaded file
says. Here a ``.txt`` is parsed as JSON first and, failing that, with :func:`ast.literal_eval`, which
accepts only literals: ``__import__('os').system(...)`` is a malformed record, never executed. Size,
nesting and number length are bounded (:class:`~data_interface_for_model.limits.ParseLimits`) before
either parser runs.
"""
from __future__ import annotations

import ast
import functools
import json
import os
from typing import Any, Dict, Optional, Union

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits, check_record_text
from data_interface_for_model.schema import RecordError, VideoRecord

PathLike = Union[str, "os.PathLike[str]"]
#: A ``.txt`` larger than this is refused before parsing (the default of ``ParseLimits.max_txt_bytes``).
MAX_TXT_BYTES = DEFAULT_PARSE_LIMITS.max_txt_bytes


def _refuse_constant(name: str) -> Any:
    raise RecordError(f"{name} is not a valid value in a record")


@functools.lru_cache(maxsize=8)
def _decoder(max_digits: int) -> json.JSONDecoder:
    """A JSON decoder (made once per bound: building one per line costs more than the parse) that refuses
    numbers longer than ``max_digits`` and the NaN/Infinity constants."""
    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > max_digits:
            raise RecordError(f"a number longer than {max_digits} digits")
        return int(text)

    return json.JSONDecoder(parse_int=parse_int, parse_constant=_refuse_constant)


def loads_record_json(text: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> Any:
    """``json.loads`` with the record bounds: depth and number length checked first (``RecordError``),
    ``NaN``/``Infinity`` refused. Other malformed input raises ``json.JSONDecodeError``."""
    try:
        check_record_text(text, limits)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    return _decoder(limits.max_number_digits).decode(text)


def parse_item_text(text: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> Dict[str, Any]:
    """Parse the contents of a ``.txt`` into a dict (JSON or a Python literal dict; never code).

    Raises :class:`RecordError` for anything else: empty, too deep, a number too long, neither JSON nor a
    literal, not a dict.
    """
    stripped = text.strip()
    if not stripped:
        raise RecordError("empty .txt")
    try:
        data = loads_record_json(stripped, limits)
    except json.JSONDecodeError:
        try:
            data = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise RecordError(f"neither JSON nor a Python literal dict ({type(exc).__name__})") from None
    except (ValueError, RecursionError) as exc:  # RecordError included
        raise RecordError(str(exc) or type(exc).__name__) from None
    if not isinstance(data, dict):
        raise RecordError(f"expected a dict, got {type(data).__name__}")
    return data


def read_item_txt(path: PathLike, label: Optional[str] = None,
                  limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> VideoRecord:
    """Read a ``.txt`` into a record; ``label`` is the folder's label (the original files carry none).

    Raises :class:`RecordError` naming the file for anything malformed or over ``limits`` (a file larger
    than ``limits.max_txt_bytes`` is refused before it is read).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_txt_bytes:
                raise RecordError(f"{size} bytes, more than the limit of {limits.max_txt_bytes}")
            raw = handle.read(limits.max_txt_bytes + 1)
        if len(raw) > limits.max_txt_bytes:  # it grew while we looked
            raise RecordError(f"more than the limit of {limits.max_txt_bytes} bytes")
        return VideoRecord.from_dict(parse_item_text(raw.decode("utf-8"), limits), label=label)
    except UnicodeDecodeError:
        raise RecordError(f"{name}: not UTF-8 text") from None
    except RecordError as exc:
        raise RecordError(f"{name}: {exc}") from None
    except OSError as exc:
        raise RecordError(f"{name}: cannot read: {exc.strerror or exc}") from None


def write_item_txt(path: PathLike, record: VideoRecord) -> None:
    """Write a record as a JSON ``.txt`` atomically (the label included, for self-describing items)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(record.to_dict(include_label=True), handle, ensure_ascii=False)
        handle.write("\n")


def format_original_txt(record: VideoRecord) -> str:
    """The original's ``str(dict)`` form of a record (for tests and for writing legacy trees)."""
    return str(record.to_dict(include_label=False))
