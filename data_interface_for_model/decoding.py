"""Decoding clips and covers into small fixed-size uint8 arrays (PyAV for video, Pillow for JPEG).

The one sampling rule used everywhere (preparation, the raw tf.data path, the numpy/PyTorch path):

* **frames** are sampled uniformly *by timestamp across the whole clip*: the clip's duration ``D`` is cut
  into ``T`` equal segments and the frame on screen at the centre of each, ``(i + 0.5) * D / T``, is taken;
* a clip with fewer than ``T`` decodable frames keeps every frame and is padded by repeating the last one
  (the second value returned says how many frames are real);
* every picture is resized so that its short side equals the target size (aspect ratio kept), then
  centre-cropped to the target (``size`` or ``(height, width)``).

Anything that cannot be decoded (missing, zero-byte, truncated or corrupt file, no video stream, a cover
that is not a JPEG) raises :class:`DecodeError`, whose message names the file.

Importing this module needs neither TensorFlow nor PyAV (PyAV is imported on first use).
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import threading
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from data_interface_for_model.limits import DEFAULT_MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
Size = Union[int, Tuple[int, int]]

#: Quality of the JPEG frames and covers written at preparation.
DEFAULT_JPEG_QUALITY = 90
_EPS = 1e-6  # seconds: timestamps computed from time bases are not exact


class DecodeError(ValueError):
    """A file that cannot be decoded: missing, empty, truncated, corrupt, no video stream, not a JPEG."""


@dataclasses.dataclass(frozen=True)
class SampledClip:
    """What :func:`sample_clip` returns.

    Attributes:
      frames: uint8 ``[num_frames, height, width, 3]`` RGB.
      num_real: how many leading frames are real (the rest repeat the last real frame).
      duration_s: the clip's duration in seconds (from the container, else from the decoded frames).
      source_width, source_height: the clip's own frame size.
      total_frames: how many frames were decoded (decoding stops once the last sample is found, so this
        can fall a few frames short of the clip's frame count).
    """

    frames: np.ndarray
    num_real: int
    duration_s: float
    source_width: int
    source_height: int
    total_frames: int


def _target_hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, (tuple, list)):
        height, width = (int(s) for s in size)
    else:
        height = width = int(size)
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return height, width


def _scaled_dims(src_h: int, src_w: int, out_h: int, out_w: int) -> Tuple[int, int]:
    """Smallest aspect-preserving size that covers ``(out_h, out_w)``: the "short side" resize."""
    scale = max(out_h / src_h, out_w / src_w)
    return max(out_h, int(round(src_h * scale))), max(out_w, int(round(src_w * scale)))


def centre_crop(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Crop ``[H, W, C]`` (or ``[..., H, W, C]``) to its central ``out_h x out_w``."""
    h, w = image.shape[-3], image.shape[-2]
    top, left = (h - out_h) // 2, (w - out_w) // 2
    return image[..., top:top + out_h, left:left + out_w, :]


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise DecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{path}: zero bytes")


# ----------------------------------------------------------------------------------------------- video
def resize_short_side_crop(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> ``[out_h, out_w, 3]``: resize so the short side covers the target (area filter
    when shrinking, bilinear when enlarging), keeping the aspect ratio, then centre-crop."""
    import cv2

    new_h, new_w = _scaled_dims(image.shape[0], image.shape[1], out_h, out_w)
    if (new_h, new_w) != image.shape[:2]:
        shrinking = new_h < image.shape[0]
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return np.ascontiguousarray(centre_crop(image, out_h, out_w))


_REFORMATTERS = threading.local()
_INHERITED: list = []


def _thread_reformatter():
    """This thread's ``VideoReformatter``: it keeps FFmpeg's colour-conversion context between frames and
    clips of the same size and format (building one costs several ms; ``frame.to_ndarray(format=...)``
    builds one for every frame). One per thread because a context must not be used by two at once, and
    one per process: a forked child (a DataLoader worker) makes its own. Scaling runs single-threaded
    (``threads=1``), so no context ever owns threads that a fork would lose."""
    cached = getattr(_REFORMATTERS, "cached", None)
    if cached is None or cached[0] != os.getpid():
        from av.video.reformatter import VideoReformatter

        if cached is not None:  # inherited through fork: never freed here, a new one for this process
            _INHERITED.append(cached[1])
        cached = _REFORMATTERS.cached = (os.getpid(), VideoReformatter())
    return cached[1]


def _frame_to_array(frame, out_h: int, out_w: int, reformatter=None) -> np.ndarray:
    """A PyAV frame as RGB (through ``reformatter`` when given), resized (short side, OpenCV's area filter:
    much faster than swscale's) and centre-cropped."""
    if reformatter is None:
        array = frame.to_ndarray(format="rgb24")
    else:
        array = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
    return resize_short_side_crop(array, out_h, out_w)


def _stream_duration(container, stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000.0  # AV_TIME_BASE
    return None


def sample_clip(path: PathLike, num_frames: int, size: Size) -> SampledClip:
    """Sample ``num_frames`` frames uniformly by timestamp across the clip at ``path``.

    Args:
      path: an mp4 (anything FFmpeg reads).
      num_frames: ``T``, the number of frames returned.
      size: the output side (square) or ``(height, width)``.

    Returns:
      a :class:`SampledClip`; ``frames`` is uint8 ``[T, height, width, 3]`` RGB.

    Raises:
      DecodeError: the file is missing, empty, corrupt or truncated, or has no decodable video frame.
    """
    import av  # PyAV, imported on use

    path = os.fspath(path)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    out_h, out_w = _target_hw(size)
    _check_file(path)
    try:
        with av.open(path, mode="r") as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            reformatter = _thread_reformatter()
            duration = _stream_duration(container, stream)
            time_base = float(stream.time_base) if stream.time_base is not None else None
            if duration is None or time_base is None:
                return _sample_all(path, container, stream, num_frames, out_h, out_w, reformatter)
            targets = [(i + 0.5) * duration / num_frames for i in range(num_frames)]
            chosen: List[np.ndarray] = []  # one array per target, in order
            first: List[object] = []  # the first T frames, kept in case the clip has fewer than T
            previous, start, count, k = None, None, 0, 0
            width = height = 0
            for frame in container.decode(stream):
                t_pts = frame.pts if frame.pts is not None else frame.dts
                if t_pts is None:
                    t = count * duration / max(stream.frames or 1, 1)
                else:
                    start = t_pts if start is None else start
                    t = (t_pts - start) * time_base
                # every target before this frame's time was on screen during the previous frame
                # (a frame that starts exactly at a target is the one on screen: allow for rounding)
                while k < num_frames and previous is not None and t > targets[k] + _EPS:
                    chosen.append(_frame_to_array(previous, out_h, out_w, reformatter))
                    k += 1
                previous = frame
                if count < num_frames:
                    first.append(frame)
                width, height = frame.width, frame.height
                count += 1
                if k >= num_frames:
                    break
            if count == 0:
                raise DecodeError(f"{path}: no decodable video frame")
            if count < num_frames:  # a short clip: every frame is real, then the last one repeats
                arrays = [_frame_to_array(f, out_h, out_w, reformatter) for f in first]
                return _padded(arrays, num_frames, duration, width, height, count)
            while k < num_frames:  # the last frame stays on screen to the end
                chosen.append(_frame_to_array(previous, out_h, out_w, reformatter))
                k += 1
    except DecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
        raise DecodeError(f"{path}: cannot decode video: {exc}") from None
    return SampledClip(np.stack(chosen), num_frames, float(duration), width, height, count)


def _padded(arrays: Sequence[np.ndarray], num_frames: int, duration: float, width: int, height: int,
            total: int) -> SampledClip:
    real = len(arrays)
    frames = np.stack(list(arrays) + [arrays[-1]] * (num_frames - real))
    return SampledClip(frames, real, float(duration), width, height, total)


def _sample_all(path: str, container, stream, num_frames: int, out_h: int, out_w: int,
                reformatter) -> SampledClip:
    """Fallback when the container states no duration: decode every frame, then pick by index."""
    arrays = []
    fps = float(stream.average_rate) if stream.average_rate else 0.0
    width = height = 0
    for frame in container.decode(stream):
        arrays.append(_frame_to_array(frame, out_h, out_w, reformatter))
        width, height = frame.width, frame.height
    if not arrays:
        raise DecodeError(f"{path}: no decodable video frame")
    n = len(arrays)
    duration = n / fps if fps else 0.0
    if n < num_frames:
        return _padded(arrays, num_frames, duration, width, height, n)
    picks = [min(n - 1, int((i + 0.5) * n / num_frames)) for i in range(num_frames)]
    return SampledClip(np.stack([arrays[i] for i in picks]), num_frames, duration, width, height, n)


def sample_frames(path: PathLike, num_frames: int, size: Size) -> Tuple[np.ndarray, int]:
    """uint8 ``[num_frames, size, size, 3]`` RGB frames sampled uniformly across the clip, and how many
    are real (a short clip is padded by repeating its last frame). See :func:`sample_clip`."""
    clip = sample_clip(path, num_frames, size)
    return clip.frames, clip.num_real


# ----------------------------------------------------------------------------------------------- images
def _resize_crop_pil(image, out_h: int, out_w: int) -> np.ndarray:
    from PIL import Image

    image = image.convert("RGB")
    new_h, new_w = _scaled_dims(image.height, image.width, out_h, out_w)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(centre_crop(np.asarray(image), out_h, out_w))


def check_image_header(image, name: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Raise :class:`DecodeError` if an opened (not yet decoded) Pillow image declares more than
    ``max_pixels`` pixels or an empty size: checked from the header, before any pixel is decoded."""
    width, height = image.size
    if width < 1 or height < 1:
        raise DecodeError(f"{name}: the header declares an empty {width}x{height} picture")
    if width * height > max_pixels:
        raise DecodeError(f"{name}: the header declares {width}x{height} = {width * height} pixels, more than "
                          f"the limit of {max_pixels}")


def open_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
    """Open encoded image bytes with Pillow (header only) and check their declared size; Pillow's own
    decompression-bomb error and unreadable headers become :class:`DecodeError` naming ``name``."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"{name}: the header declares too many pixels ({exc})") from None
    except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError, struct errors...
        raise DecodeError(f"{name}: cannot read the image header: {exc}") from None
    try:
        check_image_header(image, name, max_pixels)
    except DecodeError:
        image.close()
        raise
    return image


def draft_for(image, out_w: int, out_h: int) -> None:
    """Let libjpeg decode a JPEG at a reduced scale (1/2 .. 1/8) when it is much larger than needed."""
    if image.format == "JPEG":
        scale = min(image.width / out_w, image.height / out_h)
        if scale >= 2:
            image.draft("RGB", (int(image.width / scale), int(image.height / scale)))


def load_image_bytes(data: bytes, size: Size, *, name: str = "<bytes>", require_jpeg: bool = True,
                     max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode encoded image bytes into uint8 ``[height, width, 3]`` RGB (short-side resize, centre crop).

    The header's size is checked against ``max_image_pixels`` before decoding; a JPEG much larger than
    the target is decoded at a reduced scale. Every failure is a :class:`DecodeError` naming ``name``.
    """
    out_h, out_w = _target_hw(size)
    if not data:
        raise DecodeError(f"{name}: zero bytes")
    with open_image(data, name, max_image_pixels) as image:
        if require_jpeg and image.format != "JPEG":
            raise DecodeError(f"{name}: not a JPEG (found {image.format or 'an unknown format'})")
        try:
            draft_for(image, out_w, out_h)
            image.load()
            return _resize_crop_pil(image, out_h, out_w)
        except Exception as exc:  # truncated data, a bad Huffman table, Pillow internals...
            raise DecodeError(f"{name}: cannot decode image: {exc}") from None


def load_cover(path: PathLike, size: Size, *, require_jpeg: bool = True,
               max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """uint8 ``[size, size, 3]`` RGB cover (short side resized to ``size``, centre-cropped).

    Raises:
      DecodeError: the file is missing, empty, truncated, corrupt or (with ``require_jpeg``) not a JPEG.
    """
    path = os.fspath(path)
    _check_file(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DecodeError(f"{path}: cannot read: {exc}") from None
    return load_image_bytes(data, size, name=path, require_jpeg=require_jpeg, max_image_pixels=max_image_pixels)


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """JPEG bytes (baseline, 4:2:0) of a uint8 RGB image ``[H, W, 3]`` (OpenCV's libjpeg-turbo: about
    twice as fast as Pillow's encoder at these sizes)."""
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return encoded.tobytes()


def decode_jpeg(data: bytes, *, name: str = "<bytes>",
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB from JPEG bytes, at the size stored (no resizing)."""
    with open_image(data, name, max_image_pixels) as image:
        try:
            return np.asarray(image.convert("RGB"))
        except Exception as exc:
            raise DecodeError(f"{name}: cannot decode JPEG: {exc}") from None


def decode_jpeg_frames(encoded: Iterable[bytes], *, name: str = "<frames>") -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` from ``T`` JPEG-encoded frames of the same size (the prepared shards)."""
    arrays = [decode_jpeg(data, name=f"{name}[{i}]") for i, data in enumerate(encoded)]
    if not arrays:
        raise DecodeError(f"{name}: no frames")
    return np.stack(arrays)


@dataclasses.dataclass(frozen=True)
class EncodedItem:
    """One item ready to store: JPEG-encoded cover and sampled frames (what preparation writes).

    Attributes:
      cover: JPEG bytes of the ``size x size`` cover.
      frames: ``num_frames`` JPEG byte strings of ``size x size`` frames (padded clips repeat the last).
      num_real: how many of ``frames`` are real.
      duration_s: the clip's duration in seconds.
    """

    cover: bytes
    frames: Tuple[bytes, ...]
    num_real: int
    duration_s: float


def encode_item(video_path: PathLike, cover_path: PathLike, num_frames: int, size: int,
                quality: int = DEFAULT_JPEG_QUALITY, *,
                max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> EncodedItem:
    """Sample, resize and JPEG-encode one item's clip and cover (runs in preparation worker processes).

    Raises:
      DecodeError: the clip or the cover cannot be decoded.
    """
    clip = sample_clip(video_path, num_frames, size)
    cover = load_cover(cover_path, size, max_image_pixels=max_image_pixels)
    frames = tuple(encode_jpeg(frame, quality) for frame in clip.frames)
    return EncodedItem(encode_jpeg(cover, quality), frames, clip.num_real, clip.duration_s)
