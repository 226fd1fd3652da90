"""The live catalog's index and store: index-one-item latency, recommend latency, rebuild cost and the recall
of the interim search path, on synthetic embeddings.

    python benchmarks/catalog.py --sizes 10000,100000

Synthetic clustered unit vectors (``--dim`` 128, 31 clusters like the 31 labels, queries are catalog items).
For each size N the SQLite store is filled with N items, then a :class:`CatalogService` (no classifier: the
embedding step is measured apart, see docs/catalog.md) loads it and builds its main index, brute force and
ScaNN both. Reported:

* ``load+build``: reading N embeddings from the store and building the main index (what a full rebuild costs);
* ``insert one``: one item stored (one SQLite transaction) + added to the live index + found by a search;
* ``recommend p50/p99``: ``recommend(video_id, top_k=10)`` (index search + titles from the store), with a
  fresh main index and in the interim state (``--pending`` new items and ``--deleted`` deletions since the
  last build);
* ``recall@10``: of the interim path and of the fresh index, against exact search over the current items;
* the brute-force/ScaNN query latency at several sizes (``--crossover``), to pick ``ann_min_size``.

BLAS runs with one thread (``--blas-threads``, as ``xinpianchang serving catalog`` sets it): one query is
one matrix-vector product, and on a busy 2-core machine OpenBLAS's own threads made a 5,000-item product take
~76 ms instead of ~0.1 ms. The machine is shared: compare configurations within one run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from serving.catalog.config import CatalogConfig  # noqa: E402
from serving.catalog.index import LiveIndex, normalise  # noqa: E402
from serving.catalog.service import CatalogService  # noqa: E402
from serving.catalog.store import CatalogStore, Item  # noqa: E402

LABELS = [f"label{n}" for n in range(31)]


def synthetic(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(LABELS), dim))
    which = rng.integers(0, len(LABELS), size=n)
    return normalise(centres[which] + 1.2 * rng.normal(size=(n, dim))).astype(np.float32), which


def fill_store(url: str, vectors: np.ndarray, which: np.ndarray, start: int = 0) -> None:
    store = CatalogStore(url)
    for begin in range(0, len(vectors), 5000):
        store.add_many([Item(f"v{start + n}", f"title {start + n}", "", LABELS[which[n]], 10.0, None, None, vectors[n])
                        for n in range(begin, min(begin + 5000, len(vectors)))])
    store.close()


def percentiles(seconds: List[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}"


def exact_top(vectors: Dict[str, np.ndarray], query_id: str, k: int) -> List[str]:
    ids = list(vectors)
    matrix = np.stack([vectors[i] for i in ids])
    scores = matrix @ vectors[query_id]
    order = np.argsort(-scores)
    return [ids[i] for i in order if ids[i] != query_id][:k]


def bench_size(n: int, args, rows: List[str]) -> None:
    import scann  # noqa: F401  (imports TensorFlow: once, before anything is timed)

    vectors, which = synthetic(n + args.pending + args.inserts, args.dim, seed=n)
    folder = tempfile.mkdtemp(prefix="catalog-bench-")
    url = f"sqlite:///{folder}/catalog.sqlite"
    start = time.perf_counter()
    fill_store(url, vectors[:n], which[:n])
    print(f"N={n}: store filled in {time.perf_counter() - start:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    for kind, ann_min_size in (("bruteforce", 10 ** 9), ("scann", 1)):
        config = CatalogConfig(store=url, media_dir=os.path.join(folder, "media"), ann_min_size=ann_min_size,
                               rebuild_min_changes=10 ** 9)
        start = time.perf_counter()
        service = CatalogService(config, None)
        load = time.perf_counter() - start
        assert service.index.stats()["main_kind"] == kind
        current = {f"v{i}": vectors[i] for i in range(n)}
        queries = [f"v{i}" for i in rng.choice(n, size=args.queries, replace=False)]

        def recommend_times() -> List[float]:
            times = []
            for q in queries:
                t = time.perf_counter()
                service.recommend(q, top_k=10)
                times.append(time.perf_counter() - t)
            return times

        def recall() -> float:
            hits = 0
            for q in queries[:args.recall_queries]:
                got = [r["video_id"] for r in service.recommend(q, top_k=10)["recommendations"]]
                hits += len(set(got) & set(exact_top(current, q, 10)))
            return hits / (10 * min(len(queries), args.recall_queries))

        fresh_times, fresh_recall = recommend_times(), recall()
        inserts = []
        for m in range(n, n + args.inserts):
            item = Item(f"v{m}", f"title {m}", "", LABELS[which[m]], 10.0, None, None, vectors[m])
            t = time.perf_counter()
            service._insert(item)
            found = service.index.search(vectors[m], 1)
            inserts.append(time.perf_counter() - t)
            assert found[0][0] == f"v{m}"
            current[f"v{m}"] = vectors[m]
        base = n + args.inserts
        for m in range(base, base + args.pending - args.inserts):  # more pending items, then deletions
            service._insert(Item(f"v{m}", f"title {m}", "", LABELS[which[m % len(which)]], 10.0, None, None,
                                 vectors[m % len(vectors)]))
            current[f"v{m}"] = vectors[m % len(vectors)]
        deleted = [q for q in rng.choice(sorted(current), size=args.deleted, replace=False) if q not in queries]
        for q in deleted:
            service.delete(q)
            del current[q]
        stats = service.index.stats()
        interim_times, interim_recall = recommend_times(), recall()
        start = time.perf_counter()
        service.index.rebuild()
        rebuild = time.perf_counter() - start
        rebuilt_times, rebuilt_recall = recommend_times(), recall()
        rows.append(f"| {n:,} | {kind} | {load:.2f} | {rebuild:.2f} | {percentiles(inserts)} | "
                    f"{percentiles(fresh_times)} | {percentiles(interim_times)} ({stats['pending']} new, "
                    f"{stats['deleted']} deleted) | {percentiles(rebuilt_times)} | {fresh_recall:.3f} | "
                    f"{interim_recall:.3f} | {rebuilt_recall:.3f} |")
        print(rows[-1], flush=True)
        service.close()
        # back to the same N items for the next kind
        store = CatalogStore(url)
        from sqlalchemy import delete as sql_delete

        from serving.catalog.store import ItemRow

        with store.engine.begin() as connection:
            connection.execute(sql_delete(ItemRow))
        store.close()
        fill_store(url, vectors[:n], which[:n])


def crossover(args) -> List[str]:
    rows = []
    for n in args.crossover_sizes:
        vectors, _ = synthetic(n, args.dim, seed=7)
        queries = vectors[np.random.default_rng(1).choice(n, size=200, replace=False)]
        cells = []
        for ann_min_size in (10 ** 9, 1):
            index = LiveIndex(ann_min_size=ann_min_size, rebuild_min_changes=10 ** 9)
            t = time.perf_counter()
            index.reset([f"v{i}" for i in range(n)], [None] * n, vectors)
            build = time.perf_counter() - t
            times = []
            for q in queries:
                t = time.perf_counter()
                index.search(q, 10)
                times.append(time.perf_counter() - t)
            cells.append(f"{build:.2f} s, {statistics.median(times) * 1000:.2f} ms")
        rows.append(f"| {n:,} | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="catalog sizes (default 10000,100000)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=300, help="recommend calls per measurement")
    parser.add_argument("--recall-queries", type=int, default=100)
    parser.add_argument("--inserts", type=int, default=200, help="single-item inserts timed")
    parser.add_argument("--pending", type=int, default=1000, help="items added since the last build")
    parser.add_argument("--deleted", type=int, default=300, help="items deleted since the last build")
    parser.add_argument("--crossover", default="1000,5000,10000,20000,50000,100000",
                        help="sizes for the brute force vs ScaNN query latency ('' = skip)")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads, as the catalog command sets them (default 1; 0 = the library's own)")
    args = parser.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    args.crossover_sizes = [int(s) for s in args.crossover.split(",") if s]
    rows = ["| N | main index | load + build s | rebuild s | insert one ms p50 / p99 | recommend ms p50 / p99, "
            "fresh | interim | after rebuild | recall@10 fresh | interim | after rebuild |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in [int(s) for s in args.sizes.split(",") if s]:
        bench_size(n, args, rows)
    if args.crossover_sizes:
        print("\n| N | brute force: build, median query | ScaNN: build, median query |\n|---|---|---|")
        crossover(args)
    print("\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
