"""numpy datasets over prepared shards and raw layouts, the torch wrapper, and the no-TensorFlow path."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_interface_for_model.decoding import DecodeError
from data_interface_for_model.numpy_dataset import PreparedNumpyDataset, RawNumpyDataset


def _check_example(example, num_frames, size):
    assert set(example) == {"text", "cover", "frames", "num_frames", "label", "id"}
    assert example["frames"].shape == (num_frames, size, size, 3) and example["frames"].dtype == np.uint8
    assert example["cover"].shape == (size, size, 3) and example["cover"].dtype == np.uint8
    assert isinstance(example["text"], str) and example["text"].strip()
    assert isinstance(example["label"], int) and 0 <= example["label"] < 31
    assert isinstance(example["id"], str) and 1 <= example["num_frames"] <= num_frames


def test_prepared_numpy_dataset(prepared_demo):
    ds = PreparedNumpyDataset(prepared_demo, "validation", 8, 112)
    assert len(ds) >= 4
    _check_example(ds[0], 8, 112)
    assert ds[-1]["id"] == ds[len(ds) - 1]["id"]
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(FileNotFoundError, match="prepare"):
        PreparedNumpyDataset(prepared_demo, "train", 4, 64)


def test_raw_numpy_dataset_uses_the_same_splits_as_prepare(prepared_demo, demo_root):
    raw = RawNumpyDataset(demo_root, 4, 32)
    assert len(raw) == 62
    _check_example(raw[5], 4, 32)
    for split in ("train", "validation", "test"):
        prepared = PreparedNumpyDataset(prepared_demo, split, 8, 112)
        raw_split = RawNumpyDataset(demo_root, 4, 32, split=split)
        assert sorted(prepared[i]["id"] for i in range(len(prepared))) == sorted(i.mp4_id for i in raw_split.items)


def test_raw_numpy_dataset_errors(demo_copy):
    ds = RawNumpyDataset(demo_copy, 4, 16)
    open(ds.items[3].video_path, "wb").write(b"\x00" * 100)
    with pytest.raises(DecodeError, match=ds.items[3].mp4_id):
        ds[3]
    tolerant = RawNumpyDataset(demo_copy, 4, 16, on_error="next")
    assert tolerant[3]["id"] == tolerant.items[4].mp4_id
    with pytest.raises(ValueError):
        RawNumpyDataset(demo_copy, split="dev")


def test_torch_dataloader_with_two_workers(demo_root):
    """Raw layout, in this process; the prepared shards under DataLoader(num_workers=2) are tested in a clean
    process (test_numpy_paths_work_without_tensorflow): this one has used ArrayRecord, which is not fork-safe."""
    import torch
    from torch.utils.data import DataLoader

    from data_interface_for_model.torch_dataset import TorchVideoDataset, collate_batch, to_float_channels_first

    base, size, frames = RawNumpyDataset(demo_root, 4, 32, split="train"), 32, 4
    loader = DataLoader(TorchVideoDataset(base), batch_size=8, shuffle=True, num_workers=2, collate_fn=collate_batch)
    ids = []
    for batch in loader:
        b = len(batch["id"])
        assert batch["frames"].shape == (b, frames, size, size, 3) and batch["frames"].dtype == torch.uint8
        assert batch["cover"].shape == (b, size, size, 3)
        assert batch["label"].dtype == torch.int64 and batch["label"].shape == (b,)
        assert isinstance(batch["text"], list) and len(batch["text"]) == b
        ids.extend(batch["id"])
    assert sorted(ids) == sorted(base[i]["id"] for i in range(len(base)))
    sample = TorchVideoDataset(base, transform=to_float_channels_first)[0]
    assert sample["frames"].shape == (frames, 3, size, size) and sample["frames"].dtype == torch.float32
    assert 0.0 <= float(sample["frames"].min()) and float(sample["frames"].max()) <= 1.0


NO_TENSORFLOW = textwrap.dedent('''
    import importlib.machinery, sys

    class NoTensorFlow(importlib.machinery.PathFinder):
        """Makes `tensorflow` look not installed (find_spec returns None), the rest imports as usual."""
        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return None
            return super().find_spec(name, path, target)

    sys.meta_path[:] = [NoTensorFlow if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
    try:
        import tensorflow  # noqa: F401
        raise SystemExit("tensorflow should not be importable here")
    except ModuleNotFoundError:
        pass
    root, data_dir = sys.argv[1], sys.argv[2]
    import data_interface_for_model as package
    from data_interface_for_model.numpy_dataset import PreparedNumpyDataset, RawNumpyDataset
    from data_interface_for_model.torch_dataset import TorchVideoDataset, collate_batch
    from torch.utils.data import DataLoader
    raw = RawNumpyDataset(root, 4, 32, split="test")
    prepared = PreparedNumpyDataset(data_dir, "test", 8, 112)
    for dataset, shape in ((raw, (4, 32, 32, 3)), (prepared, (8, 112, 112, 3))):
        # the default start method (fork on Linux), two workers, shuffled
        loader = DataLoader(TorchVideoDataset(dataset), batch_size=4, shuffle=True, num_workers=2,
                            collate_fn=collate_batch)
        ids = [i for batch in loader for i in batch["id"]]
        assert sorted(ids) == sorted(dataset[i]["id"] for i in range(len(dataset)))
        assert tuple(dataset[0]["frames"].shape) == shape
    video, image, text, label = next(package.multimodel_numpy_data_interface(
        root, True, 3, 1, 10, 24, 40, 5, 36, 64))
    assert video.shape == (3, 5, 36, 64, 3) and image.shape == (3, 24, 40, 3) and text.shape == (3, 10)
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
    print("ok without tensorflow")
''')


def test_numpy_paths_work_without_tensorflow(prepared_demo, demo_root, tmp_path):
    script = tmp_path / "no_tf.py"
    script.write_text(NO_TENSORFLOW)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, str(script), demo_root, prepared_demo], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok without tensorflow" in result.stdout
