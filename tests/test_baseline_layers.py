"""The classifier's layers and models: shapes, masking, serialisation (no pretrained weights needed)."""
import numpy as np
import pytest

import keras

from baseline_model.kinds import PretrainedConfig, SeedBaselineConfig
from baseline_model.layers import AttentionPooling, GatedModalityFusion, ModalityDropout, ModalityPresence
from baseline_model.models import build_fusion_head, build_seed_baseline


def test_attention_pooling_ignores_masked_frames():
    layer = AttentionPooling(8)
    frames = np.random.default_rng(0).normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], "float32")
    pooled = np.asarray(layer(frames, frame_mask=mask))
    assert pooled.shape == (2, 6)
    np.testing.assert_allclose(pooled[1], frames[1, 0], rtol=1e-5)  # one real frame: that frame
    changed = frames.copy()
    changed[0, 2:] = 100.0  # masked frames do not matter
    np.testing.assert_allclose(np.asarray(layer(changed, frame_mask=mask))[0], pooled[0], rtol=1e-5)


def test_fusion_uses_only_present_modalities():
    layer = GatedModalityFusion(5)
    rng = np.random.default_rng(1)
    a, b, c = (rng.normal(size=(3, 5)).astype("float32") for _ in range(3))
    presence = np.array([[1, 0, 0], [1, 1, 1], [0, 0, 1]], "float32")
    out = np.asarray(layer([a, b, c, presence]))
    assert out.shape == (3, 5)
    out2 = np.asarray(layer([a, b + 50.0, c, presence]))
    np.testing.assert_allclose(out2[0], out[0], rtol=1e-5)  # b missing in row 0: no effect
    np.testing.assert_allclose(out2[2], out[2], rtol=1e-5)
    assert not np.allclose(out2[1], out[1])


def test_modality_dropout_never_hides_everything():
    layer = ModalityDropout(rate=0.5, seed=3)
    presence = np.ones((500, 3), "float32")
    dropped = np.asarray(layer(presence, training=True))
    assert dropped.sum(axis=1).min() >= 1
    assert dropped.mean() < 0.7  # it did hide things
    np.testing.assert_array_equal(np.asarray(layer(presence, training=False)), presence)


def test_presence_is_read_from_raw_inputs():
    text = np.array(["a beach", "", "  "])
    cover = np.zeros((3, 4, 4, 3), "float32")
    cover[0] = 0.5
    frames = np.zeros((3, 2, 4, 4, 3), "float32")
    frames[1, 1] = 0.2
    presence, frame_mask = ModalityPresence()([text, cover, frames])
    np.testing.assert_array_equal(np.asarray(presence), [[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(frame_mask), [[0, 0], [0, 1], [0, 0]])


def _features(n, t=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"text_features": rng.normal(size=(n, 16)).astype("float32"),
            "cover_features": rng.normal(size=(n, 24)).astype("float32"),
            "frame_features": rng.normal(size=(n, t, 24)).astype("float32"),
            "presence": np.ones((n, 3), "float32"), "frame_mask": np.ones((n, t), "float32")}


def test_fusion_head_shapes_and_round_trip(tmp_path):
    config = PretrainedConfig(embedding_dim=32, fusion_dim=16)
    head = build_fusion_head(config, 16, 24)
    x = _features(4)
    probabilities = np.asarray(head(x))
    assert probabilities.shape == (4, 31)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert head.get_layer("embedding").output.shape[-1] == 32
    head.save(tmp_path / "h.keras")
    again = keras.saving.load_model(tmp_path / "h.keras")
    np.testing.assert_allclose(np.asarray(again(x)), probabilities, rtol=1e-5, atol=1e-6)


def test_fusion_head_learns_a_separable_toy_problem():
    config = PretrainedConfig(embedding_dim=32, fusion_dim=32, modality_dropout=0.0, dropout=0.0)
    head = build_fusion_head(config, 16, 24)
    x = _features(256, seed=2)
    labels = (x["text_features"][:, 0] > 0).astype("int32") * 5
    head.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    history = head.fit(x, labels, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.3
    assert history.history["accuracy"][-1] > 0.9


def test_seed_baseline_has_the_original_structure():
    config = SeedBaselineConfig(num_frames=8, image_size=32)
    model = build_seed_baseline(config, ["beach sand waves", "city skyline night"])
    names = {layer.name for layer in model.layers}
    assert {"text_bilstm", "video_fc256", "video_fc128", "concat", "embedding", "probabilities"} <= names
    assert model.get_layer("embedding").units == 100 and model.get_layer("text_dense").units == 50
    assert len([n for n in names if n.startswith("cover_conv")]) == 4
    out = model({"text": np.array(["beach sand", "unknown words"]), "cover": np.zeros((2, 32, 32, 3), "float32"),
                 "frames": np.zeros((2, 8, 32, 32, 3), "float32")})
    assert out.shape == (2, 31)
