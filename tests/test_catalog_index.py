"""The live index: answers are complete and exact-equal while items are added and deleted, before, during and
after background rebuilds, with a brute-force or a ScaNN main index."""
import threading

import numpy as np
import pytest

from serving.catalog.index import LiveIndex, normalise


def _exact(current, query, k, exclude=(), labels=None):
    ids = [i for i in current if i not in exclude and (labels is None or current[i][0] in labels)]
    vectors = normalise(np.stack([current[i][1] for i in ids]))
    scores = vectors @ normalise(query[None])[0]
    order = np.argsort(-scores, kind="stable")[:k]
    return [ids[n] for n in order], scores[order]


def _changes(index, current, rng, vectors, start, adds, deletes):
    for n in range(start, start + adds):
        item = f"i{n}"
        current[item] = ("abc"[n % 3], vectors[n])
        index.add(item, current[item][0], vectors[n])
    for item in rng.choice(sorted(current), size=deletes, replace=False):
        del current[item]
        assert index.remove(item)


@pytest.mark.parametrize("ann_min_size", [10_000, pytest.param(200, marks=pytest.mark.slow)])  # brute force, ScaNN
def test_interim_search_is_complete_through_rebuilds(ann_min_size):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(900, 16)).astype(np.float32)
    index = LiveIndex(ann_min_size=ann_min_size, rebuild_min_changes=60, rebuild_fraction=0.0)
    current = {f"i{n}": ("abc"[n % 3], vectors[n]) for n in range(400)}
    index.reset(list(current), [v[0] for v in current.values()], np.stack([v[1] for v in current.values()]))
    start = 400
    for step in range(5):
        _changes(index, current, rng, vectors, start, adds=50, deletes=20)
        start += 50
        assert len(index) == len(current)
        for q in rng.choice(sorted(current), size=20, replace=False):
            query = current[q][1]
            got = index.search(query, 10, exclude=[q])
            want, want_scores = _exact(current, query, 10, exclude=[q])
            assert len(got) == 10 and q not in {i for i, _ in got}
            assert all(i in current for i, _ in got)  # deleted items never come back
            if ann_min_size > 1000:  # exact main index: the same answer as brute force over everything
                assert [i for i, _ in got] == want
                np.testing.assert_allclose([s for _, s in got], want_scores, atol=1e-5)
            else:  # ScaNN (approximate): items added since the last build are found whenever they belong
                pending = set(index._pending)
                assert pending & set(want) <= {i for i, _ in got}
                assert index.stats()["main_kind"] == "scann"
            filtered = index.search(query, 10, exclude=[q], labels=["b"])
            assert [i for i, _ in filtered] == _exact(current, query, 10, exclude=[q], labels={"b"})[0]
        index.wait_for_rebuild()
    assert index.builds >= 3  # rebuilt in the background as changes piled up
    assert index.stats()["main_kind"] == ("scann" if ann_min_size < 1000 else "bruteforce")
    assert len(index) == len(current)


def test_changes_during_a_rebuild_are_replayed():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    index = LiveIndex(ann_min_size=10_000, rebuild_min_changes=10 ** 9, background=False)
    index.reset([f"i{n}" for n in range(100)], ["a"] * 100, vectors[:100])
    for n in range(100, 150):
        index.add(f"i{n}", "a", vectors[n])
    # a rebuild in another thread while this thread keeps changing the index
    builder = threading.Thread(target=index.rebuild)
    builder.start()
    for n in range(150, 200):
        index.add(f"i{n}", "a", vectors[n])
    for n in range(0, 200, 7):
        index.remove(f"i{n}")
    index.add("i0", "a", vectors[299])  # deleted, then added back with a new vector
    builder.join()
    current = {f"i{n}": ("a", vectors[n]) for n in range(200) if n % 7}
    current["i0"] = ("a", vectors[299])
    assert len(index) == len(current)
    assert np.allclose(index.vector("i0"), normalise(vectors[299:300])[0])
    for q in ("i1", "i0", "i150"):
        got = [i for i, _ in index.search(current[q][1], 200)]
        assert got == _exact(current, current[q][1], 200)[0]
    index.rebuild()
    assert index.stats()["pending"] == 0 and index.stats()["deleted"] == 0 and len(index) == len(current)
