"""The ``data`` group's command lines: help texts list the verbs, every verb's --help works, ``stats``."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from data_download_tools import __main__ as download_main
from data_interface_for_model import __main__ as interface_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOWNLOAD_VERBS = ("make-demo", "download", "check", "aggregate", "stats")
INTERFACE_VERBS = ("prepare",)
ITEMS = 62  # the session's demo dataset: 31 categories x 2


@pytest.mark.parametrize("package, verbs", [("data_download_tools", DOWNLOAD_VERBS),
                                            ("data_interface_for_model", INTERFACE_VERBS)])
def test_python_m_help_lists_the_verbs_with_a_summary(package, verbs):
    result = subprocess.run([sys.executable, "-m", package, "--help"], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"python -m {package}" in result.stdout
    listed = result.stdout.split("positional arguments:")[1]
    for verb in verbs:
        assert verb in listed
    assert "fetch" not in listed  # the old name of download is accepted, not listed
    # no TensorFlow at import: --help stays instant
    code = f"import sys, {package}.__main__ as m; m.build_parser(); print('tensorflow' in sys.modules)"
    check = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "False", check.stderr


@pytest.mark.parametrize("module, verb", [(download_main, v) for v in DOWNLOAD_VERBS + ("fetch",)]
                         + [(interface_main, v) for v in INTERFACE_VERBS])
def test_every_verb_has_help(module, verb, capsys):
    with pytest.raises(SystemExit) as caught:
        module.main([verb, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "--quiet" in text and "--verbose" in text
    if verb != "make-demo" and verb not in ("download", "fetch"):
        assert "--data-root" in text
    if verb in ("make-demo", "download", "fetch", "aggregate"):
        assert "--output" in text and "--out " not in text  # the old spelling is hidden


def test_the_data_group_holds_both_packages_verbs_in_order(capsys):
    import xinpianchang

    parser = xinpianchang.build_group_parser("data", prog="xinpianchang data")
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    listed = capsys.readouterr().out.split("positional arguments:")[1]
    positions = [listed.index(verb) for verb in DOWNLOAD_VERBS + INTERFACE_VERBS]
    assert positions == sorted(positions)
    args = parser.parse_args(["prepare", "--size", "64"])  # the old spelling, hidden
    assert (args.image_size, args.frames, args.data_root, args.data_dir) == (64, 8, "data/demo", "data/tfds")
    assert parser.parse_args(["aggregate", "--out", "x.json"]).output == "x.json"


def test_stats_prints_the_table_the_summary_and_writes_json(demo_root, tmp_path, capsys):
    out_json = str(tmp_path / "stats.json")
    assert download_main.main(["stats", "--data-root", demo_root, "--json", out_json]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["category", "items", "complete", "MB", "mean", "s"]
    assert "Beach" in captured.out and "total" in captured.out
    assert f"stats: {ITEMS} items ({ITEMS} complete), 0 problems" in captured.out
    assert captured.err == ""
    with open(out_json, encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["items"] == ITEMS and data["complete"] == ITEMS and data["problems"] == {}
    assert data["categories"]["Beach"]["items"] == 2


def test_stats_reports_problems_and_accepts_the_old_positional_root(demo_copy, capsys):
    beach = os.path.join(demo_copy, "Beach")
    item = sorted(os.listdir(beach))[0]
    os.remove(os.path.join(beach, item, item + ".mp4"))
    os.makedirs(os.path.join(demo_copy, "Cats"))
    assert download_main.main(["stats", demo_copy]) == 0
    captured = capsys.readouterr()
    assert f"stats: {ITEMS} items ({ITEMS - 1} complete), 1 problems" in captured.out
    assert "problem: unknown_label" in captured.err and "Cats" in captured.err


def test_a_missing_root_is_one_error_line_and_exit_2(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    for verb in ("stats", "check", "aggregate"):
        assert download_main.main([verb, "--data-root", missing, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert download_main.main(["download", "--info", missing, "--output", str(tmp_path / "o"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert download_main.main(["stats", "--data-root", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "two dataset roots" in capsys.readouterr().err
