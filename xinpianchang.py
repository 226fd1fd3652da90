"""``xinpianchang <group> <verb>``: the one front door to every command of the project.

Groups mirror the packages::

    xinpianchang data        make-demo | download | check | aggregate | stats | prepare
    xinpianchang classifier  train | evaluate | export | embed | predict
    xinpianchang recommender simulate | train | evaluate | recommend | export
    xinpianchang music       index | train | evaluate | recommend | export
    xinpianchang serving     export | serve | catalog | ...

``python -m <package> VERB`` and ``python train_multimodal_baseline_model.py`` are aliases of the same
parsers. Each package's ``__main__`` module contributes its verbs through ``add_verbs(subparsers)`` and
imports nothing heavy until a verb runs, so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Dict, Optional, Sequence, Tuple

#: group -> (one-line summary, the ``__main__`` modules whose verbs it holds)
GROUPS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "data": ("make, download, check, describe and prepare datasets in the xinpianchang layout",
             ("data_download_tools.__main__", "data_interface_for_model.__main__")),
    "classifier": ("train, evaluate, export, embed and predict with the multimodal video classifier",
                   ("baseline_model.__main__",)),
    "recommender": ("two-tower recommenders over the classifier's embeddings: simulate, train, evaluate, "
                    "recommend, export", ("retrieval.__main__",)),
    "music": ("background music for videos (DecCM): index a library, train, evaluate, recommend, export",
              ("retrieval.music.cli",)),
    "serving": ("export runs in TF Serving's layout and serve them (REST, gRPC, metrics, catalog)",
                ("serving.__main__",)),
}
PROG = "xinpianchang"


def build_group_parser(group: str, prog: Optional[str] = None,
                       parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The parser of one group: every verb of its packages."""
    summary, modules = GROUPS[group]
    if parser is None:
        parser = argparse.ArgumentParser(prog=prog or f"{PROG} {group}", description=summary)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in modules:
        importlib.import_module(name).add_verbs(verbs)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     epilog=f"'{PROG} GROUP --help' lists a group's verbs; "
                                            f"'{PROG} GROUP VERB --help' a verb's flags.")
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    for group, (summary, _modules) in GROUPS.items():
        build_group_parser(group, parser=groups.add_parser(group, help=summary, description=summary))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from data_interface_for_model.cli import run_verb

    args = build_parser().parse_args(None if argv is None else list(argv))
    return run_verb(args)


if __name__ == "__main__":
    sys.exit(main())
