"""Decode and encode many items in worker processes, results in input order.

The workers are started with the ``spawn`` method and import only this module, :mod:`decoding`, NumPy,
PyAV and Pillow: never TensorFlow (forking a process that has TensorFlow's threads running can deadlock,
and every worker importing TensorFlow would cost ~0.8 GB of memory).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import sys
from typing import Deque, Iterable, Iterator, Tuple, Union

from data_interface_for_model.decoding import DEFAULT_JPEG_QUALITY, DecodeError, EncodedItem, encode_item
from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EncodeTask:
    """One item to encode: its clip and cover paths, and the output frame count and size."""

    video_path: str
    cover_path: str
    num_frames: int
    size: int
    quality: int = DEFAULT_JPEG_QUALITY
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


def run_task(task: EncodeTask) -> Union[EncodedItem, str]:
    """Encode one item; any error comes back as its message naming the file (never raised across
    processes), so that one bad item never stops a preparation."""
    try:
        return encode_item(task.video_path, task.cover_path, task.num_frames, task.size, task.quality,
                           max_image_pixels=task.max_image_pixels)
    except DecodeError as exc:
        return str(exc)
    except Exception as exc:  # an error no decoder foresaw: this item is skipped, the rest go on
        logger.debug("unexpected error encoding %s", task.video_path, exc_info=True)
        return f"{task.video_path}: cannot encode the item: {type(exc).__name__}: {exc}"


def spawn_is_safe() -> bool:
    """Whether ``spawn`` workers can start: they re-import the main script, which must exist as a file
    (not so for ``python - < script.py``; interactive sessions have no main file and are fine)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.isfile(path)


def resolve_workers(workers: int) -> int:
    """``0`` means one worker per available core; ``1`` means decode in this process."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    return workers


def encode_all(tasks: Iterable[EncodeTask], workers: int = 0,
               chunksize: int = 4) -> Iterator[Tuple[EncodeTask, Union[EncodedItem, str]]]:
    """Yield ``(task, EncodedItem or error message)`` for every task, in input order.

    Args:
      tasks: the items to encode.
      workers: worker processes (0: one per core; 1: no pool, decode here).
      chunksize: sets how far ahead of the consumer tasks are submitted (``workers * chunksize * 4``).

    A worker that dies (or a main module the ``spawn`` start method cannot re-import, such as a script
    read from stdin) raises ``concurrent.futures.process.BrokenProcessPool`` instead of hanging.
    """
    tasks = list(tasks)
    workers = resolve_workers(workers)
    if workers > 1 and not spawn_is_safe():
        logger.warning("the main script is not a file, so worker processes cannot start: decoding in this one")
        workers = 1
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, run_task(task)
        return
    context = multiprocessing.get_context("spawn")
    window = max(1, workers * chunksize * 4)  # results held back at most: bounded memory
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        pending: Deque[Tuple[EncodeTask, concurrent.futures.Future]] = collections.deque()
        for task in tasks:
            pending.append((task, pool.submit(run_task, task)))
            if len(pending) >= window:
                done_task, future = pending.popleft()
                yield done_task, future.result()
        while pending:
            done_task, future = pending.popleft()
            yield done_task, future.result()


def default_chunksize(num_tasks: int, workers: int, cap: int = 8) -> int:
    """A chunk size that keeps every worker busy without holding many results back."""
    workers = resolve_workers(workers)
    return max(1, min(cap, num_tasks // (workers * 4) or 1))


__all__ = ["EncodeTask", "default_chunksize", "encode_all", "resolve_workers", "run_task", "spawn_is_safe"]
