"""`predict` over any folder of videos: optional covers and briefs, corrupt files named, skipped, counted."""
import csv
import glob
import json
import os
import shutil

import pytest

from baseline_model.__main__ import main as baseline_cli
from baseline_model.config import TrainConfig, save_run_config
from baseline_model.kinds import SeedBaselineConfig
from baseline_model.predict import iter_inputs, read_brief
from data_interface_for_model.embeddings_file import read_embeddings

LABELS = ["cats", "dogs", "foxes"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained seed_baseline run with three labels of its own (predict needs no training to be tested)."""
    from baseline_model.models import build_seed_baseline

    run_dir = str(tmp_path_factory.mktemp("run"))
    config = SeedBaselineConfig(num_frames=2, image_size=32, conv3d_blocks=1)
    model = build_seed_baseline(config, ["a dog on a beach", "a cat"], num_classes=len(LABELS))
    save_run_config(run_dir, config, TrainConfig(output=run_dir), LABELS)
    model.save(os.path.join(run_dir, "model.keras"))
    return run_dir


@pytest.fixture
def videos(demo_root, tmp_path):
    """Four demo clips: full (cover + JSON brief), no cover, no brief (text sidecar removed), and a corrupt one."""
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    items = sorted(glob.glob(os.path.join(demo_root, "*", "*")))[:3]
    for item, name in zip(items, ("full", "nocover", "nobrief")):
        stem = os.path.basename(item)
        target = folder / ("sub" if name == "nobrief" else "") / f"{name}.mp4"
        shutil.copy(os.path.join(item, stem + ".mp4"), target)
        if name != "nocover":
            shutil.copy(os.path.join(item, stem + ".jpeg"), target.with_suffix(".jpeg"))
        if name != "nobrief":
            shutil.copy(os.path.join(item, stem + ".txt"), target.with_suffix(".txt"))
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    (folder / "notes.md").write_text("not a video")
    return str(folder)


def test_inputs_from_folders_globs_and_lists(videos, tmp_path):
    found = {i.item_id: i for i in iter_inputs([videos])}
    assert sorted(found) == ["broken", "full", "nobrief", "nocover"]
    assert found["full"].cover and found["nocover"].cover is None
    assert read_brief(found["full"]) and read_brief(found["nobrief"]) == ""
    listing = tmp_path / "list.csv"
    listing.write_text("path,id,brief\nclips/full.mp4,x1,a brief from the CSV\n", encoding="utf-8")
    (item,) = list(iter_inputs([str(listing)]))
    assert item.item_id == "x1" and read_brief(item) == "a brief from the CSV"
    assert [i.item_id for i in iter_inputs([os.path.join(videos, "**", "no*.mp4")])] == ["nocover", "nobrief"]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        list(iter_inputs([str(tmp_path / "nothing-here")]))


@pytest.mark.slow
def test_predict_writes_every_readable_clip_and_exits_1_for_the_corrupt_one(tiny_run, videos, tmp_path, capsys):
    out, vectors = str(tmp_path / "pred.csv"), str(tmp_path / "emb.parquet")
    rc = baseline_cli(["predict", "--run", tiny_run, "--input", videos, "--output", out, "--top-k", "2",
                       "--embeddings", vectors, "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "broken.mp4" in captured.err and "predict: 3 clips" in captured.out and "1 unreadable" in captured.out
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["id"] for r in rows) == ["full", "nobrief", "nocover"]
    for row in rows:
        assert row["label"] in LABELS and len(row["top_labels"].split(";")) == 2
        assert 0.0 <= float(row["probability"]) <= 1.0
    table = read_embeddings(vectors)
    assert sorted(table.ids.tolist()) == ["full", "nobrief", "nocover"] and table.dimension == 100


@pytest.mark.slow
def test_predict_json_lines_and_embed_from_videos(tiny_run, videos, tmp_path):
    os.remove(os.path.join(videos, "broken.mp4"))
    out = str(tmp_path / "pred.jsonl")
    assert baseline_cli(["predict", "--run", tiny_run, "--input", videos, "--output", out, "--quiet"]) == 0
    with open(out, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    assert len(rows) == 3 and all(len(r["top_k"]) == 3 for r in rows)  # top-5 capped at the 3 labels
    emb = str(tmp_path / "emb.parquet")
    assert baseline_cli(["embed", "--run", tiny_run, "--input", videos, "--output", emb, "--quiet"]) == 0
    assert len(read_embeddings(emb)) == 3
    assert baseline_cli(["predict", "--run", tiny_run, "--input", videos, "--output", str(tmp_path / "x.xml")]) == 2
