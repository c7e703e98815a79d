"""Areas of interest (AOIs) of the Planet-CR demo world, and how any AOI is placed on a grid.

An AOI is a small square in its UTM zone: ``size_px`` x ``size_px`` pixels at 10 m (the
Sentinel-1 / WorldCover grid) whose upper-left corner lies on a multiple of 30 m (a common
multiple of 3 m and 10 m). :func:`place_aoi` is used by the demo generator *and* by the builder
for real archives (where the 10 m AOI grid is where Sentinel-1 and WorldCover are read onto).

The known AOIs are spread over six continents, six UTM zones and both hemispheres; each has a
WorldCover class prior (codes 10 ... 100), a few codes it must contain (so that the default
world holds every WorldCover code, the ignored ones included) and a share of clear days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pyproj import Transformer
from rasterio.transform import Affine

PIXEL_M = 10
SNAP_M = 30


@dataclass(frozen=True)
class AoiProfile:
    name: str
    continent: str
    lon: float
    lat: float
    priors: tuple[tuple[int, float], ...]  # WorldCover code -> weight
    must: tuple[int, ...]  # codes that appear in the AOI for sure
    clear_share: float  # probability that a PlanetScope acquisition is cloud-free


KNOWN_AOIS: dict[str, AoiProfile] = {
    "kenya-nakuru": AoiProfile(
        "Nakuru, Kenya", "Africa", 36.07, -0.30,
        ((40, .30), (30, .25), (20, .15), (10, .10), (50, .10), (80, .05), (90, .05)),
        (20, 40, 50), 0.40),
    "brazil-parana": AoiProfile(
        "Parana, Brazil", "South America", -51.50, -23.30,
        ((40, .35), (10, .25), (30, .15), (50, .10), (80, .08), (90, .07)),
        (10, 40, 80), 0.35),
    "usa-iowa": AoiProfile(
        "Iowa, USA", "North America", -93.60, 42.00,
        ((40, .60), (30, .12), (50, .10), (10, .10), (80, .05), (90, .03)),
        (40, 50, 90), 0.45),
    "swiss-alps": AoiProfile(
        "Valais Alps, Switzerland", "Europe", 7.90, 46.40,
        ((10, .25), (30, .25), (60, .15), (70, .12), (100, .08), (40, .05), (50, .05), (80, .05)),
        (60, 70, 100), 0.35),
    "indonesia-kalimantan": AoiProfile(
        "East Kalimantan, Indonesia", "Asia", 117.00, -1.00,
        ((10, .35), (95, .20), (80, .20), (90, .10), (40, .10), (50, .05)),
        (95, 80, 10), 0.25),
    "australia-riverina": AoiProfile(
        "Riverina, Australia", "Oceania", 146.30, -34.80,
        ((40, .40), (30, .20), (60, .15), (20, .10), (10, .08), (80, .04), (90, .03)),
        (40, 60, 20), 0.50),
    "india-punjab": AoiProfile(
        "Punjab, India", "Asia", 75.80, 30.90,
        ((40, .60), (50, .20), (80, .06), (30, .06), (10, .05), (60, .03)),
        (40, 50), 0.55),
    "egypt-delta": AoiProfile(
        "Nile Delta, Egypt", "Africa", 31.00, 30.80,
        ((40, .45), (60, .20), (50, .20), (80, .10), (90, .05)),
        (40, 60, 50), 0.75),
    "japan-hokkaido": AoiProfile(
        "Hokkaido, Japan", "Asia", 142.40, 43.60,
        ((10, .35), (40, .25), (30, .10), (50, .10), (80, .08), (90, .07), (100, .05)),
        (10, 40), 0.30),
}
DEFAULT_AOIS: tuple[str, ...] = (
    "kenya-nakuru", "brazil-parana", "usa-iowa", "swiss-alps", "indonesia-kalimantan",
    "australia-riverina",
)


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def utm_epsg(lon: float, lat: float) -> int:
    """The WGS 84 / UTM EPSG code of a point (no Norway/Svalbard exceptions)."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class AoiSpec:
    """One AOI: its 10 m grid in its UTM zone."""

    id: str
    epsg: int
    x0: float  # upper-left easting (m)
    y0: float  # upper-left northing (m)
    size_px: int  # 10 m pixels per side
    name: str = ""
    continent: str = ""

    @property
    def size_m(self) -> float:
        return float(self.size_px * PIXEL_M)

    @property
    def transform(self) -> Affine:
        """The 10 m grid (Sentinel-1, WorldCover)."""
        return Affine(float(PIXEL_M), 0.0, self.x0, 0.0, -float(PIXEL_M), self.y0)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size_px, self.size_px)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.size_m, self.x0 + self.size_m, self.y0)

    def footprint(self, points_per_side: int = 4) -> dict[str, Any]:
        """GeoJSON polygon (EPSG:4326, counter-clockwise)."""
        minx, miny, maxx, maxy = self.bounds
        n = points_per_side
        xs, ys = [], []
        for k in range(n):
            xs.append(minx + (maxx - minx) * k / n), ys.append(miny)
        for k in range(n):
            xs.append(maxx), ys.append(miny + (maxy - miny) * k / n)
        for k in range(n):
            xs.append(maxx - (maxx - minx) * k / n), ys.append(maxy)
        for k in range(n):
            xs.append(minx), ys.append(maxy - (maxy - miny) * k / n)
        lons, lats = _transformer(self.epsg, 4326).transform(xs, ys)
        ring = [[round(float(a), 7), round(float(b), 7)] for a, b in zip(lons, lats)]
        ring.append(ring[0])
        return {"type": "Polygon", "coordinates": [ring]}

    def bbox(self) -> list[float]:
        ring = self.footprint()["coordinates"][0]
        return [min(p[0] for p in ring), min(p[1] for p in ring),
                max(p[0] for p in ring), max(p[1] for p in ring)]

    @property
    def centre_lonlat(self) -> tuple[float, float]:
        minx, miny, maxx, maxy = self.bounds
        lon, lat = _transformer(self.epsg, 4326).transform((minx + maxx) / 2, (miny + maxy) / 2)
        return float(lon), float(lat)

    def describe(self) -> dict[str, Any]:
        lon, lat = self.centre_lonlat
        return {
            "id": self.id, "name": self.name, "continent": self.continent, "epsg": self.epsg,
            "transform_10m": list(self.transform)[:6], "shape_10m": list(self.shape),
            "bounds": list(self.bounds), "bbox": self.bbox(),
            "centre_lon": round(lon, 6), "centre_lat": round(lat, 6),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AoiSpec:
        t = d["transform_10m"]
        return cls(id=d["id"], epsg=int(d["epsg"]), x0=float(t[2]), y0=float(t[5]),
                   size_px=int(d["shape_10m"][0]), name=d.get("name", ""),
                   continent=d.get("continent", ""))


def place_aoi(aoi_id: str, lon: float, lat: float, size_px: int, *, name: str = "",
              continent: str = "", epsg: int | None = None) -> AoiSpec:
    """An AOI of ``size_px`` 10 m pixels centred near (lon, lat), corner snapped to 30 m."""
    if size_px <= 0:
        raise ValueError(f"AOI {aoi_id}: size_px must be positive, got {size_px}")
    epsg = int(epsg or utm_epsg(lon, lat))
    e, n = _transformer(4326, epsg).transform(lon, lat)
    size_m = size_px * PIXEL_M
    x0 = math.floor((e - size_m / 2) / SNAP_M) * SNAP_M
    y0 = math.ceil((n + size_m / 2) / SNAP_M) * SNAP_M
    return AoiSpec(id=aoi_id, epsg=epsg, x0=float(x0), y0=float(y0), size_px=int(size_px),
                   name=name, continent=continent)


def known_aoi(aoi_id: str, size_px: int) -> AoiSpec:
    try:
        prof = KNOWN_AOIS[aoi_id]
    except KeyError:
        raise ValueError(f"unknown demo AOI {aoi_id!r}; known: {', '.join(KNOWN_AOIS)}") from None
    return place_aoi(aoi_id, prof.lon, prof.lat, size_px, name=prof.name, continent=prof.continent)


__all__ = ["AoiProfile", "AoiSpec", "DEFAULT_AOIS", "KNOWN_AOIS", "PIXEL_M", "known_aoi",
           "place_aoi", "utm_epsg"]
