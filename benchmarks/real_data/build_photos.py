"""Build a small REAL labelled set in the xinpianchang layout from photos that a Debian package ships.

Two sources (``--source``), each a set of its own (mixing them would make the source's style a label cue):

``tuxpaint`` (default): Tux Paint's stamp collection (Debian ``tuxpaint-stamps-default``, GPL-2+): real
photographs of animals, plants, food, tools, instruments and sports gear, cut out on a transparent
background, each with a one-line English description written by the Tux Paint authors (the ``.txt`` beside
the picture). The label is the stamp's folder (``animals/birds/...`` -> ``bird``, see :data:`LABEL_RULES`);
clip art is left out (folders named ``cartoon``, SVGs, and pictures whose eight most common colours cover
more than :data:`MAX_FLAT_SHARE` of the opaque pixels), as are mirrored copies and pictures under
``--min-side`` px.
The cut-outs are composited on label-independent backgrounds.

``gcompris``: full-frame public-domain / CC0 photographs from GCompris' activities (Debian
``gcompris-qt-data``; see :mod:`benchmarks.real_data.gcompris`): fish, tools, renewable-energy
installations, monuments and animals, captioned with their titles. Exact duplicates (the same bytes or the
same source page) are kept once.

Each item::

    OUTPUT/<label>/<id>/<id>.jpeg   the photo (composited on a background, or cropped), 4:3
    OUTPUT/<label>/<id>/<id>.mp4    SYNTHETIC camera motion (pan + zoom) over that same picture, H.264
    OUTPUT/<label>/<id>/<id>.txt    the record (JSON): the caption as ``mp4_txt_brief``, the
                                    label, and its provenance (package, version, file, licence)

plus ``OUTPUT/multimodal_data_info.json`` (one record a line), ``OUTPUT/labels.txt`` (the label set, one a
line) and ``OUTPUT/README.md`` (what this is, where each item came from).

Everything that is not the photo is drawn from a random generator seeded by (``--seed``, the photo's path),
never from the label: crops, backgrounds (a two-colour gradient, or a tinted real texture from scikit-image's data
when installed), placement, size, mirroring and camera path have the same distribution in every label, so
no synthetic artefact gives the label away. The clips are not real footage: the motion is made up, the
pictures are real.

Usage::

    apt-get install tuxpaint-stamps-default          # the photos (about 160 MB)
    python benchmarks/real_data/build_photos.py --output data/real/photos
    apt-get install gcompris-qt-data                 # about 44 MB
    python benchmarks/real_data/build_photos.py --source gcompris --output data/real/gcompris
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from benchmarks.real_data import gcompris  # noqa: E402
from benchmarks.real_data.common import debian_version, pip_version, staged_output  # noqa: E402
from data_interface_for_model.atomic import atomic_write, atomic_write_bytes  # noqa: E402
from data_interface_for_model.cli import (  # noqa: E402
    UsageError, add_common_arguments, add_output, positive_int, run_verb,
)
from data_interface_for_model.info_file import INFO_FILE_NAME  # noqa: E402
from data_interface_for_model.schema import format_duration  # noqa: E402

logger = logging.getLogger(__name__)

STAMPS_DIR = "/usr/share/tuxpaint/stamps"
DEBIAN_PACKAGE = "tuxpaint-stamps-default"
LICENSE = "GPL-2+ (Tux Paint stamps; /usr/share/doc/tuxpaint-stamps-default/copyright)"
CAPTION_SOURCE = "Tux Paint stamp description (the English line of the stamp's .txt)"
LABELS_FILE = "labels.txt"

#: (label, stamp folders it is made of). The first rule whose prefix matches a stamp's path wins; a stamp
#: that matches none is not used. The folder names are Tux Paint's (its "insects" hold a slug and a woodlouse).
LABEL_RULES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("mammal", ("animals/mammals/", "animals/marsupials/")),
    ("bird", ("animals/birds/",)),
    ("fish", ("animals/fish/",)),
    ("insect", ("animals/insects/",)),
    ("plant", ("plants/",)),
    ("food", ("food/",)),
    ("tool", ("household/tools/", "household/arttools/")),
    ("musical_instrument", ("hobbies/music/",)),
    ("sport", ("sports/",)),
)
#: A picture whose 8 most common colours cover more than this share of its opaque pixels is flat-colour
#: clip art, not a photo (photos measure below 0.1; Tux Paint's drawings 0.2-1.0).
MAX_FLAT_SHARE = 0.15
#: The photo never comes closer than this share of the scene to its edges (so the border is background only,
#: which check_artefacts.py probes).
SCENE_MARGIN = 0.08
_LOCALE_LINE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?(@\w+)?\.utf8=")


@dataclasses.dataclass(frozen=True)
class PhotoConfig:
    """What to build.

    Attributes:
      stamps_dir: Tux Paint's stamp folder.
      seed: seeds everything that is not the photo (backgrounds, placement, camera path).
      min_side: stamps whose longer side is under this many pixels are left out.
      source_side: every photo is first shrunk to at most this many pixels on its longer side (0: kept as
        shipped), so that all labels are upscaled about alike: the shipped photos differ in size by label
        (food's are small), and unequal upscaling would make sharpness give the label away.
      min_per_label: labels with fewer usable stamps are left out.
      max_per_label: at most this many items a label (a seeded choice; 0: no cap).
      clip_width, clip_height, fps, seconds: the clips.
      cover_width, cover_height: the covers (and the scene the camera moves over is 1.5x that).
      background: ``plain`` (two-colour gradient), ``texture`` (a tinted real texture from scikit-image's
        data) or ``mixed`` (either, half and half).
      workers: processes that render and encode.
      source: ``tuxpaint`` or ``gcompris``; gcompris_dir: GCompris' resource folder.
      frame_side: full-frame photos are first shrunk to at most this many pixels on their longer side (GCompris
        ships some at 320 px, some at 1024 px, by label; equal resolution keeps sharpness from giving it away).
    """

    stamps_dir: str = STAMPS_DIR
    seed: int = 0
    min_side: int = 64
    source_side: int = 96
    min_per_label: int = 10
    max_per_label: int = 40
    clip_width: int = 256
    clip_height: int = 192
    fps: int = 12
    seconds: int = 3
    cover_width: int = 320
    cover_height: int = 240
    background: str = "mixed"
    workers: int = 1
    source: str = "tuxpaint"
    gcompris_dir: str = gcompris.RCC_DIR
    frame_side: int = 320

    def __post_init__(self) -> None:
        if self.clip_width % 2 or self.clip_height % 2 or min(self.clip_width, self.clip_height) < 16:
            raise UsageError("clip width and height must be even and at least 16 (H.264 with yuv420p)")
        if self.source not in SOURCES:
            raise UsageError(f"--source {self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.background not in ("plain", "texture", "mixed"):
            raise UsageError(f"--background {self.background!r}: expected plain, texture or mixed")
        if self.min_per_label < 1 or self.max_per_label < 0:
            raise UsageError("--min-per-label must be at least 1 and --max-per-label at least 0")
        if self.max_per_label and self.max_per_label < self.min_per_label:
            raise UsageError("--max-per-label is below --min-per-label")
        if self.source_side and self.source_side < self.min_side:
            raise UsageError("--source-side is below --min-side")


@dataclasses.dataclass(frozen=True)
class Photo:
    """One usable photo: where it is, its label, caption and provenance.

    ``key`` is unique within a source (a stamp's path under the stamp folder, or ``gcompris:<member>``) and
    seeds everything drawn for the item; ``member`` is the path inside the Qt resource bundle ``path`` (``None``:
    ``path`` is the image file). A ``cutout`` has a transparent background and is composited; the other
    photos fill the frame.
    """

    path: str
    key: str
    label: str
    caption: str
    cutout: bool = True
    member: Optional[str] = None
    package: str = DEBIAN_PACKAGE
    license: str = LICENSE
    caption_source: str = CAPTION_SOURCE
    credit: str = ""

    @property
    def item_id(self) -> str:
        """A stable id from the photo's key (it does not spell the label)."""
        return ("tp" if self.cutout else "gc") + hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:10]

    @property
    def source_file(self) -> str:
        return self.key if self.member is None else f"{os.path.basename(self.path)}:{self.member}"

    def open_image(self):
        """The photo as a PIL image (RGBA for a cut-out, RGB otherwise)."""
        from PIL import Image

        if self.member is None:
            with Image.open(self.path) as image:
                return image.convert("RGBA" if self.cutout else "RGB")
        with Image.open(io.BytesIO(gcompris.cached_rcc(self.path)[self.member])) as image:
            return image.convert("RGBA" if self.cutout else "RGB")


def label_for(rel: str) -> Optional[str]:
    """The label of a stamp path relative to the stamp folder, or ``None``."""
    for label, prefixes in LABEL_RULES:
        if rel.startswith(prefixes):
            return label
    return None


def read_description(txt_path: str) -> Optional[str]:
    """The English description of a stamp: the first line of its ``.txt`` that is not a translation."""
    try:
        with open(txt_path, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                text = line.strip()
                if text and not _LOCALE_LINE.match(text):
                    return text
    except FileNotFoundError:
        return None
    return None


def flat_colour_share(rgba: np.ndarray) -> float:
    """Share of the opaque pixels of ``rgba`` [H, W, 4] covered by its 8 most common colours (1.0 if none)."""
    opaque = rgba[..., 3] > 200
    pixels = rgba[opaque][:, :3].astype(np.uint32)
    if len(pixels) == 0:
        return 1.0
    codes = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    counts = np.unique(codes, return_counts=True)[1]
    return float(np.sort(counts)[::-1][:8].sum() / len(codes))


def find_stamps(config: PhotoConfig) -> Tuple[List[Photo], Dict[str, int]]:
    """Every usable photo under the stamp folder (sorted by path) and the count of each reason to skip."""
    from PIL import Image

    root = config.stamps_dir
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"stamp folder {root} not found: install the photos with `apt-get install {DEBIAN_PACKAGE}` "
            "or pass --stamps-dir")
    skipped: Dict[str, int] = collections.Counter()
    stamps = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".png"):
                if name.endswith(".svg"):
                    skipped["svg drawing"] += 1
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if name.endswith(("_mirror.png", "_flip.png")):
                skipped["mirrored copy"] += 1
                continue
            label = label_for(rel)
            if label is None:
                skipped["no label rule"] += 1
                continue
            if "cartoon" in rel.split("/"):
                skipped["cartoon folder"] += 1
                continue
            with Image.open(path) as image:
                rgba = np.asarray(image.convert("RGBA"))
            if max(rgba.shape[:2]) < config.min_side:
                skipped["too small"] += 1
                continue
            if flat_colour_share(rgba) > MAX_FLAT_SHARE:
                skipped["clip art (flat colours)"] += 1
                continue
            caption = read_description(path[:-4] + ".txt")
            if not caption:
                skipped["no description"] += 1
                continue
            stamps.append(Photo(path=path, key=rel, label=label, caption=caption))
    return stamps, dict(skipped)


def find_gcompris(config: PhotoConfig) -> Tuple[List[Photo], Dict[str, int]]:
    """GCompris' labelled photos, each kept once (same bytes or same source page: a duplicate)."""
    from PIL import Image

    found, skipped = gcompris.find_photos(config.gcompris_dir)
    skipped = collections.Counter(skipped)
    photos, seen = [], set()
    for item in found:
        data = gcompris.cached_rcc(item.rcc)[item.member]
        marks = {hashlib.sha1(data).hexdigest(), item.credit.rsplit("; ", 1)[-1]} - {"no source given"}
        if marks & seen:
            skipped["duplicate photo"] += 1
            continue
        seen |= marks
        with Image.open(io.BytesIO(data)) as image:
            if max(image.size) < config.min_side:
                skipped["too small"] += 1
                continue
        photos.append(Photo(path=item.rcc, key="gcompris:" + item.member, label=item.label, caption=item.caption,
                            cutout=False, member=item.member, package=gcompris.DEBIAN_PACKAGE,
                            license=f"{item.license} (credit: {item.credit})", caption_source=item.caption_source))
    return photos, dict(skipped)


#: The photo sources: name -> (finder, Debian package).
SOURCES = {"tuxpaint": (find_stamps, DEBIAN_PACKAGE), "gcompris": (find_gcompris, gcompris.DEBIAN_PACKAGE)}


def select(stamps: Sequence[Photo], config: PhotoConfig) -> Tuple[List[Photo], Dict[str, int]]:
    """Keep labels with at least ``min_per_label`` stamps, at most ``max_per_label`` each (seeded choice).

    Returns the kept stamps (label, then path order) and the labels dropped with their counts.
    """
    by_label: Dict[str, List[Photo]] = collections.defaultdict(list)
    for stamp in stamps:
        by_label[stamp.label].append(stamp)
    kept, dropped = [], {}
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda s: s.key)
        if len(group) < config.min_per_label:
            dropped[label] = len(group)
            continue
        if config.max_per_label and len(group) > config.max_per_label:
            rng = np.random.default_rng([config.seed, _stable_int(label)])
            chosen = sorted(rng.choice(len(group), size=config.max_per_label, replace=False))
            group = [group[i] for i in chosen]
        kept.extend(group)
    return kept, dropped


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little")


# --------------------------------------------------------------------------------------------- rendering
def _texture_pool() -> List[np.ndarray]:
    """Greyscale real textures (grass, gravel, brick) from scikit-image's data, float in [0, 1]; [] if absent."""
    try:
        from skimage import data
    except ImportError:
        return []
    return [np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0 for name in ("grass", "gravel", "brick")]


def _background(rng: np.random.Generator, width: int, height: int, kind: str,
                textures: Sequence[np.ndarray]) -> np.ndarray:
    """A label-independent background, float RGB [height, width, 3] in [0, 255]."""
    import colorsys
    from PIL import Image

    colours = []
    for _ in range(2):
        h, s, v = rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.35, 0.95)
        colours.append(np.asarray(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0)
    use_texture = textures and (kind == "texture" or (kind == "mixed" and rng.random() < 0.5))
    if use_texture:
        texture = textures[int(rng.integers(len(textures)))]
        th, tw = texture.shape
        scale = rng.uniform(0.5, 1.0)
        ch, cw = int(min(th, tw * height / width) * scale), int(min(tw, th * width / height) * scale)
        y, x = int(rng.integers(0, th - ch + 1)), int(rng.integers(0, tw - cw + 1))
        crop = Image.fromarray((texture[y:y + ch, x:x + cw] * 255).astype(np.uint8)).resize((width, height),
                                                                                            Image.BILINEAR)
        f = np.asarray(crop, dtype=np.float32)[..., None] / 255.0
    else:
        angle = rng.uniform(0, 2 * np.pi)
        v, u = np.meshgrid(np.linspace(-1, 1, height, dtype=np.float32), np.linspace(-1, 1, width, dtype=np.float32),
                           indexing="ij")
        f = (0.5 + 0.5 * (u * np.cos(angle) + v * np.sin(angle)) / np.sqrt(2.0))[..., None]
    image = colours[0] + (colours[1] - colours[0]) * f
    return image + rng.standard_normal(image.shape).astype(np.float32) * 3.0


def render_frame(photo, rng: np.random.Generator, width: int, height: int,
                 frame_side: int = 0) -> Tuple[np.ndarray, Tuple[float, float]]:
    """A full-frame photo (PIL RGB) as a ``width`` x ``height`` scene: shrunk to ``frame_side`` first, then a
    random crop of 85-100% of the largest window of the scene's aspect, mirrored half the time.

    Returns the scene, uint8 RGB [height, width, 3], and its centre (the subject of the camera).
    """
    from PIL import Image

    if frame_side and max(photo.size) > frame_side:
        photo = photo.copy()
        photo.thumbnail((frame_side, frame_side), Image.LANCZOS)
    if rng.random() < 0.5:
        photo = photo.transpose(Image.FLIP_LEFT_RIGHT)
    pw, ph = photo.size
    fraction = rng.uniform(0.85, 1.0)
    cw = min(pw, ph * width / height) * fraction
    ch = cw * height / width
    x, y = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    scene = photo.resize((width, height), Image.LANCZOS, box=(x, y, x + cw, y + ch))
    return np.asarray(scene, dtype=np.uint8), (width / 2.0, height / 2.0)


def render_scene(stamp, rng: np.random.Generator, width: int, height: int, background: str,
                 textures: Sequence[np.ndarray], source_side: int = 0) -> Tuple[np.ndarray, Tuple[float, float]]:
    """A cut-out photo (PIL RGBA) composited at a random place and size on a random background.

    Returns the scene, uint8 RGB [height, width, 3], and the (x, y) centre of the photo in it.
    """
    from PIL import Image

    scene = _background(rng, width, height, background, textures)
    if source_side and max(stamp.size) > source_side:
        stamp.thumbnail((source_side, source_side), Image.LANCZOS)
    if rng.random() < 0.5:
        stamp = stamp.transpose(Image.FLIP_LEFT_RIGHT)
    fraction = rng.uniform(0.5, 0.9)
    mx, my = int(np.ceil(SCENE_MARGIN * width)), int(np.ceil(SCENE_MARGIN * height))
    inner_w, inner_h = width - 2 * mx, height - 2 * my
    scale = min(inner_w * fraction / stamp.width, inner_h * fraction / stamp.height)
    w, h = max(1, int(round(stamp.width * scale))), max(1, int(round(stamp.height * scale)))
    stamp = np.asarray(stamp.resize((w, h), Image.LANCZOS), dtype=np.float32)
    x, y = mx + int(rng.integers(0, inner_w - w + 1)), my + int(rng.integers(0, inner_h - h + 1))
    alpha = stamp[..., 3:] / 255.0
    region = scene[y:y + h, x:x + w]
    scene[y:y + h, x:x + w] = region * (1.0 - alpha) + stamp[..., :3] * alpha
    return np.clip(scene, 0, 255).astype(np.uint8), (x + w / 2.0, y + h / 2.0)


def camera_frames(scene: np.ndarray, subject: Tuple[float, float], rng: np.random.Generator, count: int,
                  width: int, height: int) -> np.ndarray:
    """``count`` frames of a synthetic camera that pans and zooms over ``scene``: uint8 [count, height, width, 3].

    The zoom goes from z0 to z1 (each in [1, 1.6]) and the window's centre along a straight line, with an
    ease-in-out in time, between two random points that keep the window inside the scene and the
    ``subject`` (x, y) in the middle 60% of the window at both ends.
    """
    from PIL import Image

    sh, sw = scene.shape[:2]
    image = Image.fromarray(scene)
    z0, z1 = rng.uniform(1.0, 1.6, size=2)
    ends = []
    for z in (z0, z1):
        cw, ch = sw / z, sh / z
        cx = subject[0] + rng.uniform(-0.3, 0.3) * cw
        cy = subject[1] + rng.uniform(-0.3, 0.3) * ch
        ends.append((min(max(cx, cw / 2), sw - cw / 2), min(max(cy, ch / 2), sh - ch / 2)))
    frames = []
    for i in range(count):
        t = i / max(1, count - 1)
        t = t * t * (3 - 2 * t)
        z = z0 + (z1 - z0) * t
        cw, ch = sw / z, sh / z
        cx = ends[0][0] + (ends[1][0] - ends[0][0]) * t
        cy = ends[0][1] + (ends[1][1] - ends[0][1]) * t
        cx, cy = min(max(cx, cw / 2), sw - cw / 2), min(max(cy, ch / 2), sh - ch / 2)
        box = (cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)
        frames.append(np.asarray(image.resize((width, height), Image.BILINEAR, box=box)))
    return np.stack(frames)


def item_record(photo: Photo, config: PhotoConfig, version: Optional[str]) -> Dict[str, str]:
    """The item's ``.txt`` / info-file record: the xinpianchang keys plus provenance keys."""
    url = "file://" + photo.path + ("" if photo.member is None else "#" + photo.member)
    return {
        "mp4_id": photo.item_id,
        "mp4_download_url": url + ("#" if photo.member is None else "&") + "synthetic-camera-motion",
        "mp4_time": format_duration(config.seconds),
        "mp4_background_image_url": url,
        "mp4_txt_brief": photo.caption,
        "video_label": photo.label,
        "source_package": f"{photo.package} {version or 'unknown version'} (Debian)",
        "source_file": photo.source_file,
        "license": photo.license,
        "caption_source": photo.caption_source,
        "video": "synthetic camera motion (pan + zoom) over the real photo",
    }


_TEXTURES: Optional[List[np.ndarray]] = None


def make_item(job: Tuple[str, Photo, PhotoConfig, Optional[str]]) -> Dict[str, str]:
    """Render, encode and write one item under ``out``; return its record."""
    from data_download_tools.demo import encode_h264, encode_jpeg
    from PIL import Image

    global _TEXTURES
    out, photo, config, version = job
    if _TEXTURES is None:
        _TEXTURES = _texture_pool() if config.background != "plain" and config.source == "tuxpaint" else []
    rng = np.random.default_rng([config.seed, _stable_int(photo.key)])
    width, height = int(config.cover_width * 1.5), int(config.cover_height * 1.5)
    if photo.cutout:
        scene, subject = render_scene(photo.open_image(), rng, width, height, config.background, _TEXTURES,
                                      config.source_side)
    else:
        scene, subject = render_frame(photo.open_image(), rng, width, height, config.frame_side)
    frames = camera_frames(scene, subject, rng, config.fps * config.seconds, config.clip_width, config.clip_height)
    cover = np.asarray(Image.fromarray(scene).resize((config.cover_width, config.cover_height), Image.LANCZOS))
    record = item_record(photo, config, version)
    folder = os.path.join(out, photo.label, photo.item_id)
    os.makedirs(folder, exist_ok=True)
    encode_h264(frames, os.path.join(folder, photo.item_id + ".mp4"), config.fps)
    atomic_write_bytes(os.path.join(folder, photo.item_id + ".jpeg"), encode_jpeg(cover))
    with atomic_write(os.path.join(folder, photo.item_id + ".txt"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, ensure_ascii=False)
        handle.write("\n")
    return record


def _readme(records: Sequence[Dict[str, str]], counts: Dict[str, int], config: PhotoConfig,
            version: Optional[str]) -> str:
    package = SOURCES[config.source][1]
    if config.source == "tuxpaint":
        what = ("The covers are real photos composited on label-independent backgrounds; the clips are SYNTHETIC "
                "camera motion (pan + zoom) over those pictures; the briefs are the stamps' own English "
                f"descriptions. Licence: {LICENSE}.")
    else:
        what = ("The covers are real full-frame photos (random crops); the clips are SYNTHETIC camera motion "
                "(pan + zoom) over them; the briefs are the photos' titles. Each photo's licence and credit is "
                "in its record (public domain or CC0 but for a few CC-BY-SA 4.0: attribute those).")
    lines = [
        f"# Real photos as short clips ({config.source})",
        "",
        f"Built by `benchmarks/real_data/build_photos.py --source {config.source}` (seed {config.seed}) from "
        f"the Debian package `{package}` {version or ''}.",
        "",
        what,
        "",
        "| label | items |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {n} |" for label, n in sorted(counts.items())]
    lines += ["", "| id | label | source file | brief |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['mp4_id']} | {r['video_label']} | {r['source_file']} | {r['mp4_txt_brief'].replace('|', '/')} |"
              for r in records]
    return "\n".join(lines) + "\n"


def build(output: str, config: PhotoConfig, overwrite: bool = False) -> Dict[str, object]:
    """Build the set under ``output`` (atomically: all or nothing); return a summary dict."""
    from tqdm import tqdm

    start = time.perf_counter()
    finder, package = SOURCES[config.source]
    photos, skipped = finder(config)
    chosen, dropped = select(photos, config)
    if not chosen:
        raise UsageError(f"no usable {config.source} photos (skipped: {skipped})")
    version = debian_version(package)
    records: List[Dict[str, str]] = []
    with staged_output(output, overwrite=overwrite) as tmp:
        jobs = [(tmp, stamp, config, version) for stamp in chosen]
        with tqdm(total=len(jobs), desc="items", unit="item") as bar:
            if config.workers <= 1:
                for job in jobs:
                    records.append(make_item(job))
                    bar.update(1)
            else:
                with concurrent.futures.ProcessPoolExecutor(max_workers=config.workers) as pool:
                    for record in pool.map(make_item, jobs, chunksize=4):
                        records.append(record)
                        bar.update(1)
        counts = dict(collections.Counter(r["video_label"] for r in records))
        with atomic_write(os.path.join(tmp, INFO_FILE_NAME), "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        with atomic_write(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as handle:
            handle.write("".join(label + "\n" for label in sorted(counts)))
        with atomic_write(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as handle:
            handle.write(_readme(records, counts, config, version))
    return {
        "output": output, "items": len(records), "labels": counts, "dropped_labels": dropped,
        "skipped": skipped, "seconds": round(time.perf_counter() - start, 1),
        "source": f"{package} {version}", "scikit_image": pip_version("scikit-image"),
    }


def build_parser(prog: str = "build_photos.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Build a small real labelled set (real photos and their captions, synthetic camera motion) "
                    "in the xinpianchang layout.",
        epilog="--source tuxpaint needs `apt-get install tuxpaint-stamps-default` (scikit-image, optional, adds "
               "real textures to the backgrounds); --source gcompris needs `apt-get install gcompris-qt-data`.")
    add_output(parser, help="dataset root to write (refused if it exists, unless --overwrite)")
    defaults = PhotoConfig()
    parser.add_argument("--source", choices=sorted(SOURCES), default=defaults.source,
                        help=f"where the photos come from (default {defaults.source})")
    parser.add_argument("--stamps-dir", default=defaults.stamps_dir, help=f"default {defaults.stamps_dir}")
    parser.add_argument("--gcompris-dir", default=defaults.gcompris_dir, help=f"default {defaults.gcompris_dir}")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="backgrounds, placement, camera paths")
    parser.add_argument("--min-side", type=positive_int, default=defaults.min_side,
                        help=f"leave out photos smaller than this many pixels (default {defaults.min_side})")
    parser.add_argument("--source-side", type=int, default=defaults.source_side,
                        help="shrink every photo to at most this many pixels first, so that all labels are "
                             f"upscaled alike; 0 keeps them as shipped (default {defaults.source_side})")
    parser.add_argument("--frame-side", type=int, default=defaults.frame_side,
                        help="full-frame photos (gcompris) are shrunk to at most this many pixels first; 0 keeps "
                             f"them as shipped (default {defaults.frame_side})")
    parser.add_argument("--min-per-label", type=positive_int, default=defaults.min_per_label,
                        help=f"leave out labels with fewer photos (default {defaults.min_per_label})")
    parser.add_argument("--max-per-label", type=int, default=defaults.max_per_label,
                        help=f"at most this many items a label, 0 for all (default {defaults.max_per_label})")
    parser.add_argument("--background", choices=("plain", "texture", "mixed"), default=defaults.background,
                        help=f"what the photos are composited on (default {defaults.background})")
    parser.add_argument("--seconds", type=positive_int, default=defaults.seconds, help="clip length")
    parser.add_argument("--fps", type=positive_int, default=defaults.fps, help="clip frame rate")
    parser.add_argument("--workers", type=positive_int, default=defaults.workers, help="processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    config = PhotoConfig(stamps_dir=args.stamps_dir, seed=args.seed, min_side=args.min_side,
                         source_side=args.source_side, source=args.source, gcompris_dir=args.gcompris_dir,
                         frame_side=args.frame_side,
                         min_per_label=args.min_per_label, max_per_label=args.max_per_label,
                         background=args.background, seconds=args.seconds, fps=args.fps, workers=args.workers)
    summary = build(args.output, config, overwrite=args.overwrite)
    labels = ", ".join(f"{k} {v}" for k, v in sorted(summary["labels"].items()))
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(summary["dropped_labels"].items())) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped"].items()))
    print(f"wrote {summary['items']} items in {len(summary['labels'])} labels to {args.output} in "
          f"{summary['seconds']} s ({labels}); labels under --min-per-label: {dropped}; skipped: {skipped}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_verb(args)


if __name__ == "__main__":
    sys.exit(main())
