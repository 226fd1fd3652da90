"""Shared fixtures: a small demo dataset made once per test session."""
from __future__ import annotations

import os
import shutil

# Before anything imports TensorFlow: tf.keras = tf-keras for TFRS; the classifier's `import keras` stays Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest

from data_download_tools.demo import DemoConfig, make_demo_dataset

#: Small but complete: all 31 categories, 2 items each, tiny clips.
SMALL_DEMO = DemoConfig(per_category=2, seed=3, width=64, height=48, fps=8, min_seconds=1, max_seconds=2,
                        cover_width=64, cover_height=48, workers=2)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> str:
    """A read-only-by-convention demo dataset (copy it before changing it)."""
    root = str(tmp_path_factory.mktemp("demo") / "root")
    make_demo_dataset(root, SMALL_DEMO)
    return root


@pytest.fixture
def demo_copy(demo_root, tmp_path) -> str:
    """A private copy of the demo dataset that a test may damage."""
    target = str(tmp_path / "copy")
    shutil.copytree(demo_root, target)
    return target


@pytest.fixture(scope="session")
def prepared_demo(demo_root, tmp_path_factory) -> str:
    """The demo dataset prepared once as TFDS ``xinpianchang`` config frames8_size112; its data dir."""
    from data_interface_for_model.prepare import prepare_dataset

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    prepare_dataset(demo_root, data_dir, num_frames=8, size=112, workers=2, progress=False)
    return data_dir
