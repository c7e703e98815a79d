"""A synthetic cloud climatology in the EarthEnv MODCF file layout.

Files (global EPSG:4326 grid, UInt16, value = cloud frequency in percent x 100, nodata 65535
over sea)::

    MODCF_monthlymean_01.tif .. MODCF_monthlymean_12.tif
    MODCF_interannualSD.tif

The pattern is plausible rather than real: a zonal profile (cloudy ITCZ following the sun,
clear subtropics, cloudy storm tracks), cloudier European winters, a dry Mediterranean summer and
smooth seeded noise. Land is a handful of hand-drawn lon/lat polygons, plus a small disc around
every demo tile centre so each tile has a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.features import rasterize
from rasterio.transform import Affine, rowcol
from shapely.geometry import Point, Polygon
from shapely.ops import unary_union

NODATA = 65535
SCALE = 100.0  # stored value = percent * SCALE


def monthly_mean_name(month: int) -> str:
    return f"MODCF_monthlymean_{month:02d}.tif"


SD_NAME = "MODCF_interannualSD.tif"

# Crude continents as (lon, lat) rings. Deliberately coarse: only the demo needs them.
_LAND: list[list[tuple[float, float]]] = [
    # Europe and Asia
    [(-9.8, 36.8), (-9.0, 36.0), (-5.6, 36.0), (-2.0, 36.6), (3.0, 41.5), (3.5, 43.3),
     (7.5, 43.7), (10.5, 42.9), (12.3, 41.7), (15.7, 40.0), (16.0, 38.0), (18.5, 40.1),
     (15.5, 42.2), (13.5, 45.7), (19.4, 41.8), (20.0, 39.7), (22.0, 37.0), (23.0, 39.5),
     (26.0, 40.8), (29.0, 41.1), (28.0, 43.0), (30.0, 45.5), (33.5, 44.5), (38.0, 47.0),
     (41.5, 41.5), (36.0, 41.2), (27.0, 40.0), (26.5, 38.0), (29.0, 36.5), (35.9, 36.4),
     (34.3, 31.3), (32.5, 29.9), (36.0, 22.0), (43.3, 12.7), (51.5, 15.5), (59.5, 22.5),
     (56.0, 26.5), (50.5, 30.0), (57.0, 25.8), (66.5, 25.3), (72.9, 21.0), (77.5, 8.1),
     (80.3, 13.0), (86.5, 20.0), (91.0, 22.3), (94.5, 16.0), (97.6, 16.5), (98.5, 8.0),
     (103.5, 1.3), (104.3, 10.3), (109.3, 11.5), (108.0, 21.5), (117.0, 23.0), (122.0, 30.8),
     (119.0, 34.5), (122.5, 37.4), (117.7, 39.0), (121.7, 40.8), (129.0, 35.1), (130.7, 42.3),
     (141.0, 52.0), (135.5, 54.5), (156.5, 57.5), (163.0, 61.5), (180.0, 65.5),
     (180.0, 71.5), (140.0, 72.8), (113.0, 73.8), (104.0, 77.7), (80.0, 73.5), (69.0, 73.0),
     (66.5, 70.5), (44.0, 68.5), (33.0, 69.5), (28.5, 71.0), (17.0, 69.5), (11.0, 64.0),
     (5.0, 62.0), (5.5, 58.5), (8.0, 58.0), (10.5, 59.5), (11.0, 58.5), (12.5, 56.0),
     (10.5, 57.7), (8.2, 57.0), (8.5, 55.0), (8.5, 53.5), (4.5, 52.8), (3.5, 51.5),
     (1.6, 51.0), (1.5, 50.0), (-1.3, 49.5), (-1.9, 48.6), (-4.8, 48.5), (-2.2, 47.2),
     (-1.2, 44.5), (-1.8, 43.4), (-8.0, 43.8), (-9.3, 43.1), (-8.9, 41.5), (-8.8, 40.0),
     (-9.5, 38.8)],
    # Great Britain and Ireland
    [(-5.7, 50.0), (1.4, 51.2), (1.7, 52.7), (0.0, 53.5), (-1.8, 55.7), (-2.0, 57.6),
     (-5.0, 58.6), (-6.3, 56.5), (-4.8, 54.8), (-3.1, 53.4), (-5.2, 51.7)],
    [(-10.3, 51.6), (-6.2, 52.2), (-6.0, 55.2), (-8.4, 55.2), (-10.0, 54.0)],
    # Africa
    [(-17.0, 21.0), (-17.2, 14.7), (-8.0, 4.5), (9.5, 4.0), (13.0, -5.0), (12.0, -17.0),
     (18.4, -34.3), (26.0, -34.0), (32.9, -26.0), (40.5, -15.5), (39.5, -5.0), (51.2, 11.8),
     (43.3, 11.9), (32.5, 29.9), (20.0, 31.0), (10.8, 37.0), (-1.5, 35.2), (-5.9, 35.8),
     (-9.8, 29.5)],
    # Madagascar
    [(44.0, -25.0), (47.1, -25.0), (50.4, -15.4), (49.3, -12.0), (44.3, -16.0)],
    # North America
    [(-168.0, 65.5), (-163.0, 70.0), (-140.0, 69.6), (-125.0, 70.0), (-95.0, 72.0),
     (-80.0, 68.5), (-94.0, 59.0), (-82.5, 52.5), (-78.0, 62.5), (-64.0, 60.0), (-55.5, 52.0),
     (-66.0, 44.5), (-70.5, 41.6), (-76.0, 35.0), (-81.0, 31.0), (-80.1, 25.3), (-82.8, 28.0),
     (-89.5, 30.0), (-97.5, 26.0), (-97.0, 21.0), (-90.5, 21.0), (-87.0, 21.5), (-88.5, 16.0),
     (-83.0, 15.0), (-83.5, 10.5), (-77.5, 8.5), (-79.5, 7.3), (-86.0, 12.0), (-92.0, 14.5),
     (-105.5, 20.0), (-112.5, 29.0), (-117.0, 32.5), (-120.5, 34.5), (-124.5, 40.5),
     (-124.0, 47.5), (-130.0, 54.5), (-137.0, 59.0), (-150.0, 61.0), (-158.0, 57.0),
     (-164.0, 60.0)],
    # Greenland
    [(-55.0, 82.0), (-30.0, 83.5), (-20.0, 80.0), (-20.0, 70.0), (-43.0, 60.0),
     (-52.0, 64.0), (-56.0, 72.0), (-72.0, 78.0)],
    # Iceland
    [(-24.0, 65.5), (-21.0, 66.5), (-15.0, 66.5), (-13.5, 65.0), (-18.0, 63.4), (-22.5, 63.8)],
    # South America
    [(-77.5, 8.5), (-72.0, 12.0), (-61.0, 10.5), (-50.0, 0.0), (-35.0, -5.5), (-39.0, -16.0),
     (-48.0, -26.0), (-58.0, -38.5), (-65.0, -42.0), (-68.5, -52.0), (-74.5, -50.0),
     (-73.5, -37.0), (-71.5, -18.5), (-81.0, -5.5), (-80.0, 1.0)],
    # Australia
    [(113.5, -22.0), (122.0, -18.0), (130.0, -12.0), (137.0, -12.0), (142.0, -10.7),
     (146.0, -19.0), (153.5, -25.0), (150.0, -37.5), (141.0, -38.5), (135.5, -34.8),
     (130.0, -31.5), (115.0, -34.5)],
    # Japan (Honshu, crude)
    [(130.8, 31.2), (132.0, 34.0), (136.0, 35.6), (140.0, 40.5), (141.5, 41.5),
     (142.0, 38.5), (140.5, 35.0), (136.0, 33.5)],
    # Antarctica
    [(-180.0, -90.0), (180.0, -90.0), (180.0, -70.0), (60.0, -67.0), (-60.0, -64.0),
     (-100.0, -73.0), (-180.0, -77.0)],
]
# Seas cut out of the polygons above (Baltic and Gulf of Bothnia, Black/Caspian Seas).
_SEA: list[list[tuple[float, float]]] = [
    [(10.0, 54.2), (14.0, 54.0), (19.5, 54.5), (21.0, 55.5), (21.0, 57.5), (23.5, 57.0),
     (24.3, 59.2), (29.5, 59.9), (28.0, 60.5), (22.8, 60.0), (21.3, 60.8), (21.3, 63.4),
     (24.8, 64.9), (25.4, 65.6), (22.2, 65.9), (17.5, 62.4), (18.8, 60.0), (16.5, 57.0),
     (14.2, 55.4), (12.5, 56.1)],
    [(28.0, 43.0), (28.5, 45.2), (30.0, 46.2), (33.5, 44.5), (38.0, 47.0), (39.5, 44.0),
     (41.5, 41.5), (36.0, 41.2), (29.0, 41.1)],
    [(47.0, 44.5), (51.0, 47.0), (54.0, 45.0), (53.0, 40.0), (54.0, 37.0), (49.5, 37.5)],
]


def land_geometry(extra_points: Iterable[tuple[float, float]] = (), radius_deg: float = 0.6):
    """The crude land mask as one shapely geometry, plus discs around ``extra_points``."""
    land = unary_union([Polygon(r).buffer(0) for r in _LAND])
    sea = unary_union([Polygon(r).buffer(0) for r in _SEA])
    land = land.difference(sea)
    discs = [Point(lon, lat).buffer(radius_deg) for lon, lat in extra_points]
    if discs:
        land = unary_union([land, *discs])
    return land


@dataclass
class Climatology:
    """Monthly mean cloud frequency and its inter-annual SD on a global grid (percent)."""

    resolution: float
    transform: Affine
    land: np.ndarray  # (rows, cols) bool
    monthly: np.ndarray  # (12, rows, cols) uint16, stored values
    sd: np.ndarray  # (rows, cols) uint16, stored values

    def index(self, lon: float, lat: float) -> tuple[int, int]:
        row, col = rowcol(self.transform, lon, lat)
        r = int(np.clip(row, 0, self.land.shape[0] - 1))
        c = int(np.clip(col, 0, self.land.shape[1] - 1))
        return r, c

    def at(self, lon: float, lat: float, month: int) -> tuple[float, float]:
        """(mean, SD) in percent at a point for a month (1..12), as the files store them."""
        r, c = self.index(lon, lat)
        mean = self.monthly[month - 1, r, c]
        sd = self.sd[r, c]
        if mean == NODATA or sd == NODATA:
            raise ValueError(f"climatology has no value at lon={lon:.3f} lat={lat:.3f} (sea)")
        return float(mean) / SCALE, float(sd) / SCALE


def _smooth_noise(lon: np.ndarray, lat: np.ndarray, rng: np.random.Generator, n: int = 8) -> np.ndarray:
    """A sum of random low-frequency waves on the sphere, std ~1."""
    out = np.zeros(np.broadcast(lon, lat).shape, dtype=np.float64)
    lo, la = np.radians(lon), np.radians(lat)
    for _ in range(n):
        k_lon = rng.integers(1, 9)
        k_lat = rng.uniform(0.5, 6.0)
        out += np.sin(k_lon * lo + rng.uniform(0, 2 * np.pi)) * np.cos(
            k_lat * la + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(n / 4.0)


def _box(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """~1 inside [lo, hi], ~0 outside, with logistic edges of width ``soft``."""
    return 1.0 / (1.0 + np.exp(-(x - lo) / soft)) / (1.0 + np.exp(-(hi - x) / soft))


def cloud_mean_percent(lon: np.ndarray, lat: np.ndarray, month: int, noise: np.ndarray) -> np.ndarray:
    """The synthetic monthly mean cloud frequency (percent) at lon/lat for month 1..12."""
    season = np.cos(2 * np.pi * (month - 1) / 12.0)  # +1 in January, -1 in July
    itcz_lat = 5.0 - 7.0 * season
    alat = np.abs(lat)
    northern = lat >= 0
    winter = np.where(northern, season, -season)  # +1 in the local winter
    val = 40.0
    val = val + 40.0 * np.exp(-(((lat - itcz_lat) / 10.0) ** 2))
    val = val + 32.0 * np.exp(-(((alat - 57.0) / 15.0) ** 2)) * (1.0 + 0.2 * winter)
    val = val - 25.0 * np.exp(-(((alat - 23.0) / 8.0) ** 2))
    # Europe: cloudier winters; Mediterranean: dry summers.
    europe = _box(lon, -25.0, 45.0, 6.0) * _box(lat, 35.0, 72.0, 3.0)
    val = val + 10.0 * season * europe
    summer = np.clip(-season, 0, None)
    med = np.exp(-(((lat - 38.0) / 6.0) ** 2)) * _box(lon, -20.0, 50.0, 6.0)
    val = val - 30.0 * med * summer
    val = val + 4.0 * noise
    return np.clip(val, 3.0, 97.0)


def cloud_sd_percent(lat: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The synthetic inter-annual SD (percent): largest at the subtropical margins."""
    alat = np.abs(lat)
    val = 3.5 + 5.0 * np.exp(-(((alat - 35.0) / 14.0) ** 2)) + 1.0 * noise
    return np.clip(val, 1.5, 15.0)


def build_climatology(resolution: float, seed: int, tile_centres: Iterable[tuple[float, float]]) -> Climatology:
    """Compute the whole climatology in memory (deterministic for a seed)."""
    width = int(round(360.0 / resolution))
    height = int(round(180.0 / resolution))
    res_x = 360.0 / width
    res_y = 180.0 / height
    transform = Affine(res_x, 0.0, -180.0, 0.0, -res_y, 90.0)
    lon = -180.0 + (np.arange(width) + 0.5) * res_x
    lat = 90.0 - (np.arange(height) + 0.5) * res_y
    lon2, lat2 = np.meshgrid(lon, lat)
    land = rasterize([(land_geometry(), 1)], out_shape=(height, width), transform=transform,
                     fill=0, dtype="uint8").astype(bool)
    discs = [Point(lon, lat).buffer(0.6) for lon, lat in tile_centres]
    if discs:  # every demo tile centre is on land, whatever the resolution
        land |= rasterize([(d, 1) for d in discs], out_shape=(height, width), transform=transform,
                          fill=0, dtype="uint8", all_touched=True).astype(bool)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7001]))
    noise_mean = _smooth_noise(lon2, lat2, rng)
    noise_sd = _smooth_noise(lon2, lat2, rng)
    monthly = np.empty((12, height, width), dtype=np.uint16)
    for m in range(1, 13):
        val = np.round(cloud_mean_percent(lon2, lat2, m, noise_mean) * SCALE)
        monthly[m - 1] = np.where(land, val, NODATA).astype(np.uint16)
    sd = np.round(cloud_sd_percent(lat2, noise_sd) * SCALE)
    sd = np.where(land, sd, NODATA).astype(np.uint16)
    return Climatology(resolution=resolution, transform=transform, land=land, monthly=monthly, sd=sd)


def write_climatology(clim: Climatology, folder: Path) -> list[Path]:
    """Write the 13 EarthEnv-layout COGs; returns their paths."""
    from cloudyeo.demo.rasters import write_cog

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in range(1, 13):
        p = folder / monthly_mean_name(m)
        write_cog(p, clim.monthly[m - 1], clim.transform, 4326, nodata=NODATA, predictor=2,
                  resampling="average")
        paths.append(p)
    p = folder / SD_NAME
    write_cog(p, clim.sd, clim.transform, 4326, nodata=NODATA, predictor=2, resampling="average")
    paths.append(p)
    return paths
