"""musicnn ported to Keras 3: same outputs as the wheel's own TF1 graph on real music, sensible tags, cached weights."""
from __future__ import annotations

import os

import numpy as np
import pytest

from data_interface_for_model import audio
from baseline_model.encoders import musicnn


def real_track(name: str) -> str:
    import immich_memories_music

    mood = name.split("_")[0]
    return str(immich_memories_music.tracks_dir() / mood / f"{name}.opus")


def track_patches(name: str, count: int = 2) -> np.ndarray:
    samples, _, _ = audio.decode_track(real_track(name), max_seconds=3.0 * count + 1)
    return musicnn.track_patches(audio.log_mel(samples, patch_frames=None).numpy())[:count]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("musicnn_cache"))


@pytest.fixture(scope="module")
def net(cache):
    return musicnn.build_musicnn(cache_dir=cache)  # converts the checkpoint into ``cache`` once


@pytest.mark.slow
def test_port_matches_the_original_tf1_graph_on_real_music(net):
    patches = track_patches("energetic_electronic_s411", count=1)
    ours = net.predict(patches, verbose=0)
    reference = musicnn.original_forward(patches)
    for key in ("logits", "penultimate", "mean_pool", "max_pool"):
        scale = float(np.abs(reference[key]).max())
        assert scale > 0.1, key
        np.testing.assert_allclose(ours[key], reference[key], atol=1e-4 * max(1.0, scale), err_msg=key)


@pytest.mark.slow
def test_tags_of_real_tracks(net):
    electronic = net.predict(track_patches("energetic_electronic_s411"), verbose=0)["tags"].mean(0)
    acoustic = net.predict(track_patches("calm_acoustic_s411"), verbose=0)["tags"].mean(0)
    assert {"electronic", "techno"} & set(musicnn.top_tags(electronic, k=3))
    assert musicnn.top_tags(acoustic, k=1) == ["guitar"]
    tag = musicnn.MTT_LABELS.index
    assert electronic[tag("techno")] > acoustic[tag("techno")]
    assert acoustic[tag("guitar")] > electronic[tag("guitar")]


def test_architecture_and_checkpoint_names():
    model = musicnn.build_musicnn(weights=None)
    checkpoint = musicnn.read_checkpoint()
    assert model.count_params() == sum(v.size for v in checkpoint.values()) == 792_079  # one weight per variable
    out = model.predict(np.zeros((1, 64, musicnn.N_MELS), np.float32), verbose=0)  # any length >= 32 frames
    assert out["penultimate"].shape == (1, 200) and out["tags"].shape == (1, 50) and out["mean_pool"].shape == (1, 753)
    musicnn.assign_checkpoint_weights(model, checkpoint)
    del checkpoint["conv2d_7/kernel"]
    with pytest.raises(KeyError, match="conv2d_7/kernel"):
        musicnn.assign_checkpoint_weights(model, checkpoint)
    with pytest.raises(ValueError, match="unknown musicnn model"):
        musicnn.build_musicnn("MTT_vgg", weights=None)


@pytest.mark.slow
def test_converted_weights_are_cached_atomically_and_reconverted_when_damaged(net, cache):
    path = os.path.join(cache, musicnn.cache_file_name(musicnn.DEFAULT_MODEL))
    assert sorted(os.listdir(cache)) == [os.path.basename(path)]  # no temporary file left behind
    stamp = os.stat(path).st_mtime_ns
    second = musicnn.build_musicnn(cache_dir=cache)
    assert os.stat(path).st_mtime_ns == stamp  # loaded, not converted again
    x = np.random.default_rng(0).random((1, 187, 96)).astype(np.float32) * 3
    expected = net.predict(x, verbose=0)["logits"]
    np.testing.assert_array_equal(expected, second.predict(x, verbose=0)["logits"])
    with open(path, "wb") as handle:
        handle.write(b"damaged")
    third = musicnn.build_musicnn(cache_dir=cache)
    np.testing.assert_array_equal(expected, third.predict(x, verbose=0)["logits"])
