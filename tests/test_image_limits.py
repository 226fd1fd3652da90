"""Hostile covers: a header declaring a huge picture is refused before decoding, Pillow's decompression-bomb
error and any other decode failure are the item's named error, and large covers decode at a reduced scale;
``prepare`` and ``check --deep`` go on past them."""
from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_download_tools.__main__ import main
from data_download_tools.verify import VerificationError, verify_cover
from data_interface_for_model import LayoutReader
from data_interface_for_model.decoding import DecodeError, load_cover, load_image_bytes
from data_interface_for_model.parallel import EncodeTask, run_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny valid JPEG whose frame header (SOF0) is patched to declare ``width x height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG", quality=50)
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_a_bomb_header_is_a_decode_error_not_pillows_exception(tmp_path):
    bomb = jpeg_declaring(20000, 20000)
    assert len(bomb) < 1000
    with pytest.raises(DecodeError, match="bomb.jpeg: .*(too many pixels|more than the limit)"):
        load_image_bytes(bomb, 112, name="bomb.jpeg")
    path = tmp_path / "bomb.jpeg"
    path.write_bytes(bomb)
    with pytest.raises(VerificationError, match="bomb.jpeg"):
        verify_cover(path)


def test_a_header_over_the_pixel_cap_is_refused_before_decoding(tmp_path):
    big = jpeg_declaring(6000, 6000)  # 36 MP: under Pillow's own limit, over ours
    with pytest.raises(DecodeError, match="6000x6000 = 36000000 pixels, more than the limit of 16777216"):
        load_image_bytes(big, 112, name="big.jpeg")
    path = tmp_path / "big.jpeg"
    path.write_bytes(big)
    with pytest.raises(VerificationError, match="more than the limit"):
        verify_cover(path)
    # the cap is configuration: with a higher one the header passes (and the picture decodes at 1/8 scale)
    assert load_image_bytes(big, 112, name="big.jpeg", max_image_pixels=40_000_000).shape == (112, 112, 3)
    with pytest.raises(DecodeError, match="zero.jpeg: cannot read the image header"):
        load_image_bytes(jpeg_declaring(0, 10), 112, name="zero.jpeg")


def test_verify_cover_decodes_a_large_cover_at_a_reduced_scale(tmp_path):
    path = str(tmp_path / "large.jpeg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (4000, 4000, 3), np.uint8)).save(path, quality=30)
    code = (
        "import resource, sys\n"
        "from data_download_tools.verify import verify_cover\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "verify_cover(sys.argv[1])\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    result = subprocess.run([sys.executable, "-c", code, path], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    grown_mb = int(result.stdout.strip())
    assert grown_mb < 16, grown_mb  # decoded in full it takes 48 MB (4000 x 4000 x 3)


def test_run_task_turns_every_failure_into_the_items_message(tmp_path, demo_root):
    item = next(iter(LayoutReader(demo_root)))
    bomb = tmp_path / "bomb.jpeg"
    bomb.write_bytes(jpeg_declaring(20000, 20000))
    result = run_task(EncodeTask(item.video_path, str(bomb), 2, 16))
    assert isinstance(result, str) and "bomb.jpeg" in result
    small_cap = run_task(EncodeTask(item.video_path, item.cover_path, 2, 16, max_image_pixels=100))
    assert isinstance(small_cap, str) and "more than the limit of 100" in small_cap
    assert not isinstance(run_task(EncodeTask(item.video_path, item.cover_path, 2, 16)), str)


def test_prepare_skips_hostile_covers_and_txt_and_builds_the_rest(demo_root, tmp_path):
    from data_interface_for_model.prepare import prepare_dataset

    root = str(tmp_path / "root")
    for label in ("Beach", "City", "Sea"):
        shutil.copytree(os.path.join(demo_root, label), os.path.join(root, label))
    items = list(LayoutReader(root))
    with open(items[0].cover_path, "wb") as handle:
        handle.write(jpeg_declaring(20000, 20000))
    with open(items[1].cover_path, "wb") as handle:
        handle.write(jpeg_declaring(6000, 6000))
    with open(items[2].txt_path, "w", encoding="utf-8") as handle:
        handle.write('{"mp4_id": ' + "1" * 5000 + "}")
    report = prepare_dataset(root, str(tmp_path / "tfds"), num_frames=2, size=16, workers=2, isolate=False,
                             progress=False)
    assert report.num_examples == len(items) - 3
    kinds = {os.path.basename(s["path"]): s["kind"] for s in report.skipped}
    assert kinds[items[0].mp4_id] == kinds[items[1].mp4_id] == "decode_error"
    assert kinds[os.path.basename(items[2].txt_path)] == "malformed_txt"


def test_check_deep_lists_hostile_covers_as_corrupt_and_goes_on(demo_copy, capsys):
    items = list(LayoutReader(demo_copy))
    with open(items[0].cover_path, "wb") as handle:
        handle.write(jpeg_declaring(20000, 20000))
    with open(items[1].cover_path, "wb") as handle:
        handle.write(jpeg_declaring(6000, 6000))
    assert main(["check", "--data-root", demo_copy, "--deep", "--workers", "2", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "2 corrupt files" in captured.out
    assert f"corrupt cover: {items[0].cover_path}" in captured.err
    assert f"corrupt cover: {items[1].cover_path}" in captured.err
    # the cap is a flag
    assert main(["check", "--data-root", demo_copy, "--deep", "--quiet", "--max-image-pixels", "100"]) == 1
    assert f"{len(items)} corrupt files" in capsys.readouterr().out
