"""Arguments and logging set-up shared by the command-line verbs of every package."""
from __future__ import annotations

import argparse
import logging


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (no progress bars) and ``--verbose`` (debug logging)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
