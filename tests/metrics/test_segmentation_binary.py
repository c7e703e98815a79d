"""Segmentation and binary-mask scores, checked by hand (and binary against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest

from cloudyeo.metrics import (
    BinaryCounts,
    binary_counts,
    binary_metrics,
    binary_scores,
    confusion_matrix,
    segmentation_metrics,
    segmentation_scores,
)


def test_confusion_matrix_and_scores_with_ignore_index_by_hand():
    truth = np.array([[0, 0, 1, 255], [1, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 3], [1, 2, 0, 0]])  # predictions under 255 do not matter
    cm = confusion_matrix(truth, pred, num_classes=4)
    expected = np.array(
        [
            [1, 1, 0, 0],  # truth 0: one right, one as 1
            [0, 2, 0, 0],  # truth 1: both right
            [1, 0, 1, 0],  # truth 2: one right, one as 0
            [0, 0, 0, 0],  # class 3 absent in truth and (non-ignored) prediction
        ]
    )
    np.testing.assert_array_equal(cm, expected)
    s = segmentation_scores(cm)
    # IoU_0 = 1 / (2 + 2 - 1) = 1/3, IoU_1 = 2 / (2 + 3 - 2) = 2/3, IoU_2 = 1 / (2 + 1 - 1) = 1/2
    np.testing.assert_allclose(s["per_class_iou"][:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(s["per_class_iou"][3])
    assert s["present_classes"] == [0, 1, 2]
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    assert s["n_pixels"] == 6


def test_class_predicted_but_absent_counts_with_iou_zero():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])
    s = segmentation_metrics(truth, pred, num_classes=3)
    np.testing.assert_allclose(s["per_class_iou"], [0.5, 1.0, 0.0])
    assert s["miou"] == pytest.approx(0.5)


def test_confusion_matrices_accumulate_and_bad_labels_fail():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 5, 1000)
    p = rng.integers(0, 5, 1000)
    whole = confusion_matrix(t, p, 5)
    parts = confusion_matrix(t[:300], p[:300], 5) + confusion_matrix(t[300:], p[300:], 5)
    np.testing.assert_array_equal(whole, parts)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 7], [0, 1], 5)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 1], [0, 255], 5)  # ignore applies to truth only
    assert confusion_matrix([255], [9], 5).sum() == 0


def test_binary_scores_by_hand():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 1], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    c = binary_counts(truth, pred)
    assert c == BinaryCounts(tp=2, fp=1, fn=2, tn=3)
    s = binary_scores(c)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 4)
    assert s["specificity"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert s["iou"] == pytest.approx(2 / 5)
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
    valid = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    assert binary_counts(truth, pred, valid) == BinaryCounts(tp=2, fp=1, fn=1, tn=2)
    assert binary_counts(truth[:4], pred[:4]) + binary_counts(truth[4:], pred[4:]) == c


def test_binary_matches_sklearn_and_undefined_is_nan():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    t = rng.random((30, 30)) < 0.3
    p = rng.random((30, 30)) < 0.4
    s = binary_metrics(t, p)
    tf, pf = t.ravel(), p.ravel()
    assert s["precision"] == pytest.approx(sk.precision_score(tf, pf))
    assert s["recall"] == pytest.approx(sk.recall_score(tf, pf))
    assert s["f1"] == pytest.approx(sk.f1_score(tf, pf))
    assert s["iou"] == pytest.approx(sk.jaccard_score(tf, pf))
    assert s["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(tf, pf))
    # no positive in truth nor prediction: precision/recall/F1/IoU undefined, balanced acc = TNR
    empty = binary_metrics(np.zeros(10, bool), np.zeros(10, bool))
    assert np.isnan(empty["precision"]) and np.isnan(empty["recall"])
    assert np.isnan(empty["f1"]) and np.isnan(empty["iou"])
    assert empty["balanced_accuracy"] == 1.0
    neg_truth = binary_metrics(np.zeros(4, bool), np.array([1, 0, 0, 0], bool))
    with pytest.warns(UserWarning, match="not in y_true"):
        ref = sk.balanced_accuracy_score(np.zeros(4, bool), np.array([1, 0, 0, 0], bool))
    assert neg_truth["balanced_accuracy"] == pytest.approx(ref)
