"""Cloud probability and cloud mask from Sentinel-2 L1C reflectance with s2cloudless.

s2cloudless (Sentinel Hub, PyPI ``s2cloudless``) is a per-pixel LightGBM classifier over ten
L1C top-of-atmosphere reflectance bands (B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12),
followed by two spatial steps: the probability is averaged over a disk, thresholded, and the
mask dilated with a disk. It was trained on 10 m pixels but is scale-invariant enough that
Sentinel Hub runs it at 160 m in production; here it runs at a configurable *working
resolution* (default 60 m, the native grid of B01/B09/B10), which is 36x fewer pixels than
10 m.

Pipeline of :func:`compute_cloud_masks` (input: reflectance at 10 m, every band already on the
10 m grid, e.g. from :func:`cloudyeo.masks.l1c.read_l1c_reflectance`):

1. select the ten model bands by name (``band_order``);
2. block mean (area) over ``k x k`` blocks, ``k = working_resolution_m / 10``, ignoring NaN;
   the edges are padded when the size is not a multiple of ``k`` (partial blocks average what
   they hold);
3. ``S2PixelCloudDetector.get_cloud_probability_maps`` on the valid working pixels;
4. mask at the working resolution exactly as s2cloudless' ``get_mask_from_prob`` does: mean
   over a disk of radius ``average_over``, ``> threshold``, dilation with a disk of radius
   ``dilation_size`` - **both radii in working-resolution pixels** (at 60 m the defaults 4 and 2
   are 240 m and 120 m);
5. back to 10 m: probability bilinear (pixel-centre aligned, edges clamped), mask nearest.

Encoding: probability as uint8 percent, ``round(100 p)`` (0..100, ``scale_factor`` 0.01) with
:data:`PROBABILITY_NODATA` = 255 where there is no data; the mask is bool, True = cloud. The
stored probability is the raw per-pixel probability (not the disk-averaged one the mask is
thresholded on), like Sentinel Hub's CLP/CLM pair.

Input check (:func:`check_toa_reflectance`, run by :func:`run_s2cloudless` and so by
:func:`compute_cloud_masks`): s2cloudless given digital numbers flags every pixel as cloud, and
one given reflectance with a wrong offset is wrong everywhere, so input in an impossible value
range is refused with a :class:`InputRangeError` naming the band and the statistic. The checks
use the per-band **median** of each scene's valid pixels (NaN/no data never counts; a few
saturated or defective pixels cannot move a median), from physics:

* TOA reflectance of any surface or cloud stays below ~1.6 (bright cloud tops at low sun); a
  band whose median exceeds :data:`TOA_REFLECTANCE_MAX` = 1.6 is not reflectance. L1C digital
  numbers are in the hundreds to thousands (reflectance x 10 000, +1000 from baseline 04.00):
  digital numbers -> refused.
* Reflectance is non-negative; with the -1000 DN RADIO_ADD_OFFSET applied once, noise takes a
  dark pixel a few DN below 0, never a band's median. A median below
  :data:`NEGATIVE_MEDIAN_LIMIT` = -0.05 (half the offset, -500 DN) means the offset was applied
  where it was not due (a baseline before 04.00) or twice -> refused. Only dark bands show this
  (B10, the cirrus band, is ~0.005 in clear sky), so a fully overcast scene can pass, but then the
  mask it gets is right anyway.
* The opposite mistake, the offset *not* applied to baseline >= 04.00 data, only shifts every
  value up by 0.1, which stays inside the physical range: a scene whose every valid value of
  every band is >= 0.1 looks like that, but so does a scene entirely under thick high cloud
  (B10 >= 0.1 everywhere). That is logged as a warning naming the scene index, not refused; the
  offset's precedence is decided where the scene record is built
  (:class:`cloudyeo.archives.SceneRecord` ``radiometric_offset``).

No data: a 10 m pixel with any non-finite model band is no data; a working pixel is valid when
each model band has at least one finite value in its block (block means skip NaN). No-data
pixels get probability 255 and mask **True** (conservative: a caller that only reads the mask
never takes them for clear). Within the averaging disk only valid pixels count (normalised convolution);
no-data pixels never seed the dilation.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from cloudyeo.sentinel import S2_L1C_BANDS

DETECTOR_NAME = "s2cloudless"
# The ten bands the s2cloudless model reads, in the order it expects (its ``all_bands=False``
# input); the names follow cloudyeo.sentinel.
MODEL_BANDS: tuple[str, ...] = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
INPUT_RESOLUTION_M = 10
PROBABILITY_SCALE = 0.01  # stored uint8 * 0.01 = probability
PROBABILITY_NODATA = 255

# Input check (see the module docstring): physical bounds of L1C TOA reflectance medians.
TOA_REFLECTANCE_MAX = 1.6
RADIO_OFFSET_REFLECTANCE = 0.1  # RADIO_ADD_OFFSET -1000 DN / quantification 10 000
NEGATIVE_MEDIAN_LIMIT = -RADIO_OFFSET_REFLECTANCE / 2
_CHECK_SAMPLES = 1 << 18  # valid pixels per scene the medians are taken over (a regular subsample)

log = logging.getLogger(__name__)


class InputRangeError(ValueError):
    """Input to s2cloudless is not L1C TOA reflectance with the offset applied once."""


@dataclass(frozen=True)
class CloudMaskParams:
    """Parameters of the s2cloudless cloud mask (all recorded by :func:`detector_attrs`).

    ``threshold``: cloud where the disk-averaged probability is ``> threshold``.
    ``average_over``: radius of the averaging disk in **working-resolution pixels** (0: none).
    ``dilation_size``: radius of the dilation disk in **working-resolution pixels** (0: none).
    ``working_resolution_m``: resolution the detector runs at; a multiple of 10 m.
    """

    threshold: float = 0.4
    average_over: int = 4
    dilation_size: int = 2
    working_resolution_m: int = 60

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"masks.threshold: must be in [0, 1], got {self.threshold}")
        for key in ("average_over", "dilation_size"):
            v = getattr(self, key)
            if int(v) != v or v < 0:
                raise ValueError(f"masks.{key}: must be an integer >= 0 (pixels), got {v!r}")
        r = self.working_resolution_m
        if int(r) != r or r < INPUT_RESOLUTION_M or r % INPUT_RESOLUTION_M:
            raise ValueError(f"masks.working_resolution_m: must be a multiple of "
                             f"{INPUT_RESOLUTION_M} m, got {r!r}")

    @property
    def factor(self) -> int:
        """Working pixel size in 10 m pixels."""
        return int(self.working_resolution_m) // INPUT_RESOLUTION_M

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------
# provenance
# --------------------------------------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def detector_attrs(params: CloudMaskParams) -> dict[str, Any]:
    """Detector name, versions and every parameter, JSON-serialisable (for Zarr attrs)."""
    return {
        "cloud_detector": DETECTOR_NAME,
        "cloud_detector_version": _version("s2cloudless"),
        "cloud_detector_model": "pixel_s2_cloud_detector_lightGBM_v0.1",
        "cloud_detector_license": "CC-BY-SA-4.0",
        "cloud_detector_url": "https://github.com/sentinel-hub/sentinel2-cloud-detector",
        "lightgbm_version": _version("lightgbm"),
        "cloud_detector_input": "L1C top-of-atmosphere reflectance (DN + RADIO_ADD_OFFSET) / 10000",
        "cloud_detector_bands": list(MODEL_BANDS),
        "threshold": float(params.threshold),
        "threshold_rule": "cloud where disk-averaged probability > threshold",
        "average_over": int(params.average_over),
        "dilation_size": int(params.dilation_size),
        "average_over_units": "disk radius in working-resolution pixels",
        "dilation_size_units": "disk radius in working-resolution pixels",
        "working_resolution_m": int(params.working_resolution_m),
        "output_resolution_m": INPUT_RESOLUTION_M,
        "downsampling": "block mean (area) ignoring NaN",
        "probability_upsampling": "bilinear (pixel-centre aligned, edges clamped)",
        "mask_upsampling": "nearest",
        "nodata_rule": "any non-finite model band; probability 255, mask True",
    }


def probability_attrs(params: CloudMaskParams) -> dict[str, Any]:
    """Attributes of a stored probability variable (uint8 percent)."""
    return {
        **detector_attrs(params),
        "long_name": "s2cloudless cloud probability (per pixel, before averaging)",
        "units": "1",
        "scale_factor": PROBABILITY_SCALE,
        "add_offset": 0.0,
        "valid_range": [0, 100],
        "nodata": PROBABILITY_NODATA,
    }


def mask_attrs(params: CloudMaskParams) -> dict[str, Any]:
    """Attributes of a stored binary mask variable (bool)."""
    return {
        **detector_attrs(params),
        "long_name": "s2cloudless cloud mask (averaged, thresholded, dilated)",
        "flag_values": [0, 1],
        "flag_meanings": "clear cloud_or_nodata",
    }


def encode_probability(p: np.ndarray) -> np.ndarray:
    """Float probability (NaN = no data) -> uint8 percent with 255 for no data.

    ``rint(clip(p, 0, 1) * 100)`` (round half to even). Probabilities already in [0, 1]
    take one OpenCV pass per plane (``convertScaleAbs``: float32 ``p * 100``, the same
    rounding, saturated), which matters on 10980 x 10980 tiles.
    """
    import cv2

    p = np.asarray(p, dtype=np.float32)
    # min/max propagate NaN, so this also says "no NaN" without a full-size bool array
    if p.ndim < 2 or not p.size or not (p.min() >= 0.0 and p.max() <= 1.0):
        out = np.rint(np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * 100.0).astype(np.uint8)
        out[~np.isfinite(p)] = PROBABILITY_NODATA
        return out
    planes = np.ascontiguousarray(p).reshape(-1, *p.shape[-2:])
    out = np.empty(planes.shape, dtype=np.uint8)
    for i, plane in enumerate(planes):
        cv2.convertScaleAbs(plane, out[i], alpha=100.0)
    return out.reshape(p.shape)


def decode_probability(u8: np.ndarray) -> np.ndarray:
    """uint8 percent -> float32 probability with NaN for no data."""
    u8 = np.asarray(u8)
    out = u8.astype(np.float32) * np.float32(PROBABILITY_SCALE)
    out[u8 == PROBABILITY_NODATA] = np.nan
    return out


# --------------------------------------------------------------------------------------
# resampling helpers
# --------------------------------------------------------------------------------------


def _area_mean_2d(img: np.ndarray, k: int) -> np.ndarray:
    """Exact k x k block mean of a finite 2-D float32 image whose sides are multiples of k."""
    import cv2

    h, w = img.shape
    return cv2.resize(np.ascontiguousarray(img, dtype=np.float32), (w // k, h // k),
                      interpolation=cv2.INTER_AREA)


def block_nanmean(a: np.ndarray, k: int, *, finite: bool | None = None) -> np.ndarray:
    """Mean over ``k x k`` blocks of the last two axes, ignoring NaN (all-NaN blocks -> NaN).

    Sizes that are not a multiple of ``k`` are padded with NaN: edge blocks average the
    pixels they hold. ``finite=True`` promises there is no NaN/inf (skips the check); the
    all-finite, evenly divisible case uses OpenCV's area interpolation (exact block mean,
    ~8x faster than numpy).
    """
    a = np.asarray(a, dtype=np.float32)
    if k == 1:
        return a.copy()
    *lead, h, w = a.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    if finite is None:
        finite = bool(np.isfinite(a).all())
    if finite and (hp, wp) == (h, w):
        flat = a.reshape(-1, h, w)
        out = np.empty((flat.shape[0], h // k, w // k), dtype=np.float32)
        for i, img in enumerate(flat):
            out[i] = _area_mean_2d(img, k)
        return out.reshape(*lead, h // k, w // k)
    if (hp, wp) != (h, w):
        pad = [(0, 0)] * len(lead) + [(0, hp - h), (0, wp - w)]
        a = np.pad(a, pad, constant_values=np.nan)
    ok = np.isfinite(a)
    s = np.where(ok, a, 0.0).reshape(*lead, hp // k, k, wp // k, k).sum(axis=(-3, -1), dtype=np.float32)
    n = ok.reshape(*lead, hp // k, k, wp // k, k).sum(axis=(-3, -1), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan).astype(np.float32)


def upsample_bilinear(a: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of (..., h, w) by an integer ``k``, cropped to ``shape``.

    Pixel centres are aligned (OpenCV's INTER_LINEAR convention); NaN pixels are left out
    (normalised interpolation), output pixels with no valid neighbour are NaN.
    """
    import cv2

    a = np.asarray(a, dtype=np.float32)
    if k == 1:
        return a[..., :shape[0], :shape[1]].copy()
    *lead, h, w = a.shape
    flat = a.reshape(-1, h, w)
    out = np.empty((flat.shape[0], shape[0], shape[1]), dtype=np.float32)
    for i, img in enumerate(flat):
        valid = np.isfinite(img)
        all_valid = bool(valid.all())
        if all_valid and (h * k, w * k) == tuple(shape):  # straight into the result
            cv2.resize(img, (w * k, h * k), out[i], interpolation=cv2.INTER_LINEAR)
            continue
        if all_valid:
            up = cv2.resize(img, (w * k, h * k), interpolation=cv2.INTER_LINEAR)
        else:
            num = cv2.resize(np.where(valid, img, 0.0).astype(np.float32), (w * k, h * k),
                             interpolation=cv2.INTER_LINEAR)
            den = cv2.resize(valid.astype(np.float32), (w * k, h * k), interpolation=cv2.INTER_LINEAR)
            with np.errstate(invalid="ignore", divide="ignore"):
                up = np.where(den > 1e-6, num / np.maximum(den, 1e-6), np.nan).astype(np.float32)
        out[i] = up[:shape[0], :shape[1]]
    return out.reshape(*lead, shape[0], shape[1])


def upsample_nearest(a: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel of (..., h, w) becomes a ``k x k`` block; cropped to ``shape``."""
    a = np.asarray(a)
    if k == 1:
        return a[..., :shape[0], :shape[1]].copy()
    up = np.repeat(np.repeat(a, k, axis=-2), k, axis=-1)
    return np.ascontiguousarray(up[..., :shape[0], :shape[1]])


# --------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _detector(threshold: float, average_over: int, dilation_size: int):
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(threshold=threshold, all_bands=False,
                                average_over=average_over or None,
                                dilation_size=dilation_size or None)


def _band_indices(band_order: Sequence[str]) -> list[int]:
    order = [str(b).upper() for b in band_order]
    missing = [b for b in MODEL_BANDS if b not in order]
    if missing:
        raise ValueError(f"s2cloudless needs bands {', '.join(MODEL_BANDS)}; band_order lacks "
                         f"{', '.join(missing)} (got {', '.join(order)})")
    return [order.index(b) for b in MODEL_BANDS]


def _as_4d(x: np.ndarray, n_bands: int, what: str) -> tuple[np.ndarray, bool]:
    x = np.asarray(x)
    if x.ndim == 3:
        x, squeeze = x[None], True
    elif x.ndim == 4:
        squeeze = False
    else:
        raise ValueError(f"{what}: expected (bands, H, W) or (T, bands, H, W), got shape {x.shape}")
    if x.shape[1] != n_bands:
        raise ValueError(f"{what}: {x.shape[1]} bands on axis -3 but band_order names {n_bands}")
    return x, squeeze


def check_toa_reflectance(x: np.ndarray, valid: np.ndarray, band_names: Sequence[str] = MODEL_BANDS,
                          what: str = "reflectance") -> None:
    """Refuse input that cannot be L1C TOA reflectance (see the module docstring).

    ``x``: (T, h, w, bands) float, ``valid``: (T, h, w) bool (pixels with every band finite).
    Raises :class:`InputRangeError` for digital numbers (a band median > 1.6) or an offset
    applied where not due (a band median < -0.05); logs a warning when no value of any band
    is below 0.1 (the offset possibly not applied). Scenes without valid pixels are skipped.
    """
    for t in range(x.shape[0]):
        idx = np.flatnonzero(valid[t])
        if not idx.size:
            continue
        idx = idx[:: max(1, idx.size // _CHECK_SAMPLES)]
        pix = x[t].reshape(-1, x.shape[-1])[idx].astype(np.float64)
        med = np.median(pix, axis=0)
        scene = f"{what}[{t}]" if x.shape[0] > 1 else what
        hi, lo = int(np.argmax(med)), int(np.argmin(med))
        if med[hi] > TOA_REFLECTANCE_MAX:
            raise InputRangeError(
                f"{scene}: band {band_names[hi]} has median {med[hi]:.6g} over its valid pixels, "
                f"above {TOA_REFLECTANCE_MAX}, the most any TOA reflectance reaches: this looks like "
                f"digital numbers; s2cloudless needs reflectance (DN + RADIO_ADD_OFFSET) / 10000")
        if med[lo] < NEGATIVE_MEDIAN_LIMIT:
            raise InputRangeError(
                f"{scene}: band {band_names[lo]} has median {med[lo]:.6g} over its valid pixels, "
                f"below {NEGATIVE_MEDIAN_LIMIT}: reflectance is not negative; the -1000 DN "
                f"RADIO_ADD_OFFSET was applied where it is not due (baseline < 04.00) or twice")
        floor = float(pix.min())
        if floor >= RADIO_OFFSET_REFLECTANCE:
            log.warning("%s: no valid value of any band is below %.1f (minimum %.4g): either a scene "
                        "entirely under thick high cloud or reflectance without the -1000 DN "
                        "RADIO_ADD_OFFSET of baseline >= 04.00", scene, RADIO_OFFSET_REFLECTANCE, floor)


def _mask_from_probability(detector, prob: np.ndarray, valid: np.ndarray, params: CloudMaskParams) -> np.ndarray:
    """s2cloudless' averaging, threshold and dilation on (T, h, w); no-data pixels left out."""
    import cv2

    if valid.all() and params.average_over:
        return detector.get_mask_from_prob(prob).astype(bool)
    # Own path for no data, and for average_over=0: s2cloudless 1.7.3 then dilates an int8
    # mask, which OpenCV 5 rejects ("Unsupported data type").
    masks = np.zeros(prob.shape, dtype=np.uint8)
    p0 = np.where(valid, prob, 0.0).astype(np.float32)
    for t in range(prob.shape[0]):
        if params.average_over:
            kernel = detector.conv_filter
            num = cv2.filter2D(p0[t], -1, kernel, borderType=cv2.BORDER_REFLECT)
            den = cv2.filter2D(valid[t].astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
            with np.errstate(invalid="ignore", divide="ignore"):
                avg = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
        else:
            avg = p0[t]
        m = ((avg > params.threshold) & valid[t]).astype(np.uint8)
        if params.dilation_size:
            m = cv2.dilate(m, detector.dilation_filter)
        masks[t] = m
    return masks.astype(bool)


def run_s2cloudless(reflectance: np.ndarray, params: CloudMaskParams | None = None, *,
                    band_order: Sequence[str] = S2_L1C_BANDS,
                    num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """s2cloudless on reflectance that is *already* at the working resolution.

    ``reflectance``: (bands, h, w) or (T, bands, h, w) L1C TOA reflectance, bands named by
    ``band_order`` (must include the ten model bands; others are ignored), NaN = no data.
    Returns ``(probability, mask)`` at the same resolution: float32 with NaN for no data, and
    bool (True = cloud or no data). Raises :class:`InputRangeError` for input that is not
    TOA reflectance (digital numbers, a misapplied offset; :func:`check_toa_reflectance`). ``average_over``/``dilation_size`` act on these pixels.
    ``num_threads``: LightGBM threads (None: its default, all cores).
    """
    params = params or CloudMaskParams()
    idx = _band_indices(band_order)
    x, squeeze = _as_4d(reflectance, len(band_order), "reflectance")
    t, _, h, w = x.shape
    x = np.ascontiguousarray(np.moveaxis(x[:, idx], 1, -1), dtype=np.float32)  # (T, h, w, 10)
    valid = np.isfinite(x).all(axis=-1)
    check_toa_reflectance(x, valid, MODEL_BANDS)
    det = _detector(float(params.threshold), int(params.average_over), int(params.dilation_size))
    kwargs = {} if num_threads is None else {"num_threads": int(num_threads)}
    prob = np.full((t, h, w), np.nan, dtype=np.float32)
    if valid.all():
        prob[...] = det.get_cloud_probability_maps(x, **kwargs)
    elif valid.any():
        pix = x[valid][None, None]  # (1, 1, n, 10): only the valid pixels go to the model
        prob[valid] = det.get_cloud_probability_maps(pix, **kwargs)[0, 0]
    mask = _mask_from_probability(det, np.nan_to_num(prob, nan=0.0), valid, params)
    mask |= ~valid
    if squeeze:
        return prob[0], mask[0]
    return prob, mask


def compute_cloud_masks(l1c_reflectance: np.ndarray, params: CloudMaskParams | None = None, *,
                        band_order: Sequence[str] = S2_L1C_BANDS,
                        num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cloud probability (uint8 percent) and cloud mask (bool) at 10 m from 10 m L1C reflectance.

    ``l1c_reflectance``: (bands, H, W) or (T, bands, H, W) float TOA reflectance
    ((DN + RADIO_ADD_OFFSET) / 10000) with every band on the 10 m grid, in ``band_order``
    (default :data:`cloudyeo.sentinel.S2_L1C_BANDS`); NaN marks no data.

    The detector runs at ``params.working_resolution_m`` (see the module docstring for every
    step). Returns ``(probability, mask)`` shaped like the input without the band axis:
    uint8 ``round(100 p)`` with 255 = no data, and bool with True = cloud or no data.
    """
    params = params or CloudMaskParams()
    idx = _band_indices(band_order)
    x, squeeze = _as_4d(l1c_reflectance, len(band_order), "l1c_reflectance")
    t, _, h, w = x.shape
    k = params.factor
    # Band by band: never a second copy of the (T, bands, H, W) stack.
    valid10 = np.ones((t, h, w), dtype=bool)
    for i in idx:
        valid10 &= np.isfinite(x[:, i])
    finite = bool(valid10.all())
    work = np.stack([block_nanmean(x[:, i], k, finite=finite) for i in idx], axis=1)
    prob_w, mask_w = run_s2cloudless(work, params, band_order=MODEL_BANDS, num_threads=num_threads)
    prob_u8, mask = to_output_resolution(prob_w, mask_w, params, (h, w), valid=None if finite else valid10)
    if squeeze:
        return prob_u8[0], mask[0]
    return prob_u8, mask


def to_output_resolution(prob: np.ndarray, mask: np.ndarray, params: CloudMaskParams,
                         shape: tuple[int, int], valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Working-resolution output of :func:`run_s2cloudless` -> stored 10 m encoding.

    Probability bilinear (then uint8 percent, 255 = no data), mask nearest, cropped to
    ``shape`` (H, W) at 10 m. ``valid`` (optional, 10 m) marks further no-data pixels.
    Use it with :func:`run_s2cloudless` when the bands were read at the working resolution
    directly (e.g. ``read_l1c_reflectance(record, resolution_m=60)``), which skips
    holding a tile's bands at 10 m.
    """
    k = params.factor
    h, w = int(shape[0]), int(shape[1])
    p10 = upsample_bilinear(prob, k, (h, w))
    m10 = upsample_nearest(np.asarray(mask, dtype=bool), k, (h, w))
    if valid is not None:
        p10[~valid] = np.nan
        m10 |= ~valid
    return encode_probability(p10), m10
