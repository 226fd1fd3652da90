"""Full-ranking evaluation the MicroLens way: HR@K and NDCG@K with the user's history masked.

Ranks are 0-based: rank 0 is the top. With a single relevant item per query, HR@K = 1 if rank < K, and
NDCG@K = 1 / log2(rank + 2) if rank < K (else 0). Ties are resolved against the target (an item scoring
exactly as much as the target is counted above it), so a constant scorer gets no credit.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KS = (10, 20, 50)


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


def target_ranks(scores: np.ndarray, targets: np.ndarray, exclude: Sequence[Iterable[int]] = ()) -> np.ndarray:
    """The 0-based rank of each target among all items.

    Args:
      scores: float ``[U, N]``, higher is better.
      targets: int ``[U]``, the column of each query's held-out item.
      exclude: per query, columns to mask (the history); the target itself is never masked.

    Returns:
      int ``[U]``: the number of unmasked items scoring at least as much as the target, itself excluded.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets]
    for u, cols in enumerate(exclude):
        cols = np.fromiter(cols, dtype=np.int64)
        if cols.size:
            scores[u, cols] = -np.inf
    scores[rows, targets] = -np.inf  # never count the target against itself
    return np.sum(scores >= target_scores[:, None], axis=1)


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
