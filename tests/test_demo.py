import collections
import hashlib
import os
import re

import av
import numpy as np
import pytest
from PIL import Image

from data_download_tools import demo
from data_download_tools.demo import DemoConfig, make_demo_dataset, visual_families
from data_interface_for_model import LABELS, LayoutReader, read_info_file
from tests.conftest import SMALL_DEMO


def _digest(root):
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            digest.update(name.encode())
            with open(os.path.join(folder, name), "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(demo_root, tmp_path):
    again = str(tmp_path / "again")
    make_demo_dataset(again, DemoConfig(**{**SMALL_DEMO.__dict__, "workers": 1}))
    assert _digest(again) == _digest(demo_root)
    other = str(tmp_path / "other")
    make_demo_dataset(other, DemoConfig(**{**SMALL_DEMO.__dict__, "seed": 4, "per_category": 1}))
    assert _digest(other) != _digest(demo_root)


def test_every_clip_decodes_with_the_requested_frames_and_size(demo_root):
    items = list(LayoutReader(demo_root))
    assert len(items) == 31 * SMALL_DEMO.per_category
    for item in items:
        with av.open(item.video_path) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == item.record.duration_s * SMALL_DEMO.fps
        assert frames[0].shape == (SMALL_DEMO.height, SMALL_DEMO.width, 3)
        with Image.open(item.cover_path) as cover:
            assert cover.format == "JPEG"
            assert cover.size == (SMALL_DEMO.cover_width, SMALL_DEMO.cover_height)
        assert item.brief.strip()


def test_info_file_urls_follow_base_url(tmp_path):
    out = str(tmp_path / "d")
    make_demo_dataset(out, DemoConfig(**{**SMALL_DEMO.__dict__, "per_category": 1,
                                         "base_url": "http://127.0.0.1:9/data/"}))
    records, errors = read_info_file(os.path.join(out, "multimodal_data_info.json"))
    assert not errors and len(records) == 31
    alpha = next(r for r in records if r.label == "Alpha Channel")
    assert alpha.video_url == f"http://127.0.0.1:9/data/Alpha%20Channel/{alpha.mp4_id}/{alpha.mp4_id}.mp4"
    assert alpha.cover_url.endswith(".jpeg")


def test_visual_families_are_distinct_and_no_attribute_is_unique():
    families = visual_families()
    assert len(set(families.values())) == 31  # the triple identifies the category...
    for attribute in ("palette", "texture", "motion"):
        values = [getattr(f, attribute) for f in families.values()]
        # ...but no single attribute does: every value in use is shared by at least two categories
        shared_by = collections.Counter(values)
        assert min(shared_by.values()) >= 2, (attribute, shared_by)


def _words(text):
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def test_no_single_word_identifies_a_category():
    """The best one-word rule ("brief contains w -> label L") stays well short of identifying any category:
    its F1 score (precision and recall over 100 briefs per category) is below 0.75 for every word and label."""
    rng = np.random.default_rng(0)
    per_label = 100
    counts = collections.defaultdict(collections.Counter)  # word -> label -> briefs containing it
    for label in LABELS:
        for _ in range(per_label):
            for word in _words(demo._brief(label, rng)):
                counts[word][label] += 1
    best = (0.0, "", "")
    for word, labels in counts.items():
        total = sum(labels.values())
        for label, hits in labels.items():
            precision, recall = hits / total, hits / per_label
            best = max(best, (2 * precision * recall / (precision + recall), word, label))
    assert best[0] < 0.75, best
    # a word specific to one category exists (the text carries signal), it just does not decide alone
    assert max(hits / sum(labels.values()) for labels in counts.values() for hits in labels.values()) == 1.0


def test_demo_briefs_mix_category_keywords_with_shared_distractors(demo_root):
    records, _ = read_info_file(os.path.join(demo_root, "multimodal_data_info.json"))
    labels_with_distractor = {r.label for r in records if any(d in r.brief for d in demo.DISTRACTOR_WORDS)}
    assert len(labels_with_distractor) > 20
    keyword_owners = collections.defaultdict(set)
    for label, words in demo.CATEGORY_WORDS.items():
        for word in words:
            keyword_owners[word].add(label)
    assert sum(1 for owners in keyword_owners.values() if len(owners) > 1) >= 15


def test_config_validation():
    with pytest.raises(ValueError):
        DemoConfig(width=63)
    with pytest.raises(ValueError):
        DemoConfig(ambiguous_fraction=1.5)
    with pytest.raises(ValueError):
        DemoConfig(per_category=0)
