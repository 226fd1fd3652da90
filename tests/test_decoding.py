"""Frame sampling, resizing and decode errors, on clips whose frame index is written in the pixels."""
from __future__ import annotations

import numpy as np
import pytest

from data_download_tools.demo import encode_h264
from data_interface_for_model import decoding
from data_interface_for_model.decoding import DecodeError, load_cover, sample_clip, sample_frames

STEP = 8  # grey level per frame index: frame i is a flat grey of 10 + STEP * i


def _index_clip(path, num_frames, fps=10, width=64, height=48):
    frames = np.stack([np.full((height, width, 3), 10 + STEP * i, np.uint8) for i in range(num_frames)])
    encode_h264(frames, str(path), fps)
    return str(path)


def _indices(frames):
    return [int(round((float(f.mean()) - 10) / STEP)) for f in frames]


def test_uniform_sampling_by_timestamp_covers_the_whole_clip(tmp_path):
    path = _index_clip(tmp_path / "c.mp4", 30, fps=10)  # 3 s
    frames, real = sample_frames(path, 5, 32)
    assert frames.dtype == np.uint8 and frames.shape == (5, 32, 32, 3)
    assert real == 5
    # segment centres 0.3, 0.9, 1.5, 2.1, 2.7 s -> frames 3, 9, 15, 21, 27 (not the first five frames)
    assert _indices(frames) == [3, 9, 15, 21, 27]


def test_sampling_more_frames_stays_ordered_and_spans_the_clip(tmp_path):
    path = _index_clip(tmp_path / "c.mp4", 30, fps=10)
    clip = sample_clip(path, 10, 16)
    idx = _indices(clip.frames)
    assert idx == sorted(idx) and len(set(idx)) == 10
    assert idx[0] <= 2 and idx[-1] >= 27
    assert clip.duration_s == pytest.approx(3.0, abs=0.15)
    assert (clip.source_width, clip.source_height) == (64, 48)


def test_short_clip_is_padded_with_its_last_frame(tmp_path):
    path = _index_clip(tmp_path / "short.mp4", 3, fps=10)
    frames, real = sample_frames(path, 8, 16)
    assert frames.shape == (8, 16, 16, 3)
    assert real == 3
    assert _indices(frames) == [0, 1, 2, 2, 2, 2, 2, 2]


def test_exactly_t_frames_are_all_used(tmp_path):
    path = _index_clip(tmp_path / "eight.mp4", 8, fps=8)
    frames, real = sample_frames(path, 8, 16)
    assert real == 8 and _indices(frames) == list(range(8))


def _centre_marked(width, height, value=250):
    """Black picture with a white centred square of side min(width, height)."""
    image = np.zeros((height, width, 3), np.uint8)
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    image[top:top + side, left:left + side] = value
    return image


def test_resize_keeps_aspect_ratio_and_centre_crops(tmp_path):
    frames = np.stack([_centre_marked(96, 48)] * 4)  # 2:1 wide, the central 48x48 square is white
    path = str(tmp_path / "wide.mp4")
    encode_h264(frames, path, 4)
    out, _ = sample_frames(path, 2, 24)
    assert out.shape == (2, 24, 24, 3)
    # squashing the whole frame into 24x24 would bring black borders in; a short-side resize + crop does not
    assert out[:, 2:-2, 2:-2].min() > 200
    rect = decoding.sample_clip(path, 1, (12, 36)).frames  # (height, width) target
    assert rect.shape == (1, 12, 36, 3)


def test_cover_resize_and_crop(tmp_path):
    cover = tmp_path / "tall.jpeg"
    cover.write_bytes(decoding.encode_jpeg(_centre_marked(40, 120), quality=95))  # tall 1:3
    image = load_cover(cover, 20)
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    assert image[2:-2, 2:-2].min() > 200
    big = tmp_path / "big.jpeg"  # large enough for the reduced-scale JPEG decode path
    big.write_bytes(decoding.encode_jpeg(_centre_marked(800, 400), quality=95))
    assert load_cover(big, 32)[3:-3, 3:-3].min() > 200


def test_jpeg_round_trip_helpers():
    ramp = np.linspace(40, 200, 16)
    frames = np.stack([np.stack([*np.meshgrid(ramp, ramp), np.full((16, 16), 30.0 * i)], -1) for i in range(3)])
    frames = frames.astype(np.uint8)
    decoded = decoding.decode_jpeg_frames([decoding.encode_jpeg(f, quality=100) for f in frames])
    assert decoded.shape == (3, 16, 16, 3)
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3


@pytest.mark.parametrize("kind", ["missing", "zero", "garbage", "truncated"])
def test_bad_videos_raise_decode_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "truncated":
        good = _index_clip(tmp_path / "good.mp4", 20)
        data = open(good, "rb").read()
        path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError, match=str(path.name)):
        sample_frames(path, 4, 16)


def test_no_video_stream_raises(tmp_path):
    import av

    path = str(tmp_path / "audio_only.mp4")
    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        for _ in range(4):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(DecodeError, match="no video stream"):
        sample_frames(path, 4, 16)


def test_bad_covers_raise_decode_error(tmp_path):
    from PIL import Image

    png = tmp_path / "cover.jpeg"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png, format="PNG")
    with pytest.raises(DecodeError, match="not a JPEG"):
        load_cover(png, 8)
    assert load_cover(png, 8, require_jpeg=False).shape == (8, 8, 3)
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty.jpeg: zero bytes"):
        load_cover(empty, 8)
    truncated = tmp_path / "trunc.jpeg"
    data = decoding.encode_jpeg(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="trunc.jpeg"):
        load_cover(truncated, 8)
    with pytest.raises(DecodeError, match="nothing.jpeg"):
        load_cover(tmp_path / "nothing.jpeg", 8)
    assert issubclass(DecodeError, ValueError)


def test_demo_clip_real_data(demo_root):
    from data_interface_for_model import LayoutReader

    item = next(iter(LayoutReader(demo_root)))
    clip = sample_clip(item.video_path, 8, 32)
    assert clip.frames.shape == (8, 32, 32, 3) and clip.num_real == 8
    assert 0.9 <= clip.duration_s <= 2.1
    assert load_cover(item.cover_path, 32).shape == (32, 32, 3)
