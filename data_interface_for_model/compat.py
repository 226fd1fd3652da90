"""The original repository's public functions, with its argument names, as thin layers over the new code.

A user of the original ``data_interface_for_model`` can switch by changing the import::

    from data_interface_for_model.compat import multimodal_tensorflow_dataset   # or from data_interface_for_model

What stays the same: the names, the argument names, order and defaults, what each yields. What is fixed
on purpose (each was a defect of the original):

* ``.txt`` files are parsed safely (never ``eval``);
* frames are ``max_video_frame_number`` frames sampled uniformly across the whole clip (not the first N),
  and a shorter clip is padded with its last frame (not silently dropped);
* pictures are resized keeping the aspect ratio (short side, centre crop) instead of being squashed;
* frames and covers are both RGB float32 in [-1, 1] (the original gave covers in [-1, 1] but frames as raw
  0-255 BGR);
* examples are shuffled before batching, over the whole dataset (not batches with a buffer of 10);
* the text vocabulary is sorted, so token ids are the same on every run (the original's came from a set);
* the "numpy for PyTorch" generator does not need TensorFlow.

Kept as in the original: ``REPEAT_DATASET=None`` repeats forever (give ``fit`` a ``steps_per_epoch``, or
pass ``REPEAT_DATASET=1``); labels are the original's ids (``video_label_to_id``).
For new code use :mod:`.tf_dataset` (prepared shards, much faster) and :mod:`.numpy_dataset`.
"""
from __future__ import annotations

import itertools
import logging
import random
import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from data_interface_for_model.categories import LABEL_TO_ID
from data_interface_for_model.decoding import DecodeError, load_cover, sample_clip
from data_interface_for_model.layout import LayoutItem, iter_layout

logger = logging.getLogger(__name__)

#: The original's name for the label -> id table.
video_label_to_id: Dict[str, int] = dict(LABEL_TO_ID)

_TOKEN_SPLIT = re.compile(r"[\W_]+", re.UNICODE)  # what tfds' Tokenizer splits on


def _items(data_root: str, shuffle_data: bool) -> List[LayoutItem]:
    items = list(iter_layout(data_root))  # complete items; problems are logged item by item
    if shuffle_data:
        random.shuffle(items)
    return items


def multimodal_data_path_generator(data_root: str = "MP4_download",
                                   shuffle_data: bool = False) -> Iterator[Tuple[str, str, str, str]]:
    """Yield ``(mp4_file_path, jpeg_file_path, txt_file_path, label)`` for every complete item."""
    for item in _items(data_root, shuffle_data):
        yield item.video_path, item.cover_path, item.txt_path, item.label


def get_multimodal_data_path_list(data_root: str = "MP4_download",
                                  shuffle_data: bool = False) -> List[Tuple[str, str, str]]:
    """``[(mp4_file_path, jpeg_file_path, txt_file_path), ...]``."""
    return [(mp4, jpeg, txt) for mp4, jpeg, txt, _ in multimodal_data_path_generator(data_root, shuffle_data)]


class BriefEncoder:
    """Word-level token ids like the original's ``tfds`` ``TokenTextEncoder``, but deterministic.

    Tokens are split on non-alphanumeric characters (as tfds' ``Tokenizer``); ids are 1..V in sorted
    order, 0 is padding and V + 1 is the out-of-vocabulary id.
    """

    def __init__(self, vocabulary: Sequence[str]):
        self.vocabulary = sorted(set(vocabulary))
        self._ids = {token: i + 1 for i, token in enumerate(self.vocabulary)}

    @staticmethod
    def tokenize(text: str) -> List[str]:
        return [t for t in _TOKEN_SPLIT.split(text) if t]

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> "BriefEncoder":
        return cls([token for text in texts for token in cls.tokenize(text)])

    @property
    def vocab_size(self) -> int:
        """Ids in use, padding and out-of-vocabulary included (the ``Embedding`` input dimension)."""
        return len(self.vocabulary) + 2

    def encode(self, text: str) -> List[int]:
        oov = len(self.vocabulary) + 1
        return [self._ids.get(token, oov) for token in self.tokenize(text)]

    def encode_padded(self, text: str, maxlen: int) -> np.ndarray:
        """int32 ``[maxlen]``: padded and truncated at the end (``padding='post', truncating='post'``)."""
        ids = self.encode(text)[:maxlen]
        return np.asarray(ids + [0] * (maxlen - len(ids)), np.int32)


def _frame_count(path: str) -> int:
    """Frames in the clip (for ``max_video_frame_number=None``: keep every frame)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))
    except av.FFmpegError as exc:
        raise DecodeError(f"{path}: cannot decode video: {exc}") from None


def _video(path: str, max_video_frame_number: Optional[int], video_height: int, video_width: int) -> np.ndarray:
    count = max_video_frame_number if max_video_frame_number else _frame_count(path)
    return sample_clip(path, count, (video_height, video_width)).frames


def multimodal_encode_data_generator(data_root: str = "MP4_download", shuffle_data: bool = False, txt_maxlen: int = 25,
                                     max_video_frame_number: Optional[int] = None, video_width: int = 640,
                                     video_height: int = 360):
    """Yield ``(encode_video, image_file_path, encode_txt, encode_label)``.

    ``encode_video`` is uint8 RGB ``[max_video_frame_number, video_height, video_width, 3]`` sampled
    uniformly across the clip (every frame when ``max_video_frame_number`` is ``None``); ``encode_txt``
    is int32 ``[txt_maxlen]``; items whose clip does not decode are logged and skipped.
    """
    items = _items(data_root, shuffle_data)
    encoder = BriefEncoder.from_texts([item.brief for item in items])
    for item in items:
        try:
            video = _video(item.video_path, max_video_frame_number, video_height, video_width)
        except DecodeError as exc:
            logger.warning("skipped: %s", exc)
            continue
        yield video, item.cover_path, encoder.encode_padded(item.brief, txt_maxlen), item.label_id


def _to_unit_range(pictures: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1]."""
    return pictures.astype(np.float32) / 127.5 - 1.0


def _load_example(item: LayoutItem, image_height: int, image_width: int, max_video_frame_number: int,
                  video_height: int, video_width: int) -> Tuple[np.ndarray, np.ndarray]:
    video = _video(item.video_path, max_video_frame_number, video_height, video_width)
    image = load_cover(item.cover_path, (image_height, image_width))
    return video, image


def multimodal_tensorflow_dataset(data_root, shuffle_data=False, BATCH_SIZE=100, REPEAT_DATASET=None,  # noqa: N803
                                  txt_maxlen=20, image_height=270, image_width=480,
                                  max_video_frame_number=100, video_height=360, video_width=640):
    """``tf.data`` of ``({"video", "image", "text"}, label)`` batches, as the original's model expects.

    ``video`` float32 ``[B, max_video_frame_number, video_height, video_width, 3]`` and ``image`` float32
    ``[B, image_height, image_width, 3]``, both RGB in [-1, 1]; ``text`` int32 ``[B, txt_maxlen]``;
    label int32 ``[B]``. Decodes with PyAV inside ``tf.numpy_function`` on every epoch (slow at the
    original's 100 frames of 360x640: use :func:`data_interface_for_model.tf_dataset.make_dataset` for
    training). ``REPEAT_DATASET=None`` repeats forever, as in the original.
    """
    import tensorflow as tf

    items = _items(data_root, False)
    if not items:
        raise ValueError(f"no complete item under {data_root!r}")
    encoder = BriefEncoder.from_texts([item.brief for item in items])
    texts = np.stack([encoder.encode_padded(item.brief, txt_maxlen) for item in items])
    labels = np.asarray([item.label_id for item in items], np.int32)
    if not max_video_frame_number:
        raise ValueError("multimodal_tensorflow_dataset needs max_video_frame_number (batches have one shape)")
    frames = int(max_video_frame_number)

    def load(index):
        try:
            video, image = _load_example(items[int(index)], image_height, image_width, frames, video_height,
                                         video_width)
        except DecodeError as exc:
            logger.warning("skipped: %s", exc)
            return (np.zeros((frames, video_height, video_width, 3), np.float32),
                    np.zeros((image_height, image_width, 3), np.float32), False)
        return _to_unit_range(video), _to_unit_range(image), True

    def decode(index, text, label):
        video, image, ok = tf.numpy_function(load, [index], [tf.float32, tf.float32, tf.bool], stateful=False)
        video = tf.ensure_shape(video, (frames, video_height, video_width, 3))
        image = tf.ensure_shape(image, (image_height, image_width, 3))
        return {"video": video, "image": image, "text": text}, label, ok

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(items)), texts, labels))
    if shuffle_data:
        ds = ds.shuffle(len(items), reshuffle_each_iteration=True)
    ds = ds.repeat(REPEAT_DATASET)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda features, label, ok: ok)
    ds = ds.map(lambda features, label, ok_flag: (features, label))
    return ds.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def multimodel_numpy_data_interface(data_root, shuffle_data=False, BATCH_SIZE=100, REPEAT_DATASET=None,  # noqa: N803
                                    txt_maxlen=20, image_height=270, image_width=480,
                                    max_video_frame_number=100, video_height=360, video_width=640):
    """Yield numpy batches ``(encode_video, encode_image, encoded_text, encode_label)`` without TensorFlow.

    Same arrays as :func:`multimodal_tensorflow_dataset` (video and image float32 in [-1, 1], text int32,
    label int32). ``REPEAT_DATASET=None`` repeats forever, as in the original; an int repeats that often.
    """
    items = _items(data_root, False)
    if not items:
        raise ValueError(f"no complete item under {data_root!r}")
    if not max_video_frame_number:
        raise ValueError("multimodel_numpy_data_interface needs max_video_frame_number (batches have one shape)")
    encoder = BriefEncoder.from_texts([item.brief for item in items])
    passes = itertools.count() if REPEAT_DATASET is None else range(int(REPEAT_DATASET))
    for _ in passes:
        order = list(items)
        if shuffle_data:
            random.shuffle(order)
        batch: List[Tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        for item in order:
            try:
                video, image = _load_example(item, image_height, image_width, max_video_frame_number,
                                             video_height, video_width)
            except DecodeError as exc:
                logger.warning("skipped: %s", exc)
                continue
            batch.append((_to_unit_range(video), _to_unit_range(image), encoder.encode_padded(item.brief, txt_maxlen),
                          item.label_id))
            if len(batch) == BATCH_SIZE:
                yield _stack(batch)
                batch = []
        if batch:
            yield _stack(batch)


def _stack(batch):
    videos, images, texts, labels = zip(*batch)
    return np.stack(videos), np.stack(images), np.stack(texts), np.asarray(labels, np.int32)


#: The same function under a correctly spelled name.
multimodal_numpy_data_interface = multimodel_numpy_data_interface

__all__ = [
    "BriefEncoder", "get_multimodal_data_path_list", "multimodal_data_path_generator",
    "multimodal_encode_data_generator", "multimodal_numpy_data_interface", "multimodal_tensorflow_dataset",
    "multimodel_numpy_data_interface", "video_label_to_id",
]
