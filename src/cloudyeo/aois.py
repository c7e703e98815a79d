"""Areas of interest (AOIs) on a 10 m UTM grid snapped to 30 m, and how any AOI is placed.

An AOI is a small square in its UTM zone: ``size_px`` x ``size_px`` pixels at 10 m (the
Sentinel-1 / WorldCover grid) whose upper-left corner lies on a multiple of 30 m (a common
multiple of 3 m and 10 m, so a PlanetScope 3 m lattice can line up with it). :func:`place_aoi`
places the AOIs of the Planet demo world and those a Planet-CR build lists for real archives;
:meth:`AoiSpec.from_dict` reads one back from its :meth:`AoiSpec.describe` record (e.g. the demo
world's ``world.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pyproj import Transformer
from rasterio.transform import Affine

from .grids import utm_epsg

PIXEL_M = 10
SNAP_M = 30


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


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
            xs.append(minx + (maxx - minx) * k / n)
            ys.append(miny)
        for k in range(n):
            xs.append(maxx)
            ys.append(miny + (maxy - miny) * k / n)
        for k in range(n):
            xs.append(maxx - (maxx - minx) * k / n)
            ys.append(maxy)
        for k in range(n):
            xs.append(minx)
            ys.append(maxy - (maxy - miny) * k / n)
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
