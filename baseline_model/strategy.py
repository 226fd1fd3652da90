"""tf.distribute strategies for training: default, MirroredStrategy (GPUs or several local devices),
MultiWorkerMirroredStrategy (cluster from ``TF_CONFIG``) and TPUStrategy (through ``TPUClusterResolver``)."""
from __future__ import annotations

import json
import logging
import os
from typing import Optional

import tensorflow as tf

logger = logging.getLogger(__name__)


def _tf_config_has_cluster() -> bool:
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON: {exc}") from None
    workers = config.get("cluster", {}).get("worker", [])
    return len(workers) > 1


def make_strategy(name: str = "auto", tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """Build a strategy by name.

    ``auto`` picks: TPU if ``tpu`` is given, multi-worker if ``TF_CONFIG`` names more than one worker,
    mirrored if more than one GPU is visible, else the default strategy.

    ``tpu``: the TPU name or ``grpc://`` address (``"local"`` on a TPU VM). The TPU path follows the
    documented TF 2.20 API (connect, initialise the TPU system, TPUStrategy); there is no TPU on the
    machines this project is tested on, so that path is untested here.
    """
    if name == "auto":
        if tpu:
            name = "tpu"
        elif _tf_config_has_cluster():
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        strategy = tf.distribute.get_strategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multi_worker needs TF_CONFIG (cluster and task) in the environment")
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    elif name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        raise ValueError(f"unknown strategy {name!r}")
    logger.info("strategy %s with %d replicas", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief() -> bool:
    """True on the task that writes checkpoints, exports and reports: the chief if the cluster has one,
    else worker 0, or the only process when there is no ``TF_CONFIG``."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except json.JSONDecodeError:
        return True
    task = config.get("task")
    if not task:
        return True
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0



def fit_under_strategy(model, strategy: tf.distribute.Strategy, train_data, *, epochs: int,
                       steps_per_epoch: Optional[int] = None, validation_data=None, callbacks=None,
                       verbose: int = 1, global_batch_size: Optional[int] = None):
    """``model.fit``, or, under MultiWorkerMirroredStrategy, a custom training loop with the same contract.

    Keras 3's ``fit`` does not work under MultiWorkerMirroredStrategy in this stack: its eager pre-build
    calls ``strategy.reduce`` on a nested batch, and its metric reduction sums scalars over a missing axis
    (keras-team/keras#20585, tensorflow#72388). The loop here is the documented tf.distribute pattern:
    ``strategy.run`` of a GradientTape step, the per-example loss averaged over the global batch, the
    model's compiled optimizer, and the callbacks driven through ``keras.callbacks.CallbackList`` (so
    ModelCheckpoint, EarlyStopping and TensorBoard behave as in ``fit``).

    Returns a ``keras.callbacks.History``-like object with ``.history``.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model.fit(train_data, validation_data=validation_data, epochs=epochs,
                         steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose)
    if steps_per_epoch is None:
        raise ValueError("multi-worker training needs steps_per_epoch (and a repeated dataset)")
    return _custom_fit(model, strategy, train_data, epochs, steps_per_epoch, validation_data, callbacks or [],
                       global_batch_size)


def _custom_fit(model, strategy, train_data, epochs, steps_per_epoch, validation_data, callbacks, global_batch_size):
    import keras

    per_example_loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    with strategy.scope():
        train_loss = keras.metrics.Mean(name="loss")
        train_accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        val_loss = keras.metrics.Mean(name="val_loss")
        val_accuracy = keras.metrics.SparseCategoricalAccuracy(name="val_accuracy")

    def train_step(features, labels):
        with tf.GradientTape() as tape:
            probabilities = model(features, training=True)
            losses = per_example_loss(labels, probabilities)
            loss = tf.nn.compute_average_loss(losses, global_batch_size=global_batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        train_loss.update_state(losses)
        train_accuracy.update_state(labels, probabilities)

    def eval_step(features, labels):
        probabilities = model(features, training=False)
        val_loss.update_state(per_example_loss(labels, probabilities))
        val_accuracy.update_state(labels, probabilities)

    @tf.function
    def distributed_train(iterator):
        features, labels = next(iterator)
        strategy.run(train_step, args=(features, labels))

    @tf.function
    def distributed_eval(batch):
        strategy.run(eval_step, args=batch)

    callback_list = keras.callbacks.CallbackList(callbacks, model=model, add_history=True,
                                                 epochs=epochs, steps=steps_per_epoch, verbose=0)
    model.stop_training = False
    callback_list.on_train_begin()
    iterator = iter(train_data)
    for epoch in range(epochs):
        for metric in (train_loss, train_accuracy, val_loss, val_accuracy):
            metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            distributed_train(iterator)
            callback_list.on_train_batch_end(step)
        logs = {"loss": float(train_loss.result()), "accuracy": float(train_accuracy.result())}
        if validation_data is not None:
            for batch in validation_data:
                distributed_eval(batch)
            logs.update(val_loss=float(val_loss.result()), val_accuracy=float(val_accuracy.result()))
        callback_list.on_epoch_end(epoch, logs)
        logger.info("epoch %d: %s", epoch + 1, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history
