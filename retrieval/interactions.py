"""User interactions: reading, cleaning and simulating them.

An interaction log is held as ``Sequences``: an ordered ``dict`` user id -> list of item ids in time order.

Formats, chosen by extension (column names are options: :class:`Columns`):

* MicroLens pairs (``.tsv``, ``.txt``, ``.pairs`` without a header): one user per line, the user id, a tab
  (or spaces), then the items they interacted with in time order separated by spaces or commas::

      u0001\t80328682 80328690 80328701

* RecBole atomic files (``.inter``): tab-separated with a typed header such as
  ``user_id:token\titem_id:token\trating:float\ttimestamp:float`` (the ``:type`` suffix is ignored);
* CSV (``.csv``), or a ``.tsv`` whose first line names the user and item columns: one interaction a row;
* Parquet (``.parquet``): one interaction a row.

Order: rows are sorted by timestamp within each user; equal timestamps keep file order (the earlier row
first), so the order is deterministic. Without a time column (``Columns(time=None)``) file order is time
order. Timestamps are numbers (any unit) or ISO 8601 dates; a missing or unparsable one is an error naming
its row. Repeated user-item pairs: ``repeats="keep"`` keeps every occurrence (a re-watch is an interaction),
``"first"`` keeps the first (a user's sequence lists distinct items in the order first seen; the usual
leave-one-out protocol, and the command line's default), ``"last"`` the last.

Ids must be non-empty and hold no whitespace, comma or control character (they are written to pairs files
and passed as comma-separated lists); a bad one is an error naming its row.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import math
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from data_interface_for_model.atomic import atomic_output_path, atomic_write
from data_interface_for_model.embeddings_file import EmbeddingTable
from retrieval.defaults import REPEATS

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: user id -> item ids in time order.
Sequences = Dict[str, List[str]]

PAIRS_EXTENSIONS = (".tsv", ".txt", ".pairs")
_SPLIT = re.compile(r"[\s,]+")
_BAD_ID = re.compile(r"[\s,\x00-\x1f]")


@dataclasses.dataclass(frozen=True)
class Columns:
    """Column names of a tabular interaction file (``time=None``: file order is time order)."""

    user: str = "user_id"
    item: str = "item_id"
    time: Optional[str] = "timestamp"


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


def read_interactions(path: PathLike, columns: Columns = Columns(), repeats: str = "keep") -> Sequences:
    """Read a pairs, RecBole ``.inter``, CSV/TSV or Parquet interaction file into time-ordered sequences."""
    if repeats not in REPEATS:
        raise ValueError(f"repeats must be one of {REPEATS}, got {repeats!r}")
    name = os.fspath(path)
    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(name)
        wanted = _column_indexes(name, table.column_names, columns)
        data = [table.column(table.column_names[i]).to_pylist() if i is not None else None for i in wanted]
        count = table.num_rows
        rows = ((data[0][n], data[1][n], data[2][n] if data[2] is not None else None, n + 1) for n in range(count))
        return _dedupe(_rows_to_sequences(name, rows, "row", columns.time is not None), repeats)
    if lower.endswith((".inter", ".csv")) or (lower.endswith(PAIRS_EXTENSIONS) and _has_header(name, columns)):
        delimiter = "," if lower.endswith(".csv") else "\t"
        with open(name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InteractionFileError(f"{name}: empty file")
            header = [h.split(":", 1)[0].strip() for h in header]  # RecBole: name:type
            wanted = _column_indexes(name, header, columns)
            width = max(i for i in wanted if i is not None) + 1

            def rows():
                for number, fields in enumerate(reader, start=2):
                    if not fields:
                        continue
                    if len(fields) < width:
                        raise InteractionFileError(f"{name} line {number}: {len(fields)} fields, expected "
                                                   f"{len(header)} ({', '.join(header)})")
                    yield (fields[wanted[0]], fields[wanted[1]],
                           fields[wanted[2]] if wanted[2] is not None else None, number)

            return _dedupe(_rows_to_sequences(name, rows(), "line", columns.time is not None), repeats)
    if lower.endswith(PAIRS_EXTENSIONS):
        return _dedupe(_read_pairs(name), repeats)
    raise InteractionFileError(f"{name}: unknown format (expected pairs {', '.join(PAIRS_EXTENSIONS)}, RecBole "
                               f".inter, .csv or .parquet)")


def _has_header(name: str, columns: Columns) -> bool:
    with open(name, encoding="utf-8") as handle:
        first = handle.readline()
    fields = [f.split(":", 1)[0].strip() for f in first.rstrip("\n").split("\t")]
    return columns.user in fields and columns.item in fields


def _column_indexes(name: str, header: Sequence[str], columns: Columns) -> List[Optional[int]]:
    wanted = [columns.user, columns.item] + ([columns.time] if columns.time else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InteractionFileError(f"{name}: missing columns {missing} (have {list(header)}; choose others with "
                                   f"--user-col/--item-col/--time-col)")
    return [list(header).index(columns.user), list(header).index(columns.item),
            list(header).index(columns.time) if columns.time else None]


def check_id(value: object, what: str, where: str) -> str:
    """``value`` as an id string, or an :class:`InteractionFileError` naming ``where``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InteractionFileError(f"{where}: empty {what}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise InteractionFileError(f"{where}: empty {what}")
    if _BAD_ID.search(text):
        raise InteractionFileError(f"{where}: {what} {text!r} holds whitespace, a comma or a control character")
    return text


def _read_pairs(name: str) -> Sequences:
    sequences: Sequences = {}
    with open(name, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = [f for f in _SPLIT.split(line.strip()) if f]
            if not fields:
                continue
            user, items = fields[0], fields[1:]
            where = f"{name} line {number}"
            check_id(user, "user id", where)
            for item in items:
                check_id(item, "item id", where)
            if not items:
                logger.warning("%s: user %r has no items", where, user)
            sequences.setdefault(user, []).extend(items)
    return sequences


def _timestamp_key(value, where: str) -> float:
    if value is None or value == "":
        raise InteractionFileError(f"{where}: missing timestamp")
    if hasattr(value, "timestamp"):  # datetime / pandas Timestamp
        return float(value.timestamp())
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            import datetime

            return datetime.datetime.fromisoformat(str(value)).timestamp()
        except ValueError:
            raise InteractionFileError(f"{where}: timestamp {value!r} is neither a number nor ISO 8601") from None
    if math.isnan(number):
        raise InteractionFileError(f"{where}: missing timestamp (NaN)")
    return number


def _rows_to_sequences(name: str, rows: Iterable[Tuple[object, object, object, int]], unit: str,
                       timed: bool = True) -> Sequences:
    """(user, item, timestamp, row number) -> sequences sorted by (timestamp, row number); without
    ``timed``, by row number."""
    grouped: Dict[str, List[Tuple[float, int, str]]] = {}
    for user, item, timestamp, row in rows:
        where = f"{name} {unit} {row}"
        key = _timestamp_key(timestamp, where) if timed else float(row)
        grouped.setdefault(check_id(user, "user id", where), []).append((key, row, check_id(item, "item id", where)))
    return {user: [item for _, _, item in sorted(events)] for user, events in grouped.items()}


def _dedupe(sequences: Sequences, repeats: str) -> Sequences:
    if repeats == "keep":
        return sequences
    out: Sequences = {}
    for user, items in sequences.items():
        ordered = items if repeats == "first" else items[::-1]
        kept = list(dict.fromkeys(ordered))
        out[user] = kept if repeats == "first" else kept[::-1]
    return out


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
      popularity_drift: how far popularity moves over the simulated time, in [0, 1]: the log-popularity at
        time t is ``(1 - drift * t) * early + drift * t * late`` (two Zipf orders), each user starting at a
        random time and advancing with each interaction (0: fixed popularity).
      noise: probability that an interaction is a uniformly random item.
      latent_dim, latent_weight: hidden item factors (not in the content embedding) and each user's affinity
        to them, so item ids carry signal beyond content (collaborative structure).
      session_length: mean session length (geometric); each session focuses on one of the user's preferred
        categories (0: no sessions, every preferred category at every step).
      successors: hidden successors per item (items of its category that tend to be watched right after it).
      follow: probability that the next item of a session is an unseen successor of the previous one
        (item-to-item transitions; 0: none).
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
    popularity_drift: float = 0.5
    noise: float = 0.1
    latent_dim: int = 8
    latent_weight: float = 1.0
    session_length: float = 6.0
    successors: int = 3
    follow: float = 0.5
    seed: int = 0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def simulate_interactions(table: EmbeddingTable, config: SimulationConfig = SimulationConfig()) -> Sequences:
    """Simulate users over the items of ``table`` (the labels are the categories; one category if none).

    Each user prefers 1-3 categories; their taste is a mix of those categories' centroids and a private
    random direction. Their history is a run of sessions (geometric lengths, mean ``session_length``), each
    focused on one preferred category. Within a session the next item is, with probability ``follow``, an
    unseen hidden successor of the previous item (a fixed item-to-item transition structure that only the
    order of interactions reveals); otherwise it is drawn from softmax(cos(taste, item) / T + w * log pop(t)
    + latent(user) . latent(item)) over the session's category (or, with probability ``noise``, uniformly
    from all items), never repeating an item. Popularity drifts with time (``popularity_drift``). The latent
    item factors are not in the content embedding: only interactions reveal them, which is what item-id
    embeddings are for. The taste also drifts a little towards each consumed item, so the recent history
    predicts the next item better than the whole history does.
    """
    rng = np.random.default_rng(config.seed)
    vectors = _unit(table.vectors.astype(np.float64))
    n_items = len(table)
    labels = np.asarray(table.labels)
    categories = sorted(set(labels.tolist()))
    members = {c: np.flatnonzero(labels == c) for c in categories}
    centroids = {c: _unit(vectors[idx].mean(axis=0)) for c, idx in members.items()}
    # Zipf popularity over two random orders of the items: early and late in the simulated time.
    early = -config.popularity_exponent * np.log(rng.permutation(n_items) + 1)
    late = -config.popularity_exponent * np.log(rng.permutation(n_items) + 1)
    item_latent = rng.standard_normal((n_items, config.latent_dim)) / np.sqrt(max(config.latent_dim, 1))
    successors = np.full((n_items, max(config.successors, 0)), -1, dtype=np.int64)
    for idx in members.values():
        if config.successors > 0 and idx.size > 1:
            for i in idx:
                others = idx[idx != i]
                successors[i, :min(config.successors, others.size)] = rng.choice(
                    others, size=min(config.successors, others.size), replace=False)
    width = len(str(config.users - 1))
    sequences: Sequences = {}
    lo_c, hi_c = config.categories_per_user
    for u in range(config.users):
        n_pref = int(rng.integers(lo_c, min(hi_c, len(categories)) + 1))
        preferred = rng.choice(len(categories), size=n_pref, replace=False)
        weights = rng.dirichlet(np.ones(n_pref))
        base = sum(w * centroids[categories[i]] for w, i in zip(weights, preferred))
        private = _unit(rng.standard_normal(vectors.shape[1]))
        taste = _unit((1 - config.taste_weight) * base + config.taste_weight * private)
        user_latent = rng.standard_normal(config.latent_dim)
        length = min(int(rng.integers(config.min_length, config.max_length + 1)), n_items)
        start = rng.random() * (1.0 - config.popularity_drift * 0.2)
        seen = np.zeros(n_items, dtype=bool)
        items: List[str] = []
        previous = -1
        session_left = 0
        focus = np.concatenate([members[categories[i]] for i in preferred])
        for step in range(length):
            if config.session_length > 0 and session_left <= 0:
                session_left = int(rng.geometric(1.0 / config.session_length))
                focus = members[categories[int(rng.choice(preferred, p=weights))]]
                previous = -1  # a new session does not continue the last one
            session_left -= 1
            follow = [s for s in successors[previous] if s >= 0 and not seen[s]] if previous >= 0 else []
            if follow and rng.random() < config.follow:
                pick = int(rng.choice(follow))
            elif rng.random() < config.noise or seen[focus].all():
                pick = int(rng.choice(np.flatnonzero(~seen)))
            else:
                candidates = focus[~seen[focus]]
                t = min(start + 0.2 * config.popularity_drift * step / max(length, 1), 1.0)
                log_pop = (1 - config.popularity_drift * t) * early + config.popularity_drift * t * late
                logits = (vectors[candidates] @ taste / config.temperature
                          + config.popularity_weight * log_pop[candidates]
                          + config.latent_weight * item_latent[candidates] @ user_latent)
                p = np.exp(logits - logits.max())
                pick = int(rng.choice(candidates, p=p / p.sum()))
            seen[pick] = True
            items.append(str(table.ids[pick]))
            taste = _unit(0.8 * taste + 0.2 * vectors[pick])
            previous = pick
        sequences[f"u{u:0{width}d}"] = items
    return sequences


def item_counts(sequences: Mapping[str, Sequence[str]]) -> "collections.Counter[str]":
    """How many times each item occurs."""
    return collections.Counter(item for items in sequences.values() for item in items)
