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
    windows = rng.uniform(0, 3, (2, 2, audio.PATCH_FRAMES, audio.N_MELS)).astype(np.float32)
    windows[1] = 0  # the second clip has no sound
    inputs = keras.Input((2, audio.PATCH_FRAMES, audio.N_MELS))
    features, presence = audio_branch.encode_audio(encoder, inputs)
    model = keras.Model(inputs, [features, presence])
    assert not encoder.trainable_weights
    trained, present = model(windows, training=True)
    inferred, _ = model(windows, training=False)
    # musicnn's dropout and batch statistics stay off while the head trains
    np.testing.assert_allclose(np.asarray(trained), np.asarray(inferred), atol=1e-6)
    assert tuple(trained.shape) == (2, 2, 200)
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


def _arrays(n: int, windows: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    presence = np.ones((n, 4 if windows else 3), np.float32)
    arrays = {"text_features": rng.normal(size=(n, 6)).astype(np.float32) + labels[:, None],
              "cover_features": rng.normal(size=(n, 5)).astype(np.float32),
              "frame_features": rng.normal(size=(n, 2, 5)).astype(np.float32),
              "frame_mask": np.ones((n, 2), np.float32), "label": labels}
    if windows:
        presence[::5, 3] = 0  # some clips without sound
        audio_features = rng.normal(size=(n, windows, 200)).astype(np.float32) + labels[:, None, None]
        arrays["audio_features"] = audio_features * presence[:, 3, None, None]
    arrays["presence"] = presence
    return arrays


def _head_inputs(arrays: dict, presence_override=None) -> dict:
    from baseline_model.features import features_dataset

    return next(iter(features_dataset(arrays, len(arrays["label"]), shuffle=False,
                                      presence_override=presence_override)))[0]


def test_head_with_audio_is_a_fourth_modality_and_reloads(tmp_path):
    from baseline_model.kinds.pretrained import Pretrained, PretrainedConfig
    from baseline_model.models.fusion_head import build_fusion_head

    config = PretrainedConfig(num_frames=2, fusion_dim=16, embedding_dim=8, audio_windows=3)
    arrays = _arrays(40, 3)
    probe = Pretrained(config).fit_probe(arrays, arrays, 4, seed=0)  # the lead's probe ensemble, over 4 columns
    head = build_fusion_head(config, 6, 5, num_classes=4, probe=probe)
    shapes = {t.name: tuple(t.shape) for t in head.inputs}
    assert shapes["presence"] == (None, 4) and shapes["audio_features"] == (None, 3, 200)
    every = np.asarray(head(_head_inputs(arrays), training=False))
    silent = np.asarray(head(_head_inputs(arrays, (1, 1, 1, 0)), training=False))
    assert np.abs(every - silent).max() > 1e-4  # the sound reaches the prediction
    # a 3-column mask on a 4-column presence: "all" keeps the sound, a single modality drops it
    np.testing.assert_allclose(np.asarray(head(_head_inputs(arrays, (1, 1, 1)), training=False)), every, atol=1e-6)
    np.testing.assert_allclose(np.asarray(head(_head_inputs(arrays, (1, 0, 0)), training=False)),
                               np.asarray(head(_head_inputs(arrays, (1, 0, 0, 0)), training=False)), atol=1e-6)
    # the ensemble's probe reads the sound too: the mean window embedding, as probe_inputs gives it
    from baseline_model.probe import probe_inputs

    x = _head_inputs(arrays)
    got = head.get_layer("probe_ensemble").probe_probabilities(
        x["text_features"], x["cover_features"], x["frame_features"], x["frame_mask"], x["presence"],
        x["audio_features"])
    np.testing.assert_allclose(np.asarray(got), probe.predict_proba(probe_inputs(arrays)), atol=1e-4)
    path = str(tmp_path / "head.keras")
    head.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(_head_inputs(arrays), training=False)),
                               every, atol=1e-5)


def test_head_without_audio_is_unchanged_and_audio_needs_the_cache():
    from baseline_model.kinds.pretrained import PretrainedConfig
    from baseline_model.models.fusion_head import build_fusion_head

    head = build_fusion_head(PretrainedConfig(num_frames=2, fusion_dim=16, embedding_dim=8), 6, 5, num_classes=4)
    assert {t.name: tuple(t.shape) for t in head.inputs}["presence"] == (None, 3)
    assert not any("audio" in layer.name for layer in head.layers)
    with pytest.raises(ValueError, match="--audio"):
        PretrainedConfig(audio_windows=2, fine_tune_top_layers=2)


def test_train_flags_ask_for_sound():
    from baseline_model.__main__ import build_parser
    from baseline_model.kinds.pretrained import Pretrained

    args = build_parser().parse_args(["train", "--audio", "--audio-windows", "3"])
    assert Pretrained.config_kwargs(args)["audio_windows"] == 3
    assert Pretrained.config_kwargs(build_parser().parse_args(["train"]))["audio_windows"] == 0
