"""Configuration of the music matcher (no TensorFlow import)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MatcherConfig:
    """Towers: Dense(hidden, relu) -> Dense(embedding_dim) -> L2; softmax temperature; Adam; epochs (the best
    by validation R@10 is kept)."""

    hidden: int = 128
    embedding_dim: int = 64
    temperature: float = 0.1
    dropout: float = 0.1
    learning_rate: float = 3e-3
    epochs: int = 40
    batch_size: int = 64
    seed: int = 0
