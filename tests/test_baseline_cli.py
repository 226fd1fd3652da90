"""The classifier's command line: every verb's help, the shared vocabulary, and the aliases."""
import os
import subprocess
import sys

import pytest

from baseline_model.__main__ import build_parser
from baseline_model.config import TrainConfig, field_default
from baseline_model.kinds import get_kind, kind_names
from baseline_model.train_job import build_parser as build_train_parser, configs_from_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERBS = ("train", "evaluate", "export", "embed", "predict")


def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_python_m_help_lists_every_verb_and_imports_no_tensorflow():
    result = _run("-c", "import sys, runpy; sys.argv = ['baseline_model', '--help']\n"
                        "try:\n    runpy.run_module('baseline_model', run_name='__main__')\n"
                        "except SystemExit as exit:\n    assert exit.code == 0\n"
                        "assert 'tensorflow' not in sys.modules, 'help imported TensorFlow'")
    assert result.returncode == 0, result.stderr
    for verb in VERBS:
        assert verb in result.stdout


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([verb, "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert "--quiet" in out and "--verbose" in out
    if verb != "train":
        assert "--run" in out


def test_main_script_help_is_the_train_verb():
    result = _run("train_multimodal_baseline_model.py", "--help")
    assert result.returncode == 0, result.stderr
    assert "--data-root" in result.stdout and "--model-base" in result.stdout and "--output" in result.stdout
    assert "--export-base" not in result.stdout and "--out " not in result.stdout  # hidden aliases


def test_defaults_come_from_the_dataclasses_and_the_kinds():
    args = build_train_parser().parse_args([])
    model, train = configs_from_args(args)
    assert model.kind == "pretrained"
    assert train.early_stopping_patience == field_default(TrainConfig, "early_stopping_patience") == args.patience
    assert train.epochs == get_kind("pretrained").default_epochs
    assert train.learning_rate == get_kind("pretrained").default_learning_rate
    seed_model, seed_train = configs_from_args(build_train_parser().parse_args(["--model", "seed_baseline"]))
    assert seed_model.kind == "seed_baseline" and seed_train.epochs == get_kind("seed_baseline").default_epochs
    assert set(kind_names()) == {"pretrained", "seed_baseline"}


def test_old_spellings_are_hidden_aliases():
    args = build_train_parser().parse_args(["--out", "r", "--export-base", "m"])
    assert args.output == "r" and args.model_base == "m"
    args = build_parser().parse_args(["embed", "--run", "r", "--data-root", "d", "--out", "x.parquet"])
    assert args.output == "x.parquet"
    args = build_parser().parse_args(["evaluate", "--run", "r", "--split", "valid", "--json", "x.json"])
    assert args.split == "validation" and args.output == "x.json"
    args = build_parser().parse_args(["export", "--run", "r", "--export-base", "m"])
    assert args.model_base == "m"


def test_embed_refuses_a_runner_it_would_not_use(tmp_path, capsys):
    """--runner drives Beam over a prepared layout only; with --input or --items it is refused, not ignored."""
    from baseline_model.__main__ import main

    for source in (["--input", str(tmp_path)], ["--items", str(tmp_path / "items.csv")]):
        code = main(["embed", "--run", str(tmp_path), *source, "--output", str(tmp_path / "e.parquet"),
                     "--runner", "direct"])
        assert code == 2
        assert "embed --runner runs over a prepared layout" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "e.parquet")
