"""User interactions: reading, cleaning and simulating them.

An interaction log is held as ``Sequences``: an ordered ``dict`` user id -> list of item ids in time order.

Three file formats, chosen by extension:

* MicroLens pairs (``.tsv``, ``.txt``, ``.pairs``): one user per line, the user id, a tab (or spaces), then
  the items they interacted with in time order separated by spaces or commas::

      u0001\t80328682 80328690 80328701

* CSV (``.csv``): a header naming ``user_id,item_id,timestamp`` (extra columns ignored), one interaction a row;
* Parquet (``.parquet``): the same three columns.

Rows are sorted by timestamp within each user (stable, so equal timestamps keep file order).
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import math
import os
import re
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple, Union

import numpy as np

from data_interface_for_model.atomic import atomic_output_path, atomic_write
from data_interface_for_model.embeddings_file import EmbeddingTable

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: user id -> item ids in time order.
Sequences = Dict[str, List[str]]

PAIRS_EXTENSIONS = (".tsv", ".txt", ".pairs")
_SPLIT = re.compile(r"[\s,]+")


class InteractionFileError(ValueError):
    """An interaction file that cannot be read (unknown format, missing columns, malformed line)."""


@dataclasses.dataclass
class CleaningReport:
    """What :func:`clean_sequences` dropped.

    Attributes:
      unknown_items: interactions naming an item absent from the embedding table (skipped).
      unknown_examples: up to 5 such item ids, for the message.
      short_users: users left with fewer than ``min_interactions`` interactions (skipped).
      kept_users: users kept.
      kept_interactions: interactions kept.
    """

    unknown_items: int = 0
    unknown_examples: List[str] = dataclasses.field(default_factory=list)
    short_users: int = 0
    kept_users: int = 0
    kept_interactions: int = 0

    def summary(self) -> str:
        text = (f"{self.kept_users} users, {self.kept_interactions} interactions kept; skipped "
                f"{self.unknown_items} interactions with unknown items")
        if self.unknown_examples:
            text += f" (e.g. {', '.join(map(repr, self.unknown_examples))})"
        return text + f", {self.short_users} users with too few interactions"


# ----------------------------------------------------------------------------------------------- reading


def read_interactions(path: PathLike) -> Sequences:
    """Read a pairs, CSV or Parquet interaction file into time-ordered sequences."""
    name = os.fspath(path)
    lower = name.lower()
    if lower.endswith(PAIRS_EXTENSIONS):
        return _read_pairs(name)
    if lower.endswith(".csv"):
        with open(name, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            _check_columns(name, reader.fieldnames or [])
            rows = [(r["user_id"], r["item_id"], r["timestamp"], n) for n, r in enumerate(reader, start=2)]
        return _rows_to_sequences(name, rows)
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(name)
        _check_columns(name, table.column_names)
        users = table.column("user_id").to_pylist()
        items = table.column("item_id").to_pylist()
        times = table.column("timestamp").to_pylist()
        return _rows_to_sequences(name, [(u, i, t, n) for n, (u, i, t) in enumerate(zip(users, items, times))])
    raise InteractionFileError(f"{name}: unknown format (expected {', '.join(PAIRS_EXTENSIONS)}, .csv or .parquet)")


def _check_columns(name: str, columns: Sequence[str]) -> None:
    missing = {"user_id", "item_id", "timestamp"} - set(columns)
    if missing:
        raise InteractionFileError(f"{name}: missing columns {sorted(missing)} (have {list(columns)})")


def _read_pairs(name: str) -> Sequences:
    sequences: Sequences = {}
    with open(name, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = [f for f in _SPLIT.split(line.strip()) if f]
            if not fields:
                continue
            user, items = fields[0], fields[1:]
            if not items:
                logger.warning("%s line %d: user %r has no items", name, number, user)
            sequences.setdefault(user, []).extend(items)
    return sequences


def _timestamp_key(value, name: str, row: int) -> float:
    if value is None or value == "":
        raise InteractionFileError(f"{name} row {row}: empty timestamp")
    if hasattr(value, "timestamp"):  # datetime / pandas Timestamp
        return float(value.timestamp())
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            import datetime

            return datetime.datetime.fromisoformat(str(value)).timestamp()
        except ValueError:
            raise InteractionFileError(f"{name} row {row}: timestamp {value!r} is neither a number nor ISO 8601") from None
    if math.isnan(number):
        raise InteractionFileError(f"{name} row {row}: timestamp is NaN")
    return number


def _rows_to_sequences(name: str, rows: Iterable[Tuple[object, object, object, int]]) -> Sequences:
    grouped: Dict[str, List[Tuple[float, int, str]]] = {}
    for user, item, timestamp, row in rows:
        if user in (None, "") or item in (None, ""):
            raise InteractionFileError(f"{name} row {row}: empty user_id or item_id")
        grouped.setdefault(str(user), []).append((_timestamp_key(timestamp, name, row), row, str(item)))
    return {user: [item for _, _, item in sorted(events)] for user, events in grouped.items()}


# ----------------------------------------------------------------------------------------------- writing


def write_interactions(path: PathLike, sequences: Mapping[str, Sequence[str]], start_time: int = 1_600_000_000) -> None:
    """Write sequences atomically; the format follows the extension (CSV/Parquet get synthetic timestamps,
    one second apart in sequence order)."""
    name = os.fspath(path)
    lower = name.lower()
    if lower.endswith(PAIRS_EXTENSIONS):
        with atomic_write(name, "w", encoding="utf-8") as handle:
            for user, items in sequences.items():
                handle.write(f"{user}\t{' '.join(items)}\n")
        return
    users, items, times = [], [], []
    clock = start_time
    for user, seq in sequences.items():
        for item in seq:
            users.append(user)
            items.append(item)
            times.append(clock)
            clock += 1
    if lower.endswith(".csv"):
        with atomic_write(name, "w", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["user_id", "item_id", "timestamp"])
            writer.writerows(zip(users, items, times))
    elif lower.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"user_id": pa.array(users, pa.string()), "item_id": pa.array(items, pa.string()),
                          "timestamp": pa.array(times, pa.int64())})
        with atomic_output_path(name, suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
    else:
        raise InteractionFileError(f"{name}: unknown format (expected {', '.join(PAIRS_EXTENSIONS)}, .csv or .parquet)")


# ---------------------------------------------------------------------------------------------- cleaning


def clean_sequences(sequences: Mapping[str, Sequence[str]], known_items: Iterable[str],
                    min_interactions: int = 3) -> Tuple[Sequences, CleaningReport]:
    """Drop interactions with unknown items, then users left with fewer than ``min_interactions``."""
    known = set(known_items)
    report = CleaningReport()
    kept: Sequences = {}
    for user, items in sequences.items():
        good = []
        for item in items:
            if item in known:
                good.append(item)
            else:
                report.unknown_items += 1
                if len(report.unknown_examples) < 5 and item not in report.unknown_examples:
                    report.unknown_examples.append(item)
        if len(good) < min_interactions:
            report.short_users += 1
            continue
        kept[user] = good
    report.kept_users = len(kept)
    report.kept_interactions = sum(len(v) for v in kept.values())
    if report.unknown_items:
        logger.warning("skipped %d interactions naming unknown items (e.g. %s)", report.unknown_items,
                       ", ".join(report.unknown_examples))
    if report.short_users:
        logger.warning("skipped %d users with fewer than %d interactions", report.short_users, min_interactions)
    return kept, report


# -------------------------------------------------------------------------------------------- simulation


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """How :func:`simulate_interactions` draws users.

    Attributes:
      users: number of users.
      min_length, max_length: interactions per user (uniform).
      categories_per_user: (min, max) preferred categories.
      taste_weight: how much the private taste vector pulls (vs. the category centroids), in [0, 1].
      temperature: softmax temperature over cosine affinity (lower: more focused users).
      popularity_exponent: Zipf exponent of the item popularity prior (0: no skew).
      popularity_weight: weight of log-popularity in the item logit.
      noise: probability that an interaction is a uniformly random item.
      latent_dim, latent_weight: hidden item factors (not in the content embedding) and each user's affinity
        to them, so item ids carry signal beyond content (collaborative structure).
      seed: random seed.
    """

    users: int = 500
    min_length: int = 6
    max_length: int = 20
    categories_per_user: Tuple[int, int] = (1, 3)
    taste_weight: float = 0.5
    temperature: float = 0.1
    popularity_exponent: float = 1.0
    popularity_weight: float = 0.5
    noise: float = 0.1
    latent_dim: int = 8
    latent_weight: float = 1.0
    seed: int = 0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def simulate_interactions(table: EmbeddingTable, config: SimulationConfig = SimulationConfig()) -> Sequences:
    """Simulate users over the items of ``table``.

    Each user prefers 1-3 categories; their taste is a mix of those categories' centroids and a private
    random direction. At each step the next item is drawn from softmax(cos(taste, item) / T + w * log pop)
    + latent(user) . latent(item)), restricted to the preferred categories (or, with probability ``noise``,
    uniformly from all items), never repeating an item. The latent item factors are not in the content
    embedding: only interactions reveal them, which is what item-id embeddings are for. The sequence drifts: the taste moves a little towards each consumed item, so the
    recent history predicts the next item better than the whole history does.
    """
    rng = np.random.default_rng(config.seed)
    vectors = _unit(table.vectors.astype(np.float64))
    n_items = len(table)
    labels = np.asarray(table.labels)
    categories = sorted(set(labels.tolist()))
    members = {c: np.flatnonzero(labels == c) for c in categories}
    centroids = {c: _unit(vectors[idx].mean(axis=0)) for c, idx in members.items()}
    # Zipf popularity over a random permutation of items.
    ranks = rng.permutation(n_items) + 1
    log_pop = -config.popularity_exponent * np.log(ranks)
    item_latent = rng.standard_normal((n_items, config.latent_dim)) / np.sqrt(max(config.latent_dim, 1))
    width = len(str(config.users - 1))
    sequences: Sequences = {}
    lo_c, hi_c = config.categories_per_user
    for u in range(config.users):
        n_pref = int(rng.integers(lo_c, min(hi_c, len(categories)) + 1))
        preferred = rng.choice(len(categories), size=n_pref, replace=False)
        pref_items = np.concatenate([members[categories[i]] for i in preferred])
        weights = rng.dirichlet(np.ones(n_pref))
        base = sum(w * centroids[categories[i]] for w, i in zip(weights, preferred))
        private = _unit(rng.standard_normal(vectors.shape[1]))
        taste = _unit((1 - config.taste_weight) * base + config.taste_weight * private)
        user_latent = rng.standard_normal(config.latent_dim)
        length = int(rng.integers(config.min_length, config.max_length + 1))
        length = min(length, n_items)
        seen = np.zeros(n_items, dtype=bool)
        items: List[str] = []
        for _ in range(length):
            if rng.random() < config.noise or seen[pref_items].all():
                candidates = np.flatnonzero(~seen)
                pick = int(rng.choice(candidates))
            else:
                candidates = pref_items[~seen[pref_items]]
                logits = (vectors[candidates] @ taste / config.temperature
                          + config.popularity_weight * log_pop[candidates]
                          + config.latent_weight * item_latent[candidates] @ user_latent)
                p = np.exp(logits - logits.max())
                pick = int(rng.choice(candidates, p=p / p.sum()))
            seen[pick] = True
            items.append(str(table.ids[pick]))
            taste = _unit(0.8 * taste + 0.2 * vectors[pick])
        sequences[f"u{u:0{width}d}"] = items
    return sequences


def item_counts(sequences: Mapping[str, Sequence[str]]) -> "collections.Counter[str]":
    """How many times each item occurs."""
    return collections.Counter(item for items in sequences.values() for item in items)
