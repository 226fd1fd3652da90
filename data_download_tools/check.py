"""Check a downloaded dataset: per-category figures (from :mod:`data_download_tools.statistics`), the
layout's problems, and with ``deep=True`` every clip and cover decoded, the corrupt ones listed.

One scan of the layout feeds both the figures and (through a bounded thread pool) the decoders, so the
check of the full dataset holds O(workers) items in memory besides the figures.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Iterator, List, Optional

from data_interface_for_model.layout import LayoutItem, LayoutReader
from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_PARSE_LIMITS, ParseLimits
from data_download_tools.bounded import bounded_map
from data_download_tools.statistics import DatasetStatistics, count_item, empty_categories
from data_download_tools.verify import VerificationError, verify_file


@dataclasses.dataclass(frozen=True)
class CorruptFile:
    """A file that exists but does not decode."""

    path: str
    kind: str  # "video" or "cover"
    message: str

    def __str__(self) -> str:
        return f"corrupt {self.kind}: {self.path}: {self.message}"


@dataclasses.dataclass
class CheckReport:
    """The statistics of a root, plus the corrupt files when the check was deep."""

    statistics: DatasetStatistics
    deep: bool
    corrupt: List[CorruptFile]
    partial_downloads: int

    @property
    def incomplete(self) -> int:
        return self.statistics.items - self.statistics.complete

    @property
    def ok(self) -> bool:
        """Nothing incomplete, no layout problem, nothing corrupt."""
        return not (self.incomplete or self.statistics.problems or self.corrupt)

    def to_dict(self) -> dict:
        data = self.statistics.to_dict()
        data["deep"] = self.deep
        data["corrupt"] = [dataclasses.asdict(c) for c in self.corrupt]
        data["partial_downloads"] = self.partial_downloads
        data["problem_list"] = [dataclasses.asdict(p) for p in self.statistics.problems]
        return data

    def line(self) -> str:
        s = self.statistics
        text = (f"check: {s.items} items, {s.complete} complete, {self.incomplete} incomplete, "
                f"{len(s.problems)} problems")
        if self.deep:
            text += f", {len(self.corrupt)} corrupt files"
        if self.partial_downloads:
            text += f", {self.partial_downloads} partial downloads (.part)"
        return text + f"; {s.bytes / 1e6:.1f} MB, {s.total_duration_s / 3600:.2f} h of video"


def _verify_item(item: LayoutItem, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> List[CorruptFile]:
    corrupt = []
    for kind, path in (("video", item.video_path), ("cover", item.cover_path)):
        if path is None:
            continue
        try:
            verify_file(kind, path, deep=True, max_image_pixels=max_image_pixels)
        except VerificationError as exc:
            corrupt.append(CorruptFile(path, kind, str(exc)))
        except Exception as exc:  # whatever a decoder raises, this file is corrupt and the check goes on
            corrupt.append(CorruptFile(path, kind, f"{path}: cannot verify: {type(exc).__name__}: {exc}"))
    return corrupt


def check_dataset(
    root: str,
    deep: bool = False,
    workers: int = 0,
    progress: Optional[Callable[[int], None]] = None,
    *,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS,
) -> CheckReport:
    """Scan ``root`` once; with ``deep`` decode every clip and cover on ``workers`` threads (default: one
    per core). ``progress`` is called with 1 per item. A cover whose header declares more than
    ``max_image_pixels`` is corrupt; a ``.txt`` over ``parse_limits`` is a malformed_txt problem."""
    categories = empty_categories()
    reader = LayoutReader(root, allow_missing=True, limits=parse_limits)
    partial = 0

    def scanned() -> Iterator[LayoutItem]:
        nonlocal partial
        for item in reader:
            count_item(categories, item)
            partial += sum(1 for name in os.listdir(item.folder) if name.endswith(".part"))
            if progress is not None and not deep:
                progress(1)
            yield item

    corrupt: List[CorruptFile] = []
    if deep:
        verify = functools.partial(_verify_item, max_image_pixels=max_image_pixels)
        for found in bounded_map(verify, scanned(), workers or os.cpu_count() or 1):
            corrupt.extend(found)
            if progress is not None:
                progress(1)
    else:
        for _ in scanned():
            pass
    corrupt.sort(key=lambda c: c.path)
    statistics = DatasetStatistics(os.fspath(root), categories, reader.problems)
    return CheckReport(statistics, deep, corrupt, partial)


def plot_items_per_category(report: CheckReport, path: str) -> None:
    """A bar chart of complete and incomplete items per category, written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_interface_for_model.atomic import atomic_output_path

    stats = list(report.statistics.categories.values())
    labels = [s.label for s in stats]
    complete = [s.complete for s in stats]
    incomplete = [s.incomplete for s in stats]
    figure, axes = plt.subplots(figsize=(12, 5))
    axes.bar(labels, complete, label="complete")
    axes.bar(labels, incomplete, bottom=complete, label="incomplete")
    axes.set_ylabel("items")
    axes.set_title(f"items per category ({report.statistics.items} in all) - {report.statistics.root}")
    axes.tick_params(axis="x", rotation=75)
    axes.legend()
    figure.tight_layout()
    extension = os.path.splitext(path)[1] or ".png"
    with atomic_output_path(path, suffix=extension) as tmp:
        figure.savefig(tmp, format=extension.lstrip(".") or "png", dpi=100)
    plt.close(figure)
