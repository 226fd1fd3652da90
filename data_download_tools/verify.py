"""Is a file what it claims to be? A cover must be a JPEG that decodes; a clip an mp4 with a video stream.

The quick checks (used by the downloader before it renames a download into place, and to skip files
already on disk) read the container header and decode the first video frame; ``deep=True`` (``check
--deep``) decodes every frame. PyAV and Pillow are imported lazily, so importing this module is cheap.
"""
from __future__ import annotations

import os
from typing import Union

from data_interface_for_model.decoding import DecodeError, open_image
from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS

PathLike = Union[str, "os.PathLike[str]"]
#: A cover file larger than this is not read at all (real covers are tens of KB).
MAX_COVER_BYTES = 64 << 20


class VerificationError(ValueError):
    """A file that is not what its name says (not a JPEG, no video stream, truncated, empty)."""


def verify_cover(path: PathLike, deep: bool = False, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Raise :class:`VerificationError` unless ``path`` is a JPEG that decodes completely.

    The header's declared size is checked against ``max_image_pixels`` first; then the whole JPEG is
    decoded at libjpeg's smallest scale (1/8: every byte of the data is still read, so a truncated JPEG
    fails here, where ``Image.verify`` alone would pass it, at 1/64 of the memory). ``deep`` is accepted
    for symmetry with :func:`verify_video`.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_COVER_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise VerificationError(f"{name}: empty file")
    if len(data) > MAX_COVER_BYTES:
        raise VerificationError(f"{name}: more than {MAX_COVER_BYTES} bytes, too large for a cover")
    try:
        with open_image(data, name, max_image_pixels) as image:
            if image.format != "JPEG":
                raise VerificationError(f"{name}: a {image.format} image, not a JPEG")
            try:
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
            except Exception as exc:  # truncated data, a bad table, Pillow internals...
                raise VerificationError(f"{name}: not a readable JPEG ({exc})") from None
    except DecodeError as exc:
        raise VerificationError(str(exc)) from None


def verify_video(path: PathLike, deep: bool = False) -> int:
    """Raise :class:`VerificationError` unless ``path`` is a media file with a decodable video stream.

    Returns the number of frames decoded: 1 in the quick mode, all of them with ``deep=True``.
    """
    import av

    name = os.fspath(path)
    if os.path.getsize(name) == 0:
        raise VerificationError(f"{name}: empty file")
    frames = 0
    try:
        with av.open(name) as container:
            if not container.streams.video:
                raise VerificationError(f"{name}: no video stream")
            for _ in container.decode(video=0):
                frames += 1
                if not deep:
                    break
    except VerificationError:
        raise
    except Exception as exc:  # av.FFmpegError, OSError, ValueError, ... : any failure is this file's
        raise VerificationError(f"{name}: not a readable video ({type(exc).__name__}: {exc})") from None
    if frames == 0:
        raise VerificationError(f"{name}: the video stream has no decodable frame")
    return frames


def verify_file(kind: str, path: PathLike, deep: bool = False,
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Dispatch on the modality: ``kind`` is ``"video"`` or ``"cover"``."""
    if kind == "video":
        verify_video(path, deep=deep)
    elif kind == "cover":
        verify_cover(path, deep=deep, max_image_pixels=max_image_pixels)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected 'video' or 'cover'")
