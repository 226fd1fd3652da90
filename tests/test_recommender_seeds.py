"""`benchmarks/recommender.py summarize` / `quality --seeds`: quality reports of one log under several seeds
-> each method's mean and spread, and the model's per-seed lead with how often its paired interval clears 0."""
import json

import numpy as np
import pytest

from benchmarks import recommender as bench


def _report(main, figures, leads):
    """figures: method -> (HR@10, NDCG@10); leads: method -> (difference, low, high), the same for both metrics."""
    intervals = {metric: {main: {"interval": [0.0, 1.0]}} | {
        m: {"interval": [0.0, 1.0], "difference": d, "difference_interval": [lo, hi]} for m, (d, lo, hi) in leads.items()}
        for metric in ("HR@10", "NDCG@10", "HR@50")}
    return {"test": {"main": main, "items": 50, "all": {m: {"HR@10": h, "NDCG@10": n, "users": 10} for m, (h, n) in figures.items()},
                     "cold_start": {main: {"HR@10": 0.1, "HR@50": 0.3, "users": 4}},
                     "intervals": {"all": intervals}}}


def test_summary_over_seeds_means_spreads_and_counts_significant_leads(tmp_path):
    reports = {
        "seed 0": _report("two-tower gru (content + id)",
                          {"two-tower gru (content + id)": (0.20, 0.10), "id-only two-tower": (0.18, 0.09),
                           "EASE": (0.10, 0.05), "only here": (0.5, 0.5)},
                          {"id-only two-tower": (0.02, 0.001, 0.04), "EASE": (0.10, 0.05, 0.15),
                           "only here": (-0.3, -0.4, -0.2)}),
        "seed 1": _report("two-tower bag (content + id)",  # another tower picked: still the model's row
                          {"two-tower bag (content + id)": (0.16, 0.08), "id-only two-tower": (0.18, 0.09),
                           "EASE": (0.12, 0.06)},
                          {"id-only two-tower": (-0.02, -0.03, -0.01), "EASE": (0.04, -0.01, 0.09)}),
    }
    summary, text = bench.summarize_seeds(reports)
    model = summary["methods"][bench.MODEL_ROW]
    assert model["HR@10"]["values"] == [0.20, 0.16]
    assert model["HR@10"]["mean"] == pytest.approx(0.18) and model["HR@10"]["sd"] == pytest.approx(np.std([0.2, 0.16], ddof=1))
    assert set(summary["methods"]) == {bench.MODEL_ROW, "id-only two-tower", "EASE"}  # "only here": not in every seed
    assert summary["leads"]["id-only two-tower"]["HR@10"] == {"values": [0.02, -0.02], "mean": pytest.approx(0.0),
                                                             "ahead": 1, "behind": 1}
    assert summary["leads"]["EASE"]["NDCG@10"]["ahead"] == 1 and summary["leads"]["EASE"]["NDCG@10"]["behind"] == 0
    assert summary["picked"] == {"seed 0": "two-tower gru (content + id)", "seed 1": "two-tower bag (content + id)"}
    assert "| id-only two-tower | +0.0000 | +0.0200 / -0.0200 | 1 / 1 of 2 |" in text
    assert "seed 1: HR@10 0.100, HR@50 0.300 (4 users)" in text
    assert "warm_leads" not in summary and "Warm" not in text  # reports without the warm population
    # with it (every report): the warm leads, counted the same way
    for n, report in enumerate(reports.values()):
        warm = json.loads(json.dumps(report["test"]["intervals"]["all"]))
        warm["HR@10"]["id-only two-tower"].update(difference=0.01 * (n + 1), difference_interval=[0.005, 0.02])
        report["test"]["intervals"]["warm"] = warm
    summary, text = bench.summarize_seeds(reports)
    assert summary["warm_leads"]["id-only two-tower"]["HR@10"] == {"values": [0.01, 0.02], "mean": pytest.approx(0.015),
                                                                  "ahead": 2, "behind": 0}
    assert summary["leads"]["id-only two-tower"]["HR@10"]["values"] == [0.02, -0.02]  # the all population's, unchanged
    assert "| id-only two-tower | +0.0150 | +0.0100 / +0.0200 | 2 / 0 of 2 |" in text.split("Warm")[1]

    # the command over finished folders writes both files; one folder, or one without a report, is refused
    for n, report in enumerate(reports.values()):
        (tmp_path / f"r{n}").mkdir()
        (tmp_path / f"r{n}" / "report.json").write_text(json.dumps(report))
    out = tmp_path / "out"
    out.mkdir()
    assert bench.main(["summarize", "--reports", f"{tmp_path / 'r0'},{tmp_path / 'r1'}", "--output", str(out)]) == 0
    assert json.loads((out / "seeds.json").read_text())["leads"]["EASE"]["HR@10"]["values"] == [0.10, 0.04]
    assert (out / "seeds.md").read_text().startswith("2 seeds")
    assert bench.main(["summarize", "--reports", str(tmp_path / "r0"), "--output", str(out)]) == 2
    assert bench.main(["summarize", "--reports", f"{tmp_path / 'r0'},{tmp_path}", "--output", str(out)]) == 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.json").write_text('{"test": ')
    assert bench.main(["summarize", "--reports", f"{tmp_path / 'r0'},{tmp_path / 'broken'}", "--output", str(out)]) == 2
    other_log = json.loads(json.dumps(reports["seed 1"]))
    other_log["test"]["items"] = 999
    with pytest.raises(ValueError, match="not of one log"):
        bench.summarize_seeds({"a": reports["seed 0"], "b": other_log})
    with pytest.raises(ValueError, match="not a quality report"):
        bench.summarize_seeds({"a": reports["seed 0"], "b": {"grid": {}}})


def test_seeds_flag_needs_two_distinct_integers():
    with pytest.raises(SystemExit):
        bench.main(["quality", "--interactions", "x.inter", "--seeds", "1,1", "--output", "unused"])
    assert bench._seed_list(" 2, 0 ,1") == [2, 0, 1]


def test_share_in_top_k_counts_members_after_the_history_is_left_out():
    from retrieval.metrics import share_in_top_k

    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.9, 0.8]])
    members = np.array([True, False, False, True])
    assert share_in_top_k(scores, members, 2).tolist() == [0.5, 0.5]
    # query 0's history holds item 0: its list is items 1 and 2, no member; query 1's holds item 2: 3 and 1
    assert share_in_top_k(scores, members, 2, exclude=[[0], [2]]).tolist() == [0.0, 0.5]
    # fewer items left than k: the share is over the items listed (query 0: items 2 and 3 of 4)
    assert share_in_top_k(scores, members, 4, exclude=[[0, 1], []]).tolist() == [0.5, 0.5]
    assert share_in_top_k(np.zeros((1, 3)), np.array([False, True, True]), 1).tolist() == [0.0]  # ties: column order
    with pytest.raises(ValueError, match="k must be between 1 and the 4 items"):
        share_in_top_k(scores, members, 5)
    with pytest.raises(ValueError, match="members \\[N\\] expected"):
        share_in_top_k(scores, members[:3], 2)


def test_crowding_reports_cold_items_in_warm_lists_per_trained_run(tmp_path, capsys):
    from retrieval.__main__ import main as recommender
    from tests.recommender_logs import write_tiny_log

    inter, items = write_tiny_log(tmp_path, users=30, items=20, steps=8, stride=3, genres=4)
    run = tmp_path / "run"
    assert recommender(["train", "--interactions", str(inter), "--items", str(items), "--output", str(run),
                        "--epochs", "1", "--embedding-dim", "8", "--cold-fraction", "0.2", "--quiet"]) == 0
    out = tmp_path / "out"
    out.mkdir()
    assert bench.main(["crowding", "--runs", str(run), "--k", "5", "--output", str(out)]) == 0
    report = json.loads((out / "crowding.json").read_text())
    rows = {r["model"]: r for r in report["rows"]}
    assert report["k"] == 5 and set(rows) == {"two-tower bag (content + id)", "id-only two-tower"}
    assert all(r["catalog_share"] == pytest.approx(0.2) and 0 < r["cases"] <= 30 for r in rows.values())
    assert all(0.0 <= r["share"] <= 1.0 for r in rows.values())
    assert "| two-tower bag (content + id) |" in (out / "crowding.md").read_text()
    # a list as long as the catalog holds every item but the history: the share is the cold items' among those
    from retrieval.rundir import load_run

    split = load_run(str(run)).split
    catalog = {f"i{n}" for n in range(20)}
    expected = np.mean([len(split.cold_items - set(c.history)) / len(catalog - set(c.history))
                        for c in split.test if c.target not in split.cold_items])
    assert bench.main(["crowding", "--runs", str(run), "--k", "20", "--split", "test", "--output", str(out)]) == 0
    shares = [r["share"] for r in json.loads((out / "crowding.json").read_text())["rows"]]
    assert shares == pytest.approx([expected, expected]) and 0.2 < expected < 0.4
    assert bench.main(["crowding", "--runs", str(run), "--k", "500", "--output", str(out)]) == 2
    assert "--k 500 is more than its 20 items" in capsys.readouterr().err
    assert bench.main(["crowding", "--runs", str(tmp_path / "nothing"), "--output", str(out)]) == 2
    assert "not a trained run folder" in capsys.readouterr().err
    assert bench.main(["crowding", "--runs", ",", "--output", str(out)]) == 2
    assert "--runs names no run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        bench.main(["crowding", "--runs", str(run), "--k", "0", "--output", str(out)])
    assert bad.value.code == 2
