"""A training run folder, and loading its models back.

``RUN/run_config.json``  model and training configuration
``RUN/model.keras``      the trained weights: the fusion head (pretrained) or the whole model (seed_baseline)
``RUN/classifier.weights.h5`` instead, for a pretrained model trained end to end (fine-tuned encoders)
``RUN/report.json``      evaluation; ``RUN/confusion_matrix_<split>.png``
``RUN/logs/``            TensorBoard; ``RUN/backup/`` the resume checkpoint while training
``RUN/export/<name>/<version>/`` SavedModels in TF Serving's layout
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import keras

from baseline_model.config import ModelConfig, TrainConfig, load_run_config
from baseline_model.models.submodels import embedding_submodel

MODEL_FILE = "model.keras"
#: A pretrained model trained end to end (fine-tuned encoders): the whole classifier's weights, loaded into
#: the architecture rebuilt from run_config.json.
FULL_WEIGHTS_FILE = "classifier.weights.h5"


@dataclasses.dataclass
class LoadedRun:
    """The models of a run. ``classifier``/``embedder`` take raw inputs; ``head``/``head_embedder`` take
    encoder features (pretrained runs only); ``extractor`` maps raw inputs to features."""

    run_dir: str
    model_config: ModelConfig
    train_config: TrainConfig
    classifier: keras.Model
    embedder: keras.Model
    head: Optional[keras.Model] = None
    head_embedder: Optional[keras.Model] = None
    extractor: Optional[keras.Model] = None


def saved_model_path(run_dir: str) -> str:
    """The file holding a run's trained weights (``model.keras`` or ``classifier.weights.h5``)."""
    full = os.path.join(run_dir, FULL_WEIGHTS_FILE)
    return full if os.path.isfile(full) else os.path.join(run_dir, MODEL_FILE)


def load_run(run_dir: str) -> LoadedRun:
    """Rebuild a run's models from its config and trained weights."""
    model_config, train_config, _ = load_run_config(run_dir)
    full_weights = os.path.join(run_dir, FULL_WEIGHTS_FILE)
    if model_config.kind == "pretrained" and os.path.isfile(full_weights):
        from baseline_model.models.pretrained import build_encoders, build_pretrained_classifier

        models = build_pretrained_classifier(model_config, build_encoders(model_config))
        models.classifier.load_weights(full_weights)
        # No head/extractor: its encoders were fine-tuned, so evaluation and embedding run from raw inputs.
        return LoadedRun(run_dir, model_config, train_config, models.classifier, models.embedder)
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: the run has no trained model yet")
    import baseline_model.layers  # noqa: F401  (registers the custom layers for deserialisation)

    saved = keras.saving.load_model(path)
    if model_config.kind == "seed_baseline":
        return LoadedRun(run_dir, model_config, train_config, saved, embedding_submodel(saved))
    from baseline_model.models.pretrained import build_encoders, build_pretrained_classifier

    models = build_pretrained_classifier(model_config, build_encoders(model_config), saved)
    return LoadedRun(run_dir, model_config, train_config, models.classifier, models.embedder, head=models.head,
                     head_embedder=models.head_embedder, extractor=models.extractor)
