"""Every command written in the README and docs/ parses with the real parsers: every verb and flag exists.

Shell blocks (```bash / ```sh / ```console) are read line by line (backslash continuations joined); each
command that calls one of the project's entry points is parsed, not run. A fenced block whose info string
says ``nocheck`` (```bash nocheck) is skipped, for commands of other tools or deliberately wrong examples.
"""
from __future__ import annotations

import importlib
import pathlib
import re
import shlex
from typing import Iterator, List, Tuple

import pytest

import xinpianchang

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)(.*)$")
_SHELLS = {"bash", "sh", "shell", "console"}
_STOP = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"}
_MODULES = {"data_download_tools", "data_interface_for_model", "baseline_model", "retrieval", "serving",
            "xinpianchang"}


def shell_commands(path: pathlib.Path) -> Iterator[Tuple[int, List[str]]]:
    inside, checked, pending, start = False, False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line.strip())
        if fence:
            if inside:
                inside = False
            else:
                inside = True
                checked = fence.group(1) in _SHELLS and "nocheck" not in fence.group(2)
            continue
        if not (inside and checked):
            continue
        text = line.strip()
        if text.startswith("$ "):
            text = text[2:]
        if not pending:
            start = number
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        command, pending = pending + text, ""
        if not command or command.startswith("#"):
            continue
        words = shlex.split(command, comments=True)
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefixes
            words.pop(0)
        cut = next((i for i, w in enumerate(words) if w in _STOP), len(words))
        # "[--flag VALUE]" marks an optional part: it is parsed too, so every optional flag shown must exist
        yield start, [w.strip("[]") for w in words[:cut] if w.strip("[]") and w != "..."]


def parser_and_args(words: List[str]):
    """(parser, argv) for a command that calls one of the project's entry points, else None."""
    if not words:
        return None
    if words[0] == "xinpianchang":
        return xinpianchang.build_parser(), words[1:]
    if words[0] in ("python", "python3"):
        if len(words) > 2 and words[1] == "-m" and words[2] in _MODULES:
            if words[2] == "xinpianchang":
                return xinpianchang.build_parser(), words[3:]
            return importlib.import_module(f"{words[2]}.__main__").build_parser(), words[3:]
        if len(words) > 1 and words[1].endswith("train_multimodal_baseline_model.py"):
            return importlib.import_module("train_multimodal_baseline_model").build_parser(), words[2:]
    return None


def documented_commands():
    for path in DOCS:
        for line, words in shell_commands(path):
            if parser_and_args(words) is not None:
                yield pytest.param(path.name, line, words, id=f"{path.name}:{line}")


def test_the_docs_hold_commands():
    assert sum(1 for _ in documented_commands()) >= 10


@pytest.mark.parametrize("doc,line,words", list(documented_commands()))
def test_documented_command_parses(doc, line, words, capsys):
    parser, argv = parser_and_args(words)
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code != 0:  # --help exits 0
            pytest.fail(f"{doc}:{line}: {' '.join(words)!r} does not parse: {capsys.readouterr().err.strip()}")
