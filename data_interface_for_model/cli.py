"""The command-line vocabulary every verb of every package uses, and the one error path.

One flag, one meaning, everywhere:

=================  ==========================================================================
``--data-root``    a dataset in the xinpianchang layout (ROOT/<label>/<id>/<id>.mp4|.jpeg|.txt), read
``--data-dir``     prepared TFDS shards
``--run``          a run folder that is read
``--output``       a folder or file that is written
``--model-base``   a TF Serving model base (MODELS/<name>/<version>/)
``--frames``       frames sampled per clip
``--image-size``   side of the square frames and cover
``--split``        ``train``, ``validation`` or ``test``
``--audio``        use the clips' sound tracks (``--audio-windows``: 3 s log-mel windows per clip)
=================  ==========================================================================

Old spellings are accepted as hidden aliases (not shown in ``--help``) for one release.

Every verb is run by :func:`run_verb`: bad input (a missing file, a malformed record, an existing version)
prints ``error: <what, naming the item>`` on stderr and exits 2; ``--verbose`` adds the traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from data_interface_for_model import defaults


class UsageError(Exception):
    """Bad input from the user: the message names the item; the command exits 2."""


#: Exceptions that mean bad input (a missing file, a malformed record, an existing version...): one line, exit 2.
USER_ERRORS = (UsageError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)


def _hidden_aliases(parser: argparse.ArgumentParser, dest: str, aliases: Sequence[str], **kwargs) -> None:
    for alias in aliases:
        parser.add_argument(alias, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def _required(parser: argparse.ArgumentParser, required: bool, aliases: Sequence[str], dest: str,
              flag: str) -> bool:
    """argparse's ``required`` for a flag; a required flag with hidden aliases is checked by :func:`run_verb`
    instead (argparse would demand the new spelling even when an alias was given)."""
    if not (required and aliases):
        return required
    parser.set_defaults(_required_flags=[*(parser.get_default("_required_flags") or []), (dest, flag)])
    return False


def add_data_root(parser: argparse.ArgumentParser, *, required: bool = True, default: Optional[str] = None,
                  help: str = "dataset root in the xinpianchang layout",
                  aliases: Sequence[str] = ()) -> None:
    parser.add_argument("--data-root", required=_required(parser, required and default is None, aliases,
                                                          "data_root", "--data-root"), default=default,
                        metavar="ROOT", help=help + (f" (default {default})" if default else ""))
    _hidden_aliases(parser, "data_root", aliases)


def add_data_dir(parser: argparse.ArgumentParser, *, required: bool = False, default: Optional[str] = None,
                 help: str = "prepared TFDS shards") -> None:
    parser.add_argument("--data-dir", required=required and default is None, default=default, metavar="DIR",
                        help=help + (f" (default {default})" if default else ""))


def add_run(parser: argparse.ArgumentParser, *, required: bool = True, help: str = "run folder to read") -> None:
    parser.add_argument("--run", required=required, metavar="RUN", help=help)


def add_output(parser: argparse.ArgumentParser, *, required: bool = True, default: Optional[str] = None,
               help: str = "where to write", metavar: str = "PATH", aliases: Sequence[str] = ()) -> None:
    parser.add_argument("--output", required=_required(parser, required and default is None, aliases, "output",
                                                       "--output"), default=default, metavar=metavar,
                        help=help + (f" (default {default})" if default else ""))
    _hidden_aliases(parser, "output", aliases)


def add_model_base(parser: argparse.ArgumentParser, *, required: bool = False,
                   default: Optional[str] = defaults.MODEL_BASE,
                   help: str = "TF Serving model base, MODELS/<name>/<version>/",
                   aliases: Sequence[str] = ()) -> None:
    parser.add_argument("--model-base", required=_required(parser, required and default is None, aliases,
                                                           "model_base", "--model-base"), default=default,
                        metavar="MODELS", help=help + (f" (default {default})" if default else ""))
    _hidden_aliases(parser, "model_base", aliases)


def add_frames(parser: argparse.ArgumentParser, default: Optional[int] = defaults.FRAMES) -> None:
    parser.add_argument("--frames", type=positive_int, default=default,
                        help=f"frames sampled per clip (default {default})" if default else
                        "frames sampled per clip (default: the run's)")


def add_image_size(parser: argparse.ArgumentParser, default: Optional[int] = defaults.IMAGE_SIZE,
                   aliases: Sequence[str] = ()) -> None:
    parser.add_argument("--image-size", type=positive_int, default=default,
                        help=f"side of the square frames and cover in pixels (default {default})" if default
                        else "side of the square frames and cover (default: the run's)")
    _hidden_aliases(parser, "image_size", aliases, type=positive_int)


def add_audio(parser: argparse.ArgumentParser, help: str = "also use the sound track") -> None:
    """``--audio`` and ``--audio-windows N``; read them back with :func:`audio_windows`."""
    from data_interface_for_model.audio import DEFAULT_PATCHES

    parser.add_argument("--audio", action="store_true", help=help + " (log-mel windows, musicnn's input)")
    parser.add_argument("--audio-windows", type=positive_int, default=DEFAULT_PATCHES, metavar="N",
                        help=f"with --audio: 3 s windows per clip, sampled like the frames (default {DEFAULT_PATCHES})")


def audio_windows(args: argparse.Namespace) -> int:
    """Sound windows per clip asked for by :func:`add_audio`'s flags (0: no audio)."""
    return args.audio_windows if getattr(args, "audio", False) else 0


def split_name(value: str) -> str:
    """``train``, ``validation`` or ``test`` (``valid`` and ``val`` are read as ``validation``)."""
    value = {"valid": "validation", "val": "validation"}.get(value, value)
    if value not in defaults.SPLITS:
        raise argparse.ArgumentTypeError(f"unknown split {value!r}: choose from {', '.join(defaults.SPLITS)}")
    return value


def add_split(parser: argparse.ArgumentParser, default: str = "test") -> None:
    parser.add_argument("--split", type=split_name, default=default, metavar="{" + ",".join(defaults.SPLITS) + "}",
                        help=f"which split (default {default})")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be positive")
    return number


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (no progress bars) and ``--verbose`` (debug logging and tracebacks)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--verbose", action="store_true", help="debug logging; tracebacks on errors")


def configure_logging(args: argparse.Namespace) -> None:
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # deprecation notices from inside TF/TFDS are not actionable for users
        for noisy in ("absl", "tensorflow"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    if getattr(args, "quiet", False):
        os.environ["TQDM_DISABLE"] = "1"


def run_verb(args: argparse.Namespace, user_errors: tuple = USER_ERRORS) -> int:
    """Run the parsed verb (``args.func``); a user error prints ``error: ...`` (the traceback only with
    ``--verbose``) and returns 2, so every command fails the same way."""
    configure_logging(args)
    try:
        for dest, flag in getattr(args, "_required_flags", ()):
            if getattr(args, dest, None) is None:
                raise UsageError(f"{flag} is required")
        return args.func(args)
    except user_errors as exc:
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


def verb_main(build_parser, argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """``python -m <package> VERB ...`` and ``xinpianchang <group> VERB ...``: parse, then :func:`run_verb`."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    return run_verb(args)
