"""Clips and covers -> the classifier's inputs (:class:`Clip`) plus what the page shows (cover, duration).

Decoding uses the project's one sampling rule (``data_interface_for_model.decoding``): frames uniformly by
timestamp, short side resized, centre crop. Anything that cannot be decoded raises ``DecodeError`` (a
``ValueError``) naming the file.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from data_interface_for_model.decoding import DecodeError, encode_jpeg, load_image_bytes, sample_clip

from serving.catalog.embedder import Clip

#: Side of the cover thumbnails kept in the store for the page.
THUMBNAIL_SIZE = 160


@dataclasses.dataclass(frozen=True)
class DecodedItem:
    """A decoded item: the classifier's input, a thumbnail JPEG and the clip's duration in seconds."""

    clip: Clip
    thumbnail: bytes
    duration_s: float


def decode_item(video_path: str, brief: str, num_frames: int, image_size: int,
                cover: Optional[bytes] = None, cover_path: Optional[str] = None) -> DecodedItem:
    """Sample ``video_path``; the cover is ``cover`` (JPEG bytes), else ``cover_path``, else the middle frame.

    Raises:
      DecodeError: the clip or the cover cannot be decoded.
    """
    sampled = sample_clip(video_path, num_frames, image_size)
    frames = tuple(encode_jpeg(frame) for frame in sampled.frames[:max(sampled.num_real, 1)])
    if cover is None and cover_path:
        if not os.path.isfile(cover_path):
            raise DecodeError(f"{cover_path}: cover not found")
        with open(cover_path, "rb") as handle:
            cover = handle.read()
    if cover:
        cover_pixels = load_image_bytes(cover, image_size, name=cover_path or "cover", require_jpeg=False)
        thumb_pixels = load_image_bytes(cover, THUMBNAIL_SIZE, name=cover_path or "cover", require_jpeg=False)
        cover_jpeg = encode_jpeg(cover_pixels)
    else:
        thumb_pixels = sampled.frames[max(sampled.num_real, 1) // 2]  # the middle frame
        cover_jpeg = frames[len(frames) // 2]
    return DecodedItem(Clip(brief or "", cover_jpeg, frames), encode_jpeg(thumb_pixels), float(sampled.duration_s))
