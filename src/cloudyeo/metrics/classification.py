"""Multi-label classification: dataset-level average precision (AP), micro, macro and per class.

Definition (identical to scikit-learn's ``average_precision_score``)
-------------------------------------------------------------------
For one binary problem with scores ``s`` and labels ``y`` (``P`` positives): sort by decreasing
score; every *distinct* score value is one threshold (tied samples enter together); at each
threshold ``k``, precision ``P_k = TP_k / (TP_k + FP_k)`` and recall ``R_k = TP_k / P``; then

    AP = sum_k (R_k - R_{k-1}) P_k,   R_0 = 0

(the step-wise area under the precision-recall curve, no interpolation).

* **per class**: AP of each label column.
* **macro**: unweighted mean of the per-class APs over *all* classes.
* **micro**: AP of all (sample, class) pairs pooled into one binary problem.

Dataset level: the scores and labels of the *whole* test set are accumulated first
(:class:`AveragePrecisionAccumulator`) and AP is computed once; no sample is dropped. Computing AP
per mini-batch and averaging the batch values (as some public code does) gives a different,
batch-size-dependent number and is not what this module does.

Classes without any positive in the evaluated set: AP is undefined; like scikit-learn (which
warns "No positive class found in y_true, recall is set to one for all thresholds"), such a class
gets AP = 0 (recall taken as 1 everywhere, precision 0 everywhere) and it *counts* in the macro
mean. Such classes are listed in ``undefined_classes``; ``macro_defined`` is the mean over the
other classes for reference.
"""

from __future__ import annotations

import numpy as np


def _as_array(a, dtype=None) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def binary_average_precision(y_true, scores) -> float:
    """AP of one binary problem (1-D labels in {0, 1} and real scores); 0 when no positive."""
    y = _as_array(y_true).ravel()
    s = _as_array(scores, np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if y.size == 0:
        return float("nan")
    if np.any(np.isnan(s)):
        raise ValueError("scores contain NaN")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    pos = y[order].astype(bool)
    n_pos = int(pos.sum())
    if n_pos == 0:
        return 0.0
    tp = np.cumsum(pos, dtype=np.int64)
    # the last index of every group of tied scores is where that threshold's counts are read
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tp = tp[last]
    seen = last + 1  # TP + FP at each threshold
    precision = tp / seen
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _check_multilabel(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _as_array(y_true)
    s = _as_array(scores, np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must both be (N, K)")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError("labels must be 0/1 (multi-label indicator matrix)")
    return y.astype(np.int8), s


def average_precision(y_true, scores) -> dict:
    """Dataset-level AP of an ``(N, K)`` 0/1 label matrix and ``(N, K)`` scores.

    Returns ``{"micro": float, "macro": float, "macro_defined": float,
    "per_class": (K,) float64, "n_samples": N, "n_positives": (K,) int64,
    "undefined_classes": [class indices with no positive]}``.
    ``micro``/``macro``/``per_class`` equal scikit-learn's ``average_precision_score`` with
    ``average="micro"``/``"macro"``/``None`` on the same arrays.
    """
    y, s = _check_multilabel(y_true, scores)
    n, k = y.shape
    per_class = np.array([binary_average_precision(y[:, j], s[:, j]) for j in range(k)])
    n_pos = y.sum(axis=0, dtype=np.int64)
    undefined = np.flatnonzero(n_pos == 0).tolist()
    defined = n_pos > 0
    return {
        "micro": binary_average_precision(y.ravel(), s.ravel()),
        "macro": float(per_class.mean()) if k else float("nan"),
        "macro_defined": float(per_class[defined].mean()) if defined.any() else float("nan"),
        "per_class": per_class,
        "n_samples": int(n),
        "n_positives": n_pos,
        "undefined_classes": undefined,
    }


class AveragePrecisionAccumulator:
    """Collects labels and scores batch by batch; :meth:`compute` gives :func:`average_precision`
    over everything seen (the whole test set), never an average of per-batch APs."""

    def __init__(self) -> None:
        self._labels: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def update(self, y_true, scores) -> None:
        y, s = _check_multilabel(y_true, scores)
        if self._labels and y.shape[1] != self._labels[0].shape[1]:
            raise ValueError(
                f"batch has {y.shape[1]} classes, earlier batches {self._labels[0].shape[1]}"
            )
        self._labels.append(y)
        self._scores.append(s)

    @property
    def n_samples(self) -> int:
        return sum(len(y) for y in self._labels)

    def compute(self) -> dict:
        if not self._labels:
            raise ValueError("no batch was added")
        return average_precision(np.concatenate(self._labels), np.concatenate(self._scores))
