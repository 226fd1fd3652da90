"""``python -m retrieval.music VERB``: the verbs of ``retrieval.music.cli``."""
import sys

from retrieval.music.cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
