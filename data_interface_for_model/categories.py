"""The 31 xinpianchang video categories, exactly as the original project numbered them.

Ids are the positions in the list sorted by the English label with Python's default (case-sensitive)
ordering, which is how the original built ``video_label_to_id``: upper-case names first, then ``space``
and ``stars``.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

#: English label -> Chinese name, as in the original ``video_type_dict``.
VIDEO_TYPE_DICT: Dict[str, str] = {
    "360VR": "VR", "4k": "4K", "Technology": "科技", "Sport": "运动", "Timelapse": "延时",
    "Aerial": "航拍", "Animals": "动物", "Sea": "大海", "Beach": "海滩", "space": "太空",
    "stars": "星空", "City": "城市", "Business": "商业", "Underwater": "水下摄影",
    "Wedding": "婚礼", "Archival": "档案", "Backgrounds": "背景", "Alpha Channel": "透明通道",
    "Intro": "开场", "Celebration": "庆典", "Clouds": "云彩", "Corporate": "企业",
    "Explosion": "爆炸", "Film": "电影镜头", "Green Screen": "绿幕", "Military": "军事",
    "Nature": "自然", "News": "新闻", "R3d": "R3d", "Romantic": "浪漫", "Abstract": "抽象",
}

#: The 31 English labels in id order (0-30).
LABELS: Tuple[str, ...] = tuple(sorted(VIDEO_TYPE_DICT))
NUM_CLASSES: int = len(LABELS)

#: ``video_label_to_id`` of the original code.
LABEL_TO_ID: Dict[str, int] = {label: i for i, label in enumerate(LABELS)}
ID_TO_LABEL: Dict[int, str] = dict(enumerate(LABELS))


class UnknownLabelError(ValueError):
    """A label that is not one of the 31 categories."""


def label_to_id(label: str) -> int:
    """Return the class id (0-30) of an English label; raise :class:`UnknownLabelError` otherwise."""
    try:
        return LABEL_TO_ID[label]
    except (KeyError, TypeError):
        raise UnknownLabelError(
            f"unknown label {label!r}: expected one of the 31 categories ({', '.join(LABELS)})"
        ) from None


def id_to_label(class_id: int) -> str:
    """Return the English label of a class id (0-30)."""
    try:
        return ID_TO_LABEL[int(class_id)]
    except (KeyError, ValueError, TypeError):
        raise UnknownLabelError(f"unknown class id {class_id!r}: expected 0-{NUM_CLASSES - 1}") from None


def chinese_name(label: str) -> str:
    """Return the Chinese name of an English label."""
    label_to_id(label)
    return VIDEO_TYPE_DICT[label]


def labels() -> List[str]:
    """The 31 labels in id order, as a new list."""
    return list(LABELS)
