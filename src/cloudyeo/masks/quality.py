"""Quality of a binary cloud mask against the demo world's truth bit masks.

Truth bits (:mod:`cloudyeo.masks.truth`): 1 thick cloud, 2 thin cirrus, 4 cloud shadow,
8 snow. Every pixel falls into exactly one *truth category*, by priority:

===========  ====================================================
``thick``    bit 1 set
``thin``     bit 2 set, bit 1 not set
``shadow``   bit 4 set, bits 1 and 2 not set (a shadow seen through cirrus counts as thin)
``clear``    none of bits 1, 2, 4 (snow is a surface: it counts as clear)
===========  ====================================================

The accumulable statistic is a (4, 2) count table ``counts[category, predicted]``
(:func:`confusion_counts`), summed over any number of scenes or (patch, time) samples. From it,
for a truth class ``c`` (``thick``, ``thin``, ``shadow``, and the unions ``cloud`` =
thick | thin and ``cloud_or_shadow`` = thick | thin | shadow):

* ``TP_c`` = flagged pixels of ``c``, ``FN_c`` = unflagged pixels of ``c``,
* ``FP`` = flagged **clear** pixels (shared by every class),
* precision = TP / (TP + FP), recall = TP / (TP + FN), IoU = TP / (TP + FP + FN).

So each class is scored on the pixels that are either that class or clear; flagged pixels of
*another* non-clear category are neither hits nor false alarms for it (a cloud mask that also
covers shadows is not penalised on the cloud score). ``cloud_or_shadow`` uses every pixel and
is the plain binary score of "unusable vs clear". ``clear_flagged`` = FP / clear pixels (the
commission rate). Ratios with a zero denominator are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cloudyeo.masks.truth import TRUTH_CIRRUS, TRUTH_CLOUD, TRUTH_SHADOW

CATEGORIES: tuple[str, ...] = ("clear", "thick", "thin", "shadow")
CLASSES: dict[str, tuple[int, ...]] = {  # class -> truth categories (indices into CATEGORIES)
    "thick": (1,),
    "thin": (2,),
    "shadow": (3,),
    "cloud": (1, 2),
    "cloud_or_shadow": (1, 2, 3),
}
METRICS: tuple[str, ...] = ("iou", "precision", "recall")


def truth_categories(truth: np.ndarray) -> np.ndarray:
    """uint8 category index (0 clear, 1 thick, 2 thin, 3 shadow) per pixel of a truth bit mask."""
    t = np.asarray(truth)
    # Priority thick > thin > shadow, vectorised through a 8-entry lookup on bits 1|2|4.
    lut = np.array([0, 1, 2, 1, 3, 1, 2, 1], dtype=np.uint8)
    return lut[(t & (TRUTH_CLOUD | TRUTH_CIRRUS | TRUTH_SHADOW)).astype(np.intp)]


def confusion_counts(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None, *,
                     sample_ndim: int = 0) -> np.ndarray:
    """Count table ``[..., category, predicted]`` (int64) of a predicted mask vs truth bits.

    ``pred`` (bool, True = flagged as cloud) and ``truth`` (uint8 bits) have the same shape;
    ``valid`` (optional, same shape) leaves pixels out where False (e.g. no data).
    ``sample_ndim`` leading axes are kept (e.g. 2 for (patch, time, H, W) gives a
    (patch, time, 4, 2) table); the rest are summed. Tables add up: sum them over samples.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} differ in shape")
    if valid is not None and np.shape(valid) != pred.shape:
        raise ValueError(f"valid {np.shape(valid)} and pred {pred.shape} differ in shape")
    if not 0 <= sample_ndim <= pred.ndim:
        raise ValueError(f"sample_ndim must be in [0, {pred.ndim}], got {sample_ndim}")
    lead = pred.shape[:sample_ndim]
    n_samples = int(np.prod(lead, dtype=np.int64))
    code = truth_categories(truth).astype(np.int64) * 2 + pred
    code = code.reshape(n_samples, -1)
    code += (np.arange(n_samples, dtype=np.int64) * 8)[:, None]
    flat = code.ravel()
    if valid is not None:
        flat = flat[np.asarray(valid, dtype=bool).reshape(-1)]
    counts = np.bincount(flat, minlength=n_samples * 8).astype(np.int64)
    return counts.reshape(*lead, len(CATEGORIES), 2)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def mask_metrics(counts: np.ndarray) -> dict[str, dict[str, float]]:
    """IoU, precision, recall (and tp/fp/fn/n) per class from a (4, 2) count table.

    Extra leading axes are summed first. Also ``clear`` -> ``flagged`` (commission rate) and
    ``n``.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.shape[-2:] != (len(CATEGORIES), 2):
        raise ValueError(f"counts must end in ({len(CATEGORIES)}, 2), got {c.shape}")
    c = c.reshape(-1, len(CATEGORIES), 2).sum(axis=0)
    fp = int(c[0, 1])
    out: dict[str, dict[str, float]] = {}
    for name, cats in CLASSES.items():
        tp = int(sum(c[k, 1] for k in cats))
        fn = int(sum(c[k, 0] for k in cats))
        out[name] = {
            "iou": _ratio(tp, tp + fp + fn),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "tp": tp, "fp": fp, "fn": fn, "n": tp + fn,
        }
    n_clear = int(c[0].sum())
    out["clear"] = {"flagged": _ratio(fp, n_clear), "fp": fp, "n": n_clear}
    return out


def format_metrics(metrics: Mapping[str, Mapping[str, float]], title: str = "") -> str:
    """A plain-text table of :func:`mask_metrics` output."""
    total = sum(int(metrics[k]["n"]) for k in ("cloud_or_shadow", "clear"))
    lines = [title] if title else []
    lines.append(f"{'class':<16}{'IoU':>7}{'prec.':>7}{'recall':>7}{'share':>8}")
    for name in CLASSES:
        m = metrics[name]
        share = _ratio(m["n"], total)
        lines.append(f"{name:<16}{m['iou']:>7.3f}{m['precision']:>7.3f}{m['recall']:>7.3f}"
                     f"{100 * share:>7.1f}%")
    clear = metrics["clear"]
    lines.append(f"{'clear flagged':<16}{clear['flagged']:>21.3f}{100 * _ratio(clear['n'], total):>7.1f}%")
    return "\n".join(lines)
