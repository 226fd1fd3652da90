"""The product's main command.

Until the classifier lands (issue 5), running it with no arguments builds the demo dataset (if it is
missing) and prints its statistics.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

DEFAULT_DATA_ROOT = os.path.join("data", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                        help=f"dataset root in the xinpianchang layout; the demo dataset is made there if it "
                             f"is missing (default {DEFAULT_DATA_ROOT})")
    parser.add_argument("--demo-per-category", type=int, default=10,
                        help="items per category when the demo dataset has to be made (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def ensure_dataset(data_root: str, per_category: int, seed: int, quiet: bool = False) -> bool:
    """Make the demo dataset at ``data_root`` unless a dataset is already there; True if it was made."""
    from data_interface_for_model.info_file import INFO_FILE_NAME

    if os.path.exists(os.path.join(data_root, INFO_FILE_NAME)):
        return False
    from tqdm import tqdm

    from data_download_tools.demo import DemoConfig, make_demo_dataset

    config = DemoConfig(per_category=per_category, seed=seed)
    with tqdm(total=31 * per_category, desc="making demo dataset", unit="item", disable=quiet) as bar:
        make_demo_dataset(data_root, config, progress=bar.update)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    made = ensure_dataset(args.data_root, args.demo_per_category, args.seed, args.quiet)
    from data_download_tools.statistics import dataset_statistics

    stats = dataset_statistics(args.data_root)
    print(stats.table())
    print(f"dataset {'made' if made else 'found'} at {args.data_root}: {stats.items} items, "
          f"{stats.complete} complete, {len(stats.problems)} problems, {stats.bytes / 1e6:.1f} MB")
    return 0 if stats.complete else 1


if __name__ == "__main__":
    sys.exit(main())
