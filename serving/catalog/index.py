"""The live nearest-neighbour index: always-complete answers while the catalog changes.

Three parts, all over L2-normalised float32 vectors scored by dot product (= cosine similarity):

* the **main index**, built from a snapshot of the catalog: exact brute force (one matrix product) below
  ``ann_min_size`` items, else a ScaNN searcher (``scann.scann_ops_pybind``: tree + asymmetric hashing +
  exact reordering);
* **pending** items, added since the snapshot, searched by brute force;
* a **deleted-ids filter**: snapshot items deleted since, dropped from the main index's answers (the main
  index is asked for that many more results so that ``k`` remain).

Once ``max(rebuild_min_changes, rebuild_fraction * size)`` items were added or deleted since the snapshot,
a background thread builds a new main index from the current items; changes made during the build are
replayed onto the new one, which then replaces the old one atomically. Search never waits for a build.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

logger = logging.getLogger(__name__)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclasses.dataclass(frozen=True)
class ScannSettings:
    """ScaNN parameters for ``n`` points (ScaNN's own guidance: about sqrt(n) leaves, a few % searched)."""

    num_leaves: int
    num_leaves_to_search: int
    reorder: int

    @classmethod
    def for_size(cls, n: int) -> "ScannSettings":
        leaves = max(2, int(round(math.sqrt(n))))
        return cls(num_leaves=leaves, num_leaves_to_search=max(8, leaves // 10), reorder=250)


class _Snapshot:
    """An immutable main index over ``ids`` / ``labels`` / ``vectors [N, D]``."""

    def __init__(self, ids: Sequence[str], labels: Sequence[Optional[str]], vectors: np.ndarray,
                 ann_min_size: int) -> None:
        self.ids = np.asarray(list(ids), dtype=object)
        self.labels = np.asarray(list(labels), dtype=object)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.row: Dict[str, int] = {item: n for n, item in enumerate(self.ids.tolist())}
        self._label_rows: Optional[Dict[Optional[str], np.ndarray]] = None
        self.searcher = None
        self.kind = "bruteforce"
        if len(self.ids) >= max(ann_min_size, 16):
            self.searcher = self._build_scann()
            self.kind = "scann"

    def _build_scann(self):
        import scann

        settings = ScannSettings.for_size(len(self.ids))
        dims_per_block = 2 if self.vectors.shape[1] % 2 == 0 else 1
        return (scann.scann_ops_pybind.builder(self.vectors, 10, "dot_product")
                .tree(num_leaves=settings.num_leaves, num_leaves_to_search=settings.num_leaves_to_search,
                      training_sample_size=min(len(self.ids), 100_000))
                .score_ah(dims_per_block, anisotropic_quantization_threshold=0.2)
                .reorder(settings.reorder).build())

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, k: int, skip: Set[str], labels: Optional[Set[str]]) -> List[Tuple[str, float]]:
        """Top ``k`` of this snapshot for ``query [D]``, leaving out ``skip`` ids and other labels."""
        n = len(self.ids)
        if n == 0 or k <= 0:
            return []
        skip_rows = [self.row[s] for s in skip if s in self.row]
        if self.searcher is None or labels is not None:  # exact (a label filter is exact too)
            scores = self.vectors @ query
            if labels is not None:
                allowed = np.zeros(n, dtype=bool)
                for label in labels:
                    allowed[self.label_rows().get(label, [])] = True
                scores[~allowed] = -np.inf
            scores[skip_rows] = -np.inf
            return _top(self.ids, scores, k)
        want = min(n, k + len(skip_rows))
        rows, scores = self.searcher.search(query, final_num_neighbors=want,
                                            pre_reorder_num_neighbors=max(want, ScannSettings.for_size(n).reorder))
        return [(self.ids[r], float(s)) for r, s in zip(rows.tolist(), scores.tolist()) if self.ids[r] not in skip][:k]

    def label_rows(self) -> Dict[Optional[str], np.ndarray]:
        if self._label_rows is None:
            groups: Dict[Optional[str], List[int]] = {}
            for n, label in enumerate(self.labels.tolist()):
                groups.setdefault(label, []).append(n)
            self._label_rows = {label: np.asarray(rows) for label, rows in groups.items()}
        return self._label_rows


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> List[Tuple[str, float]]:
    """The ``k`` best ``(id, score)`` by score (``-inf`` = left out), best first."""
    k = min(k, len(ids))
    if k <= 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return [(ids[r], float(scores[r])) for r in order if np.isfinite(scores[r])]


class LiveIndex:
    """Nearest neighbours over a changing set of items (thread-safe; see the module docstring).

    Args:
      ann_min_size: from this many items on, the main index is ScaNN; below, brute force.
      rebuild_min_changes, rebuild_fraction: when to rebuild the main index in the background.
      background: rebuild in a thread (False: callers run :meth:`rebuild` themselves, e.g. in benchmarks).
    """

    def __init__(self, ann_min_size: int = 20_000, rebuild_min_changes: int = 1_000,
                 rebuild_fraction: float = 0.05, background: bool = True) -> None:
        self.ann_min_size = int(ann_min_size)
        self.rebuild_min_changes = int(rebuild_min_changes)
        self.rebuild_fraction = float(rebuild_fraction)
        self.background = background
        self._lock = threading.RLock()
        self._snapshot = _Snapshot([], [], np.zeros((0, 0), np.float32), self.ann_min_size)
        self._pending: Dict[str, Tuple[Optional[str], np.ndarray]] = {}
        self._deleted: Set[str] = set()
        self._pending_matrix: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._log: Optional[List[Tuple[str, str, Optional[str], Optional[np.ndarray]]]] = None  # during a build
        self._builder: Optional[threading.Thread] = None
        self.builds = 0
        self.last_build_s = 0.0

    # ----------------------------------------------------------------------------------------- changes
    def reset(self, ids: Sequence[str], labels: Sequence[Optional[str]], vectors: np.ndarray) -> None:
        """Replace everything by these items and build the main index now (in this thread)."""
        start = time.perf_counter()
        snapshot = _Snapshot(ids, labels, normalise(vectors) if len(ids) else vectors, self.ann_min_size)
        with self._lock:
            self._snapshot, self._pending, self._deleted = snapshot, {}, set()
            self._pending_matrix = None
            self.builds += 1
            self.last_build_s = time.perf_counter() - start

    def add(self, video_id: str, label: Optional[str], vector: np.ndarray) -> None:
        """Make an item searchable now (``vector [D]``, normalised here)."""
        vector = normalise(vector[None])[0]
        with self._lock:
            if video_id in self._snapshot.row:
                self._deleted.add(video_id)  # the snapshot's vector for this id is stale
            self._pending[video_id] = (label, vector)
            self._pending_matrix = None
            if self._log is not None:
                self._log.append(("add", video_id, label, vector))
        self._maybe_rebuild()

    def remove(self, video_id: str) -> bool:
        """Drop an item now; False if it was not in the index."""
        with self._lock:
            found = self._pending.pop(video_id, None) is not None
            if video_id in self._snapshot.row and video_id not in self._deleted:
                self._deleted.add(video_id)
                found = True
            self._pending_matrix = None
            if self._log is not None:
                self._log.append(("remove", video_id, None, None))
        self._maybe_rebuild()
        return found

    # ------------------------------------------------------------------------------------------ reads
    def __len__(self) -> int:
        with self._lock:
            # deleted ids are snapshot ids, and a pending id that is also in the snapshot is in deleted
            return len(self._snapshot) - len(self._deleted) + len(self._pending)

    def __contains__(self, video_id: str) -> bool:
        return self.vector(video_id) is not None

    def vector(self, video_id: str) -> Optional[np.ndarray]:
        """The normalised vector of an item, or None."""
        with self._lock:
            if video_id in self._pending:
                return self._pending[video_id][1]
            row = self._snapshot.row.get(video_id)
            if row is None or video_id in self._deleted:
                return None
            return self._snapshot.vectors[row]

    def stats(self) -> Dict[str, object]:
        with self._lock:
            return {"size": len(self), "main": len(self._snapshot), "main_kind": self._snapshot.kind,
                    "pending": len(self._pending), "deleted": len(self._deleted), "builds": self.builds,
                    "building": self._builder is not None and self._builder.is_alive(),
                    "last_build_s": round(self.last_build_s, 4)}

    def search(self, query: np.ndarray, k: int, exclude: Iterable[str] = (),
               labels: Optional[Iterable[str]] = None) -> List[Tuple[str, float]]:
        """Top ``k`` ``(id, score)`` for ``query [D]`` (normalised here), best first, over every current item
        except ``exclude``; only items whose label is in ``labels`` when given."""
        query = normalise(np.asarray(query, dtype=np.float32)[None])[0]
        exclude = set(exclude)
        label_set = set(labels) if labels is not None else None
        with self._lock:
            snapshot, deleted = self._snapshot, set(self._deleted)
            pending = self._pending_arrays()
        results = snapshot.search(query, k, deleted | exclude, label_set)
        ids, plabels, vectors = pending
        if len(ids):
            scores = vectors @ query
            for n, (item, label) in enumerate(zip(ids.tolist(), plabels.tolist())):
                if item in exclude or (label_set is not None and label not in label_set):
                    scores[n] = -np.inf
            results += _top(ids, scores, k)
        results.sort(key=lambda pair: -pair[1])
        return results[:k]

    def _pending_arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._pending_matrix is None:
            ids = list(self._pending)
            vectors = (np.stack([self._pending[i][1] for i in ids]) if ids else np.zeros((0, 0), np.float32))
            self._pending_matrix = (np.asarray(ids, dtype=object),
                                    np.asarray([self._pending[i][0] for i in ids], dtype=object), vectors)
        return self._pending_matrix

    # --------------------------------------------------------------------------------------- rebuilds
    def changes(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._deleted)

    def needs_rebuild(self) -> bool:
        with self._lock:
            return self.changes() >= max(self.rebuild_min_changes, self.rebuild_fraction * len(self._snapshot))

    def _maybe_rebuild(self) -> None:
        if not self.background or not self.needs_rebuild():
            return
        with self._lock:
            if self._builder is not None and self._builder.is_alive():
                return
            self._builder = threading.Thread(target=self.rebuild, name="catalog-index-rebuild", daemon=True)
            self._builder.start()

    def rebuild(self) -> None:
        """Build a new main index from the current items, replaying changes made meanwhile."""
        start = time.perf_counter()
        with self._lock:
            if self._log is not None:
                return  # another build is running
            snapshot = self._snapshot
            keep = np.asarray([i not in self._deleted for i in snapshot.ids.tolist()], dtype=bool)
            ids = snapshot.ids[keep].tolist()
            labels = snapshot.labels[keep].tolist()
            parts = [snapshot.vectors[keep]] if len(snapshot) else []
            if self._pending:
                pending_ids, pending_labels, pending_vectors = self._pending_arrays()
                ids += pending_ids.tolist()
                labels += pending_labels.tolist()
                parts.append(pending_vectors)
            self._log = []
        try:
            vectors = np.concatenate([p for p in parts if p.size]) if ids else np.zeros((0, 0), np.float32)
            new = _Snapshot(ids, labels, vectors, self.ann_min_size)
        except BaseException:
            with self._lock:
                self._log = None
            raise
        with self._lock:
            log, self._log = self._log, None
            pending: Dict[str, Tuple[Optional[str], np.ndarray]] = {}
            deleted: Set[str] = set()
            for op, video_id, label, vector in log:
                if op == "add":
                    pending[video_id] = (label, vector)
                else:
                    pending.pop(video_id, None)
                if video_id in new.row:
                    deleted.add(video_id)
            self._snapshot, self._pending, self._deleted = new, pending, deleted
            self._pending_matrix = None
            self.builds += 1
            self.last_build_s = time.perf_counter() - start
        logger.info("rebuilt the main index (%s, %d items) in %.2f s; %d changes replayed",
                    new.kind, len(new), self.last_build_s, len(log))

    def wait_for_rebuild(self, timeout: float = 60.0) -> None:
        """Block until a running background build has finished."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
