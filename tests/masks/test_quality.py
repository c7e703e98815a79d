"""cloudyeo.masks.quality against hand-computed counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cloudyeo.masks.quality import (
    CATEGORIES,
    confusion_counts,
    format_metrics,
    mask_metrics,
    truth_categories,
)

# Truth bits: 1 thick, 2 cirrus, 4 shadow, 8 snow.
TRUTH = np.array([
    [0, 8, 1, 1 | 2, 2],
    [2 | 4, 4, 4, 0, 1 | 8],
], dtype=np.uint8)
PRED = np.array([
    [1, 0, 1, 1, 0],
    [1, 0, 1, 1, 0],
], dtype=bool)


def test_truth_categories_priority():
    # clear, snow->clear, thick, thick+cirrus->thick, thin / cirrus+shadow->thin, shadow x2,
    # clear, thick+snow->thick
    np.testing.assert_array_equal(truth_categories(TRUTH), [[0, 0, 1, 1, 2], [2, 3, 3, 0, 1]])
    assert CATEGORIES == ("clear", "thick", "thin", "shadow")


def test_counts_and_metrics_by_hand():
    c = confusion_counts(PRED, TRUTH)
    # rows clear, thick, thin, shadow; columns not flagged, flagged
    expected = np.array([[1, 2],   # clear: (0,1) snow unflagged; (0,0) and (1,3) flagged
                         [1, 2],   # thick: (0,2),(0,3) flagged, (1,4) missed
                         [1, 1],   # thin: (0,4) missed, (1,0) flagged
                         [1, 1]])  # shadow: (1,1) missed, (1,2) flagged
    np.testing.assert_array_equal(c, expected)
    m = mask_metrics(c)
    fp = 2
    assert m["thick"]["recall"] == pytest.approx(2 / 3)
    assert m["thick"]["precision"] == pytest.approx(2 / (2 + fp))
    assert m["thick"]["iou"] == pytest.approx(2 / (2 + fp + 1))
    assert m["thin"]["iou"] == pytest.approx(1 / (1 + fp + 1))
    assert m["shadow"]["precision"] == pytest.approx(1 / 3)
    assert m["cloud"]["recall"] == pytest.approx(3 / 5)
    assert m["cloud"]["precision"] == pytest.approx(3 / 5)
    assert m["cloud_or_shadow"]["iou"] == pytest.approx(4 / (4 + 2 + 3))
    assert m["clear"]["flagged"] == pytest.approx(2 / 3)
    assert m["cloud_or_shadow"]["n"] + m["clear"]["n"] == TRUTH.size
    table = format_metrics(m, "demo")
    assert "thick" in table and "clear flagged" in table


def test_valid_samples_and_accumulation():
    valid = np.ones_like(PRED)
    valid[0, 0] = False  # a flagged clear pixel left out
    c = confusion_counts(PRED, TRUTH, valid)
    assert c[0, 1] == 1 and c.sum() == TRUTH.size - 1

    stack_p = np.stack([PRED, ~PRED, PRED])
    stack_t = np.stack([TRUTH, TRUTH, np.zeros_like(TRUTH)])
    per = confusion_counts(stack_p, stack_t, sample_ndim=1)
    assert per.shape == (3, 4, 2)
    np.testing.assert_array_equal(per[0], confusion_counts(PRED, TRUTH))
    np.testing.assert_array_equal(per.sum(axis=0), confusion_counts(stack_p, stack_t))
    # (patch, time) leading axes
    per2 = confusion_counts(stack_p.reshape(3, 1, 2, 5), stack_t.reshape(3, 1, 2, 5), sample_ndim=2)
    assert per2.shape == (3, 1, 4, 2)
    np.testing.assert_array_equal(per2[:, 0], per)
    # metrics accept stacked tables (summed first)
    assert mask_metrics(per) == mask_metrics(per.sum(axis=0))


def test_empty_classes_give_nan():
    m = mask_metrics(confusion_counts(np.zeros((3, 3), bool), np.zeros((3, 3), np.uint8)))
    assert math.isnan(m["thick"]["recall"]) and math.isnan(m["thick"]["precision"])
    assert m["clear"]["flagged"] == 0.0
    with pytest.raises(ValueError):
        confusion_counts(np.zeros((2, 2), bool), np.zeros((2, 3), np.uint8))
