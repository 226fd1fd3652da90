"""A user table: user id and categorical columns (age band, gender, occupation...), read from a user's file
so the query tower can take user-side content, and carried in the run folder.

Formats, chosen by extension, as the item catalog's (:mod:`retrieval.catalog`): RecBole atomic ``.user``
(tab-separated, typed header such as ``user_id:token  age:token  gender:token  occupation:token``; the
``:type`` suffix is ignored), ``.csv``, ``.tsv`` (with a header) and ``.parquet``. The id column is ``user_id``
unless told otherwise (``--user-col``, the interaction log's). Every other column is read as a token (a
category): a continuous column (an exact age, an income) should be bucketed first, or each distinct value is a
category of its own. An empty value is "unknown".

:func:`feature_codes` turns the table into integer codes per column, with the vocabularies the query tower's
embeddings are indexed by: a value held by fewer than ``min_users`` users is "unknown" (code 0), so a rare value
(a zip code of one user) does not get an embedding trained on one user's interactions.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_interface_for_model.atomic import atomic_write
from retrieval.catalog import keyed_columns, read_table
from retrieval.interactions import InteractionFileError


@dataclasses.dataclass
class UserTable:
    """Users and their categorical columns.

    Attributes:
      ids: user ids ``[U]``.
      columns: column name -> values ``[U]`` (strings; ``""`` = unknown).
    """

    ids: List[str]
    columns: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, names: Optional[Sequence[str]]) -> "UserTable":
        """The table with only the columns ``names`` (None: every column), in that order; an unknown name is an
        error listing the columns there are."""
        if names is None:
            return self
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise InteractionFileError(f"user table: no column {missing[0]!r} (have {list(self.columns)})")
        if not names:
            raise InteractionFileError("user table: no feature columns chosen")
        return UserTable(self.ids, {n: self.columns[n] for n in names})


def read_users(path: str, id_col: str = "user_id", columns: Optional[Sequence[str]] = None) -> UserTable:
    """Read a user file (see the module docstring); duplicate or bad ids are errors naming the line.

    ``columns``: the feature columns to keep (None: every column other than the id)."""
    name, header, rows, unit = read_table(path, "user table", (".user", ".csv", ".tsv"))
    if id_col not in header:
        raise InteractionFileError(f"{name}: no user id column {id_col!r} (have {header}; choose it with --user-col)")
    ids, read = keyed_columns(name, header, rows, unit, id_col, "user id")
    read.pop(id_col)
    values = {column: [value.strip() for value in column_values] for column, column_values in read.items()}
    if not ids:
        raise InteractionFileError(f"{name}: no users")
    if not values:
        raise InteractionFileError(f"{name}: no columns besides the user id {id_col!r}")
    return UserTable(ids, values).select(columns)


def write_users(path: str, table: UserTable) -> None:
    """CSV (``user_id,<columns>``), atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["user_id", *table.columns])
        for n, user in enumerate(table.ids):
            writer.writerow([user, *(values[n] for values in table.columns.values())])


def feature_codes(table: UserTable, min_users: int = 1) -> Tuple[np.ndarray, List[List[str]]]:
    """-> (codes int32 ``[U, F]``, per column its vocabulary): a user's value in column ``f`` is
    ``vocabularies[f][codes[u, f] - 1]``; code 0 is "unknown": an empty value, or one held by fewer than
    ``min_users`` users. Vocabularies are sorted, so the same table always gives the same codes."""
    if min_users < 1:
        raise ValueError(f"min_users must be >= 1, got {min_users}")
    codes = np.zeros((len(table), len(table.columns)), np.int32)
    vocabularies: List[List[str]] = []
    for f, values in enumerate(table.columns.values()):
        counts = collections.Counter(v for v in values if v)
        vocabulary = sorted(v for v, c in counts.items() if c >= min_users)
        index = {v: n + 1 for n, v in enumerate(vocabulary)}
        codes[:, f] = [index.get(v, 0) for v in values]
        vocabularies.append(vocabulary)
    return codes, vocabularies
