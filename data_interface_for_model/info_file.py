"""Streaming reader and atomic writer for ``multimodal_data_info.json`` (one JSON object per line).

The file of the full dataset has 562,342 lines; it is read one line at a time, so memory stays flat.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Iterable, Iterator, List, Optional, Union

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.item_txt import loads_record_json
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.schema import RecordError, VideoRecord

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
INFO_FILE_NAME = "multimodal_data_info.json"


@dataclasses.dataclass(frozen=True)
class LineError:
    """A line of an info file that could not be read as a record."""

    path: str
    line_number: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.message}"


class InfoFileError(RecordError):
    """Raised in strict mode for the first malformed line; carries the :class:`LineError`."""

    def __init__(self, error: LineError):
        super().__init__(str(error))
        self.error = error


def _log_error(error: LineError) -> None:
    logger.warning("skipping malformed line %s", error)


def _lines(handle, max_bytes: int) -> Iterator["tuple[int, Optional[bytes], int]"]:
    """``(line number, line without its newline or None when too long, length in bytes)``, reading at most
    ``max_bytes + 1`` bytes of any line into memory."""
    line_number = 0
    while True:
        line = handle.readline(max_bytes + 1)
        if not line:
            return
        line_number += 1
        if len(line) <= max_bytes or (len(line) == max_bytes + 1 and line.endswith(b"\n")):
            yield line_number, line.rstrip(b"\r\n"), len(line)
            continue
        length = len(line)
        while not line.endswith(b"\n"):  # skip the rest of the long line, a block at a time
            line = handle.readline(1 << 16)
            if not line:
                break
            length += len(line)
        yield line_number, None, length


def parse_info_line(line: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> VideoRecord:
    """One info-file line (already within ``limits.max_line_bytes``) as a record.

    Raises :class:`RecordError` for anything malformed: bad JSON, too deep, a number too long, a missing
    key, a wrong type, an unknown label, a hostile id.
    """
    try:
        data = loads_record_json(line, limits)
    except json.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecordError:
        raise
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"invalid JSON: {exc}") from None
    return VideoRecord.from_dict(data)


def iter_info_file(
    path: PathLike,
    on_error: Optional[Callable[[LineError], None]] = None,
    strict: bool = False,
    limits: ParseLimits = DEFAULT_PARSE_LIMITS,
) -> Iterator[VideoRecord]:
    """Yield the records of an info file, one line at a time.

    Blank lines are ignored. A malformed line (bad JSON, a missing key, a wrong type, an unknown label, a
    hostile id, a line longer than ``limits.max_line_bytes``, nesting or a number over ``limits``) is passed
    to ``on_error`` (default: logged as a warning) and reading goes on; with ``strict=True`` it raises
    :class:`InfoFileError` instead. Memory stays within one line's bound whatever the file holds.
    """
    handler = on_error or _log_error
    name = os.fspath(path)
    with open(name, "rb") as handle:
        for line_number, raw, length in _lines(handle, limits.max_line_bytes):
            if raw is None:
                error = LineError(name, line_number, f"line of {length} bytes, more than the limit of "
                                                     f"{limits.max_line_bytes}")
            else:
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                try:
                    record = parse_info_line(line, limits)
                except RecordError as exc:
                    error = LineError(name, line_number, str(exc))
                else:
                    yield record
                    continue
            if strict:
                raise InfoFileError(error)
            handler(error)


def read_info_file(path: PathLike) -> "tuple[List[VideoRecord], List[LineError]]":
    """Read a whole (small) info file into memory: the records and the malformed lines."""
    errors: List[LineError] = []
    records = list(iter_info_file(path, on_error=errors.append))
    return records, errors


def record_to_line(record: VideoRecord) -> str:
    """One info-file line (no newline), non-ASCII kept as is."""
    return json.dumps(record.to_dict(include_label=True), ensure_ascii=False)


def write_info_file(path: PathLike, records: Iterable[VideoRecord]) -> int:
    """Write records as JSON lines atomically (temporary file, then rename); return how many were written."""
    count = 0
    with atomic_write(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(record_to_line(record) + "\n")
            count += 1
    return count
