"""A training run folder, and loading its models back.

``RUN/run_config.json``  the model kind, its config, the training config and the label set
``RUN/model.keras``      the trained weights: the fusion head (pretrained) or the whole model (seed_baseline)
``RUN/classifier.weights.h5`` instead, for a pretrained model trained end to end (fine-tuned encoders)
``RUN/report.json``      evaluation; ``RUN/confusion_matrix_<split>.png``
``RUN/logs/``            TensorBoard; ``RUN/backup/`` the resume checkpoint while training
``RUN/export/<name>/<version>/`` SavedModels in TF Serving's layout

Which file holds the weights and how they are loaded is the model kind's business
(:mod:`baseline_model.kinds`); a loaded run is a :class:`LoadedRun` whatever the kind.
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from baseline_model.config import TrainConfig, load_run_config

if TYPE_CHECKING:  # pragma: no cover
    from baseline_model.kinds import ModelKind

#: Presence of (text, cover, video) for each evaluated condition.
CONDITIONS = {"all": (1, 1, 1), "text_only": (1, 0, 0), "cover_only": (0, 1, 0), "video_only": (0, 0, 1)}


def _mask_raw(presence):
    text_on, cover_on, video_on = presence

    def mask(features, label):
        features = dict(features)
        if not text_on:
            features["text"] = tf.fill(tf.shape(features["text"]), "")
        if not cover_on:
            features["cover"] = tf.zeros_like(features["cover"])
        if not video_on:
            features["frames"] = tf.zeros_like(features["frames"])
        return features, label

    return mask


@dataclasses.dataclass
class LoadedRun:
    """A run's models. ``classifier`` (-> probabilities ``[B, C]``) and ``embedder`` (-> ``[B, D]``) take raw
    inputs ``{"text": string [B], "cover": [B, S, S, 3], "frames": [B, T, S, S, 3]}`` in [0, 1]; they are
    what is exported. ``labels[i]`` names class ``i``."""

    run_dir: str
    kind: "ModelKind"
    train_config: TrainConfig
    labels: List[str]
    classifier: keras.Model
    embedder: keras.Model

    @property
    def model_config(self):
        return self.kind.config

    def predictor(self, with_embedding: bool = False) -> keras.Model:
        """Raw inputs -> probabilities ``[B, C]`` (and the embedding ``[B, D]`` as a second output), one pass."""
        if not with_embedding:
            return self.classifier
        return keras.Model(self.classifier.inputs, [self.classifier.outputs[0], self.embedder.outputs[0]],
                           name="classifier_and_embedder")

    def predict_split(self, split: str, presence=(1, 1, 1), batch_size: int = 64,
                      train: Optional[TrainConfig] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(labels [N], probabilities [N, C])`` of a prepared split under a modality mask (one pass, so
        labels and predictions stay paired)."""
        from baseline_model import data as data_lib

        dataset = data_lib.raw_dataset(train or self.train_config, self.model_config, split, batch_size,
                                       shuffle=False)
        labels, probabilities = [], []
        for features, label in dataset.map(_mask_raw(presence)):
            labels.append(label.numpy())
            probabilities.append(np.asarray(self.classifier.predict_on_batch(features)))
        return np.concatenate(labels).astype(int), np.concatenate(probabilities)

    def frozen_features(self, splits: Sequence[str], train: Optional[TrainConfig] = None):
        """``{split: cached arrays}`` of frozen pretrained-encoder features of the run's prepared splits: what
        the linear probe reads. A run that has no frozen encoders of its own uses the default ``pretrained``
        encoders at the run's frame count and size."""
        from baseline_model.features import feature_arrays
        from baseline_model.kinds import Pretrained, PretrainedConfig

        config = PretrainedConfig(num_frames=self.model_config.num_frames, image_size=self.model_config.image_size)
        train = train or self.train_config
        return feature_arrays(Pretrained(config), train, self.present_splits(splits, train))

    def present_splits(self, splits: Sequence[str], train: Optional[TrainConfig] = None) -> List[str]:
        """Those of ``splits`` that the prepared build holds (a tiny dataset can leave one empty)."""
        import json

        from data_interface_for_model.prepare import REPORT_NAME, find_dataset_dir

        train = train or self.train_config
        path = os.path.join(find_dataset_dir(train.data_dir, self.model_config.num_frames,
                                             self.model_config.image_size), REPORT_NAME)
        if not os.path.isfile(path):
            return list(splits)
        with open(path, encoding="utf-8") as handle:
            counts = json.load(handle).get("split_counts", {})
        return [s for s in splits if counts.get(s)]

    def embed_splits(self, train: TrainConfig, splits: Sequence[str]) -> Dict[str, Tuple[np.ndarray, ...]]:
        """``{split: (ids [N], label ids [N], embeddings [N, D])}`` of the prepared splits of ``train.data_dir``."""
        from baseline_model import data as data_lib

        out = {}
        for split in splits:
            ids, labels, vectors = [], [], []
            for features, label in data_lib.raw_dataset(train, self.model_config, split, 64, shuffle=False,
                                                        include_id=True):
                ids.append(features.pop("id").numpy().astype(str))
                labels.append(label.numpy())
                vectors.append(np.asarray(self.embedder.predict_on_batch(features)))
            out[split] = (np.concatenate(ids), np.concatenate(labels), np.concatenate(vectors))
        return out


@dataclasses.dataclass
class CachedFeatureRun(LoadedRun):
    """A run whose head was trained on cached encoder features: evaluation and embedding read the cache.
    ``head``/``head_embedder`` take encoder features; ``extractor`` maps raw inputs to them."""

    head: Optional[keras.Model] = None
    head_embedder: Optional[keras.Model] = None
    extractor: Optional[keras.Model] = None

    def feature_arrays(self, splits: Sequence[str], train: Optional[TrainConfig] = None):
        from baseline_model.features import feature_arrays

        train = train or self.train_config
        return feature_arrays(self.kind, train, splits=self.present_splits(splits, train), extractor=self.extractor)

    def frozen_features(self, splits, train=None):
        return self.feature_arrays(splits, train)

    def predict_split(self, split, presence=(1, 1, 1), batch_size=64, train=None):
        from baseline_model.features import features_dataset

        arrays = self.feature_arrays((split,), train)[split]
        dataset = features_dataset(arrays, batch_size, shuffle=False, presence_override=presence)
        return arrays["label"].astype(int), self.head.predict(dataset, verbose=0)

    def embed_splits(self, train, splits):
        from baseline_model.features import features_dataset

        out = {}
        for split, part in self.feature_arrays(splits, train).items():
            vectors = self.head_embedder.predict(features_dataset(part, 64, shuffle=False), verbose=0)
            out[split] = (part["id"], part["label"], vectors)
        return out


def saved_model_path(run_dir: str) -> str:
    """The file holding a run's trained weights (which one depends on the model kind)."""
    from baseline_model.kinds import kind_for

    config, _, _ = load_run_config(run_dir)
    return os.path.join(run_dir, kind_for(config).weights_file)


def load_run(run_dir: str) -> LoadedRun:
    """Rebuild a run's models from its config and trained weights."""
    from baseline_model.kinds import kind_for

    model_config, train_config, data = load_run_config(run_dir)
    return kind_for(model_config).load(run_dir, train_config, data["labels"])
