"""A ``torch.utils.data.Dataset`` over either numpy dataset, and a collate function for ``DataLoader``.

::

    from torch.utils.data import DataLoader
    from data_interface_for_model.numpy_dataset import RawNumpyDataset
    from data_interface_for_model.torch_dataset import TorchVideoDataset, collate_batch

    ds = TorchVideoDataset(RawNumpyDataset("ROOT", num_frames=8, size=112, split="train"))
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, collate_fn=collate_batch)
    for batch in loader:
        batch["frames"]   # uint8 [B, T, S, S, 3]  (channels last, as stored)
        batch["cover"]    # uint8 [B, S, S, 3]
        batch["label"]    # int64 [B]
        batch["num_frames"]  # int64 [B]
        batch["audio"], batch["audio_present"]  # float32 [B, P, 187, 96], bool [B] (audio_patches=P)
        batch["text"], batch["id"]   # lists of B strings

Pictures stay uint8 channels-last; :func:`to_float_channels_first` turns a sample or batch into float32 in
[0, 1] with channels first (``[..., 3, S, S]``), the usual torchvision layout. Nothing here needs TensorFlow.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

Sample = Dict[str, Any]


class TorchVideoDataset(Dataset):
    """Wrap a map-style numpy dataset (``len``, ``[i] -> dict``) as a torch ``Dataset`` of tensors.

    Args:
      numpy_dataset: :class:`~data_interface_for_model.numpy_dataset.PreparedNumpyDataset` or
        :class:`~data_interface_for_model.numpy_dataset.RawNumpyDataset` (or anything shaped like them).
      transform: called on each sample (a dict of tensors and strings) and returns the sample to use.
    """

    def __init__(self, numpy_dataset, transform: Optional[Callable[[Sample], Sample]] = None):
        self.numpy_dataset = numpy_dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.numpy_dataset)

    def __getitem__(self, index: int) -> Sample:
        example = self.numpy_dataset[index]
        sample: Sample = {}
        for key, value in example.items():
            if isinstance(value, np.ndarray):
                sample[key] = torch.from_numpy(np.ascontiguousarray(value))
            elif isinstance(value, (bool, np.bool_)):  # before int: a bool is an int
                sample[key] = torch.tensor(bool(value), dtype=torch.bool)
            elif isinstance(value, (int, np.integer)):
                sample[key] = torch.tensor(int(value), dtype=torch.int64)
            else:
                sample[key] = value
        return self.transform(sample) if self.transform is not None else sample


def collate_batch(samples: Sequence[Sample]) -> Sample:
    """Stack tensors along a new batch dimension; strings become lists."""
    if not samples:
        raise ValueError("cannot collate an empty batch")
    batch: Sample = {}
    for key in samples[0]:
        values: List[Any] = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    return batch


def to_float_channels_first(sample: Sample) -> Sample:
    """``frames``/``cover`` uint8 ``[..., S, S, 3]`` -> float32 ``[..., 3, S, S]`` in [0, 1] (a ``transform``)."""
    out = dict(sample)
    for key in ("frames", "cover"):
        if key in out:
            out[key] = out[key].movedim(-1, -3).to(torch.float32).div_(255.0)
    return out
