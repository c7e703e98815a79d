"""The ground of a Planet-CR demo AOI: WorldCover classes, 4-band spectra and SAR backscatter.

The land cover is a function of map coordinates (metres in the AOI's UTM zone), so the 3 m
PlanetScope grid and the 10 m WorldCover / Sentinel-1 grid - lattices offset by 1-2 m - see the same
fields, each sampled at its own pixel centres:

* regions: Voronoi cells (~250 m) of domain-warped coordinates (a few random sinusoids), each
  with one WorldCover code drawn from the AOI's prior (neighbours often share it; the AOI's
  "must" codes are placed on cells inside the AOI);
* parcels: a finer Voronoi (~60 m) carrying brightness, crop greenness (drifting by day) and a
  SAR offset.

Spectra are (blue, green, red, near-infrared) surface reflectances per WorldCover code, with a
fixed per-pixel texture; backscatter is sigma0 in dB per code (VV, VH), crops between their
green and bare values, water roughened by each acquisition's wind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from cloudyeo.aois import AoiSpec
from cloudyeo.demo.surface import region_classes, smooth_field
from cloudyeo.demo.tiles import seeded_rng

N_BANDS = 4  # blue, green, red, nir
CROP = 40
WATER = (80,)
SNOW = 70

# Surface reflectance (B, G, R, NIR) per WorldCover code; cropland mixes green and bare.
SPECTRA: dict[int, tuple[float, float, float, float]] = {
    10: (.030, .055, .035, .320),
    20: (.050, .075, .085, .250),
    30: (.045, .080, .070, .300),
    50: (.100, .110, .120, .160),
    60: (.140, .180, .240, .300),
    70: (.850, .850, .830, .700),
    80: (.050, .055, .035, .015),
    90: (.040, .065, .050, .220),
    95: (.030, .050, .030, .260),
    100: (.070, .090, .100, .210),
}
CROP_GREEN = (.040, .085, .050, .420)
CROP_BARE = (.080, .110, .150, .250)
# Relative amplitude of the fixed per-pixel texture (kept low: it dominates the file sizes).
TEXTURE_AMP: dict[int, float] = {10: .02, 20: .016, 30: .01, 40: .008, 50: .05, 60: .012, 70: .005,
                                 80: .004, 90: .01, 95: .014, 100: .012}
# sigma0 (dB): VV, VH, texture; cropland interpolates green -> bare.
SAR_DB: dict[int, tuple[float, float, float]] = {
    10: (-7.0, -13.0, 1.0), 20: (-9.0, -15.5, 1.2), 30: (-10.5, -17.0, 1.0),
    50: (-2.0, -9.0, 2.0), 60: (-14.0, -22.0, 1.5), 70: (-12.0, -20.0, 1.5),
    80: (-21.0, -28.0, 0.8), 90: (-12.0, -18.5, 1.5), 95: (-7.5, -13.0, 1.0),
    100: (-13.0, -20.0, 1.2),
}
SAR_CROP_GREEN = (-9.0, -15.0, 1.0)
SAR_CROP_BARE = (-12.5, -20.5, 1.0)
GENERIC_PRIORS = ((40, .35), (30, .2), (10, .2), (50, .1), (20, .05), (80, .05), (60, .05))

REGION_KM2 = 0.07  # ~250 m cells
PARCEL_KM2 = 0.0036  # ~60 m parcels
PAD_M = 300.0


@dataclass(eq=False)  # hashed by identity: a key of the grid_layers cache
class AoiSurface:
    aoi: AoiSpec
    region_tree: cKDTree
    region_code: np.ndarray  # (R,) WorldCover code
    warp: np.ndarray  # (2, K, 4): per axis K sinusoids (kx, ky, phase, amplitude)
    parcel_tree: cKDTree
    parcel_bright: np.ndarray  # (P,)
    parcel_green: np.ndarray  # (P,) crop greenness on day 0
    parcel_trend: np.ndarray  # (P,) greenness change per day
    parcel_sar: np.ndarray  # (P,) dB


@lru_cache(maxsize=16)
def aoi_surface(aoi: AoiSpec, seed: int, priors: tuple[tuple[int, float], ...],
                must: tuple[int, ...]) -> AoiSurface:
    """The static land cover of an AOI (cached per process)."""
    rng = seeded_rng(seed, "planet-surface", aoi.id)
    minx, miny, maxx, maxy = aoi.bounds
    lo = np.array([minx - PAD_M, miny - PAD_M])
    hi = np.array([maxx + PAD_M, maxy + PAD_M])
    area = float(np.prod(hi - lo)) / 1e6
    n_regions = max(8, int(round(area / REGION_KM2)))
    seeds = rng.uniform(lo, hi, size=(n_regions, 2))
    codes = np.array([c for c, _ in priors])
    weights = np.array([w for _, w in priors], dtype=np.float64)
    weights /= weights.sum()
    region_code = region_classes(rng, seeds, 0.35, 350.0, lambda _i: rng.choice(codes, p=weights), np.uint8)
    # The must-have codes go to distinct cells whose seeds lie well inside the AOI.
    inside = np.flatnonzero((seeds[:, 0] > minx + 150) & (seeds[:, 0] < maxx - 150)
                            & (seeds[:, 1] > miny + 150) & (seeds[:, 1] < maxy - 150))
    for code, idx in zip(must, rng.permutation(inside)):
        region_code[idx] = code
    k = 5
    warp = np.empty((2, k, 4))
    for axis in range(2):
        wavelength = rng.uniform(300.0, 900.0, k)
        angle = rng.uniform(0, 2 * np.pi, k)
        warp[axis, :, 0] = 2 * np.pi * np.cos(angle) / wavelength
        warp[axis, :, 1] = 2 * np.pi * np.sin(angle) / wavelength
        warp[axis, :, 2] = rng.uniform(0, 2 * np.pi, k)
        warp[axis, :, 3] = rng.uniform(15.0, 45.0, k)
    n_parcels = max(20, int(round(area / PARCEL_KM2)))
    pseeds = rng.uniform(lo, hi, size=(n_parcels, 2))
    return AoiSurface(
        aoi=aoi, region_tree=cKDTree(seeds), region_code=region_code, warp=warp,
        parcel_tree=cKDTree(pseeds),
        parcel_bright=rng.normal(1.0, 0.06, n_parcels),
        parcel_green=rng.uniform(0.0, 1.0, n_parcels),
        parcel_trend=rng.normal(0.0, 0.012, n_parcels),
        parcel_sar=rng.normal(0.0, 0.8, n_parcels),
    )


def _warped(surf: AoiSurface, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.stack([x, y], axis=-1).astype(np.float64)
    for axis in range(2):
        for kx, ky, ph, amp in surf.warp[axis]:
            out[..., axis] += amp * np.sin(kx * x + ky * y + ph)
    return out


@dataclass
class GridLayers:
    """The surface sampled on one pixel grid (pixel centres)."""

    codes: np.ndarray  # (H, W) uint8 WorldCover code
    parcel: np.ndarray  # (H, W) int32
    texture: np.ndarray  # (H, W) float32 multiplicative (mean ~1)
    fine: np.ndarray  # (H, W) float32 the fine texture field (std 1), for SAR


@lru_cache(maxsize=16)
def grid_layers(surf: AoiSurface, seed: int, transform: tuple[float, ...],
                shape: tuple[int, int]) -> GridLayers:
    """Sample the AOI surface at the pixel centres of a grid (a, b, c, d, e, f)."""
    a, b, c, d, e, f = transform
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64) + 0.5
    x = a * cols + b * rows + c
    y = d * cols + e * rows + f
    pts = np.stack([x.ravel(), y.ravel()], axis=1)
    _, region = surf.region_tree.query(_warped(surf, x, y).reshape(-1, 2), workers=1)
    codes = surf.region_code[region].reshape(shape)
    _, parcel = surf.parcel_tree.query(pts, workers=1)
    parcel = parcel.reshape(shape).astype(np.int32)
    rng = seeded_rng(seed, "planet-texture", surf.aoi.id, round(abs(a), 3))
    amp = np.zeros(256, dtype=np.float32)
    for code, v in TEXTURE_AMP.items():
        amp[code] = v
    fine = smooth_field(rng, shape, 2.5 * 3.0 / abs(a))
    large = smooth_field(rng, shape, 40.0 / abs(a) * 3.0, down=4)
    texture = 1.0 + amp[codes] * fine + 0.03 * large
    return GridLayers(codes=codes, parcel=parcel, texture=np.clip(texture, 0.6, 1.5).astype(np.float32),
                      fine=fine.astype(np.float32))


def crop_greenness(surf: AoiSurface, day: int) -> np.ndarray:
    return np.clip(surf.parcel_green + surf.parcel_trend * day, 0.0, 1.0)


def surface_reflectance(surf: AoiSurface, layers: GridLayers, day: int) -> np.ndarray:
    """Noise-free clear-sky surface reflectance (4, H, W) float32 on day ``day`` of the period."""
    table = np.zeros((256, N_BANDS), dtype=np.float32)
    for code, spec in SPECTRA.items():
        table[code] = spec
    refl = table[layers.codes].transpose(2, 0, 1).copy()  # (4, H, W)
    crop = layers.codes == CROP
    if crop.any():
        g = crop_greenness(surf, day)[layers.parcel[crop]].astype(np.float32)
        green = np.asarray(CROP_GREEN, dtype=np.float32)[:, None]
        bare = np.asarray(CROP_BARE, dtype=np.float32)[:, None]
        refl[:, crop] = g[None] * green + (1.0 - g[None]) * bare
    bright = surf.parcel_bright[layers.parcel].astype(np.float32)
    refl *= (bright * layers.texture)[None]
    return refl.astype(np.float32)


def sar_mean_db(surf: AoiSurface, layers: GridLayers, day: int, rng: np.random.Generator) -> np.ndarray:
    """Mean sigma0 (dB), (2, H, W) float32, before speckle; ``rng`` draws wind and moisture."""
    table = np.zeros((256, 3), dtype=np.float32)
    for code, v in SAR_DB.items():
        table[code] = v
    out = table[layers.codes][..., :2].transpose(2, 0, 1).copy()
    crop = layers.codes == CROP
    if crop.any():
        g = crop_greenness(surf, day)[layers.parcel[crop]].astype(np.float32)
        green = np.asarray(SAR_CROP_GREEN[:2], dtype=np.float32)[:, None]
        bare = np.asarray(SAR_CROP_BARE[:2], dtype=np.float32)[:, None]
        moisture = np.float32(rng.normal(0.0, 1.0))
        out[:, crop] = g[None] * green + (1.0 - g[None]) * (bare + 1.5 * moisture)
    wind = np.float32(rng.normal(0.0, 2.5))
    water = np.isin(layers.codes, WATER)
    out[0][water] += wind
    out[1][water] += 0.6 * wind
    out += surf.parcel_sar[layers.parcel].astype(np.float32)[None]
    tex = np.array([SAR_DB.get(int(c), SAR_CROP_GREEN)[2] for c in range(256)], dtype=np.float32)
    out += (tex[layers.codes] * layers.fine)[None]
    return out.astype(np.float32)
