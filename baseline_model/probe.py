"""The linear probe: the strongest simple reference on the same frozen features.

An L2-regularised multinomial logistic regression (scikit-learn, L-BFGS) over the frozen encoders'
features of each item (the brief's, the cover's, the frames' mean over real frames, and the presence of
each modality), standardised on the training split; the regularisation strength ``C`` is picked on the
validation split only. Any classifier worth its weights has to beat it on the same split.
"""
from __future__ import annotations

import logging
import warnings
from typing import Dict, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: Candidate inverse regularisation strengths, searched on the validation split.
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def probe_inputs(arrays: Dict[str, np.ndarray]) -> np.ndarray:
    """Cached head inputs -> one ``[N, D]`` matrix: text, cover, mean of the real frames, presence (and, for
    an audio run, the mean of the sound windows' musicnn embeddings).

    Each modality's features are multiplied by its presence column, so an absent (or masked) modality is
    all zeros whatever its encoder made of the empty input: masking the presence (single-modality
    evaluation) hides the modality from the probe as it does from the head."""
    presence = arrays["presence"].astype(np.float32)
    mask = arrays["frame_mask"].astype(np.float32)[..., None]
    frames = (arrays["frame_features"] * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    parts = [arrays["text_features"] * presence[:, 0:1], arrays["cover_features"] * presence[:, 1:2],
             frames * presence[:, 2:3], presence]
    if "audio_features" in arrays:
        parts.append(arrays["audio_features"].mean(axis=1) * presence[:, 3:4])
    return np.concatenate(parts, axis=1).astype(np.float32)


class LinearProbe:
    """Standardise, then multinomial logistic regression with an L2 penalty of strength ``1 / C``."""

    def __init__(self, C: float, num_classes: int, seed: int = 0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        self.C, self.num_classes = C, num_classes
        self.scaler = StandardScaler()
        self.classifier = LogisticRegression(C=C, max_iter=200, random_state=seed, warm_start=True)
        self.validation_accuracy: Optional[float] = None

    def fit(self, x: np.ndarray, y: np.ndarray, scaled: bool = False) -> "LinearProbe":
        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits

        # one BLAS thread: these matrices are small, and BLAS threads fighting TensorFlow's over two cores
        # made a fit 6x slower than single-threaded here
        with threadpool_limits(1), warnings.catch_warnings():
            # weakly regularised fits of separable data (fewer items than features) stop at max_iter: the
            # validation split judges them like any other
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.classifier.fit(x if scaled else self.scaler.fit_transform(x), y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``[N, num_classes]`` (classes never seen in training get probability 0)."""
        from threadpoolctl import threadpool_limits

        out = np.zeros((len(x), self.num_classes), np.float32)
        with threadpool_limits(1):
            out[:, self.classifier.classes_] = self.classifier.predict_proba(self.scaler.transform(x))
        return out


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: Optional[np.ndarray], val_y: Optional[np.ndarray],
              num_classes: int, grid: Sequence[float] = C_GRID, seed: int = 0) -> LinearProbe:
    """The probe with the ``C`` of ``grid`` that is most accurate on the validation split (ties: the
    stronger regularisation); without a validation split, ``C = 1``. The path over ``C`` (strong to weak)
    starts each fit from the previous solution."""
    import copy

    if val_x is None or len(val_x) == 0:
        return LinearProbe(1.0, num_classes, seed).fit(train_x, train_y)
    probe = LinearProbe(min(grid), num_classes, seed)
    scaled = probe.scaler.fit_transform(train_x)
    best: Optional[LinearProbe] = None
    for C in sorted(grid):
        probe.C = C
        probe.classifier.set_params(C=C)
        probe.fit(scaled, train_y, scaled=True)
        accuracy = float((probe.predict_proba(val_x).argmax(axis=1) == val_y).mean())
        logger.debug("linear probe C=%g: validation accuracy %.3f", C, accuracy)
        if best is None or accuracy > best.validation_accuracy:
            best = copy.deepcopy(probe)
            best.validation_accuracy = accuracy
    return best
