"""Binary-mask scores (cloud / not cloud) from accumulable counts.

Definitions (positive = the flagged class, e.g. cloud)
------------------------------------------------------
* counts ``TP, FP, FN, TN`` over the valid pixels (``valid`` mask; all pixels when omitted);
  counts of batches add up (``BinaryCounts.__add__``), so dataset-level scores come from summed
  counts, never from averaged per-batch scores.
* **precision** = TP / (TP + FP); **recall** (TPR) = TP / (TP + FN); **specificity** (TNR) =
  TN / (TN + FP); **F1** = 2 TP / (2 TP + FP + FN); **IoU** = TP / (TP + FP + FN);
  **accuracy** = (TP + TN) / total.
* **balanced accuracy** = mean of recall and specificity over those that are defined (if the
  truth has no positive, it is the specificity alone), as scikit-learn's
  ``balanced_accuracy_score`` does.
* A ratio whose denominator is 0 is undefined and returned as NaN (not 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BinaryCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _as_bool(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a if a.dtype == bool else a != 0


def binary_counts(y_true, y_pred, valid=None) -> BinaryCounts:
    """Confusion counts of two binary masks (truthy = positive), over ``valid`` pixels."""
    t = _as_bool(y_true)
    p = _as_bool(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    if valid is not None:
        v = _as_bool(valid)
        if v.shape != t.shape:
            raise ValueError(f"valid mask {v.shape} differs from the masks' shape {t.shape}")
        t, p = t[v], p[v]
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    tn = int(t.size - tp - fp - fn)
    return BinaryCounts(tp, fp, fn, tn)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def binary_scores(counts: BinaryCounts) -> dict[str, float]:
    """precision, recall, specificity, f1, iou, accuracy, balanced_accuracy of some counts."""
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    defined = [v for v in (recall, specificity) if not np.isnan(v)]
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "accuracy": _ratio(tp + tn, counts.total),
        "balanced_accuracy": float(np.mean(defined)) if defined else float("nan"),
    }


def binary_metrics(y_true, y_pred, valid=None) -> dict[str, float]:
    """:func:`binary_scores` of :func:`binary_counts` (one call for a whole array)."""
    return binary_scores(binary_counts(y_true, y_pred, valid))
