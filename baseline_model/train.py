"""Training a classifier run: data, strategy, model, Keras callbacks, best checkpoint, resume.

What is trained and on which inputs is the model kind's business (:meth:`ModelKind.training_plan`); this
module runs any plan under a tf.distribute strategy."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from baseline_model.config import ClassifierConfig, TrainConfig, save_run_config
from baseline_model.kinds import kind_for
from baseline_model.strategy import fit_under_strategy, is_chief, make_strategy
from data_interface_for_model.atomic import atomic_write

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    epochs_run: int
    best_val_accuracy: float
    seconds: float
    history: Dict[str, list]


def compile_classifier(model: keras.Model, learning_rate: float) -> None:
    """Sparse labels with sparse metrics (the original paired sparse labels with categorical accuracy)."""
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy")],
    )


def make_callbacks(run_dir: str, train: TrainConfig, chief: bool) -> list:
    """TensorBoard, best checkpoint on validation accuracy, early stopping, and BackupAndRestore (resume).

    Non-chief workers of a multi-worker run write their checkpoints and logs to a temporary folder."""
    write_dir = run_dir if chief else tempfile.mkdtemp(prefix="worker_")
    backup = os.path.join(run_dir, "backup")
    if not train.resume and chief and os.path.isdir(backup):
        shutil.rmtree(backup)
    return [
        keras.callbacks.BackupAndRestore(backup, delete_checkpoint=True),
        keras.callbacks.ModelCheckpoint(os.path.join(write_dir, "best.weights.h5"), monitor="val_accuracy",
                                        mode="max", save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=train.early_stopping_patience),
        keras.callbacks.TensorBoard(os.path.join(write_dir, "logs")),
    ]


def _set_precision(train: TrainConfig) -> None:
    if not train.mixed_precision:
        return
    if tf.config.list_logical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        logger.warning("--mixed-precision ignored: no GPU (float16 on CPU is slower, not faster)")


def run_labels(train: TrainConfig, model_config: ClassifierConfig) -> list:
    """The label set of the prepared build the run trains on (class id ``i`` is ``labels[i]``)."""
    from data_interface_for_model.prepare import prepared_labels

    return prepared_labels(train.data_dir, model_config.num_frames, model_config.image_size)


def train_run(model_config: ClassifierConfig, train: TrainConfig, verbose: int = 1,
              extra_callbacks: Sequence[keras.callbacks.Callback] = (),
              labels: Optional[Sequence[str]] = None) -> TrainResult:
    """Train a classifier into ``train.output`` (the run folder). The data must be prepared
    (``data_lib.prepare``). Returns the history and best validation accuracy; the best weights end in the
    kind's weights file (``RUN/model.keras`` or ``RUN/classifier.weights.h5``)."""
    start = time.time()
    kind = kind_for(model_config)
    train = kind.with_defaults(train)
    labels = list(labels) if labels is not None else run_labels(train, model_config)
    run_dir = train.output
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(train.seed)
    _set_precision(train)
    strategy = make_strategy(train.strategy, train.tpu)
    chief = is_chief()
    if chief:
        save_run_config(run_dir, model_config, train, labels)
    callbacks = make_callbacks(run_dir, train, chief) + list(extra_callbacks)

    plan = kind.training_plan(train, labels)
    with strategy.scope():
        model = plan.build_model()
        compile_classifier(model, train.learning_rate)
    # The input pipelines are distributed through the strategy: each reads its own shard at the
    # per-replica batch size, repeated, with an explicit number of steps per epoch.
    steps = train.steps_per_epoch or max(1, math.ceil(plan.train_size / train.batch_size))
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    train_data = strategy.distribute_datasets_from_function(plan.train_fn)
    val_data = (strategy.distribute_datasets_from_function(plan.val_fn) if multi_worker
                else plan.val_fn(tf.distribute.InputContext()))
    history = fit_under_strategy(model, strategy, train_data, epochs=train.epochs, steps_per_epoch=steps,
                                 validation_data=val_data, callbacks=callbacks, verbose=verbose,
                                 global_batch_size=train.batch_size)
    result_history = {k: [float(x) for x in v] for k, v in history.history.items()}
    if chief:
        best_path = os.path.join(run_dir, "best.weights.h5")
        if os.path.isfile(best_path):
            model.load_weights(best_path)
        kept = kind.save_trained(model, run_dir)
        for name in ("model.keras", "classifier.weights.h5"):  # a previous run of another kind in this folder
            stale = os.path.join(run_dir, name)
            if stale != kept and os.path.exists(stale):
                os.remove(stale)
        with atomic_write(os.path.join(run_dir, "history.json"), "w", encoding="utf-8") as handle:
            json.dump(result_history, handle, indent=1)
    val_acc = history.history.get("val_accuracy", [float("nan")])
    return TrainResult(run_dir, len(val_acc), float(np.nanmax(val_acc)), time.time() - start, result_history)
