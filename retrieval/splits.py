"""The MicroLens leave-one-out split, cold-start hold-out, and training examples.

For a user with time-ordered items ``s`` (at least 3): the last item is the test target (history
``s[:-1]``), the second-to-last the validation target (history ``s[:-2]``), and ``s[:-2]`` is training data.
Cold items are held out of training entirely: they are removed from every training sequence (as targets and
as history), but stay in evaluation histories and targets, where the model knows them only by content.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, FrozenSet, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from retrieval.interactions import Sequences


@dataclasses.dataclass(frozen=True)
class EvalCase:
    """One evaluation query: a user, their history (time order) and the held-out next item."""

    user: str
    history: Tuple[str, ...]
    target: str


@dataclasses.dataclass
class Split:
    """A leave-one-out split.

    Attributes:
      train: user -> training items (time order, cold items removed; users left empty are dropped).
      validation: one case per user (target: the second-to-last item).
      test: one case per user (target: the last item).
      cold_items: items held out of training.
    """

    train: Sequences
    validation: List[EvalCase]
    test: List[EvalCase]
    cold_items: FrozenSet[str]


def choose_cold_items(items: Sequence[str], fraction: float, seed: int = 0) -> FrozenSet[str]:
    """A random ``fraction`` of ``items`` (sorted first, so the choice does not depend on input order)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"cold fraction must be in [0, 1), got {fraction}")
    pool = sorted(set(items))
    count = int(round(fraction * len(pool)))
    rng = np.random.default_rng(seed)
    return frozenset(pool[i] for i in rng.choice(len(pool), size=count, replace=False)) if count else frozenset()


def leave_one_out(sequences: Mapping[str, Sequence[str]], cold_items: Iterable[str] = ()) -> Split:
    """Split every user with at least 3 items (shorter users are skipped)."""
    cold = frozenset(cold_items)
    train: Sequences = {}
    validation: List[EvalCase] = []
    test: List[EvalCase] = []
    for user, items in sequences.items():
        items = list(items)
        if len(items) < 3:
            continue
        test.append(EvalCase(user, tuple(items[:-1]), items[-1]))
        validation.append(EvalCase(user, tuple(items[:-2]), items[-2]))
        kept = [i for i in items[:-2] if i not in cold]
        if kept:
            train[user] = kept
    return Split(train=train, validation=validation, test=test, cold_items=cold)


@dataclasses.dataclass(frozen=True)
class _TrainingRows:
    """Rows of training data: ``users`` str ``[M]``, ``history`` str ``[M, L]`` and ``targets``."""

    users: np.ndarray
    history: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclasses.dataclass(frozen=True)
class TrainingExamples(_TrainingRows):
    """Next-item examples from training sequences.

    Attributes:
      users: str ``[M]``.
      history: str ``[M, L]``, the up-to-L items before the target, oldest first, left-padded with ``""``.
      targets: str ``[M]``.
    """

    @property
    def target_count(self) -> int:
        """Training targets (one an example)."""
        return len(self)


def pad_history(history: Sequence[str], length: int) -> List[str]:
    """The last ``length`` items of ``history``, left-padded with ``""``."""
    recent = list(history)[-length:] if length else []
    return [""] * (length - len(recent)) + recent


def training_examples(train: Mapping[str, Sequence[str]], max_history: int) -> TrainingExamples:
    """One example per training interaction after a user's first: (history before it, the item)."""
    users, history, targets = [], [], []
    for user, items in train.items():
        for t in range(1, len(items)):
            users.append(user)
            history.append(pad_history(items[:t], max_history))
            targets.append(items[t])
    if not targets:
        raise ValueError("no training examples: every user needs at least 2 training items (4 in all)")
    return TrainingExamples(users=np.asarray(users, dtype=object).astype(str),
                            history=np.asarray(history, dtype=object).astype(str).reshape(len(targets), max_history),
                            targets=np.asarray(targets, dtype=object).astype(str))


@dataclasses.dataclass(frozen=True)
class SequenceWindows(_TrainingRows):
    """Training windows for the every-position objective: each row is a stretch of one user's training
    sequence, and every position of it is a query for the next item.

    Attributes:
      users: str ``[M]``.
      history: str ``[M, L]``, items oldest first, left-padded with ``""``.
      targets: str ``[M, L]``: ``targets[m, p]`` is the item after ``history[m, p]``, or ``""`` where that
        position is not trained on (padding, or a target an earlier window already covered).
    """

    @property
    def target_count(self) -> int:
        """Positions trained on (one per training interaction after a user's first)."""
        return int(np.count_nonzero(self.targets != ""))


def training_windows(train: Mapping[str, Sequence[str]], length: int) -> SequenceWindows:
    """Cover every training interaction after a user's first exactly once, as the target of one window
    position whose query sees up to ``length`` items.

    A user's first window holds targets ``1..min(length, n-1)`` (each sees every item before it); each next
    window moves ``stride = max(length // 2, 1)`` targets on and trains only on those new targets, so each of
    them is predicted from at least ``length - stride`` items before it (the every-position training of
    SASRec and GRU4Rec, with windows that overlap so no target loses its context at a window's start)."""
    if length < 1:
        raise ValueError(f"window length must be at least 1, got {length}")
    stride = max(length // 2, 1)
    users, history, targets = [], [], []
    for user, items in train.items():
        items = list(items)
        n = len(items)
        done = 0  # targets 1..done are covered
        end = min(length, n - 1)
        while done < n - 1:
            start = max(0, end - length)  # inputs items[start:end] predict items[start+1:end+1]
            inputs = items[start:end]
            outs = [t if start + 1 + p > done else "" for p, t in enumerate(items[start + 1:end + 1])]
            pad = length - len(inputs)
            users.append(user)
            history.append([""] * pad + inputs)
            targets.append([""] * pad + outs)
            done, end = end, min(end + stride, n - 1)
    if not targets:
        raise ValueError("no training examples: every user needs at least 2 training items (4 in all)")
    return SequenceWindows(users=np.asarray(users, dtype=object).astype(str),
                           history=np.asarray(history, dtype=object).astype(str).reshape(len(users), length),
                           targets=np.asarray(targets, dtype=object).astype(str).reshape(len(users), length))


def cases_to_arrays(cases: Sequence[EvalCase], max_history: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users ``[U]``, padded recent history ``[U, L]``, targets ``[U]``) as str arrays."""
    users = np.asarray([c.user for c in cases], dtype=object).astype(str)
    hist = np.asarray([pad_history(c.history, max_history) for c in cases], dtype=object).astype(str)
    targets = np.asarray([c.target for c in cases], dtype=object).astype(str)
    return users, hist.reshape(len(cases), max_history), targets


def training_items(train: Mapping[str, Sequence[str]]) -> List[str]:
    """Items that occur in training, sorted (the item-id vocabulary)."""
    return sorted({i for items in train.values() for i in items})


def histories_by_user(cases: Sequence[EvalCase]) -> Dict[str, Tuple[str, ...]]:
    """user -> full history of their case (what is masked in full ranking)."""
    return {c.user: c.history for c in cases}

