"""A tiny interaction log and item catalog on disk, for tests that train a recommender run."""
from pathlib import Path
from typing import Tuple


def write_tiny_log(folder: Path, users: int, items: int, steps: int, stride: int = 1,
                   genres: int = 3) -> Tuple[Path, Path]:
    """``folder``/inter.csv (user u's t-th item: ``i{(u * stride + t) % items}``, timestamp t) and
    ``folder``/items.csv (``item_id,title,genre``) -> their paths."""
    inter = folder / "inter.csv"
    inter.write_text("user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u * stride + t) % items},{t}\n"
                                                               for u in range(users) for t in range(steps)))
    catalog = folder / "items.csv"
    catalog.write_text("item_id,title,genre\n" + "".join(f"i{n},Film {n},g{n % genres}\n" for n in range(items)))
    return inter, catalog
