"""(video, background music) pairs: the file format, DecCM's splits and sampled negatives, and demo pairs.

Pairs file: a csv with columns ``video_id,music_id`` (one background track per video; other columns are
ignored). Reading checks every id against the video embeddings and the music index and names the line.

DecCM's evaluation files are rebuilt from a pairs split: for each validation/test video, ``negatives`` tracks
sampled uniformly without replacement among the other tracks (DecCM samples 100; a library of ``M`` tracks
has at most ``M - 1``), and an inverse-popularity weight of the video (``video_popularity_*.npy``): 1 / the
number of training videos using its track, normalised to mean 1.

Demo pairs (:func:`simulate_pairs`) stand in for uploads' real background music, which the demo lacks. Each
demo category prefers two moods and a style (acoustic or electronic): a video draws its track from

    logit(track) = log P(mood(track) | category) + log P(style(track) | category)
                   + CONTENT * cos(W video, track) + log popularity(track)

with ``W`` a fixed random projection of the video's content embedding onto the musicnn space, so the match
depends on the category (several moods per category, noise), on the content beyond the category, and on a
long-tailed popularity, and is learnable but not trivial.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from data_interface_for_model.atomic import atomic_write

logger = logging.getLogger(__name__)

SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
DEFAULT_NEGATIVES = 100
MOODS = ("calm", "energetic", "happy", "nostalgic", "tender")

#: Each demo category's (primary mood, secondary mood, preferred style).
CATEGORY_MOODS: Dict[str, Tuple[str, str, str]] = {
    "360VR": ("energetic", "happy", "electronic"), "4k": ("calm", "energetic", "electronic"),
    "Abstract": ("calm", "nostalgic", "electronic"), "Aerial": ("calm", "energetic", "electronic"),
    "Alpha Channel": ("energetic", "calm", "electronic"), "Animals": ("happy", "tender", "acoustic"),
    "Archival": ("nostalgic", "calm", "acoustic"), "Backgrounds": ("calm", "tender", "electronic"),
    "Beach": ("happy", "calm", "acoustic"), "Business": ("energetic", "calm", "electronic"),
    "Celebration": ("happy", "energetic", "electronic"), "City": ("energetic", "nostalgic", "electronic"),
    "Clouds": ("calm", "tender", "acoustic"), "Corporate": ("calm", "energetic", "electronic"),
    "Explosion": ("energetic", "happy", "electronic"), "Film": ("nostalgic", "tender", "acoustic"),
    "Green Screen": ("energetic", "calm", "electronic"), "Intro": ("energetic", "happy", "electronic"),
    "Military": ("energetic", "nostalgic", "acoustic"), "Nature": ("calm", "tender", "acoustic"),
    "News": ("energetic", "calm", "electronic"), "R3d": ("calm", "nostalgic", "acoustic"),
    "Romantic": ("tender", "nostalgic", "acoustic"), "Sea": ("calm", "happy", "acoustic"),
    "Sport": ("energetic", "happy", "electronic"), "Technology": ("energetic", "calm", "electronic"),
    "Timelapse": ("calm", "energetic", "electronic"), "Underwater": ("calm", "tender", "electronic"),
    "Wedding": ("tender", "happy", "acoustic"), "space": ("calm", "nostalgic", "electronic"),
    "stars": ("calm", "tender", "electronic"),
}


class PairsError(ValueError):
    """A pairs file that cannot be used (missing column, unknown id, a video paired twice)."""


def read_pairs(path: str, video_ids: Sequence[str], music_ids: Sequence[str]) -> List[Tuple[str, str]]:
    """``[(video_id, music_id)]`` from a csv, every id checked (the error names the line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pairs file {path}: no such file")
    videos, tracks = set(map(str, video_ids)), set(map(str, music_ids))
    pairs: List[Tuple[str, str]] = []
    seen: Dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"video_id", "music_id"} - set(reader.fieldnames or ())
        if missing:
            raise PairsError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            video, music = (row["video_id"] or "").strip(), (row["music_id"] or "").strip()
            if video not in videos:
                raise PairsError(f"{path} line {line}: video {video!r} is not in the video embeddings")
            if music not in tracks:
                raise PairsError(f"{path} line {line}: music {music!r} is not in the music index")
            if video in seen:
                raise PairsError(f"{path} line {line}: video {video!r} already paired on line {seen[video]}")
            seen[video] = line
            pairs.append((video, music))
    if not pairs:
        raise PairsError(f"{path}: no pairs")
    return pairs


def write_pairs(path: str, pairs: Sequence[Tuple[str, str]]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["video_id", "music_id"])
        writer.writerows(pairs)


def split_pairs(pairs: Sequence[Tuple[str, str]], seed: int = 0) -> Dict[str, List[Tuple[str, str]]]:
    """80 / 10 / 10 by video, shuffled with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(pairs))
    n = len(pairs)
    n_train = int(round(SPLIT_FRACTIONS[0][1] * n))
    n_val = int(round(SPLIT_FRACTIONS[1][1] * n))
    cuts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {name: [pairs[i] for i in sorted(rows)] for name, rows in cuts.items()}


def sample_negatives(positive_rows: Sequence[int], num_tracks: int, negatives: int = DEFAULT_NEGATIVES,
                     seed: int = 0) -> np.ndarray:
    """int ``[N, min(negatives, M - 1)]``: per positive, distinct other tracks sampled uniformly."""
    count = min(int(negatives), num_tracks - 1)
    if count < 1:
        raise ValueError("a library of one track has no negatives")
    rng = np.random.default_rng(seed)
    out = np.empty((len(positive_rows), count), np.int64)
    for i, pos in enumerate(positive_rows):
        others = np.delete(np.arange(num_tracks), int(pos))
        out[i] = rng.choice(others, size=count, replace=False)
    return out


def inverse_popularity(positive_rows: Sequence[int], train_rows: Sequence[int], num_tracks: int) -> np.ndarray:
    """float ``[N]``: 1 / (training videos using the track, at least 1), normalised to mean 1 (DecCM's weights)."""
    counts = np.bincount(np.asarray(train_rows, np.int64), minlength=num_tracks).astype(np.float64)
    weights = 1.0 / np.maximum(counts[np.asarray(positive_rows, np.int64)], 1.0)
    return (weights / weights.mean()).astype(np.float32) if weights.size else weights.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class DemoPairsConfig:
    """Knobs of :func:`simulate_pairs` (see the module docstring)."""

    seed: int = 0
    primary: float = 0.55  # P(primary mood | category); the secondary gets ``secondary``, the rest share what is left
    secondary: float = 0.30
    style: float = 0.75  # P(preferred style | category)
    content: float = 3.0  # weight of cos(W video, track)
    popularity_exponent: float = 0.8  # track popularity ~ 1 / rank ** exponent


def track_style(music_id: str, genre: str = "") -> str:
    """``acoustic`` or ``electronic`` from the genre, else from the id (immich's ``<mood>_<style>_<n>``)."""
    text = f"{genre} {music_id}".lower()
    return "electronic" if "electronic" in text else "acoustic" if "acoustic" in text else ""


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def simulate_pairs(video_ids: Sequence[str], video_labels: Sequence[str], video_vectors: np.ndarray,
                   music_ids: Sequence[str], music_moods: Sequence[str], music_vectors: np.ndarray,
                   music_genres: Sequence[str] = (),
                   config: DemoPairsConfig = DemoPairsConfig()) -> List[Tuple[str, str]]:
    """One background track per video, drawn as the module docstring says; deterministic for a seed."""
    rng = np.random.default_rng(config.seed)
    music_ids = [str(m) for m in music_ids]
    moods = [str(m) for m in music_moods]
    genres = list(music_genres) or [""] * len(music_ids)
    styles = [track_style(m, g) for m, g in zip(music_ids, genres)]
    popularity = np.empty(len(music_ids))
    popularity[rng.permutation(len(music_ids))] = 1.0 / np.arange(1, len(music_ids) + 1) ** config.popularity_exponent
    video_vectors = np.asarray(video_vectors, np.float64)
    projection = rng.standard_normal((video_vectors.shape[1], music_vectors.shape[1]))
    affinity = _unit(video_vectors @ projection) @ _unit(np.asarray(music_vectors, np.float64)).T  # [V, M]
    other = (1.0 - config.primary - config.secondary) / max(1, len(MOODS) - 2)
    pairs = []
    for v, (video, label) in enumerate(zip(video_ids, video_labels)):
        primary, secondary, style = CATEGORY_MOODS.get(str(label), ("", "", ""))
        mood_p = np.array([config.primary if m == primary else config.secondary if m == secondary else other
                           for m in moods])
        style_p = np.array([config.style if s == style else 1.0 - config.style if s else 0.5 for s in styles])
        logits = np.log(mood_p) + np.log(style_p) + config.content * affinity[v] + np.log(popularity)
        p = np.exp(logits - logits.max())
        pairs.append((str(video), music_ids[int(rng.choice(len(music_ids), p=p / p.sum()))]))
    return pairs


def usage_counts(pairs: Sequence[Tuple[str, str]]) -> Mapping[str, int]:
    counts: Dict[str, int] = {}
    for _, music in pairs:
        counts[music] = counts.get(music, 0) + 1
    return counts
