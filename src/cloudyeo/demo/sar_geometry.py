"""Sentinel-1 viewing geometry and misregistration of the demo worlds (one place for both the
Sentinel-2 tiles and the Planet-CR AOIs).

* Incidence: the IW swath spans 29.1-46.0 deg over 250 km (ESA Sentinel-1 User Handbook); where a
  tile falls across it is fixed per track, and the angle grows eastwards on ascending passes and
  westwards on descending ones (the radar looks right).
* Misregistration of an S1 product against the optical grid: an absolute geolocation error per
  product (``S1_GEOLOCATION_SD_M`` per axis: < 10 m at 95 %, Schubert et al. 2017), plus the terrain
  distortion left by geocoding with an imperfect terrain model: a height error ``e`` moves a point
  by ``e / tan(incidence)`` along the look direction. The height error is a smooth field per tile of
  a few metres, more in relief (SRTM-like).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import map_coordinates

from cloudyeo.demo.tiles import seeded_rng, stable_hash

S1_INCIDENCE = (29.1, 46.0)  # IW swath, degrees
S1_SWATH_M = 250_000.0
S1_GEOLOCATION_SD_M = 3.0  # per axis
DEM_ERROR_SD_M = (2.0, 0.004)  # height error SD = a + b * local relief (m)
DEM_ERROR_SCALE_PX = 30.0  # correlation length of the height error (10 m pixels)


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


def dem_error_field(unit_field: np.ndarray, relief_m: float) -> np.ndarray:
    """The terrain model's height error (m) over a tile from a smooth unit-variance field
    (correlation length ``DEM_ERROR_SCALE_PX``): larger in relief."""
    a, b = DEM_ERROR_SD_M
    return ((a + b * relief_m) * unit_field).astype(np.float32)


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
