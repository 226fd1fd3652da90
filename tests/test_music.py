"""Background-music matching: pairs, DecCM metrics and baselines, the TFRS matcher, export and the verbs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from data_interface_for_model import LABELS
from data_interface_for_model.embeddings_file import write_embeddings
from retrieval.music import metrics
from retrieval.music.library import LibraryError, MusicIndex, load_index, save_index, scan_library
from retrieval.music.pairs import (CATEGORY_MOODS, MOODS, DemoPairsConfig, PairsError, inverse_popularity,
                                   read_pairs, sample_negatives, simulate_pairs, split_pairs, write_pairs)


# ------------------------------------------------------------------------------------------- metrics
def test_ranks_count_ties_against_the_positive():
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(metrics.full_ranks(scores, np.array([0, 1])), [1, 4])
    np.testing.assert_array_equal(metrics.full_ranks(scores, np.array([1, 3])), [3, 4])
    negatives = np.array([[2, 3], [0, 2]])
    np.testing.assert_array_equal(metrics.sampled_ranks(scores, np.array([1, 1]), negatives), [2, 3])


def test_summary_recall_medr_weights_and_intervals():
    ranks = np.array([1, 2, 6, 20])
    out = metrics.summarize(ranks, weights=np.array([1.0, 1.0, 1.0, 5.0]))
    assert out["R@1"] == 0.25 and out["R@5"] == 0.5 and out["R@10"] == 0.75 and out["MedR"] == 4.0
    assert out["wR@10"] == pytest.approx(3 / 8)
    assert out["R@10_lo"] <= out["R@10"] <= out["R@10_hi"] and out["MedR_lo"] <= out["MedR"] <= out["MedR_hi"]


def test_baselines():
    train_rows = [0, 0, 0, 1, 2, 2]
    assert metrics.most_used_scores(2, train_rows, 4).argmax(axis=1).tolist() == [0, 0]
    # category A used mood "x" (tracks 1, 2); B used "y" (track 0): the prior follows the category, not usage
    prior = metrics.category_prior_scores(["A", "B", "C"], ["B", "B", "B", "A", "A", "A"], train_rows,
                                          ["y", "x", "x", "z"], 4)
    assert set(np.argsort(-prior[0])[:2]) == {1, 2} and prior[1].argmax() == 0
    assert prior[2].argmax() == 0  # unseen category: usage only
    random = metrics.random_scores(3, 4, seed=1)
    assert random.shape == (3, 4) and np.array_equal(random, metrics.random_scores(3, 4, seed=1))


def test_category_log_prior_is_a_distribution_following_the_category():
    train_rows = [0, 0, 0, 1, 2, 2]
    categories, table = metrics.category_log_prior(["B", "B", "B", "A", "A", "A"], train_rows,
                                                   ["y", "x", "x", "z"], 4)
    assert categories == ["A", "B"] and table.shape == (3, 4)
    np.testing.assert_allclose(np.exp(table).sum(axis=1), 1.0, rtol=1e-5)  # each row: P(track | category)
    assert set(np.argsort(-table[0])[:2]) == {1, 2} and table[1].argmax() == 0
    assert table[0, 2] > table[0, 1]  # within mood x, the track used more in training
    unseen = metrics.log_prior_scores(["A", "C"], categories, table)
    np.testing.assert_array_equal(unseen[0], table[0])
    np.testing.assert_allclose(np.exp(unseen[1]), (np.bincount(train_rows, minlength=4) + 1) / 10, rtol=1e-5)


def test_prior_weight_chosen_on_validation():
    from retrieval.music.config import BETA_GRID, MatcherConfig
    from retrieval.music.run import _choose_beta

    positives = np.array([0, 1])
    towers = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]])  # the towers alone rank both positives last
    prior = np.log(np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]]))
    beta, search = _choose_beta(MatcherConfig(), towers, prior, positives)
    assert [row["beta"] for row in search] == list(BETA_GRID) and search[0]["MedR"] == 3.0
    assert beta == 0.5  # the smallest weight that puts both positives first (0.25 does not)
    assert _choose_beta(MatcherConfig(prior_beta=0.0), towers, prior, positives)[0] == 0.0


# --------------------------------------------------------------------------------------------- pairs
def test_negatives_and_popularity_weights():
    negatives = sample_negatives([0, 3, 3], num_tracks=8, negatives=100, seed=0)
    assert negatives.shape == (3, 7)  # a library of 8 tracks has 7 negatives at most
    for pos, row in zip([0, 3, 3], negatives):
        assert pos not in row and len(set(row.tolist())) == 7
    assert sample_negatives([1], 200, 100).shape == (1, 100)
    weights = inverse_popularity([0, 1], train_rows=[0, 0, 0, 1], num_tracks=2)
    assert weights.mean() == pytest.approx(1.0) and weights[1] == pytest.approx(3 * weights[0])


def test_pairs_file_is_checked_and_named(tmp_path):
    path = str(tmp_path / "pairs.csv")
    write_pairs(path, [("v1", "m1"), ("v2", "m2")])
    assert read_pairs(path, ["v1", "v2"], ["m1", "m2"]) == [("v1", "m1"), ("v2", "m2")]
    with pytest.raises(PairsError, match="line 3: music 'm2'"):
        read_pairs(path, ["v1", "v2"], ["m1"])
    write_pairs(path, [("v1", "m1"), ("v1", "m2")])
    with pytest.raises(PairsError, match="'v1' already paired on line 2"):
        read_pairs(path, ["v1"], ["m1", "m2"])
    splits = split_pairs([(f"v{i}", "m") for i in range(50)], seed=0)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [40, 5, 5]


def test_every_category_has_moods_of_the_library():
    assert set(CATEGORY_MOODS) == set(LABELS)
    assert all(p in MOODS and s in MOODS and p != s and style in ("acoustic", "electronic")
               for p, s, style in CATEGORY_MOODS.values())


# ----------------------------------------------------------------------------- a small synthetic world
def synthetic_world(tmp_path, videos_per_category: int = 8, seed: int = 0):
    """Videos whose embeddings carry their category; tracks with moods; demo pairs; files on disk."""
    rng = np.random.default_rng(seed)
    labels = [label for label in LABELS for _ in range(videos_per_category)]
    centres = rng.standard_normal((len(LABELS), 24))
    video_vectors = np.stack([centres[LABELS.index(label)] for label in labels]) + 0.3 * rng.standard_normal(
        (len(labels), 24))
    ids = [f"v{i:04d}" for i in range(len(labels))]
    embeddings = str(tmp_path / "videos.npz")
    write_embeddings(embeddings, ids, labels, video_vectors.astype(np.float32))
    music_ids = np.array([f"{mood}_{style}_{n}" for mood in MOODS for style in ("acoustic", "electronic")
                          for n in range(3)])
    moods = np.array([m.split("_")[0] for m in music_ids])
    index = MusicIndex(music_ids, np.array([f"/music/{m}.opus" for m in music_ids]), moods,
                       np.array([""] * len(music_ids)), rng.standard_normal((len(music_ids), 16)).astype(np.float32),
                       rng.random((len(music_ids), 50)).astype(np.float32), "MTT_musicnn")
    index_path = str(tmp_path / "index.npz")
    save_index(index_path, index)
    pairs = simulate_pairs(ids, labels, video_vectors, index.ids, index.moods, index.vectors,
                           config=DemoPairsConfig(seed=seed))
    pairs_path = str(tmp_path / "pairs.csv")
    write_pairs(pairs_path, pairs)
    return embeddings, index_path, pairs_path, pairs, index


def test_demo_pairs_follow_the_category_moods_and_are_deterministic(tmp_path):
    _, _, _, pairs, index = synthetic_world(tmp_path)
    (tmp_path / "again").mkdir()
    again = synthetic_world(tmp_path / "again")[3]
    assert pairs == again
    labels = [label for label in LABELS for _ in range(8)]
    mood = index.mood_of()
    in_top_two = np.mean([mood[m] in CATEGORY_MOODS[label][:2] for label, (_, m) in zip(labels, pairs)])
    assert 0.6 < in_top_two < 0.98  # mostly the category's moods, not always
    assert len({m for _, m in pairs}) > len(index) // 2  # many tracks used


def test_index_file_round_trip_and_errors(tmp_path):
    _, index_path, _, _, index = synthetic_world(tmp_path)
    loaded = load_index(index_path)
    assert loaded.ids.tolist() == index.ids.tolist() and np.array_equal(loaded.vectors, index.vectors)
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_index(str(tmp_path / "nothing.npz"))
    empty = tmp_path / "empty_library"
    empty.mkdir()
    with pytest.raises(LibraryError, match="no audio files"):
        scan_library(str(empty))
    (empty / "calm").mkdir()
    (empty / "calm" / "a.wav").write_bytes(b"x")
    (empty / "b").mkdir()
    (empty / "b" / "a.opus").write_bytes(b"x")
    with pytest.raises(LibraryError, match="id 'a' used by"):
        scan_library(str(empty))


@pytest.mark.slow
def test_train_evaluate_recommend_export_through_the_verbs(tmp_path, capsys):
    from retrieval.music.cli import main
    from retrieval.music.export import check_export
    from retrieval.music.run import evaluate_run, load_run

    embeddings, index_path, pairs_path, _, _ = synthetic_world(tmp_path, videos_per_category=6)
    run = str(tmp_path / "run")
    assert main(["train", "--index", index_path, "--embeddings", embeddings, "--pairs", pairs_path,
                 "--output", run, "--epochs", "4", "--prior-beta", "0.5", "--label-dim", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best epoch" in out and "prior weight 0.5" in out
    for name in ("run.json", "music_index.npz", "pairs_test.csv", "test_negatives.npy", "video_popularity_test.npy",
                 "towers.weights.h5"):
        assert os.path.isfile(os.path.join(run, name)), name
    metrics_json = str(tmp_path / "metrics.json")
    assert main(["evaluate", "--run", run, "--split", "test", "--json", metrics_json, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "DecCM protocol" in table and "category-prior" in table and "most-used" in table
    result = json.load(open(metrics_json))
    full = result["full"]
    assert result["negatives"] == 29  # 30 tracks: every other track is a negative
    # the category is in the content, so the model learns at least the mood prior; random stays near chance
    assert full["two-tower"]["R@10"] > full["random"]["R@10"]
    assert full["two-tower"]["MedR"] < full["random"]["MedR"]
    assert "towers only" in full  # the towers without the prior, beside the matcher as chosen
    loaded = load_run(run)
    assert evaluate_run(loaded, "test")["full"]["two-tower"]["R@10"] == pytest.approx(full["two-tower"]["R@10"])
    # the score is the towers' logit plus beta * log P(track | category), the prior fitted on training pairs
    rows, _ = loaded.rows("test")
    vectors, labels = loaded.videos.vectors[rows], loaded.videos.labels[rows]
    from retrieval.music.model import score_matrix

    towers = score_matrix(loaded.model, vectors, loaded.index.vectors, labels) / 0.1
    train_rows, train_tracks = loaded.rows("train")
    categories, table = metrics.category_log_prior(loaded.videos.labels[train_rows], train_tracks,
                                                   loaded.index.moods, len(loaded.index))
    np.testing.assert_allclose(loaded.scores(vectors, labels),
                               towers + 0.5 * metrics.log_prior_scores(labels, categories, table), atol=1e-4)
    with pytest.raises(ValueError, match="categories"):
        loaded.scores(vectors)

    video = loaded.splits["test"][0][0]
    assert main(["recommend", "--run", run, "--video", video, "--k", "3", "--quiet"]) == 0
    assert "recommend: 3 tracks" in capsys.readouterr().out
    assert main(["recommend", "--run", run, "--video", "nope", "--quiet"]) == 2
    assert "error: video 'nope'" in capsys.readouterr().err

    base = str(tmp_path / "models")
    assert main(["export", "--run", run, "--model-base", base, "--k", "5", "--quiet"]) == 0
    path = os.path.join(base, "music_matcher", "1")
    row = loaded.videos.index_of()[video]
    from retrieval.music.run import recommend

    # the signature takes the video's category too (label embedding + prior); the warm-up file carries it
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["recommend_music"]
    assert set(signature.structured_input_signature[1]) == {"video_embedding", "video_label"}
    assert os.path.isfile(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    out = check_export(path, loaded.videos.vectors[[row]], loaded.videos.labels[[row]])
    ids, scores = recommend(loaded, loaded.videos.vectors[[row]], loaded.videos.labels[[row]], k=5)
    assert out["music_ids"].astype(str).tolist() == ids.tolist()
    np.testing.assert_allclose(out["scores"], scores, atol=1e-5)
    assert main(["export", "--run", run, "--model-base", base, "--version", "1", "--quiet"]) == 2  # immutable
    assert "already exists" in capsys.readouterr().err

    # content only (no label embedding, prior weight 0): the signature takes the embedding alone (untrained
    # towers of the same run: what is checked is the signature and that it scores like `recommend`)
    import dataclasses

    from retrieval.music.config import MatcherConfig
    from retrieval.music.export import MusicMatcherModule
    from retrieval.music.model import build_matcher

    config = MatcherConfig(prior_beta=0.0)
    stats = lambda key: tuple(np.asarray(v, np.float32) for v in loaded.info[key])  # noqa: E731
    plain_run = dataclasses.replace(loaded, info={**loaded.info, "prior_beta": 0.0,
                                                  "config": dataclasses.asdict(config)},
                                    model=build_matcher(loaded.info["video_dim"], loaded.info["music_dim"], config,
                                                        stats("video_stats"), stats("music_stats")))
    assert not plain_run.uses_label
    module = MusicMatcherModule(plain_run, k=10)
    assert module.recommend_music.input_signature[0].name == "video_embedding"
    assert len(module.recommend_music.input_signature) == 1
    out = {k: v.numpy() for k, v in module.recommend_music(tf.constant(loaded.videos.vectors[[row]])).items()}
    np.testing.assert_allclose(out["scores"], recommend(plain_run, loaded.videos.vectors[[row]], k=10)[1],
                               atol=1e-5)


def test_verbs_reject_bad_input(tmp_path, capsys):
    from retrieval.music.cli import main

    embeddings, index_path, pairs_path, _, _ = synthetic_world(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,music_id\nv0000,not_a_track\n")
    assert main(["train", "--index", index_path, "--embeddings", embeddings, "--pairs", str(bad),
                 "--output", str(tmp_path / "run"), "--quiet"]) == 2
    assert "line 2: music 'not_a_track'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["evaluate", "--run", str(tmp_path / "missing"), "--quiet"]) == 2
    assert main(["index", "--library", str(tmp_path / "nowhere"), "--output", str(tmp_path / "i.npz"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.slow
def test_index_real_tracks(tmp_path, capsys, monkeypatch):
    """Three real tracks (their first 3 s) through PyAV and musicnn; a corrupt file is named and left out."""
    import shutil

    monkeypatch.setenv("XINPIANCHANG_CACHE", str(tmp_path / "cache"))  # converted weights stay in the test's folder

    from retrieval.music.cli import main
    from retrieval.music.library import immich_library_dir

    library = tmp_path / "library"
    for mood, name in (("calm", "calm_acoustic_s411"), ("energetic", "energetic_electronic_s411"),
                       ("tender", "tender_acoustic_2")):
        (library / mood).mkdir(parents=True)
        shutil.copy(os.path.join(immich_library_dir(), mood, f"{name}.opus"), library / mood)
    (library / "calm" / "broken.opus").write_bytes(b"OggS" + bytes(300))
    out = str(tmp_path / "index.npz")
    assert main(["index", "--library", str(library), "--output", out, "--max-seconds", "3", "--quiet"]) == 0
    assert "3 tracks (1 left out)" in capsys.readouterr().out
    index = load_index(out)
    assert index.moods.tolist() == ["calm", "energetic", "tender"] and index.vectors.shape == (3, 200)
    sims = np.corrcoef(index.vectors)
    assert sims[0, 2] > sims[0, 1]  # two acoustic tracks are closer than acoustic and electronic
