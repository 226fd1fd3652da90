"""Rebuild ``multimodal_data_info.json`` from the folders (what the original's statistics tool did), or
get the same as a pandas DataFrame.

Each item's record comes from its ``.txt`` (JSON or the original's dict repr, parsed safely), its label
from its folder. Items without a readable ``.txt`` have no record and are left out (and counted).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator, List, Optional

from data_interface_for_model.info_file import write_info_file
from data_interface_for_model.layout import LayoutProblem, LayoutReader
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.schema import INFO_KEYS, VideoRecord


@dataclasses.dataclass
class AggregateSummary:
    """What :func:`aggregate_info_file` wrote and left out."""

    written: int = 0
    without_record: int = 0
    incomplete_left_out: int = 0
    problems: List[LayoutProblem] = dataclasses.field(default_factory=list)

    def line(self, out: str) -> str:
        return (f"aggregate: {self.written} records written to {out}; left out {self.without_record} items "
                f"without a readable .txt and {self.incomplete_left_out} incomplete items; "
                f"{len(self.problems)} layout problems")


def iter_records(root: str, complete_only: bool = False, summary: Optional[AggregateSummary] = None,
                 parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> Iterator[VideoRecord]:
    """Stream the records of the items under ``root`` (sorted by label, then id).

    ``complete_only`` keeps only items that also have their clip and cover. ``summary`` (if given) counts
    what was left out and collects the layout's problems.
    """
    summary = summary if summary is not None else AggregateSummary()
    reader = LayoutReader(root, allow_missing=True, limits=parse_limits)
    for item in reader:
        if item.record is None:
            summary.without_record += 1
            continue
        if complete_only and item.missing:
            summary.incomplete_left_out += 1
            continue
        yield item.record
    summary.problems = list(reader.problems)


def aggregate_info_file(root: str, out: str, complete_only: bool = False,
                        parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> AggregateSummary:
    """Write the info file of ``root`` to ``out`` (atomically, one JSON object per line).

    Raises FileNotFoundError (before anything is written) when ``root`` is not a folder."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root {os.fspath(root)!r} is not a folder")
    summary = AggregateSummary()
    summary.written = write_info_file(out, iter_records(os.fspath(root), complete_only, summary, parse_limits))
    return summary


def aggregate_dataframe(root: str, complete_only: bool = False):
    """The same records as a ``pandas.DataFrame`` with the info file's columns (``INFO_KEYS``: mp4_id,
    mp4_download_url, mp4_time, mp4_background_image_url, mp4_txt_brief, video_label), one row per item."""
    import pandas as pd

    rows = [record.to_dict(include_label=True) for record in iter_records(os.fspath(root), complete_only)]
    return pd.DataFrame(rows, columns=list(INFO_KEYS))
