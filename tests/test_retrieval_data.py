"""retrieval: interaction files, cleaning, simulation, the leave-one-out split and the ranking metrics
(no model training here)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from data_interface_for_model import LABELS
from data_interface_for_model.embeddings_file import EmbeddingTable
from retrieval.interactions import (
    InteractionFileError,
    SimulationConfig,
    clean_sequences,
    read_interactions,
    simulate_interactions,
    write_interactions,
)
from retrieval.metrics import hit_rate, ndcg, ranking_metrics, target_ranks
from retrieval.splits import cases_to_arrays, choose_cold_items, leave_one_out, training_examples


def synthetic_table(per_label: int = 3, dim: int = 16, seed: int = 0) -> EmbeddingTable:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((len(LABELS), dim))
    ids, labels, vectors = [], [], []
    for c, label in enumerate(LABELS):
        for j in range(per_label):
            ids.append(f"{10000000 + c * 100 + j:08d}")
            labels.append(label)
            vectors.append(centers[c] + 0.3 * rng.standard_normal(dim))
    return EmbeddingTable(np.asarray(ids), np.asarray(labels), np.asarray(vectors, np.float32))


SEQS = {"u1": ["a", "b", "c", "d"], "u2": ["c", "a", "e"]}


@pytest.mark.parametrize("name", ["x.tsv", "x.txt", "x.csv", "x.parquet"])
def test_interaction_formats_round_trip(tmp_path, name):
    path = tmp_path / name
    write_interactions(path, SEQS)
    assert read_interactions(path) == SEQS


def test_csv_rows_are_ordered_by_timestamp(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("user_id,item_id,timestamp,extra\nu1,b,20,x\nu2,z,5,x\nu1,a,10,x\nu1,c,2021-01-01T00:00:00,x\n")
    assert read_interactions(path) == {"u1": ["a", "b", "c"], "u2": ["z"]}


def test_recbole_atomic_files_custom_columns_ties_and_repeats(tmp_path):
    from retrieval.interactions import Columns

    inter = tmp_path / "ml.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     "7\t30\t4\t100\n7\t10\t3\t50\n7\t20\t5\t100\n8\t10\t1\t1\n7\t10\t2\t200\n")
    # Equal timestamps keep file order (30 before 20); the repeat of 10 is kept, or the first/last kept.
    assert read_interactions(inter) == {"7": ["10", "30", "20", "10"], "8": ["10"]}
    assert read_interactions(inter, repeats="first")["7"] == ["10", "30", "20"]
    assert read_interactions(inter, repeats="last")["7"] == ["30", "20", "10"]
    custom = tmp_path / "log.csv"
    custom.write_text("who,what,when\nu1,b,2021-01-02\nu1,a,2021-01-01\n")
    assert read_interactions(custom, Columns("who", "what", "when")) == {"u1": ["a", "b"]}
    assert read_interactions(custom, Columns("who", "what", None)) == {"u1": ["b", "a"]}  # file order
    with pytest.raises(InteractionFileError, match="--user-col"):
        read_interactions(custom)
    headed = tmp_path / "headed.tsv"  # a .tsv with a header is a table, not pairs
    headed.write_text("user_id\titem_id\ttimestamp\nu1\tb\t2\nu1\ta\t1\n")
    assert read_interactions(headed) == {"u1": ["a", "b"]}


def test_pairs_accept_microlens_style_lines(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("u1\ta b c\nu2 d,e,f\n\nu1\tg\n")
    assert read_interactions(path) == {"u1": ["a", "b", "c", "g"], "u2": ["d", "e", "f"]}


BAD_FILES = [
    ("m.csv", "user,item\nu1,a\n", "missing columns"),
    ("t.csv", "user_id,item_id,timestamp\nu1,a,yesterday\n", "line 2"),
    ("n.csv", "user_id,item_id,timestamp\nu1,a,1\nu1,b,\n", "line 3: missing timestamp"),
    ("s.inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\t1\nu1\tb\n", "line 3: 2 fields"),
    ("sp.csv", "user_id,item_id,timestamp\nu1,a b,1\n", "line 2: item id 'a b' holds whitespace"),
]


@pytest.mark.parametrize("name,text,match", BAD_FILES)
def test_bad_interaction_files_are_refused_clearly(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InteractionFileError, match=match):
        read_interactions(path)


def test_unknown_interaction_format_is_refused(tmp_path):
    with pytest.raises(InteractionFileError, match="unknown format"):
        read_interactions(tmp_path / "x.json")


def test_cleaning_counts_unknown_items_and_short_users():
    seqs = {"u1": ["a", "zz", "b", "c"], "u2": ["a", "yy", "b"], "u3": ["a", "b", "c", "d"]}
    kept, report = clean_sequences(seqs, known_items="abcd", min_interactions=3)
    assert kept == {"u1": ["a", "b", "c"], "u3": ["a", "b", "c", "d"]}
    assert (report.unknown_items, report.short_users, report.kept_users, report.kept_interactions) == (2, 1, 2, 7)
    assert "2 interactions with unknown items" in report.summary() and "'zz'" in report.summary()


def test_simulation_is_deterministic_known_and_category_focused():
    table = synthetic_table()
    config = SimulationConfig(users=60, min_length=5, max_length=8, noise=0.0, seed=3)
    seqs = simulate_interactions(table, config)
    assert seqs == simulate_interactions(table, config)
    assert len(seqs) == 60
    label_of = dict(zip(table.ids.tolist(), table.labels.tolist()))
    for items in seqs.values():
        assert 5 <= len(items) <= 8 and len(set(items)) == len(items)
        assert set(items) <= set(label_of)
    # Without noise a user stays in at most 3 categories while any of them has unseen items left.
    focused = [len({label_of[i] for i in items[:3]}) <= 3 for items in seqs.values()]
    assert all(focused)
    distinct = np.mean([len({label_of[i] for i in items}) for items in seqs.values()])
    assert distinct < 8  # far from uniform (5-8 items over 31 categories would give ~5-7 distinct)


def test_leave_one_out_split_keeps_test_and_valid_items_out_of_training():
    seqs = {"u1": ["a", "b", "c", "d", "e"], "u2": ["f", "g", "h"], "u3": ["a", "b"]}
    split = leave_one_out(seqs, cold_items={"b"})
    assert [(c.user, c.history, c.target) for c in split.test] == [
        ("u1", ("a", "b", "c", "d"), "e"), ("u2", ("f", "g"), "h")]
    assert [(c.user, c.target) for c in split.validation] == [("u1", "d"), ("u2", "g")]
    assert split.train == {"u1": ["a", "c"], "u2": ["f"]}  # cold item b removed, u3 too short
    for case in split.test + split.validation:
        assert case.target not in split.train.get(case.user, [])
    examples = training_examples(split.train, max_history=3)
    assert examples.targets.tolist() == ["c"]
    assert examples.history.tolist() == [["", "", "a"]]
    users, hist, targets = cases_to_arrays(split.test, 2)
    assert hist.tolist() == [["c", "d"], ["f", "g"]] and targets.tolist() == ["e", "h"]


def test_cold_items_are_a_reproducible_fraction():
    items = [f"i{n}" for n in range(100)]
    cold = choose_cold_items(items, 0.1, seed=1)
    assert len(cold) == 10 and cold == choose_cold_items(list(reversed(items)), 0.1, seed=1)
    with pytest.raises(ValueError):
        choose_cold_items(items, 1.0)


def test_metrics_on_a_hand_computed_five_item_ranking():
    # scores of items 0..4; the target is item 2 (score 0.5): items 1 (0.9) and 4 (0.7) are above it.
    scores = np.array([[0.1, 0.9, 0.5, 0.3, 0.7],
                       [0.1, 0.9, 0.5, 0.3, 0.7]])
    ranks = target_ranks(scores, np.array([2, 2]), exclude=[[], [1]])  # user 2 watched item 1: masked
    assert ranks.tolist() == [2, 1]
    assert hit_rate(ranks, 1) == 0.0 and hit_rate(ranks, 2) == 0.5 and hit_rate(ranks, 3) == 1.0
    assert ndcg(ranks, 3) == pytest.approx((1 / math.log2(4) + 1 / math.log2(3)) / 2)
    assert ndcg(ranks, 2) == pytest.approx((0 + 1 / math.log2(3)) / 2)
    metrics = ranking_metrics(ranks, ks=(1, 3))
    assert metrics["HR@3"] == 1.0 and metrics["users"] == 2


def test_ties_count_against_the_target():
    ranks = target_ranks(np.zeros((1, 5)), np.array([0]))
    assert ranks.tolist() == [4]


def _case(history, target):
    from retrieval.splits import EvalCase

    return EvalCase("u", tuple(history), target)


def test_markov_follows_the_last_item_and_backs_off_to_popularity():
    from retrieval.baselines import Markov

    catalog = ["a", "b", "c", "d"]
    train = {"u1": ["a", "b", "c"], "u2": ["a", "b", "d"], "u3": ["c", "d", "d", "d"]}
    model = Markov(catalog, train)
    after_a, after_unknown = model.scores([_case(["c", "a"], "b"), _case(["zz"], "b")])
    assert np.argmax(after_a) == 1  # b followed a twice
    assert after_a[1] >= 2 and after_a[0] < 1  # counts, plus a popularity term below one count
    assert np.argmax(after_unknown) == 3 and after_unknown.max() < 1  # no known last item: popularity (d: 4)


def test_ease_and_item_knn_score_co_consumed_items():
    from retrieval.baselines import Ease, ItemKNN

    catalog = ["a", "b", "c", "d", "e"]
    train = {f"u{n}": (["a", "b"] if n % 2 else ["c", "d"]) + ["e"] for n in range(20)}
    cases = [_case(["a"], "b"), _case(["c"], "d")]
    for model in (ItemKNN(catalog, train), Ease(catalog, train).fit(10.0)):
        scores = model.scores(cases)
        assert scores.shape == (2, 5)
        assert scores[0, 1] > scores[0, 2] and scores[1, 3] > scores[1, 0], type(model).__name__
    ease = Ease(catalog, train)
    tried = ease.tune(cases, lambda m, c: float(m.scores(c)[0, 1]), grid=(1.0, 100.0))
    assert set(tried) == {1.0, 100.0} and ease.l2 == max(tried, key=tried.get)
    top = Ease(catalog, train, max_items=3).fit(10.0)  # a, b... all seen 10 times; e 20 times
    assert top.name == "EASE (top 3 items)" and top.columns.tolist() == [0, 1, 4]
    scores = top.scores(cases)
    assert scores.shape == (2, 5) and (scores[:, [2, 3]] < -1e8).all() and scores[0, 1] > scores[0, 4]


def test_markdown_table_marks_the_best_value():
    from retrieval.metrics import format_markdown

    text = format_markdown({"x": {"HR@10": 0.5, "NDCG@10": 0.2, "users": 3},
                            "y": {"HR@10": 0.25, "NDCG@10": 0.3, "users": 3}}, ks=(10,))
    lines = text.splitlines()
    assert lines[0] == "| method | HR@10 | NDCG@10 | users |"
    assert lines[2] == "| x | **0.5000** | 0.2000 | 3 |" and lines[3] == "| y | 0.2500 | **0.3000** | 3 |"


def test_simulated_order_carries_signal_that_markov_finds():
    from retrieval.baselines import Markov, MostPopular
    from retrieval.metrics import hit_rate

    table = synthetic_table(per_label=6)
    seqs = simulate_interactions(table, SimulationConfig(users=300, min_length=8, max_length=14, follow=0.7,
                                                         seed=2))
    split = leave_one_out(seqs)
    catalog = table.ids.tolist()
    row = {item: n for n, item in enumerate(catalog)}
    targets = np.asarray([row[c.target] for c in split.test])
    exclude = [[row[i] for i in set(c.history)] for c in split.test]
    hr = {type(m).__name__: hit_rate(target_ranks(m.scores(split.test), targets, exclude), 10)
          for m in (Markov(catalog, split.train), MostPopular(catalog, split.train))}
    assert hr["Markov"] > 2 * hr["MostPopular"], hr
