"""Stratified train / validation / test assignment with a fixed seed.

Within each label the items (sorted by key, then permuted with a generator seeded by ``(seed, label)``) are
cut into the three splits by ``floor(n * fraction)``; the one or two items a label has left over go, one by
one, to the split that is furthest below its global share. So every label is split in proportion (within
one item), the global counts match the fractions (within one item per split), and a label with very few
items still feeds the small splits across the dataset. The result depends only on the keys, labels,
fractions and seed: not on file-system order, nor on the number of workers.
"""
from __future__ import annotations

import collections
import math
from typing import Dict, Hashable, Iterable, List, Sequence, Tuple

import numpy as np

from data_interface_for_model import defaults

SPLIT_NAMES = defaults.SPLITS


def check_fractions(fractions: Sequence[float]) -> Tuple[float, float, float]:
    """Validate ``(train, validation, test)`` fractions: three non-negative numbers summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise ValueError(f"splits must be three fractions (train, validation, test), got {fractions!r}")
    if any(f < 0 for f in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions!r}")
    if values[0] == 0:
        raise ValueError("the train fraction must be positive")
    return values  # type: ignore[return-value]


def stratified_split(
    items: Iterable[Tuple[Hashable, str]],
    fractions: Sequence[float] = defaults.SPLIT_FRACTIONS,
    seed: int = 0,
) -> Dict[Hashable, str]:
    """Assign each ``(key, label)`` to ``"train"``, ``"validation"`` or ``"test"``.

    Args:
      items: ``(key, label)`` pairs; keys must be unique and sortable.
      fractions: the shares of train, validation and test.
      seed: the fixed seed; the same inputs and seed give the same assignment.

    Returns:
      ``{key: split_name}``.
    """
    shares = check_fractions(fractions)
    by_label: Dict[str, List[Hashable]] = collections.defaultdict(list)
    seen = set()
    for key, label in items:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen.add(key)
        by_label[label].append(key)
    labels = sorted(by_label)
    # the order in which labels receive left-over items also depends on the seed
    order = np.random.default_rng([seed, 1]).permutation(len(labels))
    assigned = [0, 0, 0]
    total = 0
    result: Dict[Hashable, str] = {}
    for position in order:
        label = labels[int(position)]
        keys = sorted(by_label[label])
        label_seed = [seed, 2] + list(label.encode("utf-8"))
        keys = [keys[int(i)] for i in np.random.default_rng(label_seed).permutation(len(keys))]
        n = len(keys)
        counts = [int(math.floor(n * share)) for share in shares]
        total += n
        for _ in range(n - sum(counts)):  # left-overs to the split furthest below its share
            deficits = [shares[s] * total - (assigned[s] + counts[s]) for s in range(3)]
            counts[int(np.argmax(deficits))] += 1
        start = 0
        for s, count in enumerate(counts):
            for key in keys[start:start + count]:
                result[key] = SPLIT_NAMES[s]
            start += count
            assigned[s] += count
    return result
