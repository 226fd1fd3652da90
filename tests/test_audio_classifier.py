"""The classifier's audio branch: frozen musicnn over the log-mel windows, presence, pooling, serving input."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from baseline_model.models import audio_branch  # noqa: E402
from data_interface_for_model import audio  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return audio_branch.build_audio_encoder(weights=None)  # random weights: the wiring, not the checkpoint


def test_window_encoder_is_frozen_and_deterministic(encoder):
    rng = np.random.default_rng(0)
    windows = rng.uniform(0, 3, (2, 3, audio.PATCH_FRAMES, audio.N_MELS)).astype(np.float32)
    windows[1] = 0  # the second clip has no sound
    inputs = keras.Input((3, audio.PATCH_FRAMES, audio.N_MELS))
    features, presence = audio_branch.encode_audio(encoder, inputs)
    model = keras.Model(inputs, [features, presence])
    assert not encoder.trainable_weights
    trained, present = model(windows, training=True)
    inferred, _ = model(windows, training=False)
    # musicnn's dropout and batch statistics stay off while the head trains
    np.testing.assert_allclose(np.asarray(trained), np.asarray(inferred), atol=1e-6)
    assert tuple(trained.shape) == (2, 3, 200)
    np.testing.assert_array_equal(np.asarray(present), [[1.0], [0.0]])
    np.testing.assert_allclose(np.asarray(trained)[0, 1], np.asarray(encoder(windows[0, 1:2]))[0], atol=1e-5)


def test_projection_pools_windows():
    inputs = keras.Input((3, 200))
    model = keras.Model(inputs, audio_branch.project_audio(inputs, 16))
    x = np.random.default_rng(1).normal(size=(2, 3, 200)).astype(np.float32)
    out = np.asarray(model(x))
    assert out.shape == (2, 16)
    np.testing.assert_allclose(out, np.asarray(model(x[:, ::-1])), atol=1e-5)  # the window order does not matter


def test_serving_audio_resamples_windows_and_reads_none_as_silence():
    x = np.arange(4, dtype=np.float32)[None, :, None, None] * np.ones((2, 4, audio.PATCH_FRAMES, audio.N_MELS),
                                                                      np.float32)
    chosen = np.asarray(audio_branch.serving_audio(x, 2))
    assert chosen.shape == (2, 2, audio.PATCH_FRAMES, audio.N_MELS)
    assert chosen[:, :, 0, 0].tolist() == [[1.0, 3.0], [1.0, 3.0]]  # the windows nearest the centres
    empty = np.zeros((3, 0, audio.PATCH_FRAMES, audio.N_MELS), np.float32)
    silent = np.asarray(audio_branch.serving_audio(empty, 2))
    assert silent.shape == (3, 2, audio.PATCH_FRAMES, audio.N_MELS) and not silent.any()
