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
