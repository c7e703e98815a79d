"""Demo tiles: MGRS-like ids placed on a small, 1200 m aligned UTM grid.

A demo tile is much smaller than a real 110 km MGRS tile: ``tile_size_px`` x ``tile_size_px``
pixels at 10 m whose upper-left corner lies on a multiple of 1200 m (one BigEarthNet patch), so
the tile splits into whole 1200 m patches (``row``, ``col`` from the top-left).

The four default ids have hand-picked European locations; any other id gets its longitude from
the UTM zone and its latitude from the latitude band letter (nudged by the grid-square letters so
that two ids of one zone and band do not coincide).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pyproj import Transformer
from rasterio.transform import Affine

from cloudyeo.sentinel import BEN_PATCH_METRES

PIXEL_M = 10
LATITUDE_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # MGRS latitude bands, 8 degrees each (X: 12)
GRID_COLUMN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
GRID_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"

# BigEarthNet countries and a rough centroid (lat, lon) for picking the nearest one.
BEN_COUNTRY_CENTROIDS: dict[str, tuple[float, float]] = {
    "Austria": (47.6, 14.1),
    "Belgium": (50.6, 4.6),
    "Finland": (62.5, 26.0),
    "Ireland": (53.2, -8.0),
    "Kosovo": (42.6, 20.9),
    "Lithuania": (55.3, 23.9),
    "Luxembourg": (49.8, 6.1),
    "Portugal": (39.6, -8.0),
    "Serbia": (44.0, 20.9),
    "Switzerland": (46.8, 8.2),
}

# Hand-picked locations for the default tiles: id -> (lon, lat, country, S2 relative orbit).
KNOWN_TILES: dict[str, tuple[float, float, str, int]] = {
    "33UUP": (14.5, 48.5, "Austria", 22),
    "32TNT": (9.0, 46.3, "Switzerland", 108),
    "29TNE": (-8.3, 41.5, "Portugal", 37),
    "35VLH": (24.0, 61.0, "Finland", 79),
}


def stable_hash(*parts: Any) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` is salted per process)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode("utf-8"))


def seeded_rng(seed: int, *parts: Any) -> np.random.Generator:
    """The random generator of one named draw (``parts``) of the world seeded ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_hash(*parts)]))


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def parse_tile_id(tile_id: str) -> tuple[int, str, str]:
    """'33UUP' -> (33, 'U', 'UP'); raises ValueError with the offending id."""
    s = str(tile_id).strip().upper()
    if len(s) != 5 or not s[:2].isdigit() or s[2] not in LATITUDE_BANDS or not s[3:].isalpha():
        raise ValueError(f"demo tile id {tile_id!r} is not an MGRS-like id such as '33UUP'")
    zone = int(s[:2])
    if not 1 <= zone <= 60:
        raise ValueError(f"demo tile id {tile_id!r}: UTM zone {zone} not in 1..60")
    return zone, s[2], s[3:]


def nominal_lonlat(tile_id: str) -> tuple[float, float]:
    """Where a tile id lies: the hand-picked place, or derived from zone and band."""
    if tile_id in KNOWN_TILES:
        lon, lat, _, _ = KNOWN_TILES[tile_id]
        return lon, lat
    zone, band, square = parse_tile_id(tile_id)
    lon = -180.0 + 6.0 * (zone - 1) + 3.0
    i = LATITUDE_BANDS.index(band)
    lat = 78.0 if band == "X" else -80.0 + 8.0 * i + 4.0
    col = GRID_COLUMN_LETTERS.find(square[0])
    row = GRID_ROW_LETTERS.find(square[1])
    lon += ((col % 8) - 3.5) * 0.6  # stays within the zone (+-2.1 degrees)
    lat += ((max(row, 0) % 10) - 4.5) * 0.7  # stays within the band (+-3.2 degrees)
    return lon, lat


def nearest_country(lon: float, lat: float) -> str:
    def dist(c: tuple[float, float]) -> float:
        clat, clon = c
        return (lat - clat) ** 2 + ((lon - clon) * math.cos(math.radians(lat))) ** 2

    return min(BEN_COUNTRY_CENTROIDS, key=lambda k: dist(BEN_COUNTRY_CENTROIDS[k]))


@dataclass(frozen=True)
class TileSpec:
    """One demo tile: its grid, place and the fixed orbits that see it."""

    id: str
    zone: int
    band: str
    square: str
    epsg: int
    x0: float  # upper-left corner easting (m)
    y0: float  # upper-left corner northing (m)
    size_px: int
    country: str
    s2_relative_orbit: int
    s1_relative_orbit: int

    @property
    def size_m(self) -> int:
        return self.size_px * PIXEL_M

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    def transform_at(self, res: int = PIXEL_M) -> Affine:
        return Affine(float(res), 0.0, float(self.x0), 0.0, -float(res), float(self.y0))

    @property
    def transform(self) -> Affine:
        return self.transform_at(PIXEL_M)

    def shape_at(self, res: int = PIXEL_M) -> tuple[int, int]:
        n = self.size_m // res
        return (n, n)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the tile's UTM CRS."""
        return (self.x0, self.y0 - self.size_m, self.x0 + self.size_m, self.y0)

    @property
    def patches_per_side(self) -> int:
        return self.size_m // BEN_PATCH_METRES

    def patch_window(self, row: int, col: int, res: int = PIXEL_M) -> tuple[int, int, int]:
        """(row_off, col_off, size) in pixels at ``res`` of the 1200 m patch (row, col)."""
        n = BEN_PATCH_METRES // res
        return row * n, col * n, n

    @property
    def _to_lonlat(self) -> Transformer:
        return _transformer(self.epsg, 4326)

    @property
    def centre_lonlat(self) -> tuple[float, float]:
        minx, miny, maxx, maxy = self.bounds
        lon, lat = self._to_lonlat.transform((minx + maxx) / 2, (miny + maxy) / 2)
        return float(lon), float(lat)

    def footprint(self) -> dict[str, Any]:
        """GeoJSON polygon (EPSG:4326, counter-clockwise) of the tile, 8 points per side."""
        minx, miny, maxx, maxy = self.bounds
        xs: list[float] = []
        ys: list[float] = []
        n = 8
        for k in range(n):  # bottom, left -> right
            xs.append(minx + (maxx - minx) * k / n)
            ys.append(miny)
        for k in range(n):  # right, bottom -> top
            xs.append(maxx)
            ys.append(miny + (maxy - miny) * k / n)
        for k in range(n):  # top, right -> left
            xs.append(maxx - (maxx - minx) * k / n)
            ys.append(maxy)
        for k in range(n):  # left, top -> bottom
            xs.append(minx)
            ys.append(maxy - (maxy - miny) * k / n)
        lons, lats = self._to_lonlat.transform(xs, ys)
        ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lons, lats)]
        ring.append(ring[0])
        return {"type": "Polygon", "coordinates": [ring]}

    def bbox(self) -> list[float]:
        ring = self.footprint()["coordinates"][0]
        lons = [p[0] for p in ring]
        lats = [p[1] for p in ring]
        return [min(lons), min(lats), max(lons), max(lats)]

    def describe(self) -> dict[str, Any]:
        lon, lat = self.centre_lonlat
        return {
            "id": self.id,
            "epsg": self.epsg,
            "bounds": list(self.bounds),
            "transform": list(self.transform)[:6],
            "shape": list(self.shape_at(PIXEL_M)),
            "bbox": self.bbox(),
            "country": self.country,
            "centre_lon": round(lon, 6),
            "centre_lat": round(lat, 6),
            "s2_relative_orbit": self.s2_relative_orbit,
            "s1_relative_orbit": self.s1_relative_orbit,
            "patches_per_side": self.patches_per_side,
        }


def make_tile(tile_id: str, size_px: int, unit_px: int = BEN_PATCH_METRES // PIXEL_M) -> TileSpec:
    """Place a demo tile: the grid around its nominal location, snapped to 1200 m.

    ``size_px`` must be a multiple of ``unit_px``: 120 (one BigEarthNet patch) for CBEN tiles,
    6 (one 60 m pixel) for tiles that only need whole pixels in every band.
    """
    if size_px % unit_px or size_px <= 0:
        raise ValueError(f"demo tile size must be a positive multiple of {unit_px} px, got {size_px}")
    tile_id = str(tile_id).strip().upper()
    zone, band, square = parse_tile_id(tile_id)
    lon, lat = nominal_lonlat(tile_id)
    north = band >= "N"
    epsg = (32600 if north else 32700) + zone
    e, n = _transformer(4326, epsg).transform(lon, lat)
    size_m = size_px * PIXEL_M
    x0 = round((e - size_m / 2) / BEN_PATCH_METRES) * BEN_PATCH_METRES
    y0 = round((n + size_m / 2) / BEN_PATCH_METRES) * BEN_PATCH_METRES
    if tile_id in KNOWN_TILES:
        country, s2_orbit = KNOWN_TILES[tile_id][2], KNOWN_TILES[tile_id][3]
    else:
        country = nearest_country(lon, lat)
        s2_orbit = 1 + stable_hash("s2-orbit", tile_id) % 143
    s1_orbit = 1 + stable_hash("s1-orbit", tile_id) % 175
    return TileSpec(
        id=tile_id, zone=zone, band=band, square=square, epsg=epsg, x0=float(x0), y0=float(y0),
        size_px=int(size_px), country=country, s2_relative_orbit=int(s2_orbit),
        s1_relative_orbit=int(s1_orbit),
    )
