"""Server-side batching of concurrent requests, like TF Serving's ``--enable_batching``.

Requests to one signature of one model version queue up; batch threads take as many queued requests as
fit in ``max_batch_size`` rows (requests whose inputs have the same non-batch shapes), waiting at most
``batch_timeout_micros`` after the oldest arrived for the batch to fill, concatenate them on axis 0, run the
signature once and hand each request its slice of the outputs. If a merged batch fails, its requests are
retried one by one, so one bad request (a corrupt JPEG) fails alone.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from concurrent.futures import Future
from typing import Callable, Deque, Dict, List, Mapping, Tuple

import numpy as np

from serving.errors import ServingError

logger = logging.getLogger(__name__)

Arrays = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's BatchingParameters (the ones that apply to one process)."""

    max_batch_size: int = 8
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 64
    #: batches are padded (with copies of their first row) up to the next of these sizes
    allowed_batch_sizes: Tuple[int, ...] = ()
    #: requests whose non-batch dimensions differ are merged, padded (with their first element) to the largest
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        if self.max_batch_size < 1 or self.batch_timeout_micros < 0 or self.num_batch_threads < 1 \
                or self.max_enqueued_batches < 1:
            raise ValueError(f"bad batching parameters {self}")
        sizes = list(self.allowed_batch_sizes)
        if sizes and (sizes != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != self.max_batch_size):
            raise ValueError(f"allowed_batch_sizes {sizes} must increase and end with max_batch_size "
                             f"{self.max_batch_size} (as TF Serving requires)")


@dataclasses.dataclass
class _Task:
    inputs: Arrays
    rows: int
    key: tuple
    future: Future
    enqueued: float


def _shape_key(inputs: Mapping[str, np.ndarray], any_length: bool = False) -> tuple:
    """Requests with equal keys can be concatenated (with ``any_length``, after padding)."""
    return tuple(sorted((name, array.dtype.str, array.ndim if any_length else array.shape[1:])
                        for name, array in inputs.items()))


def _pad_to(array: np.ndarray, shape: tuple) -> np.ndarray:
    """``array`` grown to ``shape`` (same rank), new cells holding its first element (TF Serving's padding)."""
    if array.shape == shape:
        return array
    out = np.empty(shape, dtype=array.dtype)
    out[...] = array.reshape(-1)[0] if array.size else np.zeros((), array.dtype).item()
    out[tuple(slice(0, d) for d in array.shape)] = array
    return out


def merge(tasks_inputs: List[Arrays], config: BatchingConfig) -> Tuple[Arrays, int]:
    """Concatenate requests on axis 0 (padding variable lengths and up to an allowed batch size when
    configured); returns (merged inputs, real rows)."""
    merged = {}
    for name in tasks_inputs[0]:
        parts = [inputs[name] for inputs in tasks_inputs]
        if config.pad_variable_length_inputs:
            longest = tuple(max(dims) for dims in zip(*(p.shape[1:] for p in parts)))
            parts = [_pad_to(p, p.shape[:1] + longest) for p in parts]
        merged[name] = np.concatenate(parts, axis=0)
    rows = int(next(iter(merged.values())).shape[0])
    target = next((size for size in config.allowed_batch_sizes if size >= rows), rows)
    if target > rows:
        merged = {name: np.concatenate([array, np.repeat(array[:1], target - rows, axis=0)], axis=0)
                  for name, array in merged.items()}
    return merged, rows


class Batcher:
    """Merges concurrent calls of ``fn`` (numpy inputs with a batch axis -> numpy outputs with one)."""

    def __init__(self, fn: Callable[[Arrays], Arrays], config: BatchingConfig, name: str = "batcher"):
        self._fn = fn
        self._config = config
        self._name = name
        self._queue: Deque[_Task] = collections.deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stopped = False
        self.batches_run = 0
        self.rows_run = 0
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
                         for i in range(config.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def __call__(self, inputs: Arrays) -> Arrays:
        """Run ``inputs`` (all with the same leading dimension) as part of a batch; blocks until done."""
        rows = {int(a.shape[0]) for a in inputs.values() if a.ndim}
        if len(rows) != 1 or any(a.ndim == 0 for a in inputs.values()):
            return self._fn(inputs)  # no common batch dimension: the graph decides what to make of it, alone
        n = rows.pop()
        if n == 0 or n > self._config.max_batch_size:
            return self._fn(inputs)  # nothing to merge with / too big to merge: run on its own
        task = _Task(inputs, n, _shape_key(inputs, self._config.pad_variable_length_inputs), Future(),
                     time.monotonic())
        with self._cond:
            if self._stopped:
                raise ServingError("UNAVAILABLE", f"{self._name} is shutting down")
            limit = self._config.max_enqueued_batches * self._config.max_batch_size
            if self._queued_rows + n > limit:
                raise ServingError("UNAVAILABLE", f"{self._name}: batch queue is full ({limit} rows waiting)")
            self._queue.append(task)
            self._queued_rows += n
            self._cond.notify()
        return task.future.result()

    def stop(self) -> None:
        """Finish what is queued, then end the batch threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take_batch(self) -> List[_Task]:
        """Wait for a batch to fill or time out; pop it. Called with the condition held."""
        timeout = self._config.batch_timeout_micros / 1e6
        while True:
            while not self._queue:
                if self._stopped:
                    return []
                self._cond.wait()
            first = self._queue[0]
            rows = sum(t.rows for t in self._queue if t.key == first.key)
            remaining = first.enqueued + timeout - time.monotonic()
            if rows >= self._config.max_batch_size or remaining <= 0 or self._stopped:
                break
            self._cond.wait(remaining)
        batch, total, keep = [], 0, collections.deque()
        while self._queue:
            task = self._queue.popleft()
            if task.key == first.key and total + task.rows <= self._config.max_batch_size:
                batch.append(task)
                total += task.rows
            else:
                keep.append(task)
        self._queue = keep
        self._queued_rows -= total
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch = self._take_batch()
                if self._queue:
                    self._cond.notify()  # more work for another batch thread
            if not batch:
                return
            self._run(batch)

    def _run(self, batch: List[_Task]) -> None:
        self.batches_run += 1
        self.rows_run += sum(t.rows for t in batch)
        try:
            merged, total = merge([t.inputs for t in batch], self._config)
            outputs = self._fn(merged)
            offsets = np.cumsum([0] + [t.rows for t in batch])
            for name, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != merged_rows(merged):
                    raise ServingError("INTERNAL", f"output '{name}' has no batch dimension of size {total}; "
                                                   "serve this model without batching")
            for task, start, end in zip(batch, offsets[:-1], offsets[1:]):
                task.future.set_result({name: value[start:end] for name, value in outputs.items()})
        except Exception as exc:  # noqa: BLE001 - a merged batch failed: find the culprit(s) one request at a time
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            logger.debug("%s: a batch of %d requests failed; retrying them one by one", self._name, len(batch))
            for task in batch:
                self._run([task])


def merged_rows(merged: Arrays) -> int:
    return int(next(iter(merged.values())).shape[0])
