"""The xinpianchang dataset: categories, records, the on-disk layout, and (in submodules) decoding,
the TFDS builder, tf.data pipelines and numpy/PyTorch datasets.

Importing this package needs neither TensorFlow nor PyAV; the submodules that do import them lazily.
"""
import os as _os
import sys as _sys

# The one Keras 2/3 switch of the project. The recommender (TensorFlow Recommenders 0.7.7) needs tf.keras to
# be Keras 2 (tf-keras); TensorFlow reads TF_USE_LEGACY_KERAS once, when it is first imported, so it must be
# set before any TensorFlow import in the process. Every package of this project imports this one from its
# own ``__init__`` (the entry points, the front door and every library import pass through there), so the
# variable is set before anything can import TensorFlow. The classifier uses Keras 3 through ``import keras``,
# which the variable leaves alone. Objects of the two Kerases never meet: only tensors and arrays cross.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if "tensorflow" in _sys.modules and _os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    import logging as _logging

    _logging.getLogger(__name__).warning(
        "TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set: the recommender (TFRS) will not work in "
        "this process; import a project package first, or export the variable")
from data_interface_for_model.categories import (
    LABELS,
    LABEL_TO_ID,
    NUM_CLASSES,
    VIDEO_TYPE_DICT,
    UnknownLabelError,
    id_to_label,
    label_to_id,
)
from data_interface_for_model.info_file import (
    INFO_FILE_NAME,
    InfoFileError,
    LineError,
    iter_info_file,
    read_info_file,
    write_info_file,
)
from data_interface_for_model.item_txt import parse_item_text, read_item_txt, write_item_txt
from data_interface_for_model.layout import LayoutItem, LayoutProblem, LayoutReader, iter_layout
from data_interface_for_model.schema import (
    RecordError,
    VideoRecord,
    format_duration,
    parse_duration,
    validate_label,
    validate_mp4_id,
)

__all__ = [
    "INFO_FILE_NAME", "LABELS", "LABEL_TO_ID", "NUM_CLASSES", "VIDEO_TYPE_DICT", "InfoFileError", "LayoutItem",
    "LayoutProblem", "LayoutReader", "LineError", "RecordError", "UnknownLabelError", "VideoRecord",
    "format_duration", "id_to_label", "iter_info_file", "iter_layout", "label_to_id", "parse_duration",
    "parse_item_text", "read_info_file", "read_item_txt", "validate_label", "validate_mp4_id",
    "write_info_file", "write_item_txt",
]

#: The original repository's public functions (see ``compat``), imported on first use so that importing
#: this package still needs neither TensorFlow nor PyAV.
_COMPAT_NAMES = frozenset({
    "multimodal_data_path_generator", "get_multimodal_data_path_list", "multimodal_encode_data_generator",
    "multimodal_tensorflow_dataset", "multimodel_numpy_data_interface", "multimodal_numpy_data_interface",
    "video_label_to_id",
})


def __getattr__(name: str):
    if name in _COMPAT_NAMES:
        from data_interface_for_model import compat

        return getattr(compat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
