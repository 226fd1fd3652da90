"""retrieval: user tables (RecBole .user, CSV, parquet), their feature codes, the query tower's user-feature
embeddings, and a run trained with them (train -> run folder -> load -> evaluate)."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from retrieval.__main__ import main
from retrieval.interactions import InteractionFileError
from retrieval.users import UserTable, feature_codes, read_users, write_users
from tests.recommender_logs import write_tiny_log

import tensorflow as tf  # noqa: E402  (after the package import that sets the Keras switch)


def test_recbole_user_file_csv_and_parquet_read_alike(tmp_path):
    atomic = tmp_path / "ml.user"
    atomic.write_text("user_id:token\tage:float\tgender:token\n7\t25\tM\n2\t\tF\n")
    table = read_users(str(atomic))
    assert table.ids == ["7", "2"] and table.columns == {"age": ["25", ""], "gender": ["M", "F"]}
    csv_path = tmp_path / "users.csv"
    write_users(str(csv_path), table)
    assert read_users(str(csv_path)) == table
    pd.DataFrame({"uid": ["7", "2"], "age": ["25", None], "gender": ["M", "F"]}).to_parquet(tmp_path / "u.parquet")
    assert read_users(str(tmp_path / "u.parquet"), id_col="uid") == table
    assert read_users(str(atomic), columns=["gender"]).columns == {"gender": ["M", "F"]}


@pytest.mark.parametrize("text, column, message", [
    ("user_id,age\n1,3\n1,4\n", None, r"line 3: duplicate user id '1'"),
    ("user_id,age\n1,3\n2\n", None, r"line 3: 1 fields, expected 2"),
    ("uid,age\n1,3\n", None, r"no user id column 'user_id'.*--user-col"),
    ("user_id,age\n1,3\n", "job", r"no column 'job' \(have \['age'\]\)"),
    ("user_id\n1\n", None, r"no columns besides the user id"),
    ("user_id,age\n", None, r"no users"),
    ("user_id,age\n a b,3\n", None, r"line 2: .*user id"),
])
def test_bad_user_tables_are_refused_naming_the_line_or_column(tmp_path, text, column, message):
    path = tmp_path / "users.csv"
    path.write_text(text)
    with pytest.raises(InteractionFileError, match=message):
        read_users(str(path), columns=[column] if column else None)


def test_rare_and_empty_values_are_unknown_and_codes_are_stable():
    table = UserTable(["a", "b", "c", "d"], {"job": ["x", "y", "x", ""], "band": ["1", "1", "2", "1"]})
    codes, vocabularies = feature_codes(table, min_users=2)
    assert vocabularies == [["x"], ["1"]]  # y and 2 are held by one user each
    assert codes.tolist() == [[1, 1], [0, 1], [1, 0], [0, 1]]
    shuffled = UserTable(["d", "c", "b", "a"], {k: v[::-1] for k, v in table.columns.items()})
    assert feature_codes(shuffled, 2)[1] == vocabularies  # the vocabulary does not depend on the row order
    with pytest.raises(ValueError, match="min_users"):
        feature_codes(table, 0)


def test_user_feature_embedding_sums_one_vector_per_column_and_unknown_users_get_code_zero():
    from retrieval.towers import UserFeatureEmbedding

    table = UserTable(["a", "b", "c"], {"job": ["x", "y", "x"], "band": ["1", "2", "2"]})
    layer = UserFeatureEmbedding(table, dim=4, min_users=1)
    out = layer(tf.constant(["a", "c", "nobody"])).numpy()
    job, band = (e.embeddings.numpy() for e in layer.embeddings)
    # vocabularies: job [x, y], band [1, 2]; code = position + 1
    assert np.allclose(out[0], job[1] + band[1]) and np.allclose(out[1], job[1] + band[2])
    assert np.allclose(out[2], job[0] + band[0])


def test_query_tower_reads_user_features_and_needs_the_table():
    from retrieval.model import embed_queries
    from retrieval.towers import ContentLookup, QueryTower, TowerConfig

    content = ContentLookup(["i1", "i2"], np.eye(2, dtype=np.float32))
    users = UserTable(["a", "b"], {"job": ["x", "y"], "zip": ["1", "1"]})
    config = TowerConfig(embedding_dim=4, hidden_dims=(4,), user_features=("job",), user_feature_min_users=1)
    assert config.uses_user_ids and not TowerConfig().uses_user_ids
    tower = QueryTower(config, ["i1", "i2"], users=users)
    history = tf.constant([["i1", "i2"]] * 3)
    q = embed_queries(tower, content, history, tf.constant(["a", "b", "a"])).numpy()
    assert np.allclose(q[0], q[2]) and not np.allclose(q[0], q[1])  # same history, other job: another query
    assert len(tower.user_features.embeddings) == 1  # zip is not a chosen feature
    with pytest.raises(ValueError, match="need a user table"):
        QueryTower(config, ["i1", "i2"])


def _users_file(folder, listed, **extra):
    path = folder / "users.csv"
    path.write_text("user_id,band,gender\n" + "".join(f"u{u},b{u % 3},{'MF'[u % 2]}\n" for u in listed))
    return path


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """A run trained with user features (24 users, 22 of them in the table), through the command line."""
    folder = tmp_path_factory.mktemp("user_run")
    inter, catalog = write_tiny_log(folder, users=24, items=12, steps=8, stride=2)
    users = _users_file(folder, range(22))  # u22 and u23 are not listed: the unknown vectors
    run = str(folder / "run")
    assert main(["train", "--interactions", str(inter), "--items", str(catalog), "--users", str(users),
                 "--user-feature-min-users", "2", "--output", run, "--epochs", "2", "--embedding-dim", "8",
                 "--quiet"]) == 0
    return {"run": run, "users": str(users), "folder": folder}


def test_a_run_with_user_features_saves_and_loads_them(user_run, tmp_path):
    from retrieval.evaluate import TowerScorer
    from retrieval.rundir import load_run
    from retrieval.splits import EvalCase
    from retrieval.train import id_only_config

    run = user_run["run"]
    with open(os.path.join(run, "run.json")) as handle:
        info = json.load(handle)
    assert info["tower"]["user_features"] == ["band", "gender"] and info["id_only_tower"]["user_features"] == []
    assert info["summary"]["users_with_features"] == 22 and info["users_source"] == user_run["users"]
    loaded = load_run(run)
    assert loaded.users.ids[:2] == ["u0", "u1"] and list(loaded.users.columns) == ["band", "gender"]
    assert loaded.model.query.user_features is not None and loaded.id_only.query.user_features is None
    assert id_only_config(loaded.model.config).user_features == ()
    # two users with one history but other features get other scores; two with the same features the same
    history = tuple(f"i{n}" for n in range(5))
    scorer = TowerScorer("m", loaded.model, loaded.content, loaded.table.ids.tolist(), loaded.max_history)
    scores = scorer.scores([EvalCase("u0", history, "i6"), EvalCase("u1", history, "i6"),
                            EvalCase("u6", history, "i6")])
    assert not np.allclose(scores[0], scores[1]) and np.allclose(scores[0], scores[2])  # u6: b0, M as u0
    assert main(["evaluate", "--run", run, "--json", str(tmp_path / "eval.json")]) == 0
    with open(tmp_path / "eval.json") as handle:
        assert json.load(handle)["main"] == "two-tower bag (content + id + user features)"


def test_export_serves_the_user_term_in_its_own_signature(user_run, capsys):
    from retrieval.export import build_module, export_run
    from retrieval.rundir import load_run

    written = export_run(user_run["run"], str(user_run["folder"] / "export"), indexes=("bruteforce",), k=4)
    folder = written["recommender_bruteforce"]
    with open(os.path.join(folder, "assets.extra", "recommender.json")) as handle:
        meta = json.load(handle)
    assert meta["signatures"]["recommend_for_user"]["inputs"] == {"history": "string [batch, L]",
                                                                  "user_id": "string [batch]"}
    loaded = tf.saved_model.load(folder)
    assert set(loaded.signatures) == {"serving_default", "similar_items", "recommend_for_user"}
    history = tf.constant([["i1", "i2", "i3"]] * 3)
    users = tf.constant(["u0", "u1", "nobody"])
    served = loaded.signatures["recommend_for_user"](history=history, user_id=users)
    module = build_module(load_run(user_run["run"]), "bruteforce", k=4)
    direct = module.recommend_for_user(history, users)
    assert np.allclose(served["scores"].numpy(), direct["scores"].numpy(), atol=1e-5)
    assert not np.allclose(served["scores"].numpy()[0], served["scores"].numpy()[1])  # the user's term counts
    plain = loaded.signatures["serving_default"](history=history)["scores"].numpy()
    assert np.allclose(plain[0], plain[1])  # serving_default leaves it out
    assert main(["recommend", "--run", user_run["run"], "--user", "u0", "--k", "3"]) == 0
    assert "recommend: 3 items for user u0" in capsys.readouterr().out


def test_user_tables_that_cannot_serve_are_refused(tmp_path, capsys):
    inter, catalog = write_tiny_log(tmp_path, users=6, items=6, steps=6)
    common = ["train", "--interactions", str(inter), "--items", str(catalog), "--epochs", "1", "--quiet"]
    strangers = tmp_path / "strangers.csv"
    strangers.write_text("user_id,band\nx1,a\nx2,b\n")
    assert main(common + ["--users", str(strangers), "--output", str(tmp_path / "r1")]) == 2
    assert "lists none of the log's 6 users (log ids like 'u0', table ids like 'x1')" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r1")
    assert main(common + ["--user-features", "band", "--output", str(tmp_path / "r2")]) == 2
    assert "--user-features needs --users" in capsys.readouterr().err
    assert main(common + ["--users", str(_users_file(tmp_path, range(6))), "--user-features", "job",
                          "--output", str(tmp_path / "r3")]) == 2
    assert "no column 'job' (have ['band', 'gender'])" in capsys.readouterr().err
