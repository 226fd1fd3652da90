"""Music-matching metrics (DecCM's and full ranking) and the simple references every number stands beside.

Ranks are 1-based here, as DecCM reports MedR: rank 1 is the top. Ties count against the positive (a track
scoring exactly as much as the positive is ranked above it), so a constant scorer gets no credit.

* **DecCM protocol**: the positive among its sampled negatives (``[N, K]`` rows of the library): Recall@1/5/10
  and MedR, plain and weighted by the videos' inverse popularity;
* **full ranking**: the positive among every track of the library.

Baselines (scores ``[N, M]``, higher is better): ``random`` (uniform noise, seeded), ``most_used`` (training
usage count of each track), ``category_prior`` (how often the video's category used the track's mood, or
genre, in training; usage breaks ties). ``category_log_prior`` is the same reference as a probability, the
component the matcher's score may contain (``MatcherConfig.prior_beta``).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

KS = (1, 5, 10)


def full_ranks(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """int ``[N]``: 1 + the number of tracks scoring at least as much as the positive (itself excluded)."""
    scores = np.asarray(scores, np.float64)
    rows = np.arange(len(positives))
    target = scores[rows, positives]
    higher = np.sum(scores >= target[:, None], axis=1) - 1
    return (higher + 1).astype(np.int64)


def sampled_ranks(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """int ``[N]``: the positive's rank among itself and its negatives ``[N, K]`` (DecCM's protocol)."""
    scores = np.asarray(scores, np.float64)
    rows = np.arange(len(positives))
    target = scores[rows, positives]
    negative_scores = np.take_along_axis(scores, np.asarray(negatives, np.int64), axis=1)
    return (1 + np.sum(negative_scores >= target[:, None], axis=1)).astype(np.int64)


def summarize(ranks: np.ndarray, weights: Optional[np.ndarray] = None, ks: Sequence[int] = KS,
              bootstrap: int = 1000, seed: int = 0) -> Dict[str, float]:
    """Recall@k, MedR, weighted Recall@k, and 95% bootstrap intervals of Recall@10 and MedR."""
    ranks = np.asarray(ranks, np.int64)
    out: Dict[str, float] = {"n": int(ranks.size)}
    if not ranks.size:
        return out
    w = np.ones(ranks.size) if weights is None else np.asarray(weights, np.float64)
    for k in ks:
        out[f"R@{k}"] = float(np.mean(ranks <= k))
        out[f"wR@{k}"] = float(np.sum(w * (ranks <= k)) / np.sum(w))
    out["MedR"] = float(np.median(ranks))
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, ranks.size, size=(bootstrap, ranks.size))
    k = max(ks)
    recall = np.mean(ranks[samples] <= k, axis=1)
    medr = np.median(ranks[samples], axis=1)
    out[f"R@{k}_lo"], out[f"R@{k}_hi"] = (float(v) for v in np.percentile(recall, [2.5, 97.5]))
    out["MedR_lo"], out["MedR_hi"] = (float(v) for v in np.percentile(medr, [2.5, 97.5]))
    return out


def random_scores(num_queries: int, num_tracks: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((num_queries, num_tracks))


def most_used_scores(num_queries: int, train_rows: Sequence[int], num_tracks: int) -> np.ndarray:
    counts = np.bincount(np.asarray(train_rows, np.int64), minlength=num_tracks).astype(np.float64)
    return np.tile(counts, (num_queries, 1))


def category_prior_scores(query_categories: Sequence[str], train_categories: Sequence[str],
                          train_rows: Sequence[int], track_keys: Sequence[str], num_tracks: int) -> np.ndarray:
    """How often the query's category used each track's key (mood, else genre) in training, plus a small
    usage term that breaks ties; a category never seen falls back to usage alone."""
    keys = [str(k) for k in track_keys]
    usage = np.bincount(np.asarray(train_rows, np.int64), minlength=num_tracks).astype(np.float64)
    table: Dict[str, Dict[str, float]] = {}
    for category, row in zip(train_categories, train_rows):
        per = table.setdefault(str(category), {})
        per[keys[row]] = per.get(keys[row], 0.0) + 1.0
    tie = usage / (usage.max() + 1.0)
    out = np.empty((len(query_categories), num_tracks))
    for i, category in enumerate(query_categories):
        per = table.get(str(category), {})
        out[i] = np.array([per.get(k, 0.0) for k in keys]) + tie
    return out


def category_log_prior(train_categories: Sequence[str], train_rows: Sequence[int], track_keys: Sequence[str],
                       num_tracks: int) -> Tuple[List[str], np.ndarray]:
    """``log P(track | category)`` fitted on training pairs: ``P(key | category) * P(track | key)``, the key
    being the track's mood (else genre; one key when there are none), both add-one smoothed.

    Returns (categories, table ``[C + 1, M]``): row ``c`` for ``categories[c]``, the last row for a category
    never seen in training (usage alone: ``log P(track)``, add-one smoothed)."""
    keys = [str(k) for k in track_keys]
    names = sorted(set(keys))
    key_of = np.array([names.index(k) for k in keys], np.int64)
    rows = np.asarray(train_rows, np.int64)
    usage = np.bincount(rows, minlength=num_tracks).astype(np.float64) + 1.0
    key_usage = np.bincount(key_of, weights=usage, minlength=len(names))
    track_given_key = usage / key_usage[key_of]
    categories = sorted({str(c) for c in train_categories})
    counts = np.ones((len(categories), len(names)))
    position = {c: i for i, c in enumerate(categories)}
    for category, row in zip(train_categories, rows):
        counts[position[str(category)], key_of[row]] += 1.0
    key_given_category = counts / counts.sum(axis=1, keepdims=True)
    table = np.log(key_given_category[:, key_of] * track_given_key[None, :])
    fallback = np.log(usage / usage.sum())
    return categories, np.concatenate([table, fallback[None, :]]).astype(np.float32)


def log_prior_scores(query_categories: Sequence[str], categories: Sequence[str], table: np.ndarray) -> np.ndarray:
    """``[N, M]``: the rows of :func:`category_log_prior`'s table for the queries' categories (unseen: the last)."""
    position = {str(c): i for i, c in enumerate(categories)}
    return np.asarray(table)[[position.get(str(c), len(categories)) for c in query_categories]]


def format_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table: one row per scorer."""
    cols = ["R@1", "R@5", "R@10", "R@10 95% CI", "MedR", "MedR 95% CI", "wR@10"]
    lines = [f"{'':18s}" + "".join(f"{c:>15s}" for c in cols)]
    for name, m in rows.items():
        cells = [f"{m['R@1']:.3f}", f"{m['R@5']:.3f}", f"{m['R@10']:.3f}", f"{m['R@10_lo']:.2f}-{m['R@10_hi']:.2f}",
                 f"{m['MedR']:.1f}", f"{m['MedR_lo']:.0f}-{m['MedR_hi']:.0f}", f"{m['wR@10']:.3f}"]
        lines.append(f"{name:18s}" + "".join(f"{c:>15s}" for c in cells))
    return "\n".join(lines)
