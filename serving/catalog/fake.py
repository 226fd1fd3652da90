"""Deterministic stand-ins for the classifier (:class:`~serving.catalog.embedder.Embedder` interface) and the
text encoder (:class:`~serving.catalog.embedder.TextEncoder`): for tests and for trying the catalog without a
trained run.

Its embedding is the frames' mean colour on a 4x4 grid (48 values) plus 16 hashed words of the brief, so
clips that look alike score alike; its "probabilities" are a fixed random projection of that, softmaxed.
"""
from __future__ import annotations

import hashlib
import re
from typing import Sequence, Tuple

import numpy as np

from data_interface_for_model import defaults
from data_interface_for_model.categories import LABELS
from data_interface_for_model.decoding import decode_jpeg

from serving.catalog.embedder import Clip

DIMENSION = 64


class FakeEmbedder:
    """Deterministic, fast, no TensorFlow. ``calls`` counts :meth:`analyse` calls (clips, not batches)."""

    device = "cpu (fake classifier)"

    def __init__(self, num_frames: int = 4, image_size: int = 32) -> None:
        self.labels = list(LABELS)
        self.num_frames, self.image_size = num_frames or defaults.FRAMES, image_size
        self.calls = 0
        self._projection = np.random.default_rng(0).normal(size=(DIMENSION, len(self.labels))).astype(np.float32)

    def _embed(self, clip: Clip) -> np.ndarray:
        pictures = [decode_jpeg(f) for f in clip.frames] or ([decode_jpeg(clip.cover)] if clip.cover else [])
        colour = np.zeros(48, np.float32)
        if pictures:
            stack = np.stack([p.astype(np.float32) / 255.0 for p in pictures]).mean(axis=0)
            h, w = stack.shape[:2]
            grid = stack[: h - h % 4, : w - w % 4].reshape(4, (h - h % 4) // 4, 4, (w - w % 4) // 4, 3)
            colour = grid.mean(axis=(1, 3)).reshape(-1) - 0.5
        words = np.zeros(16, np.float32)
        for word in re.findall(r"\w+", clip.brief.lower()):
            words[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 16] += 0.5
        return np.concatenate([colour, words])

    def analyse(self, clips: Sequence[Clip]) -> Tuple[np.ndarray, np.ndarray]:
        self.calls += len(clips)
        embeddings = np.stack([self._embed(c) for c in clips]).astype(np.float32)
        logits = embeddings @ self._projection
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return embeddings, (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)


class FakeTextEncoder:
    """Hashed bag of words (256-d): texts sharing words score alike. ``calls`` counts encoded texts."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += len(texts)
        vectors = np.zeros((len(texts), 256), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 256] += 1.0
        return vectors
