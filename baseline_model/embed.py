"""The penultimate embedding of every item of a dataset, for the recommender."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from baseline_model import data as data_lib
from baseline_model.run import LoadedRun, load_run
from data_interface_for_model.categories import LABELS
from data_interface_for_model.embeddings_file import write_embeddings

logger = logging.getLogger(__name__)


def embed_dataset(run: LoadedRun, data_root: str, data_dir: Optional[str] = None):
    """``(ids [N], labels [N], vectors [N, D])`` over every split of ``data_root`` (prepared once into
    ``data_dir``, by default the run's own data dir when the root is the run's, else ``RUN/embed_data``)."""
    same_root = os.path.abspath(data_root) == os.path.abspath(run.train_config.data_root)
    train = dataclasses.replace(run.train_config, data_root=data_root,
                                data_dir=data_dir or (run.train_config.data_dir if same_root
                                                      else os.path.join(run.run_dir, "embed_data")))
    report = data_lib.prepare(train, run.model_config)
    logger.info("prepared %s: %s", data_root, report)
    ids, labels, vectors = [], [], []
    if run.head is not None:
        from baseline_model.features import features_dataset
        from baseline_model.train import feature_arrays_for

        arrays = feature_arrays_for(run.model_config, train, extractor=run.extractor)
        for split in data_lib.SPLITS:
            part = arrays[split]
            vectors.append(run.head_embedder.predict(features_dataset(part, 64, shuffle=False), verbose=0))
            ids.append(part["id"])
            labels.append(part["label"])
    else:
        for split in data_lib.SPLITS:
            dataset = data_lib.raw_dataset(train, run.model_config, split, 64, shuffle=False, include_id=True)
            for features, label in dataset:
                ids.append(features.pop("id").numpy().astype(str))
                labels.append(label.numpy())
                vectors.append(run.embedder.predict_on_batch(features))
    names = np.asarray([LABELS[int(i)] for i in np.concatenate(labels)])
    return np.concatenate(ids), names, np.concatenate(vectors).astype(np.float32)


def embed_run(run_dir: str, data_root: str, out: str, data_dir: Optional[str] = None) -> int:
    """Write the embeddings of every item under ``data_root`` to ``out`` (.parquet or .npz); return N."""
    ids, labels, vectors = embed_dataset(load_run(run_dir), data_root, data_dir)
    write_embeddings(out, ids, labels, vectors)
    return len(ids)
