"""Pixels of the Planet-CR demo world: PlanetScope 4-band scenes with UDM2, Sentinel-1, WorldCover.

Per PlanetScope acquisition, on the AOI's 3 m grid (its lattice offset 1-2 m from the 10 m grid):

* sky: thick cloud from a multi-scale random field thresholded to the scene's target cover (soft
  edges), haze (a broad field scaled by the scene's haze level, plus a halo around clouds) and
  cloud shadow (the cloud opacity displaced by the sun geometry);
* radiometry: surface -> shadow -> haze -> cloud -> top of atmosphere (transmittance + path
  radiance) -> sensor noise -> uint16 TOA reflectance x 10000 (0 = nodata), i.e. what Planet's
  ``toar`` tool writes from ``ortho_analytic_4b`` and its XML reflectance coefficients;
* UDM2 (8 bands, uint8), written from the same truth: 1 clear, 2 snow, 3 shadow, 4 light haze,
  5 heavy haze, 6 cloud (bands 1-6 mutually exclusive, all 0 on nodata), 7 confidence (0-100),
  8 legacy UDM (bit 0 blackfill / not imaged, bit 1 cloud);
* some scenes are cut by a scene edge (blackfill beyond a slanted straight line), and a few
  have no UDM2 asset at all.

Sentinel-1 GRD IW VV/VH: sigma0 in *linear power* (float32, NaN nodata) on the 10 m AOI grid,
displaced against the PlanetScope grid (geolocation error + terrain distortion, larger in relief:
:mod:`cloudyeo.demo.sar_geometry`), averaged to 20 m cells and speckled (gamma, ENL 4.4).
WorldCover: uint8 codes, nodata 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from cloudyeo.aois import AoiSpec
from cloudyeo.demo.atmosphere import block_mean, cast_shadow, opacity, padded_grid, top_value
from cloudyeo.demo.planet.surface import (
    SNOW,
    AoiSurface,
    GridLayers,
    grid_layers,
    sar_mean_db,
    surface_reflectance,
)
from cloudyeo.demo.rasters import discard_float_bits, write_cog
from cloudyeo.demo.sar_geometry import DEM_ERROR_SCALE_PX, dem_error_field, displace, displacement_truth, s1_displacement
from cloudyeo.demo.surface import elevation_field, smooth_field
from cloudyeo.demo.tiles import seeded_rng

PLANET_RES = 3.0
MARGIN_M = 15.0  # the 3 m scene grid extends this far beyond the AOI on every side
PLANET_BANDS = ("blue", "green", "red", "nir")
UDM2_BANDS = ("clear", "snow", "shadow", "haze_light", "haze_heavy", "cloud", "confidence", "udm1")
UDM1_BLACKFILL = 1
UDM1_CLOUD = 2
OPTICAL_ASSET = "ortho_analytic_4b_toar"
UDM2_ASSET = "ortho_udm2"

PAD = 100  # 3 m pixels of cloud field beyond the grid (shadow offsets stay below)
EDGE = 0.12
CLOUD_SPECTRUM = np.array([.55, .56, .57, .58], dtype=np.float32)
HAZE_SPECTRUM = np.array([.30, .28, .26, .22], dtype=np.float32)
SHADOW_STRENGTH = 0.65
TOA_T = np.array([.85, .89, .92, .95], dtype=np.float32)
TOA_PATH = np.array([.075, .050, .035, .018], dtype=np.float32)
NOISE_FLOOR = np.array([.0003, .0003, .0003, .0004], dtype=np.float32)
NOISE_REL = 0.001
HEAVY_HAZE = 0.30
LIGHT_HAZE = 0.10
SAR_ENL = 4.4
SAR_MANTISSA_BITS = 8
DEFLATE_LEVEL = 1


# --------------------------------------------------------------------------------- grids


@dataclass(frozen=True)
class PlanetGrid:
    """The AOI's 3 m PlanetScope grid: the 10 m AOI grid's corner shifted by (dx, dy) metres,
    minus the margin."""

    transform: tuple[float, ...]  # (a, b, c, d, e, f)
    shape: tuple[int, int]
    offset_m: tuple[float, float]  # (dx, dy) of the 3 m lattice against the 10 m lattice

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)


def planet_grid(aoi: AoiSpec, seed: int) -> PlanetGrid:
    """A per-AOI 3 m grid whose lattice is shifted 1-2 m (each axis, random sign) from the 10 m one."""
    rng = seeded_rng(seed, "planet-grid-offset", aoi.id)
    dx, dy = (float(np.round(rng.uniform(1.0, 2.0) * rng.choice((-1.0, 1.0)), 3)) for _ in range(2))
    n = int(round((aoi.size_m + 2 * MARGIN_M) / PLANET_RES))
    t = (PLANET_RES, 0.0, aoi.x0 - MARGIN_M + dx, 0.0, -PLANET_RES, aoi.y0 + MARGIN_M + dy)
    return PlanetGrid(transform=t, shape=(n, n), offset_m=(dx, dy))


# ---------------------------------------------------------------------------------- sky


@dataclass(frozen=True)
class PlanetSky:
    """Scalars of one PlanetScope acquisition's sky (drawn by the schedule)."""

    cloud_target: float  # fraction of the scene with thick cloud (UDM2 "cloud")
    haze_level: float  # peak haze opacity of the broad haze field
    shadow_offset: tuple[int, int]  # (rows, cols), 3 m pixels, cloud -> shadow
    aerosol: float  # multiplies the path radiance
    nodata: tuple[float, float] | None  # (edge direction degrees, share of the grid) or None


def make_planet_sky(rng: np.random.Generator, shape: tuple[int, int], p: PlanetSky):
    """(alpha, haze, shadow, brightness) fields on the grid."""
    (ph, pw), inner = padded_grid(shape, PAD)
    target = float(np.clip(p.cloud_target, 0.0, 1.0))
    if target <= 0.0:
        alpha_pad = np.zeros((ph, pw), dtype=np.float32)
        halo = np.zeros(shape, dtype=np.float32)
    else:
        f = (0.6 * smooth_field(rng, (ph, pw), 110.0, down=8)
             + 0.3 * smooth_field(rng, (ph, pw), 30.0, down=4)
             + 0.1 * smooth_field(rng, (ph, pw), 6.0, down=2))
        if target >= 1.0:
            alpha_pad = np.clip(0.85 + 0.15 * f, 0.6, 1.0).astype(np.float32)
            halo = np.zeros(shape, dtype=np.float32)
        else:
            thr = top_value(f[inner].ravel(), max(1, int(round(target * (shape[0] * shape[1])))))
            alpha_pad = opacity(f, thr, EDGE).astype(np.float32)
            halo = (0.4 * opacity(f[inner], thr - 0.22, 0.12)).astype(np.float32)
    alpha = alpha_pad[inner]
    haze = p.haze_level * np.clip(0.5 + 0.5 * smooth_field(rng, shape, 120.0, down=8), 0.0, 1.0)
    haze = np.maximum(haze, halo).astype(np.float32)
    shadow = cast_shadow(alpha_pad, PAD, shape, p.shadow_offset)
    brightness = (0.95 + 0.05 * smooth_field(rng, shape, 20.0, down=4)).astype(np.float32)
    return alpha, haze, shadow, brightness


def blackfill(shape: tuple[int, int], nodata: tuple[float, float] | None) -> np.ndarray:
    """True where the scene has no data: beyond a straight scene edge covering ``share``."""
    if nodata is None:
        return np.zeros(shape, dtype=bool)
    direction, share = nodata
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    phi = np.deg2rad(direction)
    proj = (cols - w / 2) * np.cos(phi) - (rows - h / 2) * np.sin(phi)
    thr = float(np.quantile(proj, 1.0 - share))
    return proj > thr


def udm2_from_truth(alpha: np.ndarray, haze: np.ndarray, shadow: np.ndarray,
                    snow: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """The 8-band UDM2 (uint8) of a scene; bands 1-6 mutually exclusive.

    Priority: cloud > heavy haze > shadow > light haze > snow > clear.
    """
    cloud = alpha >= 0.5
    heavy = ~cloud & (haze >= HEAVY_HAZE)
    shad = ~cloud & ~heavy & (shadow >= 0.5)
    light = ~cloud & ~heavy & ~shad & (haze >= LIGHT_HAZE)
    snowy = ~cloud & ~heavy & ~shad & ~light & snow
    clear = ~(cloud | heavy | shad | light | snowy)
    udm = np.zeros((8,) + alpha.shape, dtype=np.uint8)
    for i, m in enumerate((clear, snowy, shad, light, heavy, cloud)):
        udm[i] = m
    conf = 100.0 * (0.55 + 0.45 * np.abs(2.0 * alpha - 1.0)) * (1.0 - 0.6 * np.minimum(haze, 0.5))
    udm[6] = np.clip(np.rint(conf), 0, 100).astype(np.uint8)
    udm[7] = np.where(cloud, UDM1_CLOUD, 0).astype(np.uint8)
    udm[:, nodata] = 0
    udm[7][nodata] = UDM1_BLACKFILL
    return udm


# -------------------------------------------------------------------------------- writers


def write_multiband(path: Path, array: np.ndarray, transform: Affine, epsg: int, *,
                    nodata: float | int | None, predictor: int,
                    descriptions: tuple[str, ...]) -> Path:
    """A tiled, pixel-interleaved DEFLATE GeoTIFF (like Planet's deliveries), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    count, height, width = array.shape
    with rasterio.open(
        tmp, "w", driver="GTiff", width=width, height=height, count=count,
        dtype=array.dtype.name, crs=CRS.from_epsg(int(epsg)), transform=transform, nodata=nodata,
        tiled=True, blockxsize=256, blockysize=256, compress="DEFLATE", zlevel=DEFLATE_LEVEL,
        predictor=predictor, interleave="pixel",
    ) as dst:
        dst.write(array)
        for i, d in enumerate(descriptions, 1):
            dst.set_band_description(i, d)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------- renderers


def render_planet_scene(surf: AoiSurface, grid: PlanetGrid, seed: int, item_id: str, day: int,
                        sky: PlanetSky, has_udm2: bool, folder: Path) -> dict[str, Any]:
    """Write one scene's analytic (and UDM2) file; return its pixel statistics."""
    aoi = surf.aoi
    layers: GridLayers = grid_layers(surf, seed, grid.transform, grid.shape)
    clear = surface_reflectance(surf, layers, day)
    rng = seeded_rng(seed, "planet-pixels", aoi.id, item_id)
    alpha, haze, shadow, brightness = make_planet_sky(rng, grid.shape, sky)
    x = clear * (1.0 - SHADOW_STRENGTH * shadow)[None]
    x = x * (1.0 - haze)[None] + haze[None] * HAZE_SPECTRUM[:, None, None]
    x = x * (1.0 - alpha)[None] + alpha[None] * (CLOUD_SPECTRUM[:, None, None] * brightness[None])
    toa = x * (TOA_T ** (0.8 + 0.2 * sky.aerosol))[:, None, None] + (TOA_PATH * sky.aerosol)[:, None, None]
    sigma = np.sqrt(NOISE_FLOOR[:, None, None] ** 2 + (NOISE_REL * toa) ** 2)
    toa = toa + rng.standard_normal(toa.shape, dtype=np.float32) * sigma
    dn = np.clip(np.rint(toa * 10000.0), 1, 65535).astype(np.uint16)
    nodata = blackfill(grid.shape, sky.nodata)
    dn[:, nodata] = 0
    snow = layers.codes == SNOW
    udm = udm2_from_truth(alpha, haze, shadow, snow, nodata)
    analytic = folder / f"{item_id}_3B_AnalyticMS_toar.tif"
    write_multiband(analytic, dn, grid.affine, aoi.epsg, nodata=0, predictor=2,
                    descriptions=PLANET_BANDS)
    udm_path = folder / f"{item_id}_3B_udm2.tif"
    if has_udm2:
        write_multiband(udm_path, udm, grid.affine, aoi.epsg, nodata=None, predictor=1,
                        descriptions=UDM2_BANDS)
    valid = ~nodata
    n_valid = max(int(valid.sum()), 1)
    pct = {name: 100.0 * float(udm[i][valid].sum()) / n_valid
           for i, name in enumerate(UDM2_BANDS[:6])}
    clear_px = udm[0].astype(bool) & valid
    return {
        "analytic": analytic, "udm2": udm_path if has_udm2 else None,
        "percent": pct,
        "valid_percent": 100.0 * float(valid.mean()),
        "clear_confidence": float(udm[6][clear_px].mean()) if clear_px.any() else 0.0,
        "visible_confidence": float(udm[6][valid].mean()) if valid.any() else 0.0,
        "legacy_cloud_percent": 100.0 * float((alpha[valid] >= 0.5).mean()) if valid.any() else 0.0,
        "valid_mask": valid,
    }


@lru_cache(maxsize=16)
def aoi_dem_error(aoi: AoiSpec, seed: int, relief_m: float) -> np.ndarray:
    """The terrain model's height error over an AOI's 10 m grid (S1 misregistration truth)."""
    rng = seeded_rng(seed, "planet-dem-error", aoi.id)
    terrain = elevation_field(rng, aoi.shape, 0.0, relief_m)
    return dem_error_field(rng, smooth_field(rng, aoi.shape, DEM_ERROR_SCALE_PX, down=4), terrain, 10.0)


def render_s1(surf: AoiSurface, seed: int, scene_id: str, day: int, path_vv: Path, path_vh: Path, *,
              dem_error: np.ndarray, shift_m: tuple[float, float], incidence: tuple[float, float],
              orbit_state: str) -> dict[str, float]:
    """Write VV/VH sigma0 (linear power, float32) on the AOI's 10 m grid, displaced against the
    PlanetScope grid by the product's geolocation error and terrain distortion; returns the
    displacement's summary (metres)."""
    aoi = surf.aoi
    layers = grid_layers(surf, seed, tuple(aoi.transform)[:6], aoi.shape)
    rng = seeded_rng(seed, "planet-s1", aoi.id, scene_id)
    db = sar_mean_db(surf, layers, day, rng)
    d_row, d_col = s1_displacement(dem_error, shift_m, incidence[0], incidence[1], orbit_state, 10.0)
    mean20 = block_mean(displace(10.0 ** (db.astype(np.float64) / 10.0), d_row, d_col), 2)
    speckle = rng.gamma(SAR_ENL, 1.0 / SAR_ENL, size=mean20.shape)
    lin = np.repeat(np.repeat(mean20 * speckle, 2, axis=1), 2, axis=2)
    for i, path in enumerate((path_vv, path_vh)):
        arr = discard_float_bits(lin[i].astype(np.float32), SAR_MANTISSA_BITS)
        write_cog(path, arr, aoi.transform, aoi.epsg, nodata=float("nan"), predictor=3)
    return displacement_truth(d_row, d_col, 10.0)


def render_worldcover(surf: AoiSurface, seed: int, path: Path) -> dict[int, int]:
    """Write the WorldCover-like map (uint8 codes, nodata 0); return pixel counts per code."""
    aoi = surf.aoi
    layers = grid_layers(surf, seed, tuple(aoi.transform)[:6], aoi.shape)
    write_cog(path, layers.codes.astype(np.uint8), aoi.transform, aoi.epsg, nodata=0, predictor=1)
    codes, counts = np.unique(layers.codes, return_counts=True)
    return {int(c): int(n) for c, n in zip(codes, counts)}
