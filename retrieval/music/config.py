"""Configuration of the music matcher (no TensorFlow import)."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

# candidate weights of the category log-prior in the score, searched on the validation split when
# ``MatcherConfig.prior_beta`` is None (0 = the towers alone)
BETA_GRID: Tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclasses.dataclass(frozen=True)
class MatcherConfig:
    """Towers: Dense(hidden, relu) -> Dense(embedding_dim) -> L2; softmax temperature; Adam; epochs (the best
    by validation R@10 is kept).

    ``label_dim``: size of a learned embedding of the video's category (its label in the embeddings file),
    concatenated to the standardised content in the video tower; 0 = content only.
    ``prior_beta``: the score is ``cos(video, track) / temperature + prior_beta * log P(track | category)``,
    the prior fitted on the training pairs (``metrics.category_log_prior``); None = chosen from
    ``BETA_GRID`` on the validation split after training, 0 = the towers alone.
    """

    hidden: int = 128
    embedding_dim: int = 64
    temperature: float = 0.1
    dropout: float = 0.1
    learning_rate: float = 3e-3
    epochs: int = 40
    batch_size: int = 64
    seed: int = 0
    label_dim: int = 0
    prior_beta: Optional[float] = None
