"""Training-free cloud-removal baselines on a time series of cloudy observations.

Inputs: ``x`` ``(T, C, H, W)`` (T time points of the same patch, reflectance in ``[0, 1]``) and
``masks`` ``(T, H, W)`` (truthy = cloudy in that time point; boolean or 0/1, cloud probabilities
must be thresholded first). Each baseline returns one ``(C, H, W)`` float64 prediction.

* :func:`identity` — the cloudy input itself (mono-temporal lower bound).
* :func:`least_cloudy` — the time point with the lowest cloud fraction; ties go to the earliest.
* :func:`mosaicing` — per pixel, the mean over the time points where that pixel is clear; where
  no time point is clear, ``fallback``: a constant (SEN12MS-CR-TS's default 0.5), ``"least_cloudy"``
  (that pixel of the least-cloudy frame) or ``"mean"`` (the mean over all time points).
"""

from __future__ import annotations

import numpy as np

MOSAIC_FALLBACK = 0.5


def _as_array(a, dtype=np.float64) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _as_masks(masks) -> np.ndarray:
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    m = np.asarray(masks)
    if m.dtype == bool:
        return m
    if np.issubdtype(m.dtype, np.floating) and not np.all(np.isin(m, (0.0, 1.0))):
        raise ValueError("cloud masks must be boolean or 0/1; threshold cloud probabilities first")
    return m != 0


def _check(x, masks) -> tuple[np.ndarray, np.ndarray]:
    x = _as_array(x)
    m = _as_masks(masks)
    if x.ndim != 4:
        raise ValueError(f"expected a (T, C, H, W) time series, got shape {x.shape}")
    if m.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"masks {m.shape} do not match the series {x.shape} (need (T, H, W))")
    if x.shape[0] == 0:
        raise ValueError("empty time series (T = 0)")
    return x, m


def identity(cloudy_input) -> np.ndarray:
    """The cloudy input unchanged (a float64 copy), e.g. ``(C, H, W)``."""
    return _as_array(cloudy_input).copy()


def least_cloudy_index(masks) -> int:
    """Index of the time point with the lowest cloud fraction (earliest on ties)."""
    m = _as_masks(masks)
    if m.ndim != 3 or m.shape[0] == 0:
        raise ValueError(f"expected (T, H, W) masks with T > 0, got shape {m.shape}")
    fractions = m.reshape(m.shape[0], -1).mean(axis=1)
    return int(np.argmin(fractions))  # argmin returns the first minimum


def least_cloudy(x, masks) -> np.ndarray:
    """The input frame ``(C, H, W)`` with the lowest cloud fraction; ties -> the earliest."""
    x, m = _check(x, masks)
    return x[least_cloudy_index(m)].copy()


def mosaicing(x, masks, fallback: float | str = MOSAIC_FALLBACK) -> np.ndarray:
    """Per pixel the mean over time points where it is clear; ``fallback`` where none is.

    ``fallback``: a number (constant value in every band; default 0.5 as in SEN12MS-CR-TS),
    ``"least_cloudy"`` (the least-cloudy frame's value at that pixel) or ``"mean"`` (the mean
    over all time points at that pixel).
    """
    x, m = _check(x, masks)
    clear = ~m  # (T, H, W)
    n_clear = clear.sum(axis=0)  # (H, W)
    total = (x * clear[:, None]).sum(axis=0)  # (C, H, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / np.maximum(n_clear, 1)[None]
    none_clear = n_clear == 0
    if not none_clear.any():
        return out
    if isinstance(fallback, str):
        if fallback == "least_cloudy":
            fill = x[least_cloudy_index(m)]
        elif fallback == "mean":
            fill = x.mean(axis=0)
        else:
            raise ValueError(f"unknown fallback {fallback!r}: a number, 'least_cloudy' or 'mean'")
        out[:, none_clear] = fill[:, none_clear]
    else:
        out[:, none_clear] = float(fallback)
    return out
