"""The one front door: `xinpianchang --help`, every group's and verb's help, and the aliases' parsers."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import xinpianchang

GROUP_VERBS = {
    "data": {"make-demo", "download", "check", "aggregate", "stats", "prepare"},
    "classifier": {"train", "evaluate", "export", "embed", "predict"},
    "recommender": {"simulate", "train", "evaluate", "recommend", "export"},
    "music": {"index", "train", "evaluate", "recommend", "export"},
    "serving": {"export", "serve", "catalog"},
}


def _verbs(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action


def test_top_level_help_lists_every_group_with_a_summary(capsys):
    with pytest.raises(SystemExit) as exit_info:
        xinpianchang.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for group, (summary, _modules) in xinpianchang.GROUPS.items():
        assert group in out
        assert summary.split()[0] in out


@pytest.mark.parametrize("group", sorted(GROUP_VERBS))
def test_group_has_its_verbs_each_with_a_one_line_summary(group, capsys):
    parser = xinpianchang.build_group_parser(group)
    action = _verbs(parser)
    verbs = set(action.choices)
    assert GROUP_VERBS[group] <= verbs, f"{group} lacks {GROUP_VERBS[group] - verbs}"
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    for verb in GROUP_VERBS[group]:
        assert helps.get(verb), f"{group} {verb} has no one-line summary"
        assert "\n" not in helps[verb]
    with pytest.raises(SystemExit) as exit_info:
        xinpianchang.main([group, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for verb in GROUP_VERBS[group]:
        assert verb in out


@pytest.mark.parametrize("group", sorted(GROUP_VERBS))
def test_every_verb_help_exits_zero(group, capsys):
    for verb in sorted(_verbs(xinpianchang.build_group_parser(group)).choices):
        with pytest.raises(SystemExit) as exit_info:
            xinpianchang.main([group, verb, "--help"])
        assert exit_info.value.code == 0, f"{group} {verb} --help"
        assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("module,group", [
    ("data_download_tools", "data"), ("data_interface_for_model", "data"), ("baseline_model", "classifier"),
    ("retrieval", "recommender"), ("retrieval.music", "music"), ("serving", "serving")])
def test_python_dash_m_aliases_build_the_same_verbs(module, group):
    parser = importlib.import_module(f"{module}.__main__").build_parser()
    verbs = set(_verbs(parser).choices)
    group_verbs = set(_verbs(xinpianchang.build_group_parser(group)).choices)
    assert verbs and verbs <= group_verbs


def test_front_door_help_is_light_and_a_bad_verb_exits_2():
    """--help must not start TensorFlow; an unknown verb is argparse's exit 2 with a message."""
    code = ("import sys, xinpianchang\n"
            "try:\n    xinpianchang.main(['classifier', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    bad = subprocess.run([sys.executable, "-m", "xinpianchang", "classifier", "no-such-verb"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "no-such-verb" in bad.stderr


def test_user_error_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "no-such-run"
    proc = subprocess.run([sys.executable, "-m", "xinpianchang", "classifier", "evaluate", "--run", str(missing)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert "no-such-run" in proc.stderr


def test_required_flag_with_a_hidden_alias_accepts_either_spelling(capsys):
    import argparse

    from data_interface_for_model import cli

    parser = argparse.ArgumentParser()
    cli.add_output(parser, aliases=("--out",))
    cli.add_split(parser)
    cli.add_common_arguments(parser)
    parser.set_defaults(func=lambda args: print(f"wrote {args.output} {args.split}") or 0)
    assert "--out " not in parser.format_help()
    assert cli.run_verb(parser.parse_args(["--out", "a", "--split", "valid"])) == 0
    assert cli.run_verb(parser.parse_args(["--output", "b"])) == 0
    assert cli.run_verb(parser.parse_args([])) == 2
    captured = capsys.readouterr()
    assert "wrote a validation" in captured.out and "wrote b test" in captured.out
    assert captured.err.strip() == "error: --output is required"
