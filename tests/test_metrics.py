import numpy as np
import pytest

from baseline_model.metrics import classification_report, confusion_matrix, plot_confusion_matrix


def test_report_against_hand_computed_values():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.zeros((5, 31))
    for row, predicted in enumerate([0, 1, 1, 1, 0]):
        probabilities[row, predicted] = 0.9
        probabilities[row, 30] = 0.05
    report = classification_report(labels, probabilities)
    assert report["accuracy"] == pytest.approx(3 / 5)
    # class 0: P=1/2 R=1/2 F1=.5; class 1: P=2/3 R=1 F1=.8; class 2: P=0 R=0 F1=0
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert report["per_class"]["360VR"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_class"]["4k"]["precision"] == pytest.approx(2 / 3)
    # top-5 includes the true class for every row except row 4 (class 2 never scored) -> ties broken by index
    assert 0.0 < report["top5_accuracy"] <= 1.0
    assert np.asarray(report["confusion_matrix"])[1, 1] == 2


def test_confusion_matrix_and_png(tmp_path):
    matrix = confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]))
    assert matrix.shape == (31, 31) and matrix[1, 0] == 1 and matrix.sum() == 3
    path = tmp_path / "cm.png"
    plot_confusion_matrix(matrix, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        classification_report(np.array([0, 1]), np.zeros((3, 31)))


def test_wilson_interval_matches_the_textbook_values():
    from baseline_model.metrics import wilson_interval

    low, high = wilson_interval(15, 16)  # 0.94 on 16 test items
    assert low == pytest.approx(0.717, abs=1e-3) and high == pytest.approx(0.989, abs=1e-3)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0, abs=1e-12)
    narrow = wilson_interval(900, 1000)
    assert narrow[1] - narrow[0] < 0.04 < high - low


def test_report_names_classes_with_the_given_labels():
    probabilities = np.eye(3)[[0, 1, 2, 2]]
    report = classification_report(np.array([0, 1, 2, 1]), probabilities, ["cat", "dog", "fox"])
    assert set(report["per_class"]) == {"cat", "dog", "fox"} and report["accuracy"] == 0.75
    with pytest.raises(ValueError):
        classification_report(np.array([0]), np.eye(3)[:1], ["cat", "dog"])
