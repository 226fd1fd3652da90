"""`classifier embed --items`: catalog items with a title and/or a cover but no video get embeddings from the
run's own text and image encoders, in the usual embeddings file, usable by `recommender train`."""

import numpy as np
import pytest
from PIL import Image

from baseline_model.__main__ import main as classifier_cli
from data_interface_for_model.embeddings_file import read_embeddings
from tests.test_predict import tiny_run  # noqa: F401  (the untrained seed_baseline run fixture)


def _catalog(folder, rows, header="id,title,cover,label"):
    covers = folder / "covers"
    covers.mkdir(exist_ok=True)
    for colour, name in (((250, 20, 20), "red.png"), ((20, 20, 250), "blue.jpg")):
        Image.new("RGB", (48, 40), colour).save(covers / name)
    path = folder / "items.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def test_items_without_video_get_embeddings_any_label_set(tiny_run, tmp_path, capsys):  # noqa: F811
    from retrieval.train import DataSource, load_items

    items = _catalog(tmp_path, ["m1,a dog on a beach,covers/red.png,comedy", "m2,a dog on a beach,,comedy",
                                "m3,,covers/red.png,", "m4,a cat,covers/blue.jpg,noir",
                                "m5,a dog on a beach,covers/red.png,"])
    out = str(tmp_path / "items.parquet")
    assert classifier_cli(["embed", "--run", tiny_run, "--items", items, "--output", out, "--quiet",
                           "--batch-size", "3"]) == 0
    assert "wrote 5 item embeddings" in capsys.readouterr().out
    table = read_embeddings(out)
    assert table.ids.tolist() == ["m1", "m2", "m3", "m4", "m5"]
    assert table.labels.tolist() == ["comedy", "comedy", "", "noir", ""]  # labels outside the 31, or none
    vectors = table.vectors
    assert np.isfinite(vectors).all()
    # Title and cover both count: dropping either changes the vector; an item's vector does not depend on
    # its batch (m5, in the second batch, is m1's title and cover).
    assert not np.allclose(vectors[0], vectors[1]) and not np.allclose(vectors[0], vectors[2])
    assert np.allclose(vectors[0], vectors[4], atol=1e-5)
    # The file is what `recommender train --embeddings` reads.
    loaded, _, kind = load_items(DataSource(interactions="unused.csv", embeddings=out))
    assert kind == "embeddings" and loaded.ids.tolist() == table.ids.tolist()


@pytest.mark.parametrize("rows,header,match", [
    (["m1,a dog,,", "m1,a cat,,"], "id,title,cover,label", r"line 3: id 'm1' repeats line 2"),
    (["m1,,,"], "id,title,cover,label", r"line 2: item 'm1' has neither a title nor a cover"),
    (["m1,a dog,covers/missing.png,"], "id,title,cover,label", r"line 2: item 'm1': cover .*missing.png does not exist"),
    (["m 1,a dog,,"], "id,title,cover,label", r"line 2: id 'm 1' holds whitespace"),
    ([",a dog,,"], "id,title,cover,label", r"line 2: empty id"),
    (["m1,a dog"], "name_of_item,title", r"needs an id column"),
    (["m1,x"], "id,colour", r"needs a title column .* and/or a cover column"),
])
def test_bad_items_are_named_and_nothing_is_written(tiny_run,  # noqa: F811
                                                       tmp_path, capsys, rows, header, match):
    import re

    out = tmp_path / "items.parquet"
    code = classifier_cli(["embed", "--run", tiny_run, "--items", _catalog(tmp_path, rows, header),
                           "--output", str(out), "--quiet"])
    assert code == 2 and re.search(match, capsys.readouterr().err)
    assert not out.exists() and not any(p.name.startswith(".items") for p in tmp_path.iterdir())


def test_a_corrupt_cover_is_named(tiny_run, tmp_path, capsys):  # noqa: F811
    items = _catalog(tmp_path, ["m1,a dog,covers/broken.jpg,"])
    (tmp_path / "covers" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "items.parquet"
    assert classifier_cli(["embed", "--run", tiny_run, "--items", items, "--output", str(out), "--quiet"]) == 2
    assert "line 2: item 'm1'" in capsys.readouterr().err and not out.exists()


def test_embed_needs_exactly_one_source(tiny_run, tmp_path, capsys):  # noqa: F811
    items = _catalog(tmp_path, ["m1,a dog,,"])
    assert classifier_cli(["embed", "--run", tiny_run, "--items", items, "--input", items,
                           "--output", str(tmp_path / "x.parquet")]) == 2
    assert "--items ITEMS.csv" in capsys.readouterr().err
