"""Real photos from GCompris' activity data (Debian ``gcompris-qt-data``): read Qt resource files, no Qt.

GCompris keeps each activity's files in a Qt resource bundle (``/usr/share/gcompris-qt/rcc/NAME.rcc``). The
photos used here are full-frame public-domain / CC0 / CC-BY-SA photographs (mostly from Wikimedia Commons),
each credited in a README beside it (copyright, licence, source address):

* the ``categorization`` activity: fishes, tools, renewable-energy installations, monuments;
* ``explore_monuments``, ``explore_farm_animals``, ``explore_world_animals``: photos with GCompris' title.

A photo's caption is its title: GCompris' own title where the activity gives one ("Chichén Itzá",
"Horse"), else the title of its source page as the README records it (the Wikimedia Commons file name,
"Discus fish", "Claw-hammer"), cleaned of underscores, extensions and trailing numbers.

The Qt resource format (``qres``): a header with the offsets of the tree, data and names sections; tree
nodes of 14 bytes (format 1) or 22 (formats 2 and 3, with a modification time); a file's data is a 4-byte
length then the bytes, zlib-compressed behind a 4-byte size when the node's flag 1 is set.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import struct
import urllib.parse
import zlib
from typing import Dict, List, Optional, Tuple

RCC_DIR = "/usr/share/gcompris-qt/rcc"
DEBIAN_PACKAGE = "gcompris-qt-data"
_COMPRESSED, _DIRECTORY, _COMPRESSED_ZSTD = 1, 2, 4


class ResourceError(ValueError):
    """A Qt resource file this reader cannot read."""


def read_rcc(path: str) -> Dict[str, bytes]:
    """Every file in a Qt resource bundle: {path inside the bundle: bytes}. zstd-compressed files are left out."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"qres" or len(data) < 20:
        raise ResourceError(f"{path}: not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    if version not in (1, 2, 3):
        raise ResourceError(f"{path}: Qt resource format {version} is not known")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset: names + offset + 2])
        return data[names + offset + 6: names + offset + 6 + 2 * length].decode("utf-16-be")

    files: Dict[str, bytes] = {}
    stack: List[Tuple[int, str]] = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[base: base + 6])
        name = name_at(name_offset) if index else ""
        path_here = prefix + name
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", data[base + 6: base + 14])
            stack.extend((first + c, path_here + "/" if path_here else "") for c in range(count))
            continue
        (offset,) = struct.unpack(">I", data[base + 10: base + 14])
        (size,) = struct.unpack(">I", data[payload + offset: payload + offset + 4])
        raw = data[payload + offset + 4: payload + offset + 4 + size]
        if flags & _COMPRESSED_ZSTD:
            continue
        files[path_here] = zlib.decompress(raw[4:]) if flags & _COMPRESSED else raw
    return files


@functools.lru_cache(maxsize=4)
def cached_rcc(path: str) -> Dict[str, bytes]:
    return read_rcc(path)


def parse_credits(text: str) -> Dict[str, Dict[str, str]]:
    """A GCompris README (blocks of ``Copyright:``, ``License:``, ``Source:``, then ``Files:`` and one file a
    line) as {file: {"copyright", "license", "source"}}."""
    credits: Dict[str, Dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", text):
        fields: Dict[str, str] = {}
        files: List[str] = []
        in_files = False
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if in_files and line.strip():
                files.append(line.strip())
            elif sep and key.strip().lower() in ("copyright", "license", "source"):
                fields[key.strip().lower()] = value.strip()
            elif key.strip().lower() == "files":
                in_files = True
        for name in files:
            credits[name] = fields
    return credits


def title_from_source(source: str) -> str:
    """A readable title from a source address: ``.../File:Discus_fish_(10765052495).jpg`` -> "Discus fish",
    ``...?image=1&picture=single-hammer`` -> "single hammer", ``.../Christ-The-Redeemer-5404701`` ->
    "Christ The Redeemer"."""
    parsed = urllib.parse.urlparse(source)
    query = urllib.parse.parse_qs(parsed.query)
    text = query["picture"][0] if "picture" in query else urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
    text = re.sub(r"^File:", "", text)
    text = re.sub(r"\.(jpe?g|png|webp|gif|tiff?|svg)$", "", text, flags=re.IGNORECASE)
    text = text.replace("_", " ")
    if " " not in text:
        text = text.replace("-", " ")
    text = re.sub(r"\(\s*\d+\s*\)", " ", text)
    text = re.sub(r"\s+(?=[0-9a-f]*\d)[0-9a-f]{6,}\b", " ", text)  # hash-like tokens ("d6ebeb2d")
    text = re.sub(r"(\s+\d+)+\s*$", "", " ".join(text.split()))
    text = re.sub(r"\s+DSC\w*$", "", text)
    return " ".join(text.split()).strip(" -,;")


@dataclasses.dataclass(frozen=True)
class ResourcePhoto:
    """A photo in a resource bundle: the bundle, the path inside it, its label, title and credit."""

    rcc: str
    member: str
    label: str
    caption: str
    caption_source: str
    license: str
    credit: str


#: (bundle, folder inside it, label) for the categorization activity's photo folders.
CATEGORIZATION = (("fishes", "fish"), ("tools", "tool"), ("renewable", "renewable_energy"),
                  ("monuments", "monument"))
#: (bundle, label) for the explore activities (photos with GCompris' titles in their boards).
EXPLORE = (("explore_monuments", "monument"), ("explore_farm_animals", "animal"),
           ("explore_world_animals", "animal"))


def _board_titles(files: Dict[str, bytes]) -> Dict[str, str]:
    """{photo member: GCompris' title} from an explore activity's board files."""
    titles: Dict[str, str] = {}
    for name, content in files.items():
        if "/board/" not in name or not name.endswith(".qml"):
            continue
        for block in content.decode("utf-8", errors="replace").split("},"):
            title = re.search(r'"title"\s*:\s*qsTr\("((?:[^"\\]|\\.)*)"\)', block)
            image = re.search(r'"qrc:/([^"]+\.(?:webp|jpe?g|png))"', block)
            if title and image:
                titles[image.group(1)] = title.group(1).replace('\\"', '"')
    return titles


def find_photos(rcc_dir: str = RCC_DIR) -> Tuple[List[ResourcePhoto], Dict[str, int]]:
    """The labelled photos in GCompris' bundles (sorted by bundle and path) and the counts of skipped files."""
    if not os.path.isdir(rcc_dir):
        raise FileNotFoundError(f"GCompris' resource folder {rcc_dir} not found: install the photos with "
                                f"`apt-get install {DEBIAN_PACKAGE}` or pass --gcompris-dir")
    photos: List[ResourcePhoto] = []
    skipped: Dict[str, int] = {}

    def add(rcc: str, member: str, label: str, credits: Dict[str, Dict[str, str]], key: str,
            title: Optional[str]) -> None:
        credit = credits.get(key)
        if credit is None or "license" not in credit:
            skipped["no credit"] = skipped.get("no credit", 0) + 1
            return
        caption = title or title_from_source(credit.get("source", ""))
        if not caption:
            skipped["no title"] = skipped.get("no title", 0) + 1
            return
        photos.append(ResourcePhoto(
            rcc=rcc, member=member, label=label, caption=caption,
            caption_source="GCompris' title for the photo" if title else
            "the title of the photo's source page, as GCompris credits it",
            license=credit["license"],
            credit=f"{credit.get('copyright', '?')}; {credit.get('source', 'no source given')}"))

    path = os.path.join(rcc_dir, "categorization.rcc")
    if os.path.isfile(path):
        files = cached_rcc(path)
        for folder, label in CATEGORIZATION:
            prefix = f"gcompris/src/activities/categorization/resource/images/{folder}/"
            credits = parse_credits(files.get(prefix + "README", b"").decode("utf-8", errors="replace"))
            for member in sorted(m for m in files if m.startswith(prefix) and m.endswith(".webp")):
                add(path, member, label, credits, member[len(prefix):], None)
    for bundle, label in EXPLORE:
        path = os.path.join(rcc_dir, bundle + ".rcc")
        if not os.path.isfile(path):
            continue
        files = cached_rcc(path)
        titles = _board_titles(files)
        for member in sorted(m for m in files if m.endswith(".webp")):
            folder = member.rsplit("/", 1)[0]
            readme = next((r for r in (folder + "/README", folder.rsplit("/", 1)[0] + "/README") if r in files), None)
            credits = parse_credits(files[readme].decode("utf-8", errors="replace")) if readme else {}
            key = os.path.relpath(member, os.path.dirname(readme)) if readme else member
            add(path, member, label, credits, key, titles.get(member))
    if not photos:
        raise FileNotFoundError(f"no GCompris photos found under {rcc_dir}")
    return photos, skipped
