"""The linear probe: L2 logistic regression, its strength picked on validation."""
import numpy as np

from baseline_model.probe import C_GRID, fit_probe, probe_inputs


def _blobs(n, seed, classes=4, dim=10, noise=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, dim)) * 2
    y = rng.integers(0, classes, size=n)
    return centres[y] + rng.normal(scale=noise, size=(n, dim)), y


def test_probe_learns_and_picks_C_on_validation():
    x, y = _blobs(200, 0)
    vx, vy = _blobs(60, 1)
    tx, ty = _blobs(200, 2)
    probe = fit_probe(x, y, vx, vy, num_classes=6)
    assert probe.C in C_GRID and 0.0 <= probe.validation_accuracy <= 1.0
    probabilities = probe.predict_proba(tx)
    assert probabilities.shape == (200, 6) and np.allclose(probabilities[:, 4:], 0.0)  # unseen classes
    assert (probabilities.argmax(axis=1) == ty).mean() > 0.9


def test_probe_inputs_average_only_the_real_frames():
    arrays = {"text_features": np.ones((1, 2)), "cover_features": np.zeros((1, 3)),
              "frame_features": np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]]),
              "frame_mask": np.array([[1.0, 1.0, 0.0]]), "presence": np.array([[1.0, 1.0, 1.0]])}
    x = probe_inputs(arrays)
    assert x.shape == (1, 2 + 3 + 2 + 3)
    np.testing.assert_allclose(x[0, 5:7], [2.0, 2.0])


def _feature_arrays(n, seed, classes, text_dim=4, image_dim=5, frames=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    centres = np.random.default_rng(7).normal(size=(classes, text_dim + image_dim)) * 2
    base = centres[y] + rng.normal(scale=0.5, size=(n, text_dim + image_dim))
    mask = (rng.random((n, frames)) < 0.8).astype(np.float32)
    mask[:, 0] = 1.0
    presence = np.ones((n, 3), np.float32)
    presence[::5, 0] = 0.0  # some briefs missing: their features are zeros, as the cache stores them
    text = base[:, :text_dim] * presence[:, :1]
    return {"text_features": text.astype(np.float32), "cover_features": base[:, text_dim:].astype(np.float32),
            "frame_features": (base[:, None, text_dim:] + rng.normal(size=(n, frames, image_dim))).astype(np.float32)
            * mask[..., None], "frame_mask": mask, "presence": presence, "label": y}


def test_probe_inside_the_head_matches_scikit_learn_and_survives_saving(tmp_path):
    """The ensemble layer holds the fitted probe exactly: the head alone until activated (training and
    validation), then the mean of the head and the probe, the same numbers after saving and loading the head;
    binary and unseen classes included."""
    import keras

    from baseline_model.kinds import PretrainedConfig
    from baseline_model.models.fusion_head import build_fusion_head

    for classes, num_classes in ((4, 6), (2, 2)):
        train, val, test = (_feature_arrays(n, s, classes) for n, s in ((80, 0), (30, 1), (20, 2)))
        probe = fit_probe(probe_inputs(train), train["label"], probe_inputs(val), val["label"], num_classes)
        config = PretrainedConfig(num_frames=3, fusion_dim=8, embedding_dim=8)
        head = build_fusion_head(config, 4, 5, num_classes=num_classes, probe=probe)
        alone = keras.Model(head.inputs, head.get_layer("probabilities").output)
        inputs = {k: v for k, v in test.items() if k != "label"}
        # while the head trains (and early stopping validates) the probe is not blended in
        np.testing.assert_allclose(head.predict(inputs, verbose=0), alone.predict(inputs, verbose=0), atol=1e-6)
        head.get_layer("probe_ensemble").activate()
        expected = (alone.predict(inputs, verbose=0) + probe.predict_proba(probe_inputs(test))) / 2
        np.testing.assert_allclose(head.predict(inputs, verbose=0), expected, atol=1e-5)
        layer = head.get_layer("probe_ensemble")
        args_keys = ("text_features", "cover_features", "frame_features", "frame_mask", "presence")
        uniform = np.full((len(test["label"]), num_classes), 1.0 / num_classes, np.float32)
        args = [uniform] + [inputs[k] for k in ("text_features", "cover_features", "frame_features", "frame_mask",
                                                 "presence")]
        np.testing.assert_allclose(np.asarray(layer(args, training=True)), uniform)  # training: the head alone
        np.testing.assert_allclose(np.asarray(layer(args, training=False)),
                                   (uniform + probe.predict_proba(probe_inputs(test))) / 2, atol=1e-5)
        # a masked modality (presence 0, as single-modality evaluation masks it) is hidden from the probe too
        masked = dict(inputs, presence=inputs["presence"] * np.array([0, 1, 1], np.float32))
        other = dict(masked, text_features=masked["text_features"] + 5.0)
        np.testing.assert_allclose(layer.probe_probabilities(*[other[k] for k in args_keys]),
                                   layer.probe_probabilities(*[masked[k] for k in args_keys]), atol=1e-6)
        path = str(tmp_path / f"head{classes}.keras")
        head.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0), expected, atol=1e-5)
