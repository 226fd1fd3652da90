"""Training a classifier run: data, strategy, model, Keras callbacks, best checkpoint, resume."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, Sequence

import keras
import numpy as np
import tensorflow as tf

from baseline_model import data as data_lib
from baseline_model.config import ModelConfig, TrainConfig, save_run_config
from baseline_model.run import FULL_WEIGHTS_FILE, MODEL_FILE
from baseline_model.strategy import fit_under_strategy, is_chief, make_strategy

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


def _feature_arrays(model_config: ModelConfig, train: TrainConfig, extractor, splits) -> Dict[str, dict]:
    from tqdm import tqdm

    from baseline_model import features as features_lib

    key = features_lib.cache_key(model_config, train.data_dir)
    arrays = {}
    for split in splits:
        path = os.path.join(train.data_dir, "feature_cache", key, f"{split}.npz")

        def compute(split=split):
            dataset = data_lib.raw_dataset(train, model_config, split, batch_size=32, shuffle=False, include_id=True)
            with tqdm(desc=f"encoder features ({split})", unit="item", disable=None) as bar:
                return features_lib.compute_features(extractor, dataset, progress=bar.update)

        arrays[split] = features_lib.load_or_compute(path, compute)
    return arrays


def feature_arrays_for(model_config: ModelConfig, train: TrainConfig, splits=data_lib.SPLITS, extractor=None):
    """The cached encoder features of the prepared splits (computed once per encoder/data combination)."""
    if extractor is None:
        from baseline_model.models.pretrained import build_encoders, build_feature_extractor

        extractor = build_feature_extractor(build_encoders(model_config), model_config)
    return _feature_arrays(model_config, train, extractor, splits)


def train_run(model_config: ModelConfig, train: TrainConfig, verbose: int = 1,
              extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Train a classifier into ``train.output`` (the run folder). The data must be prepared
    (``data_lib.prepare``). Returns the history and best validation accuracy; the best weights end in
    ``RUN/model.keras``."""
    start = time.time()
    run_dir = train.output
    os.makedirs(run_dir, exist_ok=True)
    keras.utils.set_random_seed(train.seed)
    _set_precision(train)
    strategy = make_strategy(train.strategy, train.tpu)
    chief = is_chief()
    if chief:
        save_run_config(run_dir, model_config, train)
    callbacks = make_callbacks(run_dir, train, chief) + list(extra_callbacks)

    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if model_config.kind == "pretrained" and train.feature_cache:
        from baseline_model.features import features_dataset
        from baseline_model.models.fusion_head import build_fusion_head

        arrays = feature_arrays_for(model_config, train, splits=("train", "validation"))
        text_dim = arrays["train"]["text_features"].shape[-1]
        image_dim = arrays["train"]["cover_features"].shape[-1]
        with strategy.scope():
            model = build_fusion_head(model_config, text_dim, image_dim)
            compile_classifier(model, train.learning_rate)
        train_size = len(arrays["train"]["label"])

        def train_fn(context):
            return features_dataset(arrays["train"], context.get_per_replica_batch_size(train.batch_size),
                                    shuffle=True, seed=train.seed, repeat=True, input_context=context)

        def val_fn(context):
            return features_dataset(arrays["validation"], context.get_per_replica_batch_size(train.batch_size),
                                    shuffle=False, input_context=context)
    else:
        with strategy.scope():
            if model_config.kind == "seed_baseline":
                from baseline_model.models.seed_baseline import build_seed_baseline

                texts = [t.decode("utf-8") for batch, _ in data_lib.raw_dataset(
                    train, model_config, "train", 64, shuffle=False) for t in batch["text"].numpy()]
                model = build_seed_baseline(model_config, vocabulary_texts=texts)
            else:
                from baseline_model.models.pretrained import build_encoders, build_pretrained_classifier

                model = build_pretrained_classifier(model_config, build_encoders(model_config)).classifier
            compile_classifier(model, train.learning_rate)
        train_size = data_lib.split_size(train, model_config, "train")

        def train_fn(context):
            return data_lib.raw_dataset(train, model_config, "train", context.get_per_replica_batch_size(
                train.batch_size), shuffle=True, input_context=context, repeat=True)

        def val_fn(context):
            return data_lib.raw_dataset(train, model_config, "validation", context.get_per_replica_batch_size(
                train.batch_size), shuffle=False, input_context=context)

    # The input pipelines are distributed through the strategy: each reads its own shard at the
    # per-replica batch size, repeated, with an explicit number of steps per epoch.
    steps = train.steps_per_epoch or max(1, math.ceil(train_size / train.batch_size))
    train_data = strategy.distribute_datasets_from_function(train_fn)
    val_data = (strategy.distribute_datasets_from_function(val_fn) if multi_worker
                else val_fn(tf.distribute.InputContext()))
    history = fit_under_strategy(model, strategy, train_data, epochs=train.epochs, steps_per_epoch=steps,
                                 validation_data=val_data, callbacks=callbacks, verbose=verbose,
                                 global_batch_size=train.batch_size)
    best_path = os.path.join(run_dir, "best.weights.h5")
    if chief:
        if os.path.isfile(best_path):
            model.load_weights(best_path)
        from data_interface_for_model.atomic import atomic_output_path

        end_to_end_pretrained = model_config.kind == "pretrained" and not train.feature_cache
        keep, drop = (FULL_WEIGHTS_FILE, MODEL_FILE) if end_to_end_pretrained else (MODEL_FILE, FULL_WEIGHTS_FILE)
        with atomic_output_path(os.path.join(run_dir, keep), suffix=os.path.basename(keep)) as tmp:
            if end_to_end_pretrained:  # rebuilt from run_config.json, then these weights (see run.load_run)
                model.save_weights(tmp)
            else:
                model.save(tmp)
        if os.path.exists(os.path.join(run_dir, drop)):  # a previous run of the other kind in this folder
            os.remove(os.path.join(run_dir, drop))
    val_acc = history.history.get("val_accuracy", [float("nan")])
    result_history = {k: [float(x) for x in v] for k, v in history.history.items()}
    if chief:
        import json

        from data_interface_for_model.atomic import atomic_write

        with atomic_write(os.path.join(run_dir, "history.json"), "w", encoding="utf-8") as handle:
            json.dump(result_history, handle, indent=1)
    return TrainResult(run_dir, len(val_acc), float(np.nanmax(val_acc)), time.time() - start,
                       result_history)
