"""A short training job for the strategy tests, run in its own process (devices and TF_CONFIG must be set
before TensorFlow starts). Writes its first-step loss and final weights' checksum as JSON.

usage: python -m tests.strategy_job STRATEGY OUT.json
"""
import json
import sys

import numpy as np
import tensorflow as tf

strategy_name, out = sys.argv[1], sys.argv[2]
if strategy_name == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

from baseline_model.kinds import PretrainedConfig  # noqa: E402
from baseline_model.models import build_fusion_head  # noqa: E402
from baseline_model.strategy import make_strategy  # noqa: E402
from baseline_model.train import compile_classifier  # noqa: E402

GLOBAL_BATCH, T = 16, 4
rng = np.random.default_rng(0)
n = 64
features = {"text_features": rng.normal(size=(n, 8)).astype("float32"),
            "cover_features": rng.normal(size=(n, 12)).astype("float32"),
            "frame_features": rng.normal(size=(n, T, 12)).astype("float32"),
            "presence": np.ones((n, 3), "float32"), "frame_mask": np.ones((n, T), "float32")}
labels = (np.arange(n) % 31).astype("int32")

strategy = make_strategy(strategy_name)


def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    return dataset.batch(context.get_per_replica_batch_size(GLOBAL_BATCH)).repeat()


def first_batch_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    """The first global batch, split between the replicas."""
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).take(GLOBAL_BATCH)
    dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    return dataset.batch(context.get_per_replica_batch_size(GLOBAL_BATCH))


keras.utils.set_random_seed(0)
config = PretrainedConfig(num_frames=T, embedding_dim=16, fusion_dim=8, modality_dropout=0.0, dropout=0.0)
with strategy.scope():
    model = build_fusion_head(config, 8, 12)
    compile_classifier(model, 1e-3)
first = None
if strategy_name != "multi_worker":
    first = model.evaluate(strategy.distribute_datasets_from_function(first_batch_fn), steps=1, verbose=0,
                           return_dict=True)["loss"]
from baseline_model.strategy import fit_under_strategy  # noqa: E402

history = fit_under_strategy(model, strategy, strategy.distribute_datasets_from_function(dataset_fn), epochs=2,
                             steps_per_epoch=3, verbose=0, global_batch_size=GLOBAL_BATCH)
checksum = float(sum(np.abs(np.asarray(w)).sum() for w in model.weights))
with open(out, "w") as handle:
    json.dump({"replicas": strategy.num_replicas_in_sync, "first_loss": first,
               "losses": [float(x) for x in history.history["loss"]], "checksum": checksum}, handle)
