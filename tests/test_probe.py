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
