"""Download what ``multimodal_data_info.json`` lists into the layout ``ROOT/<label>/<id>/<id>.mp4|.jpeg|.txt``.

The info file is streamed (one line at a time) into a thread pool through :func:`bounded_map`, so a run
over the 562,342 records of the full dataset holds O(workers) records in memory. For each record:

* a clip or cover already on disk that verifies is skipped with no request at all (a killed run resumes
  where it stopped); one that does not verify is deleted and fetched again;
* otherwise :class:`~data_download_tools.http_fetch.HttpFetcher` fetches it (``.part`` file, Range resume,
  retries with backoff, Content-Length check, verification, rename);
* the ``.txt`` (the record as JSON) is written when it is missing or says something else.

Failed items go to a failures file: JSON lines with the record's keys plus ``reason``, which ``--info``
accepts for a retry run (the info reader ignores the extra key).

Each (label, id) has one target: a record listed again is reported as a duplicate and not downloaded a
second time (never raced: two workers never write one file), and an id listed under two labels is
reported (it could land in two splits). The item folders are created without following links.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional

from data_interface_for_model.atomic import safe_makedirs
from data_interface_for_model.info_file import LineError, iter_info_file
from data_interface_for_model.item_txt import read_item_txt, write_item_txt
from data_interface_for_model.layout import item_paths
from data_interface_for_model.limits import DEFAULT_PARSE_LIMITS, ParseLimits
from data_interface_for_model.schema import RecordError, VideoRecord
from data_download_tools.bounded import bounded_map
from data_download_tools.http_fetch import FetchConfig, FetchError, HttpFetcher
from data_download_tools.verify import VerificationError, verify_file

logger = logging.getLogger(__name__)

#: Default name of the failures file, at the top of the root (the layout reader expects it there).
FAILURES_FILE_NAME = "download_failures.json"
#: Malformed info lines kept for the summary (the rest are only counted and logged).
MAX_KEPT_LINE_ERRORS = 100


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    """What to download and how.

    Attributes:
      workers: items fetched at once (each item fetches its clip, then its cover).
      categories: only these labels (default: all).
      limit: stop after this many records (after the category filter).
      verify: check files (JPEG decodes, mp4 has a video stream) before keeping or skipping them; without
        it a non-empty file on disk counts as done.
      failures_path: where the failures file goes (default ``ROOT/download_failures.json``).
      max_in_flight: records taken from the info file and not yet finished (default ``4 * workers``).
      fetch: timeouts, retries, backoff, per-host limits, size caps, redirect policy.
      parse_limits: bounds on each info-file line and each ``.txt`` already on disk.
    """

    workers: int = 16
    categories: Optional[FrozenSet[str]] = None
    limit: Optional[int] = None
    verify: bool = True
    failures_path: Optional[str] = None
    max_in_flight: int = 0
    fetch: FetchConfig = FetchConfig()
    parse_limits: ParseLimits = DEFAULT_PARSE_LIMITS

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be >= 0")


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """What happened to one record: ``status`` is downloaded (something was fetched), skipped (all
    present and verified) or failed (``reason`` says why; ``permanent`` when every failure was, e.g. 404)."""

    record: VideoRecord
    status: str
    reason: str = ""
    bytes_received: int = 0
    permanent: bool = False
    disk_full: bool = False


#: Duplicate and conflicting records kept for the summary (the rest are only counted and logged).
MAX_KEPT_DUPLICATES = 100


@dataclasses.dataclass
class DownloadSummary:
    """Totals of a run; ``duplicates`` lists records listed again under the same label and id (skipped),
    ``conflicts`` ids listed under two labels (both downloaded, reported)."""

    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    invalid_lines: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    failures_path: Optional[str] = None
    line_errors: List[LineError] = dataclasses.field(default_factory=list)
    duplicate_count: int = 0
    conflict_count: int = 0
    disk_full: int = 0
    duplicates: List[str] = dataclasses.field(default_factory=list)
    conflicts: List[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.invalid_lines == 0

    def line(self) -> str:
        rate = self.bytes_received / self.seconds / 1e6 if self.seconds else 0.0
        text = (f"download: {self.downloaded} downloaded, {self.skipped} skipped, {self.failed} failed"
                f", {self.invalid_lines} invalid lines")
        if self.duplicate_count:
            text += f", {self.duplicate_count} duplicate records"
        if self.conflict_count:
            text += f", {self.conflict_count} ids under two labels"
        if self.disk_full:
            text += f", {self.disk_full} stopped by a full disk (.part kept)"
        text += f"; {self.bytes_received / 1e6:.1f} MB in {self.seconds:.1f} s ({rate:.1f} MB/s)"
        if self.failures_path:
            text += f"; failures in {self.failures_path}"
        return text


def _ensure_txt(path: str, record: VideoRecord) -> None:
    if os.path.isfile(path):
        try:
            if read_item_txt(path, label=record.label) == record:
                return
        except RecordError:
            pass
    write_item_txt(path, record)


def download_item(record: VideoRecord, root: str, fetcher: HttpFetcher, verify: bool = True) -> ItemResult:
    """Fetch the clip and the cover of one record into ``root`` and write its ``.txt``.

    Both files are attempted even when the first fails; never raises for a download problem.
    """
    try:
        paths = item_paths(root, record.label, record.mp4_id)
        safe_makedirs(root, record.label, record.mp4_id)
    except (ValueError, OSError) as exc:  # RecordError, UnsafePathError (a link in the tree), a disk error
        return ItemResult(record, "failed", f"cannot create the item folder: {exc}", permanent=True)
    reasons, permanent, fetched, received, disk_full = [], True, 0, 0, False
    for kind, url in (("video", record.video_url), ("cover", record.cover_url)):
        try:
            got = _fetch_one(kind, url, paths[kind], record, fetcher, verify)
        except FetchError as exc:
            reasons.append(f"{kind}: {exc.reason} after {exc.attempts} attempt(s)")
            permanent = permanent and exc.permanent
            disk_full = disk_full or exc.disk_full
            continue
        except Exception as exc:  # a bug or an unforeseen error: this item fails, the run goes on
            logger.exception("%s/%s: unexpected error on the %s", record.label, record.mp4_id, kind)
            reasons.append(f"{kind}: unexpected {type(exc).__name__}: {exc}")
            permanent = False
            continue
        if got is not None:
            fetched += 1
            received += got
    try:
        _ensure_txt(paths["text"], record)
    except OSError as exc:
        reasons.append(f"text: cannot write {paths['text']}: {exc}")
        permanent = False
    if reasons:
        return ItemResult(record, "failed", "; ".join(reasons), received, permanent, disk_full)
    return ItemResult(record, "downloaded" if fetched else "skipped", "", received)


def _fetch_one(kind: str, url: str, target: str, record: VideoRecord, fetcher: HttpFetcher,
               verify: bool) -> Optional[int]:
    """Fetch one file unless a good copy is on disk; the bytes received, or None when skipped."""
    if os.path.islink(target):  # never read or verify through a link planted in the tree
        os.remove(target)
    if os.path.isfile(target) and os.path.getsize(target) > 0:
        try:
            if verify:
                verify_file(kind, target)
            return None
        except VerificationError as exc:
            logger.warning("%s/%s: the %s on disk is corrupt, fetching it again: %s",
                           record.label, record.mp4_id, kind, exc)
            with contextlib.suppress(FileNotFoundError):
                os.remove(target)
    check = (lambda path: verify_file(kind, path)) if verify else None
    return fetcher.fetch(url, target, verify=check, kind=kind).bytes_received


def select_records(
    records: Iterable[VideoRecord], categories: Optional[FrozenSet[str]] = None, limit: Optional[int] = None
) -> Iterator[VideoRecord]:
    """Stream ``records``, keeping the given categories and stopping after ``limit``."""
    if limit == 0:
        return
    count = 0
    for record in records:
        if categories is not None and record.label not in categories:
            continue
        yield record
        count += 1
        if limit is not None and count >= limit:
            return


def unique_targets(records: Iterable[VideoRecord], summary: DownloadSummary) -> Iterator[VideoRecord]:
    """Stream ``records`` with one record per (label, id): a repeat is counted in ``summary.duplicates``
    and dropped; an id seen under another label is counted in ``summary.conflicts`` and kept.

    Holds one entry per id seen (about 160 bytes each: some 90 MB for the 562,342 ids of the full file).
    """
    labels: Dict[str, object] = {}  # id -> its label, or a frozenset of labels once it has several
    for record in records:
        seen = labels.get(record.mp4_id)
        if seen is None:
            labels[record.mp4_id] = record.label
            yield record
            continue
        known = seen if isinstance(seen, frozenset) else frozenset((seen,))
        if record.label in known:
            summary.duplicate_count += 1
            message = f"{record.label}/{record.mp4_id} listed again: downloaded once, this record skipped"
            logger.warning("duplicate record %s", message)
            if len(summary.duplicates) < MAX_KEPT_DUPLICATES:
                summary.duplicates.append(message)
            continue
        summary.conflict_count += 1
        message = (f"mp4_id {record.mp4_id} under {', '.join(sorted(known))} and {record.label}: it could "
                   "land in two splits")
        logger.warning("%s", message)
        if len(summary.conflicts) < MAX_KEPT_DUPLICATES:
            summary.conflicts.append(message)
        labels[record.mp4_id] = known | {record.label}
        yield record


def count_lines(path: str) -> int:
    """Non-blank lines of a file, read in 1 MiB blocks (for a progress bar's total)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def failure_line(result: ItemResult) -> str:
    """One failures-file line: the record's info-file keys plus ``reason`` (and ``permanent``)."""
    data = result.record.to_dict(include_label=True)
    data["reason"] = result.reason
    data["permanent"] = result.permanent
    return json.dumps(data, ensure_ascii=False)


def download(
    info_path: str,
    root: str,
    config: DownloadConfig = DownloadConfig(),
    progress: Optional[Callable[[ItemResult], None]] = None,
    fetcher: Optional[HttpFetcher] = None,
) -> DownloadSummary:
    """Download every (selected) record of ``info_path`` into ``root``; return the totals.

    ``progress`` is called with each :class:`ItemResult` as it completes. The failures file is written
    atomically at the end (replacing an older one; removed when nothing failed); it may be the very file
    being read, for a retry run.
    """
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    fetcher = fetcher or HttpFetcher(config.fetch)
    summary = DownloadSummary()
    failures_path = config.failures_path or os.path.join(root, FAILURES_FILE_NAME)

    def on_line_error(error: LineError) -> None:
        summary.invalid_lines += 1
        logger.warning("invalid record %s", error)
        if len(summary.line_errors) < MAX_KEPT_LINE_ERRORS:
            summary.line_errors.append(error)

    records = unique_targets(select_records(iter_info_file(info_path, on_error=on_line_error,
                                                           limits=config.parse_limits),
                                            config.categories, config.limit), summary)
    started = time.monotonic()
    # a fixed hidden name, so that a killed run's leftover is overwritten by the next run, not multiplied
    tmp = os.path.join(os.path.dirname(failures_path) or ".", "." + os.path.basename(failures_path) + ".part")
    try:
        with open(tmp, "w", encoding="utf-8") as failures:
            work = lambda record: download_item(record, root, fetcher, config.verify)  # noqa: E731
            for result in bounded_map(work, records, config.workers, config.max_in_flight):
                summary.bytes_received += result.bytes_received
                if result.status == "failed":
                    summary.failed += 1
                    summary.disk_full += result.disk_full
                    failures.write(failure_line(result) + "\n")
                    logger.warning("failed %s/%s: %s", result.record.label, result.record.mp4_id, result.reason)
                elif result.status == "downloaded":
                    summary.downloaded += 1
                else:
                    summary.skipped += 1
                if progress is not None:
                    progress(result)
            failures.flush()
            os.fsync(failures.fileno())
        if summary.failed:
            os.replace(tmp, failures_path)
            summary.failures_path = failures_path
        else:
            os.remove(tmp)
            with contextlib.suppress(FileNotFoundError):
                os.remove(failures_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    summary.seconds = time.monotonic() - started
    return summary
