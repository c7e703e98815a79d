"""Sentinel-1 viewing geometry and misregistration of the demo worlds (one place for both the
Sentinel-2 tiles and the Planet-CR AOIs).

* Incidence: the IW swath spans 29.1-46.0 deg over 250 km (ESA Sentinel-1 User Handbook); where a
  tile falls across it is fixed per track, and the angle grows eastwards on ascending passes and
  westwards on descending ones (the radar looks right).
* Misregistration of an S1 product against the optical grid: an absolute geolocation error per
  product (``S1_GEOLOCATION_SD_M`` per axis: < 10 m at 95 %, Schubert et al. 2017), plus the terrain
  distortion left by geocoding with an imperfect terrain model: a height error ``e`` moves a point
  by ``e / tan(incidence)`` along the look direction.
* The terrain model is the Copernicus DEM GLO-30, which S1 terrain correction uses today (Copernicus
  Data Space, Planetary Computer RTC, SNAP), at the bounds of its specification: absolute vertical
  accuracy < 4 m LE90; relative vertical accuracy < 2 m LE90 on slopes <= 20 %, < 4 m beyond;
  absolute horizontal accuracy < 6 m CE90. The height error is a per-area bias (the part of the
  absolute error the relative one leaves), plus a smooth relative error whose SD follows the slope
  class, plus what a horizontal offset of the DEM does on slopes (``h(x - d) - h(x) ~ -grad h . d``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from cloudyeo.demo.tiles import seeded_rng, stable_hash

S1_INCIDENCE = (29.1, 46.0)  # IW swath, degrees
S1_SWATH_M = 250_000.0
S1_GEOLOCATION_SD_M = 3.0  # per axis
DEM_ERROR_SCALE_PX = 30.0  # correlation length of the relative height error (10 m pixels)
DEM_ABSOLUTE_LE90_M = 4.0
DEM_RELATIVE_LE90_M = (2.0, 4.0)  # slopes <= DEM_STEEP_SLOPE, steeper
DEM_STEEP_SLOPE = 0.20  # rise over run
DEM_HORIZONTAL_CE90_M = 6.0
LE90_PER_SD = 1.6449  # 90 % of |N(0, s)| lies within 1.6449 s
CE90_PER_SD = 2.1460  # 90 % of a circular normal (s per axis) lies within 2.1460 s


def track_incidence(key: str, orbit_state: str, width_m: float) -> tuple[float, float]:
    """Incidence (near, far edge; degrees) of an area ``width_m`` wide on one track."""
    lo, hi = S1_INCIDENCE
    span = (hi - lo) * width_m / S1_SWATH_M
    u = (stable_hash("s1-swath-position", key, orbit_state) % 10_000) / 10_000.0
    near = lo + u * (hi - lo - span)
    return near, near + span


def incidence_angles(shape: tuple[int, int], near_deg: float, far_deg: float, descending: bool) -> np.ndarray:
    """(1, W) incidence angle per column (east grows on ascending, west on descending passes)."""
    w = shape[1]
    frac = (np.arange(w) + 0.5) / w
    if descending:
        frac = frac[::-1]
    return (near_deg + (far_deg - near_deg) * frac)[None, :]


def geolocation_shift(seed: int, *key: Any) -> tuple[float, float]:
    """One product's absolute geolocation error (east, north), metres."""
    shift = seeded_rng(seed, "s1-geolocation", *key).normal(0.0, S1_GEOLOCATION_SD_M, 2)
    return round(float(shift[0]), 3), round(float(shift[1]), 3)


def dem_error_field(rng: np.random.Generator, unit_field: np.ndarray, elevation: np.ndarray,
                    pixel_m: float) -> np.ndarray:
    """The terrain model's height error (m) over an area, from its elevation (m) and a smooth
    unit-variance field (correlation length ``DEM_ERROR_SCALE_PX``): bias + slope-dependent relative
    error + the error of the DEM's horizontal offset on slopes."""
    g_row, g_col = np.gradient(elevation.astype(np.float64), pixel_m)  # rows run south
    steep = np.hypot(g_row, g_col) > DEM_STEEP_SLOPE
    relative_sd = np.where(steep, DEM_RELATIVE_LE90_M[1], DEM_RELATIVE_LE90_M[0]) / LE90_PER_SD
    relative_sd = gaussian_filter(relative_sd, DEM_ERROR_SCALE_PX / 3.0, mode="nearest")
    bias_sd = np.sqrt(DEM_ABSOLUTE_LE90_M ** 2 - DEM_RELATIVE_LE90_M[0] ** 2) / LE90_PER_SD
    bias = rng.normal(0.0, bias_sd)
    offset_east, offset_north = rng.normal(0.0, DEM_HORIZONTAL_CE90_M / CE90_PER_SD, 2)
    offset_error = -(g_col * offset_east - g_row * offset_north)
    return (bias + relative_sd * unit_field + offset_error).astype(np.float32)


def s1_displacement(dem_error: np.ndarray, shift_m: tuple[float, float], near_deg: float, far_deg: float,
                    orbit_state: str, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of an S1 product really lies on the optical grid, in pixels (rows south,
    cols east): geolocation shift + height error / tan(incidence) along the look direction."""
    descending = orbit_state == "descending"
    theta = incidence_angles(dem_error.shape, near_deg, far_deg, descending)
    ground_range = dem_error / np.tan(np.deg2rad(theta))
    sign = -1.0 if descending else 1.0
    d_col = (shift_m[0] + sign * ground_range) / pixel_m
    d_row = np.broadcast_to(np.float32(-shift_m[1] / pixel_m), dem_error.shape)
    return d_row.astype(np.float32), d_col.astype(np.float32)


def displace(bands: np.ndarray, d_row: np.ndarray, d_col: np.ndarray) -> np.ndarray:
    """Resample (C, H, W) so that pixel p shows what lies at p + displacement (bilinear)."""
    rr, cc = np.mgrid[0:bands.shape[1], 0:bands.shape[2]].astype(np.float32)
    coords = np.stack([rr + d_row, cc + d_col])
    return np.stack([map_coordinates(b, coords, order=1, mode="nearest") for b in bands])


def displacement_truth(d_row: np.ndarray, d_col: np.ndarray, pixel_m: float) -> dict[str, float]:
    """Summary of a displacement field in metres (the per-product truth world.json records)."""
    magnitude = pixel_m * np.hypot(d_row, d_col)
    return {"displacement_m_p50": round(float(np.percentile(magnitude, 50)), 3),
            "displacement_m_p95": round(float(np.percentile(magnitude, 95)), 3),
            "displacement_m_max": round(float(magnitude.max()), 3)}
