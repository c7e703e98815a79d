"""Dataset-level average precision equals scikit-learn's on the same arrays."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cloudyeo.metrics import (
    AveragePrecisionAccumulator,
    average_precision,
    binary_average_precision,
)

sk = pytest.importorskip("sklearn.metrics")


def _sklearn(y, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "No positive class found in y_true"
        return {
            "micro": sk.average_precision_score(y, s, average="micro"),
            "macro": sk.average_precision_score(y, s, average="macro"),
            "per_class": sk.average_precision_score(y, s, average=None),
        }


def _ap_tol(y) -> float:
    """Rounding bound between two float64 AP computations over the same ``m = y.size`` scores.

    AP <= 1 is a sum of at most m terms, each a rounded precision times a difference of rounded
    recalls: each side is off by at most ~4 m eps however it orders the sum, so ~8 m eps apart.
    """
    return 8 * np.asarray(y).size * np.finfo(np.float64).eps


def _check(y, s):
    ours = average_precision(y, s)
    ref = _sklearn(y, s)
    tol = _ap_tol(y)
    assert ours["micro"] == pytest.approx(ref["micro"], abs=tol)
    assert ours["macro"] == pytest.approx(ref["macro"], abs=tol)
    np.testing.assert_allclose(ours["per_class"], ref["per_class"], atol=tol)
    assert ours["n_samples"] == len(y)
    return ours


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, k = rng.integers(5, 300), rng.integers(1, 20)
    y = (rng.random((n, k)) < rng.uniform(0.05, 0.6)).astype(int)
    y[0] = 1  # every class has a positive
    s = rng.random((n, k))
    ours = _check(y, s)
    assert ours["undefined_classes"] == []


@pytest.mark.parametrize("seed", range(4))
def test_tied_scores_match_sklearn(seed):
    rng = np.random.default_rng(10 + seed)
    n, k = 200, 6
    y = (rng.random((n, k)) < 0.3).astype(int)
    y[:2] = 1
    s = rng.integers(0, 5, size=(n, k)) / 4.0  # only five distinct values: many ties
    _check(y, s)
    # scores tied across all samples
    _check(y, np.full((n, k), 0.5))


def test_class_without_positives_is_zero_like_sklearn_and_reported():
    rng = np.random.default_rng(1)
    y = (rng.random((50, 4)) < 0.4).astype(int)
    y[:, 2] = 0  # class 2 never occurs in the test set
    y[0, [0, 1, 3]] = 1
    s = rng.random((50, 4))
    ours = _check(y, s)
    assert ours["per_class"][2] == 0.0
    assert ours["undefined_classes"] == [2]
    assert ours["n_positives"][2] == 0
    assert ours["macro_defined"] == pytest.approx(np.mean(ours["per_class"][[0, 1, 3]]))
    # a class where every sample is positive: AP 1
    y[:, 1] = 1
    assert _check(y, s)["per_class"][1] == pytest.approx(1.0)


def test_perfect_and_hand_computed():
    assert binary_average_precision([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.2]) == 1.0
    # ranking: 1 (pos), 0.8 (neg), 0.6 (pos): AP = 0.5 * 1 + 0.5 * 2/3
    assert binary_average_precision([1, 0, 1], [1.0, 0.8, 0.6]) == pytest.approx(0.5 + 1 / 3)
    # ties: all three tied -> one threshold, precision 2/3, recall 1
    assert binary_average_precision([1, 0, 1], [0.5, 0.5, 0.5]) == pytest.approx(2 / 3)


def test_accumulator_uses_the_whole_set_not_batch_means():
    rng = np.random.default_rng(2)
    y = (rng.random((120, 5)) < 0.3).astype(int)
    y[0] = 1
    s = rng.random((120, 5))
    acc = AveragePrecisionAccumulator()
    batch_means = []
    for start in range(0, 120, 16):
        acc.update(y[start : start + 16], s[start : start + 16])
        batch_means.append(_sklearn(y[start : start + 16], s[start : start + 16])["macro"])
    result = acc.compute()
    assert acc.n_samples == 120 and result["n_samples"] == 120
    ref = _sklearn(y, s)
    assert result["macro"] == pytest.approx(ref["macro"], abs=_ap_tol(y))
    assert result["micro"] == pytest.approx(ref["micro"], abs=_ap_tol(y))
    assert abs(np.mean(batch_means) - ref["macro"]) > 1e-3  # the public-code bug differs


def test_input_validation():
    with pytest.raises(ValueError, match="0/1"):
        average_precision(np.array([[2, 0]]), np.array([[0.1, 0.2]]))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        average_precision(np.zeros((3, 2)), np.zeros((3, 3)))
    acc = AveragePrecisionAccumulator()
    with pytest.raises(ValueError, match="no batch"):
        acc.compute()
