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
