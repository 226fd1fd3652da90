"""Full-ranking evaluation the MicroLens way: HR@K and NDCG@K with the user's history masked.

Ranks are 0-based: rank 0 is the top. With a single relevant item per query, HR@K = 1 if rank < K, and
NDCG@K = 1 / log2(rank + 2) if rank < K (else 0). Ties are resolved against the target (an item scoring
exactly as much as the target is counted above it), so a constant scorer gets no credit.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KS = (10, 20, 50)
#: Bootstrap resamples of the users behind each interval, and the interval's coverage.
BOOTSTRAP_RESAMPLES = 1000
INTERVAL_LEVEL = 0.95


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """ranks ``[U]`` (0-based) -> the fraction with rank < k."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k)) if ranks.size else float("nan")


def ndcg(ranks: np.ndarray, k: int) -> float:
    """ranks ``[U]`` (0-based) -> mean of 1/log2(rank+2) over ranks < k (0 otherwise)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return float("nan")
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(np.mean(gains))


def masked_scores(scores: np.ndarray, exclude: Sequence[Iterable[int]] = ()) -> np.ndarray:
    """A float64 copy of ``scores [U, N]`` with each query's ``exclude`` columns set to -inf."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    for u, cols in enumerate(exclude):
        cols = np.fromiter(cols, dtype=np.int64)
        if cols.size:
            scores[u, cols] = -np.inf
    return scores


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: Sequence[Iterable[int]] = ()) -> np.ndarray:
    """The 0-based rank of each target among all items.

    Args:
      scores: float ``[U, N]``, higher is better.
      targets: int ``[U]``, the column of each query's held-out item.
      exclude: per query, columns to mask (the history); the target itself is never masked.

    Returns:
      int ``[U]``: the number of unmasked items scoring at least as much as the target, itself excluded.
    """
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))
    target_scores = np.asarray(scores, dtype=np.float64)[rows, targets]
    scores = masked_scores(scores, exclude)
    scores[rows, targets] = -np.inf  # never count the target against itself
    return np.sum(scores >= target_scores[:, None], axis=1)


def share_in_top_k(scores: np.ndarray, members: np.ndarray, k: int,
                   exclude: Sequence[Iterable[int]] = ()) -> np.ndarray:
    """Per query, the share of its top ``k`` items that are ``members`` (e.g. the cold items).

    Args:
      scores: float ``[U, N]``, higher is better.
      members: bool ``[N]``.
      k: list length, 1 to N.
      exclude: per query, columns left out of its list (the history), as in :func:`target_ranks`.

    Returns:
      float ``[U]`` in [0, 1]: members among the query's list, over its length (k, or fewer where fewer than
      k items are left); ties at the k-th score are broken by column order.
    """
    scores = np.asarray(scores)
    members = np.asarray(members, dtype=bool)
    if scores.ndim != 2 or members.shape != (scores.shape[1],):
        raise ValueError(f"scores [U, N] and members [N] expected, got {scores.shape} and {members.shape}")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be between 1 and the {scores.shape[1]} items, got {k}")
    scores = masked_scores(scores, exclude)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    listed = np.isfinite(np.take_along_axis(scores, top, axis=1))  # excluded items sort last: never listed
    return (members[top] & listed).sum(axis=1) / np.maximum(listed.sum(axis=1), 1)


def user_gains(ranks: np.ndarray, metric: str) -> np.ndarray:
    """ranks ``[U]`` -> each user's contribution ``[U]`` to ``metric`` (``"HR@10"``, ``"NDCG@20"``, ...): the
    metric is their mean."""
    name, _, k = metric.partition("@")
    ranks = np.asarray(ranks, dtype=np.float64)
    inside = ranks < int(k)
    if name == "HR":
        return inside.astype(np.float64)
    if name == "NDCG":
        return np.where(inside, 1.0 / np.log2(ranks + 2.0), 0.0)
    raise ValueError(f"unknown metric {metric!r} (expected HR@K or NDCG@K)")


def bootstrap_intervals(gains: Mapping[str, np.ndarray], reference: str = "", resamples: int = BOOTSTRAP_RESAMPLES,
                        level: float = INTERVAL_LEVEL, seed: int = 0) -> Dict[str, dict]:
    """Percentile bootstrap over users (the same resampled users for every method, so differences are paired).

    Args:
      gains: method -> per-user gains ``[U]`` (:func:`user_gains`; the same users in the same order).
      reference: with a method name, also the interval of ``reference - method`` for every other method.

    Returns:
      method -> ``{"interval": [lo, hi]}`` (of the mean), plus ``"difference"`` (reference minus this method)
      and ``"difference_interval": [lo, hi]`` when ``reference`` is given; an interval that excludes 0 is a
      difference this many users can tell apart at ``level``.
    """
    names = list(gains)
    if not names:
        return {}
    users = len(next(iter(gains.values())))
    if any(len(g) != users for g in gains.values()):
        raise ValueError("every method needs the same users")
    if users == 0:
        return {name: {"interval": [float("nan"), float("nan")]} for name in names}
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, users, size=(resamples, users))
    tail = (1.0 - level) / 2.0 * 100.0
    means = {name: np.asarray(g, np.float64)[picks].mean(axis=1) for name, g in gains.items()}
    out: Dict[str, dict] = {}
    for name in names:
        out[name] = {"interval": [float(v) for v in np.percentile(means[name], [tail, 100.0 - tail])]}
        if reference and name != reference:
            diff = means[reference] - means[name]
            out[name]["difference"] = float(np.mean(gains[reference]) - np.mean(gains[name]))
            out[name]["difference_interval"] = [float(v) for v in np.percentile(diff, [tail, 100.0 - tail])]
    return out


def format_intervals(intervals: Mapping[str, Mapping[str, dict]], rows: Mapping[str, Mapping[str, float]],
                     reference: str, markdown: bool = False) -> str:
    """``intervals`` (metric -> :func:`bootstrap_intervals` output) -> a table: each method's value with its
    interval, and the reference's lead over it with the paired interval."""
    metrics = list(intervals)
    head = ["method"] + [f"{m} [{INTERVAL_LEVEL:.0%}]" for m in metrics] + [f"{reference.split(' (')[0]} lead in {m}"
                                                                          for m in metrics]
    body = []
    for name in rows:
        cells = [name]
        for m in metrics:
            lo, hi = intervals[m][name]["interval"]
            cells.append(f"{rows[name][m]:.4f} [{lo:.4f}, {hi:.4f}]")
        for m in metrics:
            entry = intervals[m][name]
            if "difference" in entry:
                lo, hi = entry["difference_interval"]
                sign = "" if lo <= 0 <= hi else (" *" if lo > 0 else " -")
                cells.append(f"{entry['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]{sign}")
            else:
                cells.append("")
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
    else:
        widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in [head] + body]
    return "\n".join(lines)


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> Dict[str, float]:
    """ranks -> ``{"HR@10": .., "NDCG@10": .., ...}`` (plus ``"users"``)."""
    out: Dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = hit_rate(ranks, k)
        out[f"NDCG@{k}"] = ndcg(ranks, k)
    out["users"] = int(np.asarray(ranks).size)
    return out


def format_table(rows: Mapping[str, Mapping[str, float]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """A fixed-width table: one row per method, HR@K and NDCG@K columns."""
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]
    width = max([len(n) for n in rows] + [6])
    lines = [f"{'method':<{width}}  " + "  ".join(f"{c:>8}" for c in cols) + "   users"]
    for name, values in rows.items():
        cells = "  ".join(f"{values.get(c, float('nan')):8.4f}" for c in cols)
        lines.append(f"{name:<{width}}  {cells}  {int(values.get('users', 0)):6d}")
    return "\n".join(lines)


def format_markdown(rows: Mapping[str, Mapping[str, float]], ks: Sequence[int] = DEFAULT_KS) -> str:
    """The same table in Markdown (best value of each column in bold)."""
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]
    best = {c: max((v.get(c, float("-inf")) for v in rows.values()), default=float("nan")) for c in cols}
    lines = ["| method | " + " | ".join(cols) + " | users |", "|---|" + "---:|" * (len(cols) + 1)]
    for name, values in rows.items():
        cells = []
        for c in cols:
            value = values.get(c, float("nan"))
            cells.append(f"**{value:.4f}**" if value == best[c] else f"{value:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {int(values.get('users', 0))} |")
    return "\n".join(lines)
