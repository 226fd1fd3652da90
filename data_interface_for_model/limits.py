"""Bounds on what a record or a picture from the outside may cost, checked before anything is parsed or
decoded.

Real records are small (an info-file line or a ``.txt`` is about 300 bytes, one level of nesting, no number
longer than a few digits; a cover is a few hundred pixels across), so the defaults leave a wide margin
while keeping a hostile file from taking seconds of CPU, hundreds of MB or the process down (a
4300-digit integer, ten thousand nested brackets, a 633-byte JPEG that declares 20000x20000 pixels).
Anything over a bound is a named error for that item; the run goes on.
"""
from __future__ import annotations

import dataclasses
import functools
import re

#: A cover (JPEG) whose header declares more pixels than this is refused before decoding (4096 x 4096).
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096


@dataclasses.dataclass(frozen=True)
class ParseLimits:
    """Bounds on one record's text.

    Attributes:
      max_line_bytes: longest line of an info file (``multimodal_data_info.json``), newline excluded.
      max_txt_bytes: largest per-item ``.txt``.
      max_depth: deepest nesting of brackets (``[``, ``{``, ``(``) in a record (a real one has 1).
      max_number_digits: most digits in one run of digits outside strings (a real record has 2).
    """

    max_line_bytes: int = 64 * 1024
    max_txt_bytes: int = 64 * 1024
    max_depth: int = 16
    max_number_digits: int = 64

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1, got {getattr(self, field.name)}")


DEFAULT_PARSE_LIMITS = ParseLimits()

_STRINGS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_BRACKETS = re.compile(r"[\[\](){}]")
_OPENING = frozenset("[({")


@functools.lru_cache(maxsize=8)
def _long_number(max_digits: int) -> "re.Pattern[str]":
    return re.compile(r"(?<!\d)\d{%d}" % (max_digits + 1))  # the look-behind keeps the search linear


def check_record_text(text: str, limits: ParseLimits = DEFAULT_PARSE_LIMITS) -> None:
    """Raise ``ValueError`` (with a message saying which bound) if ``text`` nests deeper or holds a longer
    number than ``limits`` allow. Linear in the text's length; run it before ``json.loads`` or
    ``ast.literal_eval``, whose cost on such input is not."""
    opening = text.count("[") + text.count("{") + text.count("(")
    digits = sum(text.count(digit) for digit in "0123456789")
    if opening <= limits.max_depth and digits <= limits.max_number_digits:
        return  # the common case (str.count only): too few brackets to nest too deep, too few digits for a long run
    outside = _STRINGS.sub('""', text)  # brackets and digits inside string literals do not count
    if _long_number(limits.max_number_digits).search(outside):
        raise ValueError(f"a number longer than {limits.max_number_digits} digits")
    depth = deepest = 0
    for bracket in _BRACKETS.findall(outside):
        depth = depth + 1 if bracket in _OPENING else depth - 1
        if depth > deepest:
            deepest = depth
            if deepest > limits.max_depth:
                raise ValueError(f"nested deeper than {limits.max_depth} levels")


def add_parse_limit_arguments(parser, *, info_file: bool = False) -> None:
    """``--max-txt-bytes``, ``--max-record-depth``, ``--max-number-digits`` (and ``--max-line-bytes`` for
    commands that read an info file), defaults from :class:`ParseLimits`."""
    from data_interface_for_model.cli import positive_int

    d = DEFAULT_PARSE_LIMITS
    if info_file:
        parser.add_argument("--max-line-bytes", type=positive_int, default=d.max_line_bytes, metavar="N",
                            help=f"longest info-file line read; longer ones are invalid (default {d.max_line_bytes})")
    parser.add_argument("--max-txt-bytes", type=positive_int, default=d.max_txt_bytes, metavar="N",
                        help=f"largest .txt read; larger ones are malformed (default {d.max_txt_bytes})")
    parser.add_argument("--max-record-depth", type=positive_int, default=d.max_depth, metavar="N",
                        help=f"deepest bracket nesting in a record (default {d.max_depth})")
    parser.add_argument("--max-number-digits", type=positive_int, default=d.max_number_digits, metavar="N",
                        help=f"longest number in a record (default {d.max_number_digits})")


def add_image_pixels_argument(parser) -> None:
    """``--max-image-pixels``: a cover whose header declares more pixels is refused before decoding."""
    from data_interface_for_model.cli import positive_int

    parser.add_argument("--max-image-pixels", type=positive_int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                        help="a cover whose header declares more pixels is corrupt, never decoded "
                             f"(default {DEFAULT_MAX_IMAGE_PIXELS})")


def parse_limits_from_args(args) -> ParseLimits:
    """The :class:`ParseLimits` the flags of :func:`add_parse_limit_arguments` ask for."""
    d = DEFAULT_PARSE_LIMITS
    return ParseLimits(max_line_bytes=getattr(args, "max_line_bytes", d.max_line_bytes),
                       max_txt_bytes=args.max_txt_bytes, max_depth=args.max_record_depth,
                       max_number_digits=args.max_number_digits)


__all__ = ["add_image_pixels_argument", "add_parse_limit_arguments", "parse_limits_from_args", "DEFAULT_MAX_IMAGE_PIXELS", "DEFAULT_PARSE_LIMITS", "ParseLimits", "check_record_text"]
