"""retrieval: towers, training, evaluation, indexes, export and the CLI, on a tiny synthetic catalog."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from data_interface_for_model.embeddings_file import write_embeddings
from retrieval.__main__ import build_parser, main
from retrieval.interactions import SimulationConfig, simulate_interactions, write_interactions
from tests.test_retrieval_data import synthetic_table

import tensorflow as tf  # noqa: E402  (after the package import that sets the Keras switch)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(embeddings path, interactions path, run dir): 124 items x 16-d, 150 users, 3 epochs, trained through
    the command line."""
    folder = tmp_path_factory.mktemp("retrieval")
    table = synthetic_table(per_label=4, dim=16)
    emb = str(folder / "emb.npz")
    write_embeddings(emb, table.ids, table.labels, table.vectors)
    seqs = simulate_interactions(table, SimulationConfig(users=150, min_length=6, max_length=12, seed=1))
    seqs["ghost"] = ["99999999", table.ids[0], "88888888"]  # unknown items; then too short
    inter = str(folder / "inter.csv")
    write_interactions(inter, seqs)
    run = str(folder / "run")
    assert main(["train", "--embeddings", emb, "--interactions", inter, "--output", run, "--epochs", "3",
                 "--batch-size", "64", "--max-history", "5", "--embedding-dim", "16", "--cold-fraction", "0.1",
                 "--tower", "bag", "--quiet"]) == 0
    with open(os.path.join(run, "run.json")) as handle:
        summary = json.load(handle)["summary"]
    return {"emb": emb, "inter": inter, "run": str(folder / "run"), "summary": summary, "table": table,
            "folder": folder}


def test_towers_have_the_documented_shapes():
    from retrieval.model import embed_items, embed_queries
    from retrieval.towers import CandidateTower, ContentLookup, QueryTower, TowerConfig

    ids = ["a", "b", "c"]
    content = ContentLookup(ids, np.eye(3, 6, dtype=np.float32))
    config = TowerConfig(embedding_dim=8, hidden_dims=(12,), use_user_id=True, query="bag")
    query = QueryTower(config, ["a", "b"], ["u1"])
    candidate = CandidateTower(config, ["a", "b"])
    vectors, known = content(tf.constant([["a", "", "zz"]]))
    assert vectors.shape == (1, 3, 6) and known.numpy().tolist() == [[True, False, False]]
    q = embed_queries(query, content, tf.constant([["a", "b", ""], ["", "", ""], ["zz", "c", "a"]]),
                      tf.constant(["u1", "u2", "u1"]))
    c = embed_items(candidate, content, tf.constant(["a", "c", "new"]))
    assert q.shape == (3, 8 + 6) and c.shape == (3, 8 + 6)  # E + D with the content skip
    assert np.allclose(np.linalg.norm(c.numpy(), axis=1), 1, atol=1e-5)
    assert np.isfinite(q.numpy()).all()  # an all-padding history still gives a finite query
    for kind in ("gru", "sasrec"):  # the sequential query towers over the same item encoder
        seq_config = TowerConfig(embedding_dim=8, hidden_dims=(12,), query=kind, max_positions=2)
        seq = QueryTower(seq_config, ["a", "b"])
        out = embed_queries(seq, content, tf.constant([["a", "b", "c"], ["", "", ""], ["", "zz", "a"]]))
        assert out.shape == (3, 8 + 6) and np.isfinite(out.numpy()).all(), kind
        changed = embed_queries(seq, content, tf.constant([["b", "a", "c"]]))  # order matters
        assert not np.allclose(out.numpy()[0], changed.numpy()[0]), kind
    with pytest.raises(ValueError, match="unknown query tower 'lstm'"):
        TowerConfig(query="lstm")
    plain = TowerConfig(embedding_dim=8, hidden_dims=(), content_skip=False)
    q2 = embed_queries(QueryTower(plain, ["a"]), content, tf.constant([["a", ""]]))
    c2 = embed_items(CandidateTower(plain, ["a"]), content, tf.constant(["a", "b"]))
    assert q2.shape == (1, 8) and c2.shape == (2, 8)


def test_a_short_training_lowers_the_loss_and_skips_bad_rows(trained):
    summary = trained["summary"]
    with open(os.path.join(trained["run"], "run.json")) as handle:
        losses = json.load(handle)["history"]["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert summary["validation"]["users"] == 150 and 0 < summary["validation"]["NDCG@10"] <= 1
    logs = os.path.join(trained["run"], "tensorboard", "two_tower", "train")
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(logs))
    assert summary["skipped_unknown_item_interactions"] == 2 and summary["skipped_short_users"] == 1
    assert summary["users"] == 150 and summary["cold_items"] == 12


def test_evaluation_ranks_all_methods_on_the_same_split(trained):
    from retrieval.evaluate import evaluate_run
    from retrieval.rundir import load_run

    run = load_run(trained["run"])
    result = evaluate_run(run, progress=False)
    assert result["main"] == "two-tower bag (content + id)"
    methods = {"two-tower bag (content + id)", "content-only cosine", "most popular", "id-only two-tower",
               "item-to-item Markov", "item-kNN cosine", "EASE"}
    assert set(result["all"]) == methods and set(result["cold_start"]) == methods
    assert result["settings"]["EASE"] == {"l2": result["settings"]["EASE"]["l2"], "items": 124}
    assert result["settings"]["EASE"]["l2"] in (1.0, 10.0, 100.0, 1000.0)
    for row in result["all"].values():
        assert row["users"] == 150
        assert 0 <= row["HR@10"] <= row["HR@20"] <= row["HR@50"] <= 1
    # Users are category-focused: content beats popularity, and the trained model beats chance (10/124).
    assert result["all"]["content-only cosine"]["HR@10"] > result["all"]["most popular"]["HR@10"]
    assert result["all"]["two-tower bag (content + id)"]["HR@10"] > 0.15
    # Cold targets: the two-tower model reaches them through content; the ID-only model cannot tell them apart.
    cold = result["cold_start"]
    assert cold["two-tower bag (content + id)"]["HR@50"] > cold["id-only two-tower"]["HR@50"]
    # warm: the warm-target cases, each ranked among the training items only
    warm = result["warm"]
    assert set(warm) == methods
    assert all(r["users"] == 150 - cold["id-only two-tower"]["users"] for r in warm.values())
    from retrieval.evaluate import TowerScorer, case_ranks

    catalog = run.table.ids.astype(str).tolist()
    row = {item: n for n, item in enumerate(catalog)}
    cold_columns = np.asarray([item in run.split.cold_items for item in catalog])
    cases = [c for c in run.split.test if c.target not in run.split.cold_items]
    scorer = TowerScorer(result["main"], run.model, run.content, catalog, run.max_history)
    ranks, warm_ranks = case_ranks(scorer, cases, row, chunk=7, left_out=cold_columns)
    scores = scorer.scores(cases)
    expected = [sum(1 for j, item in enumerate(catalog) if not cold_columns[j] and item not in c.history
                    and item != c.target and scores[n, j] >= scores[n, row[c.target]])
                for n, c in enumerate(cases)]
    assert warm_ranks.tolist() == expected and (warm_ranks <= ranks).all() and (warm_ranks < ranks).any()
    assert np.isclose(warm[result["main"]]["HR@10"], np.mean(warm_ranks < 10))
    # every figure has its interval over the users, and the model's lead over each method a paired one
    for population in ("all", "cold_start", "warm"):
        assert list(result["intervals"][population]) == ["HR@10", "NDCG@10", "HR@50"]
        for metric in ("HR@10", "NDCG@10", "HR@50"):
            entries = result["intervals"][population][metric]
            assert set(entries) == methods
            for name, entry in entries.items():
                lo, hi = entry["interval"]
                assert lo <= result[population][name][metric] <= hi
                if name != result["main"]:
                    d_lo, d_hi = entry["difference_interval"]
                    assert d_lo <= entry["difference"] <= d_hi
                    assert np.isclose(entry["difference"], result[population][result["main"]][metric]
                                      - result[population][name][metric])
            assert "difference" not in entries[result["main"]]


def test_scann_and_bruteforce_agree_on_a_small_index():
    from retrieval.indexes import build_index

    rng = np.random.default_rng(0)
    candidates = rng.standard_normal((300, 16)).astype(np.float32)
    ids = [f"i{n}" for n in range(300)]
    queries = tf.constant(rng.standard_normal((20, 16)).astype(np.float32))
    brute_scores, brute_ids = build_index("bruteforce", candidates, ids, 10)(queries)
    scann_scores, scann_ids = build_index("scann", candidates, ids, 10)(queries)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(brute_ids.numpy(), scann_ids.numpy())])
    assert overlap >= 0.95
    assert np.allclose(brute_scores.numpy()[:, 0], scann_scores.numpy()[:, 0], atol=1e-4)
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index("annoy", candidates, ids, 10)


def test_adding_an_item_makes_it_retrievable(trained):
    from retrieval.export import build_module
    from retrieval.model import embed_items, embed_queries
    from retrieval.rundir import load_run

    run = load_run(trained["run"])
    module = build_module(run, "bruteforce", k=10)
    history = [run.split.test[0].history]
    first = module.query(history)["item_ids"][0]
    # A new item with the content of the current top item, under an id never seen in training.
    twin = first[0]
    vector = run.table.vectors[run.table.ids.tolist().index(twin)]
    bigger = module.with_items(["77777777"], vector[None, :])
    assert len(bigger.catalog_ids) == len(module.catalog_ids) + 1
    out = bigger.query(history)
    assert "77777777" in out["item_ids"][0].tolist()
    # Its score is the query tower . candidate tower (content + OOV id) product: indexed from content alone.
    recent = tf.constant([[""] * (run.max_history - len(history[0][-run.max_history:]))
                          + list(history[0][-run.max_history:])])
    q = embed_queries(run.model.query, bigger.content, recent).numpy()[0]
    c = embed_items(run.model.candidate, bigger.content, tf.constant(["77777777"])).numpy()[0]
    position = out["item_ids"][0].tolist().index("77777777")
    assert out["scores"][0][position] == pytest.approx(float(q @ c), abs=1e-4)
    # History items are never recommended back.
    assert not set(out["item_ids"][0].tolist()) & set(history[0][-run.max_history:])


_LOAD_SCRIPT = """
import json, sys
import tensorflow as tf

def ask(path):
    model = tf.saved_model.load(path)
    rec = model.signatures["serving_default"](history=tf.constant([[sys.argv[3], sys.argv[4], ""], ["", "", "nope"]]))
    sim = model.signatures["similar_items"](item_id=tf.constant([sys.argv[3]]))
    return {"ids": rec["item_ids"].numpy().astype(str).tolist(), "scores": rec["scores"].numpy().tolist(),
            "similar": sim["item_ids"].numpy().astype(str).tolist(),
            "inputs": sorted(model.signatures["serving_default"].structured_input_signature[1])}

brute = ask(sys.argv[1])  # stock TF ops only: scann is not imported yet
brute["scann_loaded"] = "scann" in sys.modules
import scann  # the ScaNN export needs its custom ops registered first
print(json.dumps({"brute": brute, "scann": ask(sys.argv[2])}))
"""


def test_export_loads_in_a_fresh_process_and_answers(trained, capsys):
    from data_interface_for_model.tf_serving_format import next_version

    base = str(trained["folder"] / "exports")
    assert main(["export", "--run", trained["run"], "--model-base", base, "--k", "5", "--quiet"]) == 0
    assert "export: 2 SavedModels (k=5)" in capsys.readouterr().out
    written = {"recommender_bruteforce": os.path.join(base, "recommender_bruteforce", "1"),
               "recommender_scann": os.path.join(base, "recommender_scann", "1")}
    for path in written.values():
        assert os.path.isfile(os.path.join(path, "saved_model.pb")) and os.path.isdir(os.path.join(path, "variables"))
    assert os.listdir(os.path.join(base, "recommender_bruteforce")) == ["1"]  # no leftovers
    a, b = trained["table"].ids[:2].tolist()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, written["recommender_bruteforce"],
                           written["recommender_scann"], a, b], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    brute, scann = result["brute"], result["scann"]
    assert brute["scann_loaded"] is False and brute["inputs"] == ["history"]
    assert np.asarray(brute["ids"]).shape == (2, 5) and np.asarray(brute["similar"]).shape == (1, 5)
    assert a not in brute["ids"][0] and b not in brute["ids"][0] and a not in brute["similar"][0]
    assert brute["scores"][0] == sorted(brute["scores"][0], reverse=True)
    assert len(set(scann["ids"][0]) & set(brute["ids"][0])) >= 4  # the small ScaNN index searches every leaf
    # The next export gets the next version, shared by every index kind.
    os.makedirs(os.path.join(base, "recommender_scann", "7"))
    os.makedirs(os.path.join(base, "recommender_scann", "not-a-version"))
    assert next_version(base, ["recommender_bruteforce", "recommender_scann"]) == 8
    # An existing version is refused before anything is written (the old spelling --export-base still works).
    assert main(["export", "--run", trained["run"], "--export-base", base, "--version", "1", "--index",
                 "scann,bruteforce", "--quiet"]) == 2
    assert "recommender_scann version 1 already exists" in capsys.readouterr().err
    assert sorted(os.listdir(os.path.join(base, "recommender_bruteforce"))) == ["1"]


@pytest.mark.parametrize("verb", ["simulate", "train", "evaluate", "recommend", "export"])
def test_each_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m retrieval {verb}") and "--quiet" in text
    assert "--out " not in text and "--export-base" not in text  # old spellings stay hidden


def test_the_verb_list_and_the_old_spellings(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    for verb in ("simulate", "train", "evaluate", "recommend", "export"):
        assert re.search(rf"^    {verb}\s", listing, re.MULTILINE), verb
    assert "make-interactions" not in listing and "--out " not in listing
    parser = build_parser()
    old = parser.parse_args(["make-interactions", "--embeddings", "e.npz", "--out", "x.tsv"])
    assert old.output == "x.tsv" and old.func.__name__ == "_simulate"
    assert parser.parse_args(["evaluate", "--run", "r", "--split", "valid"]).split == "validation"


def test_cli_verbs_and_bad_input(trained, tmp_path, capsys):
    out = str(tmp_path / "sim.tsv")
    assert main(["simulate", "--embeddings", trained["emb"], "--output", out, "--users", "20"]) == 0
    assert "20 users" in capsys.readouterr().out
    assert main(["evaluate", "--run", trained["run"], "--json", str(tmp_path / "m.json"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "cold start" in printed and "evaluate: two-tower bag (content + id) HR@10" in printed
    assert printed.count("95% bootstrap intervals over the users") == 3  # all users, cold start and warm
    assert "warm (targets seen in training, ranked among the training items" in printed
    assert re.search(r"item-to-item Markov +[0-9.]+ \[[0-9.]+, [0-9.]+\]", printed)  # the text table's intervals
    assert json.load(open(tmp_path / "m.json"))["all"]["most popular"]["users"] == 150
    assert main(["evaluate", "--run", trained["run"], "--split", "valid", "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)  # --json alone: only the JSON, on stdout
    assert printed["split"] == "validation" and printed["all"]["EASE"]["users"] == 150
    item = trained["table"].ids[3]
    assert main(["recommend", "--run", trained["run"], "--item", item, "--k", "3"]) == 0
    assert "recommend: 3 items for items like" in capsys.readouterr().out
    assert main(["recommend", "--run", trained["run"], "--history", f"{item},nope", "--k", "3"]) == 0
    captured = capsys.readouterr()
    assert "ignoring 1 unknown items: nope" in captured.err
    assert main(["recommend", "--run", trained["run"], "--user", "nobody"]) == 2
    assert "user 'nobody' is not in the run" in capsys.readouterr().err
    assert main(["recommend", "--run", trained["run"], "--history", "nope,,"]) == 2
    assert "no item of it is in the catalog" in capsys.readouterr().err
    bad = str(tmp_path / "bad.npz")
    table = trained["table"]
    vectors = table.vectors.copy()
    vectors[5, 2] = np.nan
    np.savez(bad, ids=table.ids, labels=table.labels, vectors=vectors)
    assert main(["train", "--embeddings", bad, "--interactions", trained["inter"], "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and table.ids[5] in err
    assert not os.path.exists(tmp_path / "r")


ML_INTER = """user_id:token\titem_id:token\trating:float\ttimestamp:float
"""
ML_ITEMS = """item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
"""


@pytest.mark.slow
def test_recbole_files_train_a_sasrec_run_that_returns_titles(tmp_path, capsys):
    """A RecBole-style log and catalog (no embeddings: content from the catalog's columns), the sasrec tower,
    then recommend and export return titles."""
    rng = np.random.default_rng(0)
    items = [f"{n}" for n in range(1, 41)]
    inter, catalog = [ML_INTER], [ML_ITEMS]
    for n, item in enumerate(items):
        catalog.append(f"{item}\tFilm {item}\t{1990 + n % 5}\t{'Drama' if n % 2 else 'Comedy Action'}\n")
    for u in range(60):
        start = int(rng.integers(0, 30))
        for t, item in enumerate(items[start:start + 6]):  # a shared order: item n is followed by n + 1
            inter.append(f"{u}\t{item}\t4\t{1000 + t}\n")
    (tmp_path / "x.inter").write_text("".join(inter))
    (tmp_path / "x.item").write_text("".join(catalog))
    run = str(tmp_path / "run")
    assert main(["train", "--interactions", str(tmp_path / "x.inter"), "--items", str(tmp_path / "x.item"),
                 "--output", run, "--tower", "sasrec", "--epochs", "2", "--embedding-dim", "8", "--max-history",
                 "4", "--batch-size", "32", "--global-negatives", "8", "--no-id-only-baseline", "--quiet",
                 "--title-embeddings", "--no-title-tokens", "--balance-columns"]) == 0  # the real MiniLM
    assert "content: catalog; sasrec tower" in capsys.readouterr().out
    info = json.loads(open(os.path.join(run, "run.json")).read())  # genres/year + MiniLM titles
    assert info["catalog_content"] == {"title_tokens": False, "balance_columns": True, "title_embeddings": True}
    assert info["summary"]["embedding_dim"] > 384
    assert main(["recommend", "--run", run, "--item", "7", "--k", "3"]) == 0
    assert "Film " in capsys.readouterr().out
    base = str(tmp_path / "models")
    assert main(["export", "--run", run, "--model-base", base, "--index", "bruteforce", "--k", "3", "--quiet"]) == 0
    model = tf.saved_model.load(os.path.join(base, "recommender_bruteforce", "1"))
    out = model.signatures["serving_default"](history=tf.constant([["5", "6"]]))
    titles = out["titles"].numpy().astype(str)[0].tolist()
    ids = out["item_ids"].numpy().astype(str)[0].tolist()
    assert titles == [f"Film {i}" for i in ids]
