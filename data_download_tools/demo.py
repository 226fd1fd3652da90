"""A synthetic demo dataset in the exact xinpianchang layout.

``make_demo_dataset(out, DemoConfig(per_category=10))`` writes, for each of the 31 categories,
``out/<label>/<mp4_id>/<mp4_id>.mp4`` (a real H.264 clip), ``.jpeg`` (a cover) and ``.txt`` (the record as
JSON), plus ``out/multimodal_data_info.json``.

The content depends on the category without giving it away:

* each category has a *visual family*: a colour palette, a texture and a kind of motion. There are 8
  palettes, 6 textures and 5 motions, and every category gets a distinct triple, so each single attribute
  is shared by several categories and only the combination identifies the family;
* per-item noise: hue and brightness jitter, texture frequency, speed and phase, and pixel noise;
* briefs mix category keywords (many shared between related categories) with distractor words common to
  every category;
* a fraction of items (``ambiguous_fraction``) is ambiguous: either its pictures or its brief come from
  another category, so only the other modality tells the truth.

Everything is drawn from ``numpy.random.default_rng`` seeded by ``(seed, category, item)``, and the
encoder runs single-threaded, so the same seed gives the same bytes whatever the number of workers.
"""
from __future__ import annotations

import colorsys
import concurrent.futures
import dataclasses
import functools
import io
import logging
import os
import urllib.parse
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from data_interface_for_model.atomic import atomic_output_path, atomic_write_bytes
from data_interface_for_model.categories import LABELS
from data_interface_for_model.info_file import INFO_FILE_NAME, write_info_file
from data_interface_for_model.item_txt import write_item_txt
from data_interface_for_model.schema import VideoRecord
from data_download_tools.demo_vocabulary import CATEGORY_WORDS, DISTRACTOR_WORDS, TEMPLATES

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://demo.invalid/xinpianchang"

# RGB triples in [0, 1]: (dark, main, highlight).
PALETTES: Tuple[Tuple[Tuple[float, float, float], ...], ...] = (
    ((0.02, 0.15, 0.35), (0.10, 0.45, 0.80), (0.75, 0.92, 1.00)),  # ocean blues
    ((0.35, 0.05, 0.02), (0.95, 0.45, 0.10), (1.00, 0.90, 0.40)),  # sunset
    ((0.03, 0.20, 0.05), (0.25, 0.60, 0.20), (0.85, 0.95, 0.55)),  # forest
    ((0.10, 0.10, 0.10), (0.50, 0.50, 0.48), (0.92, 0.90, 0.85)),  # archival greys
    ((0.20, 0.00, 0.30), (0.90, 0.10, 0.70), (0.20, 0.95, 0.95)),  # neon
    ((0.25, 0.15, 0.05), (0.60, 0.42, 0.25), (0.90, 0.80, 0.60)),  # earth
    ((0.01, 0.01, 0.10), (0.15, 0.10, 0.40), (0.95, 0.95, 1.00)),  # night
    ((0.55, 0.35, 0.50), (0.95, 0.70, 0.80), (1.00, 1.00, 1.00)),  # pastel
)
TEXTURES = ("stripes", "checker", "rings", "blobs", "waves", "dots")
MOTIONS = ("pan", "zoom", "rotate", "pulse", "bounce")
_FAMILY_SEED = 20190711  # fixed: the families are the same for every dataset seed


@dataclasses.dataclass(frozen=True)
class VisualFamily:
    """What a category's pictures look like: indexes into PALETTES, TEXTURES and MOTIONS."""

    palette: int
    texture: str
    motion: str


def visual_families() -> Dict[str, VisualFamily]:
    """One distinct (palette, texture, motion) triple per category, the same for every seed."""
    combos = [(p, t, m) for p in range(len(PALETTES)) for t in TEXTURES for m in MOTIONS]
    order = np.random.default_rng(_FAMILY_SEED).permutation(len(combos))
    return {label: VisualFamily(*combos[int(i)]) for label, i in zip(LABELS, order)}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """How big and what kind of demo dataset to make.

    Attributes:
      per_category: items per category.
      seed: the dataset seed (ids, noise, briefs).
      width, height: clip size in pixels (even numbers, H.264 needs them).
      fps: frames per second of the clips.
      min_seconds, max_seconds: clip duration range in whole seconds.
      cover_width, cover_height: cover size in pixels.
      ambiguous_fraction: share of items whose pictures or brief come from another category.
      base_url: the URLs in the info file point under this (``--base-url`` of ``make-demo``).
      workers: processes used to render and encode (0: one per core).
      audio: give clips an AAC sound track whose character depends on the category
        (``data_interface_for_model.audio.demo_soundtrack``); the pictures stay the same.
      silent_fraction: with ``audio``, the share of clips whose track is silence (a missing modality).
      music: with ``audio``, give clips real background music instead of the category tone: ``"immich"`` (the
        28 tracks of the ``immich-memories-music`` wheel) or a music library folder (as ``music index
        --library``). Each clip's track is drawn by ``retrieval.music.pairs.simulate_pairs`` (category moods,
        style, popularity; no content term, seeded by ``seed``), a segment of the clip's length is cut from a
        seeded offset, and the (video, music) pairs are written to ``out/music_pairs.csv``. ``""``: the tone.
      music_tone: with ``music``, the weight of the category tone mixed under the music (default 0: none).
      categories: make only these categories (``()``: all 31); the ids stay those of the full dataset.
    """

    per_category: int = 10
    seed: int = 0
    width: int = 160
    height: int = 96
    fps: int = 12
    min_seconds: int = 2
    max_seconds: int = 4
    cover_width: int = 224
    cover_height: int = 128
    ambiguous_fraction: float = 0.15
    base_url: str = DEFAULT_BASE_URL
    workers: int = 0
    audio: bool = False
    silent_fraction: float = 0.1
    music: str = ""
    music_tone: float = 0.0
    categories: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.per_category < 1:
            raise ValueError("per_category must be at least 1")
        if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
            raise ValueError("width and height must be even and at least 16 (H.264 with yuv420p)")
        if not 1 <= self.min_seconds <= self.max_seconds:
            raise ValueError("need 1 <= min_seconds <= max_seconds")
        if not 0.0 <= self.ambiguous_fraction <= 1.0:
            raise ValueError("ambiguous_fraction must be in [0, 1]")
        if self.fps < 1:
            raise ValueError("fps must be at least 1")
        if not 0.0 <= self.silent_fraction <= 1.0:
            raise ValueError("silent_fraction must be in [0, 1]")
        if self.music and not self.audio:
            raise ValueError("music needs audio (make-demo --audio --music ...)")
        if not 0.0 <= self.music_tone <= 1.0:
            raise ValueError("music_tone must be in [0, 1]")
        unknown = sorted(set(self.categories) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}")


@dataclasses.dataclass(frozen=True)
class _ItemPlan:
    label: str
    category_index: int
    item_index: int
    mp4_id: str


def item_ids(config: DemoConfig) -> List[_ItemPlan]:
    """The items of a dataset: unique 8-digit ids drawn from the seed, in category order."""
    total = len(LABELS) * config.per_category
    ids = np.random.default_rng([config.seed, 7]).choice(90_000_000, size=total, replace=False) + 10_000_000
    plans = []
    for c, label in enumerate(LABELS):
        for i in range(config.per_category):
            plans.append(_ItemPlan(label, c, i, str(int(ids[c * config.per_category + i]))))
    return plans


# ----------------------------------------------------------------------------------------------- pictures
def _jitter_palette(palette: Sequence[Sequence[float]], rng: np.random.Generator) -> np.ndarray:
    hue_shift = rng.uniform(-0.04, 0.04)
    gain = rng.uniform(0.85, 1.15)
    colours = []
    for rgb in palette:
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        colours.append(colorsys.hsv_to_rgb((h + hue_shift) % 1.0, s, min(1.0, v * gain)))
    return np.asarray(colours, dtype=np.float32) * 255.0


@functools.lru_cache(maxsize=8)
def _grid(width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates: v in [-1, 1] down, u in [-aspect, aspect] across, each ``[height, width]``."""
    aspect = width / height
    v, u = np.meshgrid(np.linspace(-1, 1, height, dtype=np.float32),
                       np.linspace(-aspect, aspect, width, dtype=np.float32), indexing="ij")
    v.setflags(write=False)
    u.setflags(write=False)
    return v, u


@dataclasses.dataclass
class _Painter:
    """Renders frames of one item's visual family with that item's random parameters."""

    family: VisualFamily
    rng: np.random.Generator

    def __post_init__(self) -> None:
        rng = self.rng
        self.colours = _jitter_palette(PALETTES[self.family.palette], rng)
        self.frequency = rng.uniform(4.0, 9.0)
        self.angle = rng.uniform(0, np.pi)
        self.speed = rng.uniform(0.6, 1.4) * rng.choice([-1.0, 1.0])
        self.phase = rng.uniform(0, 2 * np.pi)
        self.grid = rng.random((7, 7)).astype(np.float32)
        self.noise_sigma = rng.uniform(4.0, 12.0)

    def _texture(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        f, kind = self.frequency, self.family.texture
        if kind == "stripes":
            return 0.5 + 0.5 * np.sin(f * (u * np.cos(self.angle) + v * np.sin(self.angle)) + self.phase)
        if kind == "checker":
            return 0.5 + 0.5 * np.tanh(4.0 * np.sin(f * u + self.phase) * np.sin(f * v))
        if kind == "rings":
            return 0.5 + 0.5 * np.sin(f * np.sqrt(u * u + v * v) * 1.5 + self.phase)
        if kind == "waves":
            return 0.5 + 0.25 * (np.sin(f * u + 2.0 * v + self.phase) + np.sin(0.7 * f * v + u))
        if kind == "dots":
            fu, fv = np.mod(f * u / 2 + self.phase, 1.0) - 0.5, np.mod(f * v / 2, 1.0) - 0.5
            return np.exp(-(fu * fu + fv * fv) * 30.0)
        # blobs: smooth value noise from a 7x7 random grid, tiled.
        n = self.grid.shape[0]
        x, y = np.mod((u + 1.0) * f / 3.0, n), np.mod((v + 1.0) * f / 3.0, n)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        tx, ty = x - x0, y - y0
        tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
        x1, y1 = (x0 + 1) % n, (y0 + 1) % n
        g = self.grid
        top = g[y0, x0] * (1 - tx) + g[y0, x1] * tx
        bottom = g[y1, x0] * (1 - tx) + g[y1, x1] * tx
        return top * (1 - ty) + bottom * ty

    def frame(self, t: float, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
        """One RGB uint8 frame ``[height, width, 3]`` at time ``t`` in [0, 1]."""
        v, u = _grid(width, height)
        brightness = 1.0
        motion, s = self.family.motion, self.speed
        if motion == "pan":
            u = u + 2.0 * s * t
        elif motion == "zoom":
            scale = 1.0 + 0.6 * np.sin(np.pi * t * s + self.phase)
            u, v = u * scale, v * scale
        elif motion == "rotate":
            a = 2.0 * s * t
            u, v = u * np.cos(a) - v * np.sin(a), u * np.sin(a) + v * np.cos(a)
        elif motion == "pulse":
            brightness = 0.7 + 0.3 * np.sin(6.0 * np.pi * t * abs(s) + self.phase)
        else:  # bounce
            u = u + 0.4 * np.sin(4.0 * np.pi * t * s + self.phase)
            v = v + 0.4 * np.cos(4.0 * np.pi * t * s)
        f = np.clip(self._texture(u, v), 0.0, 1.0)[..., None]
        dark, main, high = self.colours
        image = dark + (main - dark) * np.minimum(f * 1.5, 1.0)
        image = image + (high - image) * np.clip((f - 0.8) * 5.0, 0.0, 1.0)
        image = image * np.float32(brightness)
        image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(self.noise_sigma)
        return np.clip(image, 0, 255).astype(np.uint8)


def _brief(label: str, rng: np.random.Generator) -> str:
    words = list(CATEGORY_WORDS[label])
    keys = [words[i] for i in rng.choice(len(words), size=3, replace=False)]
    if rng.random() < 0.3:  # borrow a word from a random other category
        other = LABELS[int(rng.integers(len(LABELS)))]
        keys[int(rng.integers(3))] = CATEGORY_WORDS[other][int(rng.integers(len(CATEGORY_WORDS[other])))]
    d = [DISTRACTOR_WORDS[i] for i in rng.choice(len(DISTRACTOR_WORDS), size=2, replace=False)]
    text = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(k1=keys[0], k2=keys[1], k3=keys[2], d1=d[0], d2=d[1])
    return " " + text[0].upper() + text[1:]


def encode_h264(frames: np.ndarray, path: str, fps: int, soundtrack: Optional[np.ndarray] = None,
                sample_rate: int = 16000) -> None:
    """Encode uint8 RGB frames ``[T, H, W, 3]`` into an H.264 mp4 at ``path`` (atomically, deterministically),
    with a mono AAC track from float samples ``soundtrack [N]`` in [-1, 1] when given."""
    import av  # PyAV; imported here so that reading records does not need it

    with atomic_output_path(path) as tmp:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream(
                "libx264", rate=fps, options={"preset": "ultrafast", "crf": "23", "threads": "1"}
            )
            stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            if soundtrack is not None:  # every stream is added before the first packet is written
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
            for array in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
            if soundtrack is not None:
                samples = np.asarray(soundtrack, np.float32).reshape(1, -1)
                for start in range(0, samples.shape[1], 1024):
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]),
                                                       format="fltp", layout="mono")
                    frame.rate, frame.pts = sample_rate, start
                    for packet in sound.encode(frame):
                        container.mux(packet)
                for packet in sound.encode(None):
                    container.mux(packet)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 RGB image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def item_url(base_url: str, label: str, mp4_id: str, extension: str) -> str:
    """``base/<label>/<id>/<id>.<ext>``, the label URL-quoted ("Alpha Channel" -> "Alpha%20Channel")."""
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(label)}/{mp4_id}/{mp4_id}{extension}"


MUSIC_PAIRS_FILE = "music_pairs.csv"


def music_library_tracks(music: str):
    """The tracks of ``DemoConfig.music``: ``"immich"`` (the wheel's 28 tracks) or a library folder."""
    from retrieval.music.library import immich_library_dir, scan_library

    return scan_library(immich_library_dir() if music == "immich" else music)


def demo_music_pairs(plans: Sequence[_ItemPlan], tracks, seed: int) -> List[Tuple[str, str]]:
    """One background track per item, drawn by ``simulate_pairs`` without its content term (no embeddings
    exist yet): category moods + style + popularity, deterministic for ``seed``."""
    from retrieval.music.pairs import DemoPairsConfig, simulate_pairs

    return simulate_pairs([p.mp4_id for p in plans], [p.label for p in plans], np.zeros((len(plans), 1)),
                          [t.music_id for t in tracks], [t.mood for t in tracks], np.zeros((len(tracks), 1)),
                          [t.genre for t in tracks], DemoPairsConfig(seed=seed, content=0.0))


def _make_item(args: Tuple[str, _ItemPlan, DemoConfig, Optional[str]]) -> VideoRecord:
    out, plan, config, music_path = args
    families = visual_families()
    rng = np.random.default_rng([config.seed, plan.category_index, plan.item_index])
    visual_label = text_label = plan.label
    if rng.random() < config.ambiguous_fraction:
        other = LABELS[(plan.category_index + 1 + int(rng.integers(len(LABELS) - 1))) % len(LABELS)]
        if rng.random() < 0.5:
            visual_label = other
        else:
            text_label = other
    painter = _Painter(families[visual_label], rng)
    seconds = int(rng.integers(config.min_seconds, config.max_seconds + 1))
    count = seconds * config.fps
    frames = np.stack([painter.frame(i / count, config.width, config.height, rng) for i in range(count)])
    cover = painter.frame(float(rng.random()), config.cover_width, config.cover_height, rng)
    record = VideoRecord(
        mp4_id=plan.mp4_id,
        label=plan.label,
        duration_s=seconds,
        video_url=item_url(config.base_url, plan.label, plan.mp4_id, ".mp4"),
        cover_url=item_url(config.base_url, plan.label, plan.mp4_id, ".jpeg"),
        brief=_brief(text_label, rng),
    )
    folder = os.path.join(out, plan.label, plan.mp4_id)
    os.makedirs(folder, exist_ok=True)
    soundtrack = None
    if config.audio:  # its own random stream: the same pictures with or without sound
        from data_interface_for_model.audio import demo_soundtrack

        sound_rng = np.random.default_rng([config.seed, plan.category_index, plan.item_index, 1])
        soundtrack = demo_soundtrack(plan.category_index, seconds, sound_rng)  # the true category
        if sound_rng.random() < config.silent_fraction:  # the same clips are silent with or without music
            soundtrack = np.zeros_like(soundtrack)
        elif music_path is not None:
            from data_interface_for_model.audio import demo_music_segment, demo_music_track, mix_demo_sound

            music = demo_music_segment(demo_music_track(music_path), seconds, sound_rng)
            soundtrack = mix_demo_sound(music, soundtrack, config.music_tone)
    encode_h264(frames, os.path.join(folder, plan.mp4_id + ".mp4"), config.fps, soundtrack)
    atomic_write_bytes(os.path.join(folder, plan.mp4_id + ".jpeg"), encode_jpeg(cover))
    write_item_txt(os.path.join(folder, plan.mp4_id + ".txt"), record)
    return record


def make_demo_dataset(
    out: str,
    config: DemoConfig = DemoConfig(),
    progress: Optional[Callable[[int], None]] = None,
) -> List[VideoRecord]:
    """Write the demo dataset under ``out`` and return its records (in category, item order).

    ``progress`` is called with 1 after each finished item (for a progress bar).
    """
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    plans = item_ids(config)
    if config.categories:
        plans = [plan for plan in plans if plan.label in config.categories]
    workers = config.workers or os.cpu_count() or 1
    pairs: List[Tuple[str, str]] = []
    music_paths: List[Optional[str]] = [None] * len(plans)
    if config.music:
        tracks = music_library_tracks(config.music)
        path_of = {t.music_id: t.path for t in tracks}
        pairs = demo_music_pairs(plans, tracks, config.seed)
        music_paths = [path_of[music_id] for _, music_id in pairs]
    jobs = [(out, plan, config, path) for plan, path in zip(plans, music_paths)]
    records: List[VideoRecord] = []
    if workers == 1:
        for job in jobs:
            records.append(_make_item(job))
            if progress:
                progress(1)
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            for record in pool.map(_make_item, jobs, chunksize=4):
                records.append(record)
                if progress:
                    progress(1)
    write_info_file(os.path.join(out, INFO_FILE_NAME), records)
    if pairs:
        from retrieval.music.pairs import write_pairs

        write_pairs(os.path.join(out, MUSIC_PAIRS_FILE), pairs)
    logger.info("wrote %d demo items under %s", len(records), out)
    return records
