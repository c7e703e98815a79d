"""Semantic-segmentation scores from an accumulable confusion matrix.

Definitions
-----------
* Labels are integers ``0 .. K-1``; pixels whose *truth* equals ``ignore_index`` (default 255)
  are left out entirely (whatever was predicted there). Any other truth or prediction value
  outside ``0 .. K-1`` is an error.
* ``cm[i, j]`` counts pixels of true class ``i`` predicted as ``j`` (rows truth, columns
  prediction). Confusion matrices of batches add up, so dataset-level scores come from the summed
  matrix (never from averaging per-batch scores).
* **IoU** of class ``k`` = ``TP / (TP + FP + FN)`` = ``cm[k, k] / (row_k + col_k - cm[k, k])``.
  A class absent from both truth and prediction has an undefined IoU (NaN) and is *excluded*
  from the mean; a class present in either has an IoU (possibly 0).
* **mIoU** = mean IoU over the classes with a defined IoU (NaN if none).
* **pixel accuracy** = ``trace(cm) / sum(cm)``, over non-ignored pixels.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def _as_int(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def confusion_matrix(
    y_true, y_pred, num_classes: int, *, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """``(K, K)`` int64 confusion matrix (rows truth, columns prediction) of label arrays."""
    t = _as_int(y_true).ravel()
    p = _as_int(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth ({t.size} values) and prediction ({p.size}) differ in size")
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    t = t.astype(np.int64)
    p = p.astype(np.int64)
    for name, a in (("truth", t), ("prediction", p)):
        bad = (a < 0) | (a >= num_classes)
        if np.any(bad):
            raise ValueError(
                f"{name} has label(s) {np.unique(a[bad])[:5].tolist()} outside 0..{num_classes - 1}"
                + (f" (and not the ignore index {ignore_index})" if name == "truth" else "")
            )
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def segmentation_scores(cm: np.ndarray) -> dict:
    """Scores of a confusion matrix: ``miou``, ``pixel_accuracy``, ``per_class_iou`` (NaN where
    undefined), ``present_classes`` (those with a defined IoU), ``n_pixels``."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    present = np.flatnonzero(union > 0)
    total = int(cm.sum())
    return {
        "miou": float(iou[present].mean()) if present.size else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "per_class_iou": iou,
        "present_classes": present.tolist(),
        "n_pixels": total,
    }


def segmentation_metrics(
    y_true, y_pred, num_classes: int, *, ignore_index: int | None = IGNORE_INDEX
) -> dict:
    """:func:`segmentation_scores` of :func:`confusion_matrix` (one call for a whole array)."""
    return segmentation_scores(
        confusion_matrix(y_true, y_pred, num_classes, ignore_index=ignore_index)
    )


def f1_scores(cm: np.ndarray, seen: np.ndarray | None = None) -> dict[str, float]:
    """Overall accuracy and macro F1 over the classes present in the truth (rows).

    ``seen`` (class indices that occur in the training split): adds ``lc_oa_seen``, the
    accuracy over truth pixels of those classes only (the time-series split is by ROI, so a test
    ROI can hold classes no training ROI has).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    rows, cols = cm.sum(1), cm.sum(0)
    present = rows > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(rows + cols > 0, 2 * tp / np.maximum(rows + cols, 1), np.nan)
    total = cm.sum()
    out = {"lc_oa": float(tp.sum() / total) if total else float("nan"),
           "lc_f1": float(np.nanmean(f1[present])) if present.any() else float("nan"),
           "lc_miou": float(segmentation_scores(cm.astype(np.int64))["miou"]) if total else float("nan")}
    if seen is not None:
        seen = np.asarray(seen, dtype=np.int64)
        n_seen = rows[seen].sum()
        out["lc_oa_seen"] = float(tp[seen].sum() / n_seen) if n_seen else float("nan")
    return out
