"""The penultimate embedding of every item of a dataset, for the recommender."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from baseline_model import data as data_lib
from baseline_model.run import LoadedRun, load_run
from data_interface_for_model.embeddings_file import write_embeddings

logger = logging.getLogger(__name__)


def embed_dataset(run: LoadedRun, data_root: str, data_dir: Optional[str] = None):
    """``(ids [N], labels [N], vectors [N, D])`` over every split of ``data_root`` (prepared once into
    ``data_dir``, by default the run's own data dir when the root is the run's, else ``RUN/embed_data``).
    Labels are names from the run's label set."""
    same_root = os.path.abspath(data_root) == os.path.abspath(run.train_config.data_root)
    train = dataclasses.replace(run.train_config, data_root=data_root,
                                data_dir=data_dir or (run.train_config.data_dir if same_root
                                                      else os.path.join(run.run_dir, "embed_data")))
    report = data_lib.prepare(train, run.model_config)
    logger.info("prepared %s: %s", data_root, report)
    parts = run.embed_splits(train, [s for s in data_lib.SPLITS if report.split_counts.get(s)])
    ids = np.concatenate([p[0] for p in parts.values()])
    label_ids = np.concatenate([p[1] for p in parts.values()])
    vectors = np.concatenate([p[2] for p in parts.values()]).astype(np.float32)
    names = np.asarray([run.labels[int(i)] for i in label_ids])
    return ids, names, vectors


def embed_run(run_dir: str, data_root: str, out: str, data_dir: Optional[str] = None) -> int:
    """Write the embeddings of every item under ``data_root`` to ``out`` (.parquet or .npz); return N."""
    ids, labels, vectors = embed_dataset(load_run(run_dir), data_root, data_dir)
    write_embeddings(out, ids, labels, vectors)
    return len(ids)
