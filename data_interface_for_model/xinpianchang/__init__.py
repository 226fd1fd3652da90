"""The ``xinpianchang`` TFDS dataset builder (importing this package registers it with TFDS)."""
from data_interface_for_model.xinpianchang.xinpianchang_dataset_builder import (
    NAME,
    BuildOptions,
    Builder,
    SkippedItem,
    XinpianchangConfig,
    config_name,
    make_config,
)

__all__ = ["NAME", "BuildOptions", "Builder", "SkippedItem", "XinpianchangConfig", "config_name", "make_config"]
