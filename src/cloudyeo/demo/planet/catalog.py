"""Catalog records of the Planet-CR demo world.

* ``catalog/psscene.ndjson``: one Planet Data API quick-search feature per PlanetScope scene, with
  Planet's property names (``acquired``, ``cloud_cover`` 0-1, ``clear_percent``,
  ``cloud_percent``, ``heavy_haze_percent``, ``light_haze_percent``, ``shadow_percent``,
  ``snow_ice_percent``, ``visible_percent``, ``instrument``, ``item_type``,
  ``pixel_resolution``, ``epsg_code``, ``satellite_id``, ``strip_id`` ...). The one extension:
  real search results list the asset *types* (``"assets": ["ortho_udm2", ...]``); here
  ``assets`` maps each type to its local file (``href`` relative to the catalog folder) and grid
  (``proj:epsg``, ``proj:transform``, ``proj:shape``). A scene without UDM2 simply lacks the
  ``ortho_udm2`` entry (and the UDM2-derived percentages), as old PlanetScope scenes do.
* ``catalog/items.ndjson`` + ``collections.json``: STAC 1.0 items of ``sentinel-1-grd`` (VV/VH
  linear power, ``raster:bands[].unit = "linear"``) and ``esa-worldcover`` (asset ``map``),
  read by :class:`cloudyeo.archives.local.LocalStacArchive`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.features import shapes
from rasterio.transform import Affine
from shapely.geometry import mapping, shape
from shapely.ops import unary_union

from cloudyeo.aois import AoiSpec
from cloudyeo.demo.planet.render import OPTICAL_ASSET, PLANET_BANDS, PLANET_RES, UDM2_ASSET, UDM2_BANDS
from cloudyeo.landcover import WORLDCOVER_CLASSES

STAC_VERSION = "1.0.0"
COLLECTION_S1 = "sentinel-1-grd"
COLLECTION_WORLDCOVER = "esa-worldcover"
ITEM_TYPE = "PSScene"
GEOTIFF = "image/tiff; application=geotiff"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
}


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def href(*parts: str) -> str:
    return "../archive/" + "/".join(parts)


def valid_footprint(valid: np.ndarray, transform: Affine, epsg: int) -> dict[str, Any]:
    """GeoJSON (EPSG:4326) outline of the imaged pixels of a scene."""
    geoms = [shape(g) for g, v in shapes(valid.astype(np.uint8), mask=valid, transform=transform) if v]
    poly = unary_union(geoms).simplify(PLANET_RES, preserve_topology=True)
    if poly.geom_type != "Polygon":
        poly = poly.convex_hull
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    ll = shapely.transform(poly, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
    geo = mapping(ll)
    return {"type": "Polygon",
            "coordinates": [[[round(float(x), 7), round(float(y), 7)] for x, y in ring]
                            for ring in geo["coordinates"]]}


def _grid(transform: Affine | tuple, shape_: tuple[int, int], epsg: int) -> dict[str, Any]:
    return {"proj:epsg": int(epsg), "proj:transform": [float(v) for v in list(transform)[:6]],
            "proj:shape": [int(shape_[0]), int(shape_[1])]}


def psscene_feature(*, item_id: str, aoi: AoiSpec, acquired: dt.datetime, satellite_id: str,
                    instrument: str, strip_id: str, stats: dict[str, Any], footprint: dict,
                    grid_transform: tuple, grid_shape: tuple[int, int], has_udm2: bool,
                    sun_elevation: float, sun_azimuth: float, view_angle: float) -> dict[str, Any]:
    pct = stats["percent"]
    r = lambda v: round(float(v), 2) + 0.0  # noqa: E731
    props: dict[str, Any] = {
        "acquired": iso(acquired),
        "anomalous_pixels": 0,
        "cloud_cover": round(pct["cloud"] / 100.0 if has_udm2 else stats["legacy_cloud_percent"] / 100.0, 2),
        "epsg_code": int(aoi.epsg),
        "ground_control": True,
        "gsd": 3.7,
        "instrument": instrument,
        "item_type": ITEM_TYPE,
        "pixel_resolution": PLANET_RES,
        "provider": "planetscope",
        "published": iso(acquired + dt.timedelta(hours=9)),
        "publishing_stage": "finalized",
        "quality_category": "standard",
        "satellite_azimuth": 280.0,
        "satellite_id": satellite_id,
        "strip_id": strip_id,
        "sun_azimuth": round(sun_azimuth, 1),
        "sun_elevation": round(sun_elevation, 1),
        "updated": iso(acquired + dt.timedelta(days=1)),
        "view_angle": round(view_angle, 1),
        "cloudyeo:aoi": aoi.id,
        "cloudyeo:valid_percent": r(stats["valid_percent"]),
    }
    if has_udm2:
        props.update({
            "clear_percent": int(round(pct["clear"])),
            "cloud_percent": int(round(pct["cloud"])),
            "heavy_haze_percent": int(round(pct["haze_heavy"])),
            "light_haze_percent": int(round(pct["haze_light"])),
            "shadow_percent": int(round(pct["shadow"])),
            "snow_ice_percent": int(round(pct["snow"])),
            "visible_percent": int(round(pct["clear"] + pct["haze_light"])),
            "clear_confidence_percent": int(round(stats["clear_confidence"])),
            "visible_confidence_percent": int(round(stats["visible_confidence"])),
        })
    folder = f"psscene/{item_id}"
    assets = {
        OPTICAL_ASSET: {
            "href": href(folder, f"{item_id}_3B_AnalyticMS_toar.tif"), "type": GEOTIFF,
            "title": "TOA reflectance x 10000 (blue, green, red, nir), uint16, nodata 0",
            "bands": list(PLANET_BANDS), "scale": 1e-4,
            **_grid(grid_transform, grid_shape, aoi.epsg),
        },
    }
    if has_udm2:
        assets[UDM2_ASSET] = {
            "href": href(folder, f"{item_id}_3B_udm2.tif"), "type": GEOTIFF,
            "title": "Usable data mask 2 (8 bands, uint8)", "bands": list(UDM2_BANDS),
            **_grid(grid_transform, grid_shape, aoi.epsg),
        }
    return {
        "type": "Feature",
        "id": item_id,
        "geometry": footprint,
        "properties": props,
        "_permissions": [f"assets.{k}:download" for k in assets],
        "assets": assets,
    }


def s1_item(*, scene_id: str, aoi: AoiSpec, start: dt.datetime, platform: str, orbit_state: str,
            relative_orbit: int, absolute_orbit: int) -> dict[str, Any]:
    props = {
        "datetime": iso(start), "start_datetime": iso(start),
        "end_datetime": iso(start + dt.timedelta(seconds=25)),
        "platform": platform, "constellation": "sentinel-1", "instruments": ["c-sar"], "gsd": 10,
        "sar:instrument_mode": "IW", "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD",
        # what the generator writes (see the asset titles); read by stac_items.s1_physics
        "cloudyeo:sar_radiometry": "sigma0", "cloudyeo:sar_geometry": "terrain",
        "sar:frequency_band": "C", "sar:looks_equivalent_number": 4.4,
        "sat:orbit_state": orbit_state, "sat:relative_orbit": relative_orbit,
        "sat:absolute_orbit": absolute_orbit, "proj:code": f"EPSG:{aoi.epsg}",
        "proj:epsg": aoi.epsg, "cloudyeo:aoi": aoi.id,
    }
    assets = {}
    for pol in ("vv", "vh"):
        assets[pol] = {
            "href": href(COLLECTION_S1, scene_id, f"{pol}.tif"), "type": COG,
            "title": f"{pol.upper()}: sigma0 (linear power), terrain-corrected onto the AOI 10 m grid",
            "roles": ["data", "backscatter"], "sar:polarizations": [pol.upper()], "gsd": 10,
            **_grid(aoi.transform, aoi.shape, aoi.epsg),
            "raster:bands": [{"data_type": "float32", "nodata": "nan", "unit": "linear"}],
        }
    return _item(scene_id, COLLECTION_S1, aoi, props, assets, ["proj", "raster", "sat", "sar"])


def worldcover_item(*, item_id: str, aoi: AoiSpec) -> dict[str, Any]:
    props = {
        "datetime": "2021-01-01T00:00:00Z", "start_datetime": "2021-01-01T00:00:00Z",
        "end_datetime": "2021-12-31T23:59:59Z", "esa_worldcover:product_version": "2.0.0",
        "proj:epsg": aoi.epsg, "cloudyeo:aoi": aoi.id,
    }
    assets = {"map": {
        "href": href(COLLECTION_WORLDCOVER, aoi.id, f"{item_id}_Map.tif"), "type": COG,
        "title": "Land cover classes (ESA WorldCover codes), reprojected onto the AOI 10 m grid",
        "roles": ["data"], **_grid(aoi.transform, aoi.shape, aoi.epsg),
        "raster:bands": [{"data_type": "uint8", "nodata": 0}],
        "classification:classes": [{"value": c, "description": n}
                                   for c, n in WORLDCOVER_CLASSES.items()],
    }}
    return _item(item_id, COLLECTION_WORLDCOVER, aoi, props, assets, ["proj", "raster", "classification"])


def _item(item_id: str, collection: str, aoi: AoiSpec, props: dict, assets: dict,
          extensions: list[str]) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": [EXT[e] for e in extensions], "id": item_id, "collection": collection,
        "geometry": aoi.footprint(), "bbox": aoi.bbox(), "properties": props, "links": [],
        "assets": assets,
    }


def collections(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    meta = {
        COLLECTION_S1: ("Sentinel-1 GRD (cloudyeo Planet-CR demo)",
                        "Synthetic Sentinel-1 IW GRD VV/VH sigma0 (linear power) on each AOI's 10 m grid."),
        COLLECTION_WORLDCOVER: ("ESA WorldCover (cloudyeo Planet-CR demo)",
                                "Synthetic WorldCover-like 10 m land cover with the real class codes."),
    }
    out = []
    for cid, (title, description) in meta.items():
        mine = [it for it in items if it["collection"] == cid]
        if not mine:
            continue
        bbox = [min(it["bbox"][0] for it in mine), min(it["bbox"][1] for it in mine),
                max(it["bbox"][2] for it in mine), max(it["bbox"][3] for it in mine)]
        times = sorted(it["properties"]["datetime"] for it in mine)
        out.append({
            "type": "Collection", "stac_version": STAC_VERSION, "id": cid, "title": title,
            "description": description, "license": "CC0-1.0",
            "keywords": ["synthetic", "demo", "cloudyeo", "planet-cr"],
            "providers": [{"name": "cloudyeo demo generator", "roles": ["producer", "host"]}],
            "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[times[0], times[-1]]]}},
            "links": [],
        })
    return out
