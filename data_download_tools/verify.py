"""Is a file what it claims to be? A cover must be a JPEG that decodes; a clip an mp4 with a video stream.

The quick checks (used by the downloader before it renames a download into place, and to skip files
already on disk) read the container header and decode the first video frame; ``deep=True`` (``check
--deep``) decodes every frame. PyAV and Pillow are imported lazily, so importing this module is cheap.
"""
from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


class VerificationError(ValueError):
    """A file that is not what its name says (not a JPEG, no video stream, truncated, empty)."""


def verify_cover(path: PathLike, deep: bool = False) -> None:
    """Raise :class:`VerificationError` unless ``path`` is a JPEG that decodes completely.

    Covers are small, so the pixels are decoded in both modes (a truncated JPEG fails here, where
    ``Image.verify`` alone would pass it). ``deep`` is accepted for symmetry with :func:`verify_video`.
    """
    from PIL import Image, UnidentifiedImageError

    name = os.fspath(path)
    if os.path.getsize(name) == 0:
        raise VerificationError(f"{name}: empty file")
    try:
        with Image.open(name) as image:
            if image.format != "JPEG":
                raise VerificationError(f"{name}: a {image.format} image, not a JPEG")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, VerificationError):
            raise
        raise VerificationError(f"{name}: not a readable JPEG ({exc})") from None


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
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise VerificationError(f"{name}: not a readable video ({exc})") from None
    if frames == 0:
        raise VerificationError(f"{name}: the video stream has no decodable frame")
    return frames


def verify_file(kind: str, path: PathLike, deep: bool = False) -> None:
    """Dispatch on the modality: ``kind`` is ``"video"`` or ``"cover"``."""
    if kind == "video":
        verify_video(path, deep=deep)
    elif kind == "cover":
        verify_cover(path, deep=deep)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected 'video' or 'cover'")
