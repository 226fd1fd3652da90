"""Arguments and logging set-up shared by the command-line verbs of every package."""
from __future__ import annotations

import argparse
import logging
import sys


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (no progress bars) and ``--verbose`` (debug logging)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def configure_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


#: Exceptions that mean bad input (a missing file, a malformed record, an existing version...): one line, exit 2.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError)


def run_verb(args: argparse.Namespace, user_errors: tuple = USER_ERRORS) -> int:
    """Run the parsed verb (``args.func``); a user error prints ``error: ...`` (the traceback only with
    ``--verbose``) and returns 2, so every command fails the same way."""
    try:
        return args.func(args)
    except user_errors as exc:
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
