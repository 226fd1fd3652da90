"""Train, evaluate and export a multimodal short-video classifier: an alias of ``xinpianchang classifier
train`` (the same flags and output; see ``--help``)."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter, not our messages

from baseline_model.train_job import build_parser  # noqa: E402  (light: no TensorFlow until a verb runs)
from data_interface_for_model.cli import verb_main  # noqa: E402

__all__ = ["build_parser", "main"]


def main(argv: Optional[List[str]] = None) -> int:
    return verb_main(build_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
