"""Classification metrics computed from predicted probabilities (numpy; no TensorFlow needed)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from data_interface_for_model.categories import LABELS, NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``[C, C]`` counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
    return matrix


def classification_report(labels: np.ndarray, probabilities: np.ndarray,
                          names: Optional[Sequence[str]] = None) -> Dict:
    """Accuracy, top-5 accuracy, macro-F1 (over classes present in ``labels`` or predicted), per-class
    precision/recall/F1/support, and the confusion matrix.

    Args:
      labels: int ``[N]`` true class ids.
      probabilities: float ``[N, C]``.
      names: the ``C`` class names (default: the 31 categories).
    """
    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities)
    if labels.shape[0] != probabilities.shape[0] or labels.shape[0] == 0:
        raise ValueError(f"{labels.shape[0]} labels for {probabilities.shape[0]} predictions")
    names = list(LABELS if names is None else names)
    if len(names) != probabilities.shape[1]:
        raise ValueError(f"{len(names)} class names for {probabilities.shape[1]} classes")
    predictions = probabilities.argmax(axis=1)
    top5 = np.argsort(-probabilities, axis=1)[:, :5]
    matrix = confusion_matrix(labels, predictions, probabilities.shape[1])
    true_positive = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    seen = (actual > 0) | (predicted > 0)
    per_class = {
        names[c]: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                    "support": int(actual[c])}
        for c in range(probabilities.shape[1])
    }
    return {
        "examples": int(labels.shape[0]),
        "accuracy": float((predictions == labels).mean()),
        "top5_accuracy": float((top5 == labels[:, None]).any(axis=1).mean()),
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion_matrix(matrix: np.ndarray, path: str, names: Optional[Sequence[str]] = None,
                          title: str = "confusion matrix") -> None:
    """Write the confusion matrix (rows true, columns predicted, ``names`` in class order) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_interface_for_model.atomic import atomic_output_path

    matrix = np.asarray(matrix)
    names = list(LABELS if names is None else names)
    fig, ax = plt.subplots(figsize=(10, 9))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_output_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple:
    """The Wilson score interval for a proportion (95% with the default ``z``): ``(low, high)``.

    Unlike the normal approximation it stays inside [0, 1] and is honest on small sets (``total`` of a few
    dozen test items), where an accuracy is only known to within many points."""
    if total <= 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))
