"""Clouds, cirrus and cloud shadows over the demo surface; truth masks, SCL and TOA.

Per Sentinel-2 acquisition (all fields on the 10 m tile grid):

* thick clouds: a smooth multi-scale random field on a padded domain, thresholded so that the
  cloud cover reported from the SCL (medium/high cloud and cirrus) hits the scene's target; soft
  edges (truth "thick cloud" where opacity ``alpha >= 0.5``); bright, spectrally flat
  reflectance;
* thin cirrus: a separate streaky field, semi-transparent (opacity up to ``cirrus_max``); raises
  the L1C cirrus band B10;
* cloud shadows: the cloud opacity displaced by the scene's sun-geometry offset (clouds just off
  the tile cast shadows onto it), darkening the surface, never flagged under a thick cloud.

Truth bits (uint8 at 10 m): 1 thick cloud, 2 cirrus, 4 cloud shadow, 8 snow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from cloudyeo.demo.surface import BAND_INDEX, N_BANDS, smooth_field
from cloudyeo.masks.truth import TRUTH_CIRRUS, TRUTH_CLOUD, TRUTH_SHADOW, TRUTH_SNOW, TRUTH_WATER

PAD = 72  # pixels of cloud field beyond the tile on each side (shadow offsets stay below)
EDGE = 0.12  # half-width of the soft cloud edge in field units (field std = 1)
SCL_MEDIUM_ALPHA = 0.3  # SCL: cloud medium probability above this opacity ...
SCL_HIGH_ALPHA = 0.6  # ... and high probability above this one

# Apparent reflectance of a thick cloud and of cirrus (13 bands, B10 slot unused).
CLOUD_SPECTRUM = np.array([.56, .57, .58, .59, .59, .59, .59, .58, .58, .50, 0, .45, .33], dtype=np.float32)
CIRRUS_SPECTRUM = np.array([.38, .37, .36, .35, .34, .33, .32, .31, .31, .28, 0, .22, .15], dtype=np.float32)

# Top-of-atmosphere approximation per band: toa = boa * t + path (B10 handled separately).
TOA_TRANSMITTANCE = np.array([.80, .85, .89, .92, .93, .94, .95, .95, .95, .55, 1, .97, .96], dtype=np.float32)
# Path reflectance at aerosol factor 1 (B01..B12 incl. B10): clear vegetation reads B01 ~0.10,
# B02 ~0.08 at TOA, as in real L1C; stronger values made s2cloudless flag hazy clear land.
TOA_PATH = np.array([.075, .052, .032, .022, .020, .018, .016, .015, .014, .010, 0, .006, .004], dtype=np.float32)
B10_CLEAR = 0.0035


@dataclass(frozen=True)
class SkyParams:
    """Scalar description of one acquisition's sky (drawn by the schedule)."""

    cloud_fraction: float  # target fraction of the tile with thick cloud (0..1)
    cirrus_fraction: float  # target fraction with cirrus (0..1)
    cirrus_max: float  # peak cirrus opacity
    shadow_offset: tuple[int, int]  # (rows, cols) displacement cloud -> shadow, pixels
    shadow_strength: float  # fraction of light removed in full shadow
    aerosol: float  # multiplies the path radiance (L1C)


@dataclass
class Sky:
    alpha: np.ndarray  # (H, W) thick-cloud opacity 0..1
    cirrus: np.ndarray  # (H, W) cirrus opacity 0..cirrus_max
    cirrus_mask: np.ndarray  # (H, W) bool
    shadow: np.ndarray  # (H, W) shadow weight 0..1 (light removed = strength * shadow)
    shadow_mask: np.ndarray  # (H, W) bool
    brightness: np.ndarray  # (H, W) cloud brightness factor


def opacity(field: np.ndarray, thr: float, edge: float) -> np.ndarray:
    """Opacity 0..1 crossing 0.5 at ``thr`` over a soft edge of half-width ``edge``."""
    if thr == np.inf:
        return np.zeros_like(field)
    if thr == -np.inf:
        return np.ones_like(field)
    return np.clip(0.5 + (field - thr) / (2.0 * edge), 0.0, 1.0)


def padded_grid(shape: tuple[int, int], pad: int) -> tuple[tuple[int, int], tuple[slice, slice]]:
    """Shape of a field reaching ``pad`` pixels beyond a grid of ``shape`` on each side, and the grid's slices in it."""
    h, w = shape
    return (h + 2 * pad, w + 2 * pad), (slice(pad, pad + h), slice(pad, pad + w))


def cast_shadow(cloud_pad: np.ndarray, pad: int, shape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """Shadow on the grid of a cloud field padded by ``pad``: at pixel q, the cloud at q - ``offset`` (rows, cols)."""
    (dr, dc), (h, w) = offset, shape
    return cloud_pad[pad - dr:pad - dr + h, pad - dc:pad - dc + w].copy()


def top_value(values: np.ndarray, k: int) -> float:
    """The k-th largest value (k >= 1) of a flat array."""
    return float(np.partition(values, values.size - k)[values.size - k])


def make_sky(rng: np.random.Generator, shape: tuple[int, int], p: SkyParams) -> Sky:
    """Draw the sky of one acquisition.

    ``p.cloud_fraction`` is the target of the *reported* cloud cover (what SCL 8, 9, 10 will
    cover, as ``eo:cloud_cover``): cirrus is drawn first (never more than 80 % of the target),
    then the thick-cloud threshold is chosen so that medium-or-high cloud plus cirrus covers the
    target fraction of the tile.
    """
    h, w = shape
    n = h * w
    (ph, pw), inner = padded_grid(shape, PAD)
    target = float(np.clip(p.cloud_fraction, 0.0, 1.0))
    if target <= 0.0:
        zeros = np.zeros(shape, dtype=np.float32)
        return Sky(alpha=zeros, cirrus=zeros.copy(), cirrus_mask=np.zeros(shape, dtype=bool),
                   shadow=zeros.copy(), shadow_mask=np.zeros(shape, dtype=bool),
                   brightness=np.ones(shape, dtype=np.float32))

    cirrus_fraction = min(p.cirrus_fraction, 0.8 * target)
    if cirrus_fraction > 0.0:
        along_rows = rng.random() < 0.5  # streak orientation
        sig = (36.0, 12.0) if along_rows else (12.0, 36.0)
        white = rng.standard_normal((h // 4 + 3, w // 4 + 3))
        cf = gaussian_filter(white, (sig[0] / 4.0, sig[1] / 4.0), mode="wrap")
        cf = zoom(cf, 4, order=1)[:h, :w]
        cf = (cf - cf.mean()) / max(float(cf.std()), 1e-9)
        k = max(1, int(round(cirrus_fraction * n)))
        cop = opacity(cf, top_value(cf.ravel(), k), 0.3)
        cirrus = (p.cirrus_max * cop).astype(np.float32)
        cirrus_mask = cop >= 0.5
    else:
        cirrus = np.zeros(shape, dtype=np.float32)
        cirrus_mask = np.zeros(shape, dtype=bool)

    f = (0.62 * smooth_field(rng, (ph, pw), 48.0, down=8)
         + 0.30 * smooth_field(rng, (ph, pw), 14.0, down=4)
         + 0.12 * smooth_field(rng, (ph, pw), 3.0, down=1))
    if target >= 1.0:
        alpha_pad = np.clip(0.8 + 0.2 * f, 0.6, 1.0).astype(np.float32)
    else:
        need = int(round(target * n)) - int(cirrus_mask.sum())
        free = f[inner][~cirrus_mask]
        if need <= 0:
            thr = np.inf
        elif need >= free.size:
            thr = -np.inf
        else:
            # SCL counts alpha > SCL_MEDIUM_ALPHA as cloud: F > thr - (0.5 - a0) * 2 * EDGE.
            thr = top_value(free, need) + (0.5 - SCL_MEDIUM_ALPHA) * 2.0 * EDGE
        alpha_pad = opacity(f, thr, EDGE).astype(np.float32)
    alpha = alpha_pad[inner]
    cloud_mask = alpha >= 0.5

    shadow = cast_shadow(alpha_pad, PAD, shape, p.shadow_offset)
    shadow_mask = (shadow >= 0.5) & ~cloud_mask
    brightness = (0.95 + 0.05 * smooth_field(rng, shape, 12.0, down=4)).astype(np.float32)
    return Sky(alpha=alpha, cirrus=cirrus, cirrus_mask=cirrus_mask, shadow=shadow,
               shadow_mask=shadow_mask, brightness=brightness)


def compose(surface: np.ndarray, sky: Sky, shadow_strength: float) -> np.ndarray:
    """Apparent BOA reflectance (13, H, W) under the sky: shadow, then cirrus, then cloud."""
    x = surface * (1.0 - shadow_strength * sky.shadow)[None]
    if sky.cirrus.any():
        c = sky.cirrus[None]
        x = x * (1.0 - c) + c * CIRRUS_SPECTRUM[:, None, None]
    if sky.alpha.any():
        a = sky.alpha[None]
        x = x * (1.0 - a) + a * (CLOUD_SPECTRUM[:, None, None] * sky.brightness[None])
    x[BAND_INDEX["B10"]] = 0.0
    return x.astype(np.float32)


def truth_mask(sky: Sky, snow: np.ndarray, water: np.ndarray | None = None) -> np.ndarray:
    """The per-pixel truth bits (cloudyeo.masks.truth) of one acquisition."""
    t = np.zeros(sky.alpha.shape, dtype=np.uint8)
    t[sky.alpha >= 0.5] |= TRUTH_CLOUD
    t[sky.cirrus_mask] |= TRUTH_CIRRUS
    t[sky.shadow_mask] |= TRUTH_SHADOW
    t[snow > 0.5] |= TRUTH_SNOW
    if water is not None:
        t[water] |= TRUTH_WATER
    return t


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks of the last two axes."""
    if k == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def scene_classification(truth: np.ndarray, sky: Sky, surface: np.ndarray) -> np.ndarray:
    """Sen2Cor-like SCL at 20 m (uint8) derived from the truth and the clear surface."""
    alpha = block_mean(sky.alpha, 2)
    cirrus = block_mean((truth & TRUTH_CIRRUS) > 0, 2)
    shadow = block_mean((truth & TRUTH_SHADOW) > 0, 2)
    snow = block_mean((truth & TRUTH_SNOW) > 0, 2)
    water = block_mean((truth & TRUTH_WATER) > 0, 2)
    red = block_mean(surface[BAND_INDEX["B04"]], 2)
    nir = block_mean(surface[BAND_INDEX["B08"]], 2)
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl = np.full(alpha.shape, 5, dtype=np.uint8)  # not vegetated
    scl[ndvi > 0.4] = 4  # vegetation
    scl[water > 0.5] = 6
    scl[snow >= 0.5] = 11
    scl[shadow >= 0.5] = 3
    scl[cirrus >= 0.5] = 10
    scl[alpha > SCL_MEDIUM_ALPHA] = 8
    scl[alpha > SCL_HIGH_ALPHA] = 9
    return scl


def toa_reflectance(boa: np.ndarray, aerosol: float) -> np.ndarray:
    """Approximate TOA (13, ...) from apparent BOA; the B10 row is left for :func:`b10_toa`."""
    t = TOA_TRANSMITTANCE ** (0.8 + 0.2 * aerosol)
    shape = (N_BANDS,) + (1,) * (boa.ndim - 1)
    return (boa * t.reshape(shape) + (TOA_PATH * aerosol).reshape(shape)).astype(np.float32)


def b10_toa(sky: Sky, aerosol: float) -> np.ndarray:
    """L1C cirrus band (1375 nm) at 10 m: low for clear sky, raised by cirrus and thick cloud."""
    return (B10_CLEAR * (0.9 + 0.2 * aerosol) + 0.25 * sky.cirrus
            + 0.16 * sky.alpha * sky.brightness).astype(np.float32)
