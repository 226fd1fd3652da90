"""Training: fit the two-tower model (and the ID-only baseline) on a leave-one-out split, write a run folder.

``train_run(embeddings, interactions, out, TrainConfig())`` reads the items' content (an embedding file, the
catalog's metadata, or nothing: ID-only), reads the interactions (pairs, RecBole ``.inter``, CSV/Parquet),
skips unknown items and short users (counted), holds out a fraction of the items as cold items, splits
leave-one-out, trains with early stopping on the validation cases' NDCG@10 (full ranking, the best epoch
kept), and writes the run folder (see :mod:`retrieval.rundir`) with TensorBoard logs in ``RUN/tensorboard``.

Optimisation: Adam; the learning rate rises linearly over the first ``warmup_fraction`` of the steps, then
follows a cosine decay to zero at ``epochs``.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from data_interface_for_model.embeddings_file import EmbeddingTable, read_embeddings, write_embeddings
from retrieval import rundir
from retrieval.catalog import Catalog, catalog_content, read_catalog, subset, write_catalog
from retrieval.defaults import BALANCE_COLUMNS, OBJECTIVE, OBJECTIVES, REPEAT, TITLE_EMBEDDINGS, TITLE_TOKENS
from retrieval.interactions import Columns, Sequences, clean_sequences, read_interactions, write_interactions
from retrieval.model import TaskConfig, TwoTowerModel
from retrieval.splits import (
    EvalCase,
    SequenceWindows,
    TrainingExamples,
    choose_cold_items,
    leave_one_out,
    training_examples,
    training_items,
    training_windows,
)
from retrieval.towers import ContentLookup, TowerConfig
from retrieval.users import UserTable, read_users, write_users

logger = logging.getLogger(__name__)

#: Validation users scored each epoch for early stopping (a seeded sample above this).
VALIDATION_SAMPLE = 5000


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training options.

    Attributes:
      tower: the main model's towers (``tower.query``: bag, gru or sasrec).
      task: loss options.
      objective: ``every_position``: each training window of a user's sequence is run through the query
        tower once and every position is a query for the next item (see
        :func:`retrieval.splits.training_windows`); ``last_item``: one example per training interaction, the
        history before it run through the query tower on its own (L times the query-tower work).
      epochs, batch_size, learning_rate: Adam optimisation (in-batch negatives: the batch size is the number
        of training targets a batch holds, so of negatives per query; with ``every_position`` a batch is the
        whole windows that hold about that many targets); ``learning_rate`` is the peak of the schedule.
      warmup_fraction: share of the steps of linear warm-up before the cosine decay.
      patience: early stopping on the validation cases' NDCG@10 (0: off); the best epoch is kept. The ID-only
        baseline trains for as many epochs as the main model did.
      max_history: L, the recent items the query tower sees.
      cold_fraction: fraction of items held out of training entirely (cold-start evaluation).
      min_interactions: users with fewer (after dropping unknown items) are skipped.
      id_only_baseline: also train the ID-only two-tower baseline.
      seed: random seed (cold items, shuffling, initialisation).
    """

    tower: TowerConfig = TowerConfig()
    task: TaskConfig = TaskConfig()
    objective: str = OBJECTIVE
    epochs: int = 20
    patience: int = 3
    batch_size: int = 256
    learning_rate: float = 0.01
    warmup_fraction: float = 0.05
    max_history: int = 20
    cold_fraction: float = 0.1
    min_interactions: int = 3
    id_only_baseline: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r} (expected one of {', '.join(OBJECTIVES)})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where the interactions and the items come from.

    Attributes:
      interactions: the interaction file.
      embeddings: item embeddings (.npz/.parquet); None: content from the catalog's columns, or none.
      catalog: an item catalog file (id, title, any columns); its titles travel with the run.
      columns: column names of a tabular interaction file.
      item_col, title_col: the catalog's id and title columns (default ``item_id`` and the first title-like).
      repeats: ``keep``, ``first`` or ``last`` (see :mod:`retrieval.interactions`).
      title_tokens: with content from the catalog, its titles' words are tokens too (see
        :func:`retrieval.catalog.catalog_features`).
      balance_columns: with content from the catalog, each column (the title's words one column) has unit
        length within an item's vector, so every column counts equally in a content cosine.
      title_embeddings: with content from the catalog, each title's MiniLM sentence embedding follows the
        columns' tokens (see :func:`retrieval.catalog.title_embeddings`).
      users: a user table (:mod:`retrieval.users`; ids in ``columns.user``): the query tower adds an
        embedding of each of its feature columns (``TowerConfig.user_features``; none named: every column);
        it travels with the run.
    """

    interactions: str
    embeddings: Optional[str] = None
    catalog: Optional[str] = None
    columns: Columns = Columns()
    item_col: str = "item_id"
    title_col: Optional[str] = None
    repeats: str = REPEAT
    title_tokens: bool = TITLE_TOKENS
    balance_columns: bool = BALANCE_COLUMNS
    title_embeddings: bool = TITLE_EMBEDDINGS
    users: Optional[str] = None


def id_only_config(config: TowerConfig) -> TowerConfig:
    """The ID-only baseline's towers: same sizes, item ids only (no user features), no id dropout."""
    return dataclasses.replace(config, use_content=False, use_item_id=True, id_dropout=0.0, cold_encoder=False,
                               warm_candidate_content=True, user_features=())


class _TqdmEpochs(tf.keras.callbacks.Callback):
    def __init__(self, epochs: int, desc: str, disable: bool) -> None:
        super().__init__()
        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", disable=disable)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {"loss": f"{logs.get('loss', float('nan')):.3f}"}
        if "val_ndcg_10" in logs:
            shown["val_ndcg@10"] = f"{logs['val_ndcg_10']:.4f}"
        self.bar.set_postfix(**shown)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


Examples = Union[TrainingExamples, SequenceWindows]


def rows_per_batch(examples: Examples, batch_size: int) -> int:
    """Rows of ``examples`` a batch of about ``batch_size`` training targets takes: ``batch_size`` examples,
    or the whole windows that hold about that many targets."""
    if isinstance(examples, SequenceWindows):
        per_window = examples.target_count / max(len(examples), 1)
        return max(1, int(round(batch_size / max(per_window, 1e-9))))
    return batch_size


def examples_dataset(examples: Examples, batch_size: int, seed: int, shuffle: bool = True,
                     logq: bool = False, drop_remainder: bool = False) -> tf.data.Dataset:
    """A tf.data pipeline of ``batch_size`` rows: ``{"history_ids" [B, L], "item_id" [B], "user_id" [B]}``
    from examples, ``{"history_ids" [B, L], "target_ids" [B, L], "user_id" [B]}`` from windows, plus
    ``"sampling_probability"`` (``[B]`` or ``[B, L]``: each target's share of the training targets) when
    ``logq``."""
    windows = isinstance(examples, SequenceWindows)
    features = {"history_ids": examples.history, "user_id": examples.users,
                ("target_ids" if windows else "item_id"): examples.targets}
    if logq:
        flat = examples.targets.reshape(-1)
        items, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        trained = flat != ""
        counts = np.where(items == "", 0, counts)
        share = (counts[inverse.reshape(-1)] / max(int(trained.sum()), 1)).astype(np.float32)
        features["sampling_probability"] = share.reshape(examples.targets.shape)
    ds = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def distributed_examples(strategy: tf.distribute.Strategy, examples: Examples, batch_size: int,
                         seed: int, logq: bool = False) -> "tuple[object, Optional[int]]":
    """The training examples (or windows) for ``strategy`` and the steps per epoch: the plain dataset
    (steps: None, one pass) under the default strategy, else ``strategy.distribute_datasets_from_function``
    with the global ``batch_size`` (rows) split over the replicas, each input pipeline (worker) reading its
    shard, repeated, with ``len(examples) // batch_size`` steps per epoch (every replica's batch has the same
    size)."""
    if strategy.num_replicas_in_sync == 1:
        return examples_dataset(examples, batch_size, seed, logq=logq), None
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch-size {batch_size} must be a multiple of the {strategy.num_replicas_in_sync} "
                         f"replicas of the strategy")
    if len(examples) < batch_size:
        raise ValueError(f"{len(examples)} training examples are fewer than one global batch of {batch_size}")

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(batch_size)
        ds = examples_dataset(examples, per_replica, seed, logq=logq, drop_remainder=True)
        if context.num_input_pipelines > 1:
            ds = ds.unbatch().shard(context.num_input_pipelines, context.input_pipeline_id)
            ds = ds.batch(per_replica, drop_remainder=True)
        return ds.repeat()

    return strategy.distribute_datasets_from_function(dataset_fn), len(examples) // batch_size


class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int) -> None:
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), max(int(total_steps), 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        span = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        progress = tf.clip_by_value((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        decayed = self.peak * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < float(self.warmup_steps), self.peak * (step + 1.0) / warmup, decayed)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


class ValidationRanking(tf.keras.callbacks.Callback):
    """After each epoch: full-ranking HR@10 and NDCG@10 of the validation cases (history masked), put in the
    epoch's logs as ``val_hr_10`` / ``val_ndcg_10`` (so TensorBoard and the history record them); stops after
    ``patience`` epochs without a better NDCG@10 and restores the best epoch's weights."""

    def __init__(self, towers_of, content: ContentLookup, cases: Sequence[EvalCase], catalog: Sequence[str],
                 max_history: int, patience: int) -> None:
        super().__init__()
        self.towers_of, self.content, self.cases = towers_of, content, list(cases)
        self.catalog, self.max_history, self.patience = list(catalog), max_history, patience
        self.row = {item: n for n, item in enumerate(self.catalog)}
        self.best, self.best_epoch, self.best_weights, self.wait = -1.0, -1, None, 0

    def on_epoch_end(self, epoch, logs=None):
        from retrieval.evaluate import TowerScorer, case_ranks
        from retrieval.metrics import hit_rate, ndcg

        scorer = TowerScorer("validation", self.towers_of(self.model), self.content, self.catalog, self.max_history)
        ranks = case_ranks(scorer, self.cases, self.row)
        value = ndcg(ranks, 10)
        if logs is not None:
            logs["val_ndcg_10"], logs["val_hr_10"] = value, hit_rate(ranks, 10)
        if value > self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = value, epoch, self.model.get_weights(), 0
        else:
            self.wait += 1
            if self.patience and self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def item_counts(examples: Examples, item_vocabulary: Sequence[str]) -> List[int]:
    """How often each vocabulary item is a training target (``item_vocabulary`` order)."""
    flat = examples.targets.reshape(-1)
    items, counts = np.unique(flat[flat != ""], return_counts=True)
    found = dict(zip(items.tolist(), counts.tolist()))
    return [int(found.get(item, 0)) for item in item_vocabulary]


def fit_two_tower(tower_config: TowerConfig, task_config: TaskConfig, content: ContentLookup,
                  examples: Examples, item_vocabulary: Sequence[str], user_vocabulary: Sequence[str],
                  *, epochs: int, batch_size: int, learning_rate: float, seed: int, warmup_fraction: float = 0.05,
                  desc: str = "train", progress: bool = True, validation: Sequence[EvalCase] = (),
                  catalog_ids: Sequence[str] = (), max_history: int = 20, patience: int = 0,
                  log_dir: Optional[str] = None, strategy: Optional[tf.distribute.Strategy] = None,
                  steps_per_epoch: Optional[int] = None,
                  users: Optional[UserTable] = None) -> "tuple[TwoTowerModel, Dict[str, List[float]]]":
    """Build and fit a :class:`TwoTowerModel`; returns it and the Keras history (loss, and with ``validation``
    ``val_ndcg_10`` / ``val_hr_10`` per epoch). With ``validation`` the best epoch's weights are kept;
    ``patience`` stops early.

    ``strategy`` (default: the current one): the model and its optimizer are built under its scope and the
    examples come through :func:`distributed_examples` (``batch_size`` is the global batch). ``users``: the
    user table, with ``tower_config.user_features``."""
    strategy = strategy or tf.distribute.get_strategy()
    tf.keras.utils.set_random_seed(seed)
    rows = rows_per_batch(examples, batch_size)
    if strategy.num_replicas_in_sync > 1 and rows != batch_size:  # windows: whole windows, split over replicas
        rows = max(strategy.num_replicas_in_sync, rows - rows % strategy.num_replicas_in_sync)
    steps = math.ceil(len(examples) / rows) * epochs
    schedule = WarmupCosine(learning_rate, int(warmup_fraction * steps), steps)
    with strategy.scope():
        model = TwoTowerModel(tower_config, content, item_vocabulary, user_vocabulary, task_config,
                              item_counts=item_counts(examples, item_vocabulary), users=users)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=schedule))
    model.distribute_reduction_method = "first"  # every replica returns the global mean loss (see train_step)
    callbacks: List[tf.keras.callbacks.Callback] = []
    if validation:
        callbacks.append(ValidationRanking(lambda m: rundir.Towers(tower_config, m.query_tower, m.candidate_tower),
                                           content, validation, catalog_ids, max_history, patience))
    callbacks.append(_TqdmEpochs(epochs, desc, disable=not progress))
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False, profile_batch=0))
    data, steps = distributed_examples(strategy, examples, rows, seed, logq=task_config.logq_correction)
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks, steps_per_epoch=steps_per_epoch or steps)
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def load_items(source: DataSource, progress: bool = False) -> "tuple[EmbeddingTable, Optional[Catalog], str]":
    """The item table (ids, labels, content vectors), the catalog (or None) and where the content came from:
    ``"embeddings"``, ``"catalog"`` (multi-hot of the catalog's columns) or ``"none"`` (ID-only: a zero
    placeholder, every item of the interactions)."""
    if source.title_embeddings and (source.embeddings or not source.catalog):
        raise ValueError("title embeddings are catalog content: they need --items and no --embeddings (an "
                         "embeddings file is the whole content)")
    catalog = read_catalog(source.catalog, source.item_col, source.title_col) if source.catalog else None
    if source.embeddings:
        return read_embeddings(source.embeddings), catalog, "embeddings"
    if catalog is not None:
        return EmbeddingTable(np.asarray(catalog.ids), np.asarray([""] * len(catalog)),
                              catalog_content(catalog, title_tokens=source.title_tokens,
                                              balance_columns=source.balance_columns,
                                              with_title_embeddings=source.title_embeddings,
                                              progress=progress)), catalog, "catalog"
    return None, None, "none"


def load_users(source: DataSource, features: Sequence[str],
               sequences: Sequences) -> "tuple[Optional[UserTable], Optional[int]]":
    """The user table's feature columns (``features``; none: every column) and how many of ``sequences``'
    users it lists; (None, None) without ``source.users``. A table that lists none of the log's users is an
    error (the ids must match the log's), one that misses some a warning: those users get the unknown
    vectors."""
    if not source.users:
        if features:
            raise ValueError(f"user features {list(features)} need a user table (--users)")
        return None, None
    users = read_users(source.users, source.columns.user, list(features) or None)
    listed = set(users.ids)
    covered = sum(user in listed for user in sequences)
    if not covered:
        raise ValueError(f"{source.users}: lists none of the log's {len(sequences)} users (log ids like "
                         f"{next(iter(sequences))!r}, table ids like {users.ids[0]!r})")
    if covered < len(sequences):
        logger.warning("%s: %d of the log's %d users are not listed; they get the unknown feature vectors",
                       source.users, len(sequences) - covered, len(sequences))
    return users, covered


def train_run(source: DataSource, out_dir: str, config: TrainConfig = TrainConfig(), progress: bool = True,
              overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None) -> dict:
    """Train and write a run folder; returns the summary (also in ``run.json``).

    ``strategy``: a tf.distribute strategy (``baseline_model.strategy.make_strategy``); default the current
    one. Every worker trains; only the chief writes the run folder (the model, and the evaluation and index
    later built from it)."""
    from baseline_model.strategy import is_chief

    strategy = strategy or tf.distribute.get_strategy()
    start = time.time()
    table, catalog, content_kind = load_items(source, progress)
    raw = read_interactions(source.interactions, source.columns, source.repeats)
    if table is None:  # ID-only: every item of the log, with a zero placeholder for content
        ids = sorted({i for items in raw.values() for i in items})
        table = EmbeddingTable(np.asarray(ids), np.asarray([""] * len(ids)), np.zeros((len(ids), 1), np.float32))
    tower = config.tower
    if content_kind == "none":
        tower = dataclasses.replace(tower, use_content=False, use_item_id=True, content_skip=False)
    tower = dataclasses.replace(tower, max_positions=config.max_history)
    config = dataclasses.replace(config, tower=tower)
    sequences, report = clean_sequences(raw, table.ids.tolist(), config.min_interactions)
    if not sequences:
        raise ValueError(f"{source.interactions}: no usable users ({report.summary()})")
    users, user_coverage = load_users(source, tower.user_features, sequences)
    if users is not None:
        tower = dataclasses.replace(tower, user_features=tuple(users.columns))
        config = dataclasses.replace(config, tower=tower)
    cold = choose_cold_items(table.ids.tolist(), config.cold_fraction, config.seed)
    split = leave_one_out(sequences, cold)
    if config.objective == "every_position":
        examples: Examples = training_windows(split.train, config.max_history)
    else:
        examples = training_examples(split.train, config.max_history)
    item_vocab = training_items(split.train)
    user_vocab = sorted(split.train)
    with strategy.scope():
        content = ContentLookup(table.ids, table.vectors)
    validation = split.validation
    if len(validation) > VALIDATION_SAMPLE:
        picks = np.random.default_rng(config.seed).choice(len(validation), VALIDATION_SAMPLE, replace=False)
        validation = [validation[i] for i in sorted(picks)]
    common = dict(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                  warmup_fraction=config.warmup_fraction, seed=config.seed, progress=progress, strategy=strategy)
    chief = is_chief()
    if not chief:  # a worker's copy goes to a scratch folder, removed afterwards
        import tempfile

        out_dir, overwrite = os.path.join(tempfile.mkdtemp(prefix="worker_run_"), "run"), True
    with rundir.staged_folder(out_dir, overwrite=overwrite) as tmp:
        logs = os.path.join(tmp, rundir.TENSORBOARD)
        model, history = fit_two_tower(config.tower, config.task, content, examples, item_vocab, user_vocab,
                                       desc=f"two-tower ({tower.query})", validation=validation,
                                       catalog_ids=table.ids.tolist(), max_history=config.max_history,
                                       patience=config.patience, log_dir=os.path.join(logs, rundir.MAIN_MODEL),
                                       users=users, **common)
        id_model = id_history = None
        if config.id_only_baseline and content_kind != "none":
            id_model, id_history = fit_two_tower(id_only_config(tower), config.task, content, examples, item_vocab,
                                                 user_vocab, desc="id-only", validation=validation,
                                                 catalog_ids=table.ids.tolist(), max_history=config.max_history,
                                                 patience=config.patience,
                                                 log_dir=os.path.join(logs, rundir.ID_ONLY_MODEL), **common)
        best = int(np.argmax(history["val_ndcg_10"]))
        summary = {
            "users": len(sequences), "interactions": report.kept_interactions, "items": len(table),
            "content": content_kind, "embedding_dim": table.dimension, "training_examples": len(examples),
            "training_targets": examples.target_count,
            "training_items": len(item_vocab), "cold_items": len(cold),
            "skipped_unknown_item_interactions": report.unknown_items, "skipped_short_users": report.short_users,
            "replicas": strategy.num_replicas_in_sync, "users_with_features": user_coverage,
            "epochs": len(history["loss"]), "best_epoch": best + 1, "loss_first_epoch": history["loss"][0],
            "loss_last_epoch": history["loss"][-1],
            "validation": {"NDCG@10": history["val_ndcg_10"][best], "HR@10": history["val_hr_10"][best],
                           "users": len(validation)},
            "seconds": round(time.time() - start, 1),
        }
        info = {
            "train_config": config.to_dict(), "tower": tower.to_dict(),
            "id_only_tower": id_only_config(tower).to_dict() if id_model is not None else None,
            "has_content": content_kind != "none", "content": content_kind,
            "embeddings_source": os.path.abspath(source.embeddings) if source.embeddings else None,
            "interactions_source": os.path.abspath(os.fspath(source.interactions)),
            "catalog_source": os.path.abspath(source.catalog) if source.catalog else None,
            "users_source": os.path.abspath(source.users) if source.users else None,
            "repeats": source.repeats,
            "catalog_content": ({"title_tokens": source.title_tokens, "balance_columns": source.balance_columns,
                                 "title_embeddings": source.title_embeddings} if content_kind == "catalog" else None),
            "cleaning": dataclasses.asdict(report), "history": history, "id_only_history": id_history,
            "summary": summary,
        }
        write_embeddings(os.path.join(tmp, rundir.EMBEDDINGS), table.ids, table.labels, table.vectors)
        write_interactions(os.path.join(tmp, rundir.INTERACTIONS), sequences)
        if catalog is not None:
            write_catalog(os.path.join(tmp, rundir.CATALOG), subset(catalog, table.ids.tolist()))
        if users is not None:
            write_users(os.path.join(tmp, rundir.USERS), users)
        rundir.write_lines(os.path.join(tmp, rundir.COLD_ITEMS), sorted(cold))
        rundir.write_lines(os.path.join(tmp, rundir.ITEM_VOCAB), item_vocab)
        rundir.write_lines(os.path.join(tmp, rundir.USER_VOCAB), user_vocab)
        rundir.save_towers(rundir.Towers(tower, model.query_tower, model.candidate_tower),
                           os.path.join(tmp, rundir.MAIN_MODEL))
        if id_model is not None:
            rundir.save_towers(rundir.Towers(id_only_config(tower), id_model.query_tower,
                                             id_model.candidate_tower), os.path.join(tmp, rundir.ID_ONLY_MODEL))
        rundir.write_json(os.path.join(tmp, rundir.RUN_JSON), info)
    summary["cleaning"] = report.summary()
    if not chief:
        import shutil

        shutil.rmtree(os.path.dirname(out_dir), ignore_errors=True)
    return summary
