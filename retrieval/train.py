"""Training: fit the two-tower model (and the ID-only baseline) on a leave-one-out split, write a run folder.

``train_run(embeddings, interactions, out, TrainConfig())`` reads and validates the embedding table, reads the
interactions (pairs/CSV/Parquet), skips unknown items and short users (counted), holds out a fraction of the
items as cold items, splits leave-one-out, trains, evaluates on the validation cases and writes the run
folder (see :mod:`retrieval.rundir`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from data_interface_for_model.embeddings_file import read_embeddings, write_embeddings
from retrieval import rundir
from retrieval.interactions import clean_sequences, read_interactions, write_interactions
from retrieval.model import TaskConfig, TwoTowerModel
from retrieval.splits import TrainingExamples, cases_to_arrays, choose_cold_items, leave_one_out, training_examples, training_items
from retrieval.towers import ContentLookup, TowerConfig

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training options.

    Attributes:
      tower: the main model's towers.
      task: loss options.
      epochs, batch_size, learning_rate: Adam optimisation (in-batch negatives: the batch size is the number
        of negatives per example).
      patience: early stopping on the validation cases' top-10 accuracy (0: off); the best epoch is kept.
        The ID-only baseline trains for as many epochs as the main model did.
      max_history: L, the recent items the query tower sees.
      cold_fraction: fraction of items held out of training entirely (cold-start evaluation).
      min_interactions: users with fewer (after dropping unknown items) are skipped.
      id_only_baseline: also train the ID-only two-tower baseline.
      seed: random seed (cold items, shuffling, initialisation).
    """

    tower: TowerConfig = TowerConfig()
    task: TaskConfig = TaskConfig()
    epochs: int = 20
    patience: int = 3
    batch_size: int = 256
    learning_rate: float = 0.02
    max_history: int = 20
    cold_fraction: float = 0.1
    min_interactions: int = 3
    id_only_baseline: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["task"]["metric_ks"] = list(self.task.metric_ks)
        return data


def id_only_config(config: TowerConfig) -> TowerConfig:
    """The ID-only baseline's towers: same sizes, item ids only, no id dropout."""
    return dataclasses.replace(config, use_content=False, use_item_id=True, id_dropout=0.0)


class _TqdmEpochs(tf.keras.callbacks.Callback):
    def __init__(self, epochs: int, desc: str, disable: bool) -> None:
        super().__init__()
        self.bar = tqdm(total=epochs, desc=desc, unit="epoch", disable=disable)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.3f}")
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()


def examples_dataset(examples: TrainingExamples, batch_size: int, seed: int, shuffle: bool = True,
                     logq: bool = False) -> tf.data.Dataset:
    """A tf.data pipeline of ``{"history_ids" [B, L], "item_id" [B], "user_id" [B]}`` batches, plus
    ``"sampling_probability" [B]`` (each target's share of the examples) when ``logq``."""
    features = {"history_ids": examples.history, "item_id": examples.targets, "user_id": examples.users}
    if logq:
        items, inverse, counts = np.unique(examples.targets, return_inverse=True, return_counts=True)
        features["sampling_probability"] = (counts[inverse] / len(examples)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(features)
    if shuffle:
        ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_two_tower(tower_config: TowerConfig, task_config: TaskConfig, content: ContentLookup,
                  examples: TrainingExamples, item_vocabulary: Sequence[str], user_vocabulary: Sequence[str],
                  *, epochs: int, batch_size: int, learning_rate: float, seed: int, desc: str = "train",
                  progress: bool = True, validation: Optional[TrainingExamples] = None, patience: int = 0,
                  catalog_ids: Optional[Sequence[str]] = None) -> "tuple[TwoTowerModel, Dict[str, List[float]]]":
    """Build and fit a :class:`TwoTowerModel`; returns it and the Keras history (loss per epoch...).

    With ``validation`` and ``patience``, training stops when the validation top-k accuracy has not improved
    for ``patience`` epochs, and the best epoch's weights are kept."""
    tf.keras.utils.set_random_seed(seed)
    model = TwoTowerModel(tower_config, content, item_vocabulary, user_vocabulary, task_config,
                          catalog_ids=catalog_ids if validation is not None else None)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate))
    callbacks = [_TqdmEpochs(epochs, desc, disable=not progress)]
    val = examples_dataset(validation, 1024, seed, shuffle=False) if validation is not None else None
    if val is not None and patience:
        k = min(task_config.metric_ks)
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor=f"val_factorized_top_k/top_{k}_categorical_accuracy", mode="max", patience=patience,
            restore_best_weights=True))
    history = model.fit(examples_dataset(examples, batch_size, seed, logq=task_config.logq_correction), epochs=epochs, verbose=0,
                        callbacks=callbacks, validation_data=val)
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}


def train_run(embeddings_path: str, interactions_path: str, out_dir: str, config: TrainConfig = TrainConfig(),
              progress: bool = True, overwrite: bool = False) -> dict:
    """Train and write a run folder; returns the summary (also in ``run.json``)."""
    start = time.time()
    table = read_embeddings(embeddings_path)
    raw = read_interactions(interactions_path)
    sequences, report = clean_sequences(raw, table.ids.tolist(), config.min_interactions)
    if not sequences:
        raise ValueError(f"{interactions_path}: no usable users ({report.summary()})")
    cold = choose_cold_items(table.ids.tolist(), config.cold_fraction, config.seed)
    split = leave_one_out(sequences, cold)
    examples = training_examples(split.train, config.max_history)
    item_vocab = training_items(split.train)
    user_vocab = sorted(split.train)
    content = ContentLookup(table.ids, table.vectors)
    valid_examples = TrainingExamples(*cases_to_arrays(split.validation, config.max_history))
    common = dict(epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
                  seed=config.seed, progress=progress)
    model, history = fit_two_tower(config.tower, config.task, content, examples, item_vocab, user_vocab,
                                   desc="two-tower", validation=valid_examples, catalog_ids=table.ids.tolist(),
                                   patience=config.patience, **common)
    common["epochs"] = len(history["loss"])
    id_model = id_history = None
    if config.id_only_baseline:
        id_model, id_history = fit_two_tower(id_only_config(config.tower), config.task, content, examples,
                                             item_vocab, user_vocab, desc="id-only", **common)
    summary = {
        "users": len(sequences), "interactions": report.kept_interactions, "items": len(table),
        "embedding_dim": table.dimension, "training_examples": len(examples), "training_items": len(item_vocab),
        "cold_items": len(cold), "skipped_unknown_item_interactions": report.unknown_items,
        "skipped_short_users": report.short_users,
        "epochs": len(history["loss"]), "loss_first_epoch": history["loss"][0], "loss_last_epoch": history["loss"][-1],
        "validation": {k[len("val_"):]: max(v) for k, v in history.items() if k.startswith("val_factorized")},
        "seconds": round(time.time() - start, 1),
    }
    info = {
        "train_config": config.to_dict(), "tower": config.tower.to_dict(),
        "id_only_tower": id_only_config(config.tower).to_dict() if id_model is not None else None,
        "embeddings_source": os.path.abspath(os.fspath(embeddings_path)),
        "interactions_source": os.path.abspath(os.fspath(interactions_path)),
        "cleaning": dataclasses.asdict(report), "history": history, "id_only_history": id_history,
        "summary": summary,
    }
    with rundir.staged_folder(out_dir, overwrite=overwrite) as tmp:
        write_embeddings(os.path.join(tmp, rundir.EMBEDDINGS), table.ids, table.labels, table.vectors)
        write_interactions(os.path.join(tmp, rundir.INTERACTIONS), sequences)
        rundir.write_lines(os.path.join(tmp, rundir.COLD_ITEMS), sorted(cold))
        rundir.write_lines(os.path.join(tmp, rundir.ITEM_VOCAB), item_vocab)
        rundir.write_lines(os.path.join(tmp, rundir.USER_VOCAB), user_vocab)
        rundir.save_towers(rundir.Towers(config.tower, model.query_tower, model.candidate_tower),
                           os.path.join(tmp, rundir.MAIN_MODEL))
        if id_model is not None:
            rundir.save_towers(rundir.Towers(id_only_config(config.tower), id_model.query_tower,
                                             id_model.candidate_tower), os.path.join(tmp, rundir.ID_ONLY_MODEL))
        rundir.write_json(os.path.join(tmp, rundir.RUN_JSON), info)
    summary["cleaning"] = report.summary()
    return summary
