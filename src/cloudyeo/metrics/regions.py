"""Which pixels a masked metric scores: the cloudy and clear regions of a set of inputs.

Definitions (for the inputs given to a cloud-removal model, one cloud mask per input time point)
--------------------------------------------------------------------------------------------
* **cloudy** pixel: cloudy in *every* input (no input shows the ground there, so the model must
  invent it);
* **clear** pixel: visible (not cloudy) in *at least one* input.

The two regions are complements of each other: every pixel is in exactly one. "Cloudy" in an input
mask means whatever the mask flags (cloud, and shadow when the caller merged it in); a value that
is truthy counts as cloudy. Probabilistic masks must be thresholded before they get here.
"""

from __future__ import annotations

import numpy as np


def _as_bool(masks) -> np.ndarray:
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    arr = np.asarray(masks)
    if arr.dtype != bool:
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isin(arr, (0.0, 1.0))):
            raise ValueError(
                "cloud masks must be boolean or 0/1; threshold cloud probabilities first"
            )
        arr = arr != 0
    return arr


def cloud_region_masks(input_cloud_masks) -> tuple[np.ndarray, np.ndarray]:
    """``(cloudy_all, clear_any)`` pixel masks from the inputs' cloud masks.

    ``input_cloud_masks``: ``(T, H, W)`` (one mask per input time point) or ``(H, W)`` (a single
    input). Returns two ``(H, W)`` boolean arrays: ``cloudy_all`` = cloudy in every input,
    ``clear_any`` = visible in at least one input (``clear_any == ~cloudy_all``).
    """
    m = _as_bool(input_cloud_masks)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"expected (T, H, W) or (H, W) cloud masks, got shape {m.shape}")
    if m.shape[0] == 0:
        raise ValueError("no input cloud mask given (T = 0)")
    cloudy_all = np.asarray(m.all(axis=0))
    return cloudy_all, ~cloudy_all


def cloud_fraction(mask) -> float:
    """Fraction of pixels flagged in an ``(H, W)`` mask (or of all elements of any mask)."""
    m = _as_bool(mask)
    return float(m.mean()) if m.size else float("nan")
