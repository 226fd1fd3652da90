"""The run folder ``python -m retrieval train`` writes, and loading it back.

Layout::

    RUN/run.json               configuration, cleaning counts, training summary
    RUN/item_embeddings.npz    the item-embedding table the run was trained with (ids, labels, vectors)
    RUN/interactions.tsv       the cleaned interactions, MicroLens pairs format (user \\t items in time order)
    RUN/cold_items.txt         items held out of training (one per line)
    RUN/item_vocabulary.txt    items seen in training (the id embeddings' vocabulary)
    RUN/user_vocabulary.txt    users seen in training
    RUN/items.csv              the item catalog (item_id, title, other columns), when one was given
    RUN/users.csv              the user table's feature columns (user_id, columns), with user features
    RUN/two_tower/ckpt*        query and candidate tower weights (tf.train.Checkpoint)
    RUN/id_only/ckpt*          the ID-only two-tower baseline's weights (when trained)
    RUN/tensorboard/<model>/   TensorBoard logs of training (loss, validation HR@10 / NDCG@10 per epoch)

The folder is written under a temporary name and renamed into place when complete.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence

import tensorflow as tf

from data_interface_for_model.atomic import atomic_write
from data_interface_for_model.embeddings_file import EmbeddingTable, read_embeddings
from retrieval.catalog import Catalog, read_catalog
from retrieval.interactions import Sequences, read_interactions
from retrieval.splits import Split, leave_one_out
from retrieval.towers import CandidateTower, ContentLookup, QueryTower, TowerConfig
from retrieval.users import UserTable, read_users

RUN_JSON = "run.json"
EMBEDDINGS = "item_embeddings.npz"
INTERACTIONS = "interactions.tsv"
COLD_ITEMS = "cold_items.txt"
ITEM_VOCAB = "item_vocabulary.txt"
USER_VOCAB = "user_vocabulary.txt"
CATALOG = "items.csv"
USERS = "users.csv"
TENSORBOARD = "tensorboard"
MAIN_MODEL = "two_tower"
ID_ONLY_MODEL = "id_only"


class RunError(ValueError):
    """A run folder that is missing or incomplete."""


@dataclasses.dataclass
class Towers:
    """A trained pair of towers and its configuration."""

    config: TowerConfig
    query: QueryTower
    candidate: CandidateTower


@dataclasses.dataclass
class Run:
    """Everything a run folder holds, loaded.

    Attributes:
      path: the folder.
      info: the parsed ``run.json``.
      table: item embeddings (the catalog).
      sequences: cleaned interactions.
      split: the leave-one-out split (recomputed from ``sequences`` and the cold items).
      item_vocabulary, user_vocabulary: training vocabularies.
      content: the catalog's content lookup.
      model: the main two-tower model.
      id_only: the ID-only baseline, or None when it was not trained.
      catalog: the item catalog (titles...), or None when the run was trained without one.
      users: the user table the query tower reads features from, or None without user features.
    """

    path: str
    info: dict
    table: EmbeddingTable
    sequences: Sequences
    split: Split
    item_vocabulary: List[str]
    user_vocabulary: List[str]
    content: ContentLookup
    model: Towers
    id_only: Optional[Towers]
    catalog: Optional[Catalog] = None
    users: Optional[UserTable] = None

    def titles(self) -> Dict[str, str]:
        """item id -> title (empty without a catalog)."""
        return self.catalog.title_of() if self.catalog is not None else {}

    @property
    def max_history(self) -> int:
        return int(self.info["train_config"]["max_history"])

    @property
    def has_content(self) -> bool:
        """Whether the items carry real content embeddings (not the placeholder of an ID-only catalog)."""
        return bool(self.info.get("has_content", True))


def write_lines(path: str, lines: Sequence[str]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.strip()]


def write_json(path: str, data: dict) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


@contextlib.contextmanager
def staged_folder(target: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder beside ``target``; rename it to ``target`` on success, delete it on failure."""
    target = os.path.abspath(target)
    if os.path.exists(target) and os.listdir(target) and not overwrite:
        raise RunError(f"{target} exists and is not empty (pass --overwrite to replace it)")
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".", dir=parent)
    try:
        yield tmp
        if os.path.exists(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_towers(config: TowerConfig, item_vocabulary: Sequence[str], user_vocabulary: Sequence[str],
                 content: ContentLookup, max_history: int, users: Optional[UserTable] = None) -> Towers:
    """Create towers and run them once on a dummy batch so that their weights exist."""
    from retrieval.model import embed_items, embed_queries

    query = QueryTower(config, item_vocabulary, user_vocabulary, users)
    candidate = CandidateTower(config, item_vocabulary)
    dummy = tf.constant([[""] * max_history])
    embed_queries(query, content, dummy, tf.constant([""]) if config.uses_user_ids else None)
    embed_items(candidate, content, tf.constant([""]))
    return Towers(config, query, candidate)


def save_towers(towers: Towers, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    tf.train.Checkpoint(query=towers.query, candidate=towers.candidate).write(os.path.join(folder, "ckpt"))


def load_towers(folder: str, config: TowerConfig, item_vocabulary: Sequence[str], user_vocabulary: Sequence[str],
                content: ContentLookup, max_history: int, users: Optional[UserTable] = None) -> Towers:
    towers = build_towers(config, item_vocabulary, user_vocabulary, content, max_history, users)
    status = tf.train.Checkpoint(query=towers.query, candidate=towers.candidate).read(os.path.join(folder, "ckpt"))
    status.assert_existing_objects_matched()
    return towers


def load_run(path: str) -> Run:
    """Load a run folder written by :func:`retrieval.train.train_run`."""
    run_json = os.path.join(path, RUN_JSON)
    if not os.path.isfile(run_json):
        raise RunError(f"{path}: not a run folder (no {RUN_JSON}); make one with `python -m retrieval train`")
    with open(run_json, encoding="utf-8") as handle:
        info = json.load(handle)
    table = read_embeddings(os.path.join(path, EMBEDDINGS))
    sequences = read_interactions(os.path.join(path, INTERACTIONS))
    cold = read_lines(os.path.join(path, COLD_ITEMS)) if os.path.exists(os.path.join(path, COLD_ITEMS)) else []
    split = leave_one_out(sequences, cold)
    item_vocab = read_lines(os.path.join(path, ITEM_VOCAB))
    user_vocab = read_lines(os.path.join(path, USER_VOCAB))
    content = ContentLookup(table.ids, table.vectors)
    max_history = int(info["train_config"]["max_history"])
    config = TowerConfig.from_dict(info["tower"])
    users = None
    if config.user_features:
        if not os.path.isfile(os.path.join(path, USERS)):
            raise RunError(f"{path}: the model reads user features but the run has no {USERS}")
        users = read_users(os.path.join(path, USERS))
    model = load_towers(os.path.join(path, MAIN_MODEL), config, item_vocab, user_vocab, content, max_history, users)
    id_only = None
    if info.get("id_only_tower") and os.path.isdir(os.path.join(path, ID_ONLY_MODEL)):
        id_only = load_towers(os.path.join(path, ID_ONLY_MODEL), TowerConfig.from_dict(info["id_only_tower"]),
                              item_vocab, user_vocab, content, max_history)
    catalog = read_catalog(os.path.join(path, CATALOG)) if os.path.isfile(os.path.join(path, CATALOG)) else None
    return Run(path=path, info=info, table=table, sequences=sequences, split=split, item_vocabulary=item_vocab,
               user_vocabulary=user_vocab, content=content, model=model, id_only=id_only, catalog=catalog,
               users=users)

