"""Per-category statistics of a dataset on disk (counts, completeness, durations, disk usage)."""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import Dict, List, Optional

from data_interface_for_model.categories import LABELS
from data_interface_for_model.layout import LayoutItem, LayoutProblem, LayoutReader
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits


@dataclasses.dataclass
class CategoryStatistics:
    """Figures for one category."""

    label: str
    items: int = 0
    complete: int = 0
    incomplete: int = 0
    missing: Dict[str, int] = dataclasses.field(default_factory=dict)
    bytes: int = 0
    total_duration_s: int = 0

    @property
    def mean_duration_s(self) -> float:
        return self.total_duration_s / self.items if self.items else 0.0

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["mean_duration_s"] = round(self.mean_duration_s, 3)
        return data


@dataclasses.dataclass
class DatasetStatistics:
    """Figures for a whole dataset root."""

    root: str
    categories: Dict[str, CategoryStatistics]
    problems: List[LayoutProblem]

    @property
    def items(self) -> int:
        return sum(c.items for c in self.categories.values())

    @property
    def complete(self) -> int:
        return sum(c.complete for c in self.categories.values())

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.categories.values())

    @property
    def total_duration_s(self) -> int:
        return sum(c.total_duration_s for c in self.categories.values())

    def to_dict(self) -> dict:
        problem_counts = collections.Counter(p.kind for p in self.problems)
        return {
            "root": self.root,
            "items": self.items,
            "complete": self.complete,
            "bytes": self.bytes,
            "total_duration_s": self.total_duration_s,
            "problems": dict(sorted(problem_counts.items())),
            "categories": {k: v.to_dict() for k, v in self.categories.items()},
        }

    def table(self) -> str:
        """A plain-text table, one row per category."""
        rows = [f"{'category':<14} {'items':>6} {'complete':>8} {'MB':>9} {'mean s':>7}"]
        for stats in self.categories.values():
            rows.append(
                f"{stats.label:<14} {stats.items:>6} {stats.complete:>8} {stats.bytes / 1e6:>9.2f}"
                f" {stats.mean_duration_s:>7.1f}"
            )
        rows.append(f"{'total':<14} {self.items:>6} {self.complete:>8} {self.bytes / 1e6:>9.2f}")
        return "\n".join(rows)


def _size(path: Optional[str]) -> int:
    return os.path.getsize(path) if path else 0


def empty_categories() -> Dict[str, CategoryStatistics]:
    """Zeroed figures for the 31 categories, in label order."""
    return {label: CategoryStatistics(label) for label in LABELS}


def count_item(categories: Dict[str, CategoryStatistics], item: LayoutItem) -> None:
    """Add one item to the figures of its category."""
    stats = categories[item.label]
    stats.items += 1
    if item.missing:
        stats.incomplete += 1
        for modality in item.missing:
            stats.missing[modality] = stats.missing.get(modality, 0) + 1
    else:
        stats.complete += 1
    stats.bytes += _size(item.video_path) + _size(item.cover_path) + _size(item.txt_path)
    if item.record is not None:
        stats.total_duration_s += item.record.duration_s


def dataset_statistics(root: str, parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> DatasetStatistics:
    """Scan ``root`` once and count, per category, items (any modality present), complete items (all
    three), what is missing, bytes on disk and durations (from the ``.txt`` records, read within
    ``parse_limits``)."""
    categories = empty_categories()
    reader = LayoutReader(root, allow_missing=True, limits=parse_limits)
    for item in reader:
        count_item(categories, item)
    return DatasetStatistics(os.fspath(root), categories, reader.problems)
