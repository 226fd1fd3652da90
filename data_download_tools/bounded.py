"""A thread pool fed from an iterator with a bound on the work in flight (bounded memory on any input).

``concurrent.futures.Executor.map`` submits the whole input at once, which for the 562,342 records of the
full dataset means 562,342 futures in memory before the first one finishes. :func:`bounded_map` pulls the
next input only when fewer than ``max_in_flight`` are pending, so memory is O(max_in_flight) whatever the
input length.
"""
from __future__ import annotations

import concurrent.futures
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    max_in_flight: int = 0,
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, running ``workers`` calls at once.

    At most ``max_in_flight`` items (default ``4 * workers``) have been taken from ``items`` and not yet
    yielded. An exception raised by ``fn`` is re-raised here (so ``fn`` should catch what it expects). If
    the consumer stops early (an exception, ``close()``), pending calls are cancelled and the running ones
    are waited for.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    limit = max(max_in_flight or 4 * workers, workers)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bounded_map")
    pending: "set[concurrent.futures.Future]" = set()
    try:
        for item in items:
            if len(pending) >= limit:
                done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            pending.add(pool.submit(fn, item))
        while pending:
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
