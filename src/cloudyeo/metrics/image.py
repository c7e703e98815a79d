"""Image-reconstruction metrics for cloud removal: NRMSE, PSNR, SSIM, SAM, MAE.

Conventions shared by every function here
-----------------------------------------
* An image is a ``(C, H, W)`` array of reflectance scaled to ``[0, data_range]`` (``data_range``
  is 1: Sentinel-2 digital numbers divided by 10 000). The ``batch_*`` functions take
  ``(N, C, H, W)`` and return one value per image.
* ``data_range`` is checked, as scikit-image checks an image against its dtype's range, so that
  an image in another scale (digital numbers, percent, 8-bit) is refused instead of being
  clipped into nonsense. The *target* (the reference, read from a store) must lie in
  ``[0, data_range]`` (scikit-image checks only this, its ``image_true``); the *prediction* (a
  model output, which overshoots, an undertrained one by more than the range itself) must lie
  in ``[-PREDICTION_SCALE_LIMIT, +PREDICTION_SCALE_LIMIT] x data_range`` with the limit 10: the
  geometric midpoint between the data range and the smallest other scale images come in
  (percent, x 100; 8-bit x 255 and digital numbers x 10 000 are further off). Both bounds are widened by the rounding of the input's dtype
  (``eps * data_range``) and NaN is ignored. A violation raises ``ValueError`` naming the
  offending minimum/maximum and the ``data_range``.
* ``clip=True`` (the default) clips prediction and target to ``[0, data_range]`` before anything
  is computed, as a model output may overshoot; pass ``clip=False`` to score raw values.
* Arithmetic is float64 whatever the input dtype. Torch tensors are accepted (detached, moved to
  the CPU, converted to numpy).
* ``mask`` selects the pixels that are scored: an ``(H, W)`` boolean array (``(N, H, W)`` for a
  batch), the same for every band. ``None`` scores every pixel. A mask that selects no pixel gives
  NaN. See :mod:`cloudyeo.metrics.regions` for the cloudy/clear region definitions.

Definitions (``x`` prediction, ``y`` target, ``P`` the scored pixels, ``C`` the bands)
-------------------------------------------------------------------------------
* **MAE** ``= sum_{c, p in P} |x - y| / (C |P|)``.
* **NRMSE** ``= sqrt( sum_{c, p in P} (x - y)^2 / (C |P|) )``: the root-mean-square error over
  pixels *and* bands of data already normalised to ``[0, 1]``. No further division by a range or
  a mean takes place: this is the quantity SEN12MS-CR(-TS) report under the name "NRMSE"
  (an RMSE of ``[0, 1]``-normalised reflectance), not scikit-image's ``normalized_root_mse``.
* **PSNR** ``= 10 log10(data_range^2 / MSE)`` with MSE over ``C x P`` as above; the peak is
  ``data_range = 1``. Identical images give ``+inf``. Equals
  ``skimage.metrics.peak_signal_noise_ratio(y, x, data_range=1)`` when unmasked.
* **SSIM** (Wang et al. 2004): per band, local statistics from a Gaussian window, sigma 1.5,
  truncated at 3.5 sigma (an 11 x 11 window), borders handled by symmetric reflection
  (``scipy.ndimage`` ``mode="reflect"``), population (not sample) covariances, ``K1 = 0.01``,
  ``K2 = 0.03``, ``C1 = (K1 data_range)^2``, ``C2 = (K2 data_range)^2``. The SSIM map is averaged
  over the image *without* its 5-pixel border (the window radius), then over bands. Equals
  ``skimage.metrics.structural_similarity(y, x, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=0)``. **Masked SSIM** is the mean of
  the same map over the masked pixels that are not in the 5-pixel border (so an all-true mask
  gives the unmasked value); the statistics themselves still come from the full image.
  Images must be at least 11 x 11.
* **SAM** (spectral angle mapper): per pixel the angle between the spectra ``x`` and ``y``,
  ``atan2(|x ^ y|, <x, y>)`` with ``|x ^ y|^2 = sum_{i<j} (x_i y_j - x_j y_i)^2`` (Lagrange's
  identity; the norm of the wedge product, the cross product's generalisation to ``C`` bands);
  the mean over scored pixels, in degrees (``degrees=False`` gives radians). This equals
  ``arccos(<x, y> / (|x| |y|))`` mathematically but is accurate to a few ulp at every angle,
  where ``arccos`` loses half the digits near 0 (an error of ``sqrt(eps)``, ~2e-8 rad in float64)
  and near 180 degrees; identical spectra give exactly 0. A pixel whose spectrum is all zeros in
  either image scores 90 degrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from scipy.ndimage import gaussian_filter

DATA_RANGE = 1.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # 3.5 sigma -> radius int(3.5 * 1.5 + 0.5) = 5 -> an 11 x 11 window
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# |prediction| <= 10 data_range: between the data range and the next scale in use, percent (x 100)
PREDICTION_SCALE_LIMIT = 10.0

METRIC_NAMES = ("nrmse", "psnr", "ssim", "sam", "mae")


# ----------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------


def _as_float_array(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch.Tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _as_mask(mask) -> np.ndarray | None:
    if mask is None:
        return None
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask).astype(bool, copy=False)


def _dtype_eps(a) -> float:
    """Machine epsilon of the input's float dtype (0 for integers; float64 for lists)."""
    if hasattr(a, "detach"):  # torch.Tensor: already imported by whoever made it
        import torch

        return float(torch.finfo(a.dtype).eps) if a.is_floating_point() else 0.0
    dtype = np.asarray(a).dtype if not hasattr(a, "dtype") else np.dtype(a.dtype)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0


def _check_range(original, a: np.ndarray, data_range: float, what: str, lo: float, hi: float) -> None:
    """Refuse an image outside ``[lo, hi]`` (widened by the input dtype's rounding); NaN ignored."""
    if not a.size or np.isnan(a).all():
        return
    amin, amax = float(np.nanmin(a)), float(np.nanmax(a))
    tol = _dtype_eps(original) * float(data_range)
    if amin < lo - tol or amax > hi + tol:
        raise ValueError(
            f"{what} values span [{amin:g}, {amax:g}], outside [{lo:g}, {hi:g}] allowed for "
            f"data_range={data_range:g}: the image is in another scale (e.g. digital numbers "
            f"instead of reflectance / 10000); rescale it or pass the data_range it is in"
        )


def _prepare(pred, target, mask, *, ndim: int, clip: bool, data_range: float):
    """Validate shapes, convert to float64 and clip; returns (x, y, mask broadcast to bands)."""
    if not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
    x = _as_float_array(pred)
    y = _as_float_array(target)
    if x.shape != y.shape:
        raise ValueError(f"prediction {x.shape} and target {y.shape} differ in shape")
    kind = "(C, H, W)" if ndim == 3 else "(N, C, H, W)"
    if x.ndim != ndim:
        raise ValueError(f"expected a {kind} array, got shape {x.shape}")
    limit = PREDICTION_SCALE_LIMIT * float(data_range)
    _check_range(pred, x, data_range, "prediction", -limit, limit)
    _check_range(target, y, data_range, "target", 0.0, float(data_range))
    if clip:
        x = np.clip(x, 0.0, data_range)
        y = np.clip(y, 0.0, data_range)
    m = _as_mask(mask)
    if m is not None:
        spatial = x.shape[:-3] + x.shape[-2:]
        if m.shape != spatial:
            raise ValueError(f"mask has shape {m.shape}, expected {spatial} (pixels only)")
    return x, y, m


def _band_mask(m: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    """The pixel mask broadcast over the band axis (-3)."""
    if m is None:
        return None
    return np.broadcast_to(np.expand_dims(m, -3), x.shape)


def _reduce_mean(values: np.ndarray, mask: np.ndarray | None, axes: tuple[int, ...]) -> np.ndarray:
    """Mean of ``values`` over ``axes`` restricted to ``mask``; NaN where nothing is selected."""
    if mask is None:
        return values.mean(axis=axes)
    total = np.where(mask, values, 0.0).sum(axis=axes)
    count = mask.sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ----------------------------------------------------------------------------------------------
# Per-image values for a batch (N, C, H, W): the single-image functions call these with N = 1
# ----------------------------------------------------------------------------------------------


def _mse(x, y, m):
    return _reduce_mean((x - y) ** 2, _band_mask(m, x), axes=(-3, -2, -1))


def _mae(x, y, m):
    return _reduce_mean(np.abs(x - y), _band_mask(m, x), axes=(-3, -2, -1))


def _psnr(x, y, m, data_range):
    mse = _mse(x, y, m)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def _sam(x, y, m, degrees):
    value = _reduce_mean(_angle_map(x, y), m, axes=(-2, -1))
    return np.degrees(value) if degrees else value


def _angle_map(x, y):
    """Spectral angle (radians) per pixel over (..., C, H, W); pi / 2 where a spectrum is all zero."""
    dot = (x * y).sum(axis=-3)
    # |x ^ y|^2 by Lagrange's identity: each 2 x 2 minor is exactly 0 for identical spectra and
    # accurate to rounding for nearly parallel ones (|x|^2 |y|^2 - dot^2 would cancel to sqrt(eps))
    wedge2 = np.zeros_like(dot)
    n_bands = x.shape[-3]
    for i in range(n_bands - 1):
        xi, yi = x[..., i, :, :], y[..., i, :, :]
        minors = xi[..., None, :, :] * y[..., i + 1 :, :, :] - x[..., i + 1 :, :, :] * yi[..., None, :, :]
        wedge2 += (minors * minors).sum(axis=-3)
    angle = np.arctan2(np.sqrt(wedge2), dot)
    zero = ~((x != 0).any(axis=-3) & (y != 0).any(axis=-3))
    return np.where(zero, np.pi / 2, angle)


def _ssim_map(x, y, data_range):
    """SSIM map over (..., C, H, W): the local SSIM at every pixel of every band."""
    h, w = x.shape[-2:]
    win = 2 * SSIM_RADIUS + 1
    if h < win or w < win:
        raise ValueError(f"SSIM needs images of at least {win} x {win} pixels, got {h} x {w}")
    sigma = (0.0,) * (x.ndim - 2) + (SSIM_SIGMA, SSIM_SIGMA)

    def blur(a):
        return gaussian_filter(a, sigma=sigma, mode="reflect", truncate=SSIM_TRUNCATE)

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def _interior(shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) boolean: True away from the SSIM window radius along the border."""
    h, w = shape
    inner = np.zeros((h, w), dtype=bool)
    r = SSIM_RADIUS
    inner[r : h - r, r : w - r] = True
    return inner


def _ssim(x, y, m, data_range):
    return _ssim_reduce(_ssim_map(x, y, data_range), m, x)


def _ssim_reduce(smap, m, x):
    inner = _interior(x.shape[-2:])
    pixels = inner if m is None else (m & inner)
    pixels = np.broadcast_to(pixels, x.shape[:-3] + x.shape[-2:])
    return _reduce_mean(smap, _band_mask(pixels, x), axes=(-3, -2, -1))


# ----------------------------------------------------------------------------------------------
# Public: one image (C, H, W)
# ----------------------------------------------------------------------------------------------


def mae(pred, target, mask=None, *, clip: bool = True, data_range: float = DATA_RANGE) -> float:
    """Mean absolute error over scored pixels and bands (see the module docstring)."""
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return float(_mae(x, y, m))


def nrmse(pred, target, mask=None, *, clip: bool = True, data_range: float = DATA_RANGE) -> float:
    """RMSE over scored pixels and bands of ``[0, 1]`` data, reported as "NRMSE".

    ``sqrt(sum_{c, p in mask} (pred - target)^2 / (C * |mask|))``; see the module docstring.
    """
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return float(np.sqrt(_mse(x, y, m)))


def psnr(pred, target, mask=None, *, clip: bool = True, data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio in dB with peak ``data_range`` (1); ``inf`` for a perfect match."""
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return float(_psnr(x, y, m, data_range))


def ssim(pred, target, mask=None, *, clip: bool = True, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM over bands (Gaussian 11 x 11, sigma 1.5, K1 0.01, K2 0.03); see the module docstring."""
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return float(_ssim(x, y, m, data_range))


def ssim_map(pred, target, *, clip: bool = True, data_range: float = DATA_RANGE) -> np.ndarray:
    """The ``(C, H, W)`` local-SSIM map (borders included) that :func:`ssim` averages."""
    x, y, _ = _prepare(pred, target, None, ndim=3, clip=clip, data_range=data_range)
    return _ssim_map(x, y, data_range)


def sam(
    pred,
    target,
    mask=None,
    *,
    degrees: bool = True,
    clip: bool = True,
    data_range: float = DATA_RANGE,
) -> float:
    """Mean spectral angle over scored pixels, in degrees (``degrees=False``: radians)."""
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return float(_sam(x, y, m, degrees))


_BATCH_FUNCS = {
    "nrmse": lambda x, y, m, dr: np.sqrt(_mse(x, y, m)),
    "psnr": _psnr,
    "ssim": _ssim,
    "sam": lambda x, y, m, dr: _sam(x, y, m, True),
    "mae": lambda x, y, m, dr: _mae(x, y, m),
}


def _check_names(metrics: Iterable[str]) -> tuple[str, ...]:
    names = tuple(metrics)
    unknown = sorted(set(names) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    return names


def image_metrics(
    pred,
    target,
    mask=None,
    *,
    metrics: Iterable[str] = METRIC_NAMES,
    clip: bool = True,
    data_range: float = DATA_RANGE,
) -> dict[str, float]:
    """Several metrics of one ``(C, H, W)`` image at once (SAM in degrees)."""
    names = _check_names(metrics)
    x, y, m = _prepare(pred, target, mask, ndim=3, clip=clip, data_range=data_range)
    return {name: float(_BATCH_FUNCS[name](x, y, m, data_range)) for name in names}


def region_image_metrics(
    pred,
    target,
    masks: Mapping[str, np.ndarray],
    *,
    metrics: Iterable[str] = METRIC_NAMES,
    clip: bool = True,
    data_range: float = DATA_RANGE,
) -> dict[str, dict[str, float]]:
    """Metrics of one ``(C, H, W)`` image on several pixel masks (``{region: (H, W) bool}``) at
    once: ``{region: {name: value}}``. Each per-pixel map (errors, spectral angle, SSIM) is
    computed once and averaged per mask exactly as :func:`image_metrics` averages it."""
    names = _check_names(metrics)
    x, y, _ = _prepare(np.asarray(pred)[None], np.asarray(target)[None], None, ndim=4, clip=clip,
                       data_range=data_range)
    maps: dict[str, np.ndarray] = {}
    if {"nrmse", "psnr"} & set(names):
        maps["sq"] = (x - y) ** 2
    if "mae" in names:
        maps["abs"] = np.abs(x - y)
    if "sam" in names:
        maps["angle"] = _angle_map(x, y)
    if "ssim" in names:
        maps["ssim"] = _ssim_map(x, y, data_range)
    out: dict[str, dict[str, float]] = {}
    for region, mask in masks.items():
        m = _as_mask(np.asarray(mask)[None])
        if m is None or m.shape != x.shape[:1] + x.shape[-2:]:
            raise ValueError(f"mask {region!r} has shape {np.shape(mask)}, expected {x.shape[-2:]} (pixels only)")
        vals: dict[str, float] = {}
        for name in names:
            if name in ("nrmse", "psnr"):
                mse = _reduce_mean(maps["sq"], _band_mask(m, x), axes=(-3, -2, -1))
                if name == "nrmse":
                    vals[name] = float(np.sqrt(mse)[0])
                else:
                    with np.errstate(divide="ignore"):
                        vals[name] = float((10.0 * np.log10(data_range**2 / mse))[0])
            elif name == "mae":
                vals[name] = float(_reduce_mean(maps["abs"], _band_mask(m, x), axes=(-3, -2, -1))[0])
            elif name == "sam":
                vals[name] = float(np.degrees(_reduce_mean(maps["angle"], m, axes=(-2, -1)))[0])
            else:
                vals[name] = float(_ssim_reduce(maps["ssim"], m, x)[0])
        out[region] = vals
    return out


# ----------------------------------------------------------------------------------------------
# Public: a batch (N, C, H, W) -> one value per image
# ----------------------------------------------------------------------------------------------


def batch_image_metrics(
    pred,
    target,
    mask=None,
    *,
    metrics: Iterable[str] = METRIC_NAMES,
    clip: bool = True,
    data_range: float = DATA_RANGE,
) -> dict[str, np.ndarray]:
    """Per-image metrics of a ``(N, C, H, W)`` batch: ``{name: (N,) float64}`` (SAM in degrees).

    ``mask`` is ``(N, H, W)`` or ``None``. A dataset-level figure is the mean of the per-image
    values (what the cloud-removal papers report); aggregate with :func:`cloudyeo.metrics.aggregate`.
    """
    names = _check_names(metrics)
    x, y, m = _prepare(pred, target, mask, ndim=4, clip=clip, data_range=data_range)
    return {
        name: np.asarray(_BATCH_FUNCS[name](x, y, m, data_range), dtype=np.float64)
        for name in names
    }
