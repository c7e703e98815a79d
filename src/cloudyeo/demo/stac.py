"""STAC 1.0.0 items and collections of the demo archive, with real archives' property names.

Asset hrefs are relative to the catalog folder (``../archive/...``). Percentages on Sentinel-2
L2A items are computed from the SCL the way real L2A metadata are (``eo:cloud_cover`` = SCL 8, 9,
10); L1C items carry the cloud cover of the truth (thick cloud or cirrus), like the L1C cloud mask.
"""

from __future__ import annotations

from typing import Any

from cloudyeo.archives.s1_source import DEMO_S1, DEMO_S1_COLLECTION
from cloudyeo.demo.rasters import COG_MEDIA_TYPE
from cloudyeo.demo.schedule import S1Acquisition, S2Acquisition, iso
from cloudyeo.demo.tiles import TileSpec
from cloudyeo.sentinel import (
    S2_BAND_GSD,
    S2_CENTRAL_WAVELENGTH_NM,
    S2_L1C_BANDS,
    S2_L2A_BANDS,
    S2_QUANTIFICATION,
)

STAC_VERSION = "1.0.0"
COLLECTION_L2A = "sentinel-2-l2a"
COLLECTION_L1C = "sentinel-2-l1c"
COLLECTION_S1 = DEMO_S1_COLLECTION
COLLECTIONS = (COLLECTION_L2A, COLLECTION_L1C, COLLECTION_S1)

EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "mgrs": "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "item_assets": "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
}
COMMON_NAMES = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge",
    "B06": "rededge", "B07": "rededge", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B10": "cirrus", "B11": "swir16", "B12": "swir22",
}
TRUTH_ROLE = "demo-truth"
SCL_GSD = 20
# What the demo world's Sentinel-1 is (cloudyeo.demo.surface.sar_sigma0_db + speckle): sigma0 in
# linear power, generated directly on the tiles' 10 m UTM grids with no layover or
# foreshortening, i.e. what a calibrated, terrain-corrected product is. Declared on every S1
# item with the properties :func:`cloudyeo.archives.stac_items.s1_physics` reads.
S1_RADIOMETRY = DEMO_S1.radiometry
S1_GEOMETRY = DEMO_S1.geometry
S1_UNITS = DEMO_S1.units
S1_DECLARATION = {"cloudyeo:sar_radiometry": S1_RADIOMETRY, "cloudyeo:sar_geometry": S1_GEOMETRY}


def archive_href(*parts: str) -> str:
    """Href of an archive file relative to the catalog folder."""
    return "../archive/" + "/".join(parts)


def _eo_band(band: str) -> dict[str, Any]:
    return {"name": band, "common_name": COMMON_NAMES[band],
            "center_wavelength": round(S2_CENTRAL_WAVELENGTH_NM[band] / 1000.0, 4)}


def _grid(tile: TileSpec, res: int) -> dict[str, Any]:
    return {"proj:shape": list(tile.shape_at(res)), "proj:transform": list(tile.transform_at(res))[:6]}


def _s2_band_asset(tile: TileSpec, folder: str, scene_id: str, band: str, offset_dn: float) -> dict[str, Any]:
    res = S2_BAND_GSD[band]
    scale = 1.0 / S2_QUANTIFICATION
    return {
        "href": archive_href(folder, scene_id, f"{band}.tif"),
        "type": COG_MEDIA_TYPE,
        "title": f"{band} ({COMMON_NAMES[band]}) - {res}m",
        "roles": ["data", "reflectance"],
        "eo:bands": [_eo_band(band)],
        "gsd": res,
        **_grid(tile, res),
        "raster:bands": [{"data_type": "uint16", "nodata": 0, "spatial_resolution": res,
                          "scale": scale, "offset": round(offset_dn * scale, 6) + 0.0}],
    }


def _truth_asset(acq: S2Acquisition, tile: TileSpec) -> dict[str, Any]:
    return {
        "href": archive_href("truth", f"{acq.datatake}.tif"),
        "type": COG_MEDIA_TYPE,
        "title": "Demo truth: bit flags 1 thick cloud, 2 cirrus, 4 cloud shadow, 8 snow",
        "roles": [TRUTH_ROLE],
        "gsd": 10,
        **_grid(tile, 10),
        "raster:bands": [{"data_type": "uint8", "spatial_resolution": 10}],
    }


def _common_s2_props(acq: S2Acquisition, tile: TileSpec, product_type: str) -> dict[str, Any]:
    return {
        "datetime": iso(acq.sensing),
        "platform": "sentinel-" + acq.platform[1:].lower(),
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "gsd": 10,
        "s2:mgrs_tile": tile.id,
        "grid:code": f"MGRS-{tile.id}",
        "mgrs:utm_zone": tile.zone,
        "mgrs:latitude_band": tile.band,
        "mgrs:grid_square": tile.square,
        "s2:processing_baseline": acq.baseline,
        "s2:product_type": product_type,
        "s2:datatake_type": "INS-NOBS",
        "s2:datatake_id": f"G{acq.platform}_{acq.sensing:%Y%m%dT%H%M%S}_{acq.absolute_orbit:06d}_"
                          f"N{acq.baseline}",
        "sat:relative_orbit": acq.relative_orbit,
        "sat:absolute_orbit": acq.absolute_orbit,
        "sat:orbit_state": "descending",
        "proj:code": f"EPSG:{tile.epsg}",
        "proj:epsg": tile.epsg,
    }


def _round(v: float) -> float:
    return round(float(v), 4) + 0.0


def s2_l2a_item(acq: S2Acquisition, tile: TileSpec, scl_percent: dict[int, float]) -> dict[str, Any]:
    """L2A item; ``scl_percent`` maps SCL codes to % of the tile."""
    p = lambda *codes: _round(sum(scl_percent.get(c, 0.0) for c in codes))  # noqa: E731
    props = _common_s2_props(acq, tile, "S2MSI2A")
    props.update({
        "eo:cloud_cover": p(8, 9, 10),
        "s2:high_proba_clouds_percentage": p(9),
        "s2:medium_proba_clouds_percentage": p(8),
        "s2:thin_cirrus_percentage": p(10),
        "s2:cloud_shadow_percentage": p(3),
        "s2:snow_ice_percentage": p(11),
        "s2:water_percentage": p(6),
        "s2:vegetation_percentage": p(4),
        "s2:not_vegetated_percentage": p(5),
        "s2:nodata_pixel_percentage": p(0),
        "s2:product_uri": f"{acq.l2a_id}.SAFE",
    })
    assets = {b: _s2_band_asset(tile, COLLECTION_L2A, acq.l2a_id, b, acq.offset_dn) for b in S2_L2A_BANDS}
    assets["SCL"] = {
        "href": archive_href(COLLECTION_L2A, acq.l2a_id, "SCL.tif"),
        "type": COG_MEDIA_TYPE,
        "title": "Scene classification map (SCL)",
        "roles": ["data"],
        "gsd": SCL_GSD,
        **_grid(tile, SCL_GSD),
        "raster:bands": [{"data_type": "uint8", "nodata": 0, "spatial_resolution": SCL_GSD}],
    }
    assets["truth_mask"] = _truth_asset(acq, tile)
    return _item(acq.l2a_id, COLLECTION_L2A, tile, props, assets,
                 ["eo", "proj", "raster", "sat", "grid", "mgrs"])


def s2_l1c_item(acq: S2Acquisition, tile: TileSpec, cloud_percent: float) -> dict[str, Any]:
    props = _common_s2_props(acq, tile, "S2MSI1C")
    props.update({
        "eo:cloud_cover": _round(cloud_percent),
        "s2:nodata_pixel_percentage": 0.0,
        "s2:product_uri": f"{acq.l1c_id}.SAFE",
    })
    assets = {b: _s2_band_asset(tile, COLLECTION_L1C, acq.l1c_id, b, acq.offset_dn) for b in S2_L1C_BANDS}
    assets["truth_mask"] = _truth_asset(acq, tile)
    return _item(acq.l1c_id, COLLECTION_L1C, tile, props, assets,
                 ["eo", "proj", "raster", "sat", "grid", "mgrs"])


def s1_item(acq: S1Acquisition, tile: TileSpec) -> dict[str, Any]:
    props = {
        "datetime": iso(acq.start),
        "start_datetime": iso(acq.start),
        "end_datetime": iso(acq.stop),
        "platform": "sentinel-" + acq.platform[1:].lower(),
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "gsd": 10,
        "sar:instrument_mode": "IW",
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": "GRD",
        **S1_DECLARATION,
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:resolution_range": 20,
        "sar:resolution_azimuth": 22,
        "sar:looks_equivalent_number": 4.4,
        "sat:relative_orbit": acq.relative_orbit,
        "sat:absolute_orbit": acq.absolute_orbit,
        "sat:orbit_state": acq.orbit_state,
        "s1:datatake_id": str(acq.datatake_id),
        "s1:resolution": "high",
        "proj:code": f"EPSG:{tile.epsg}",
        "proj:epsg": tile.epsg,
    }
    assets = {}
    for pol in ("vv", "vh"):
        assets[pol] = {
            "href": archive_href(COLLECTION_S1, acq.scene_id, f"{pol}.tif"),
            "type": COG_MEDIA_TYPE,
            "title": f"{pol.upper()}: sigma0 backscatter (linear power) on the tile grid",
            "roles": ["data", "backscatter"],
            "sar:polarizations": [pol.upper()],
            "gsd": 10,
            **_grid(tile, 10),
            "raster:bands": [{"data_type": "float32", "nodata": "nan", "unit": S1_UNITS,
                              "spatial_resolution": 10}],
        }
    return _item(acq.scene_id, COLLECTION_S1, tile, props, assets, ["proj", "raster", "sat", "sar"])


def _item(item_id: str, collection: str, tile: TileSpec, props: dict, assets: dict,
          extensions: list[str]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT[e] for e in extensions],
        "id": item_id,
        "collection": collection,
        "geometry": tile.footprint(),
        "bbox": tile.bbox(),
        "properties": props,
        "links": [],
        "assets": assets,
    }


def _item_assets(collection: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if collection == COLLECTION_S1:
        for pol in ("vv", "vh"):
            out[pol] = {"type": COG_MEDIA_TYPE, "roles": ["data", "backscatter"],
                        "sar:polarizations": [pol.upper()]}
        return out
    bands = S2_L2A_BANDS if collection == COLLECTION_L2A else S2_L1C_BANDS
    for b in bands:
        out[b] = {"type": COG_MEDIA_TYPE, "roles": ["data", "reflectance"], "gsd": S2_BAND_GSD[b],
                  "eo:bands": [_eo_band(b)]}
    if collection == COLLECTION_L2A:
        out["SCL"] = {"type": COG_MEDIA_TYPE, "roles": ["data"], "gsd": SCL_GSD}
    out["truth_mask"] = {"type": COG_MEDIA_TYPE, "roles": [TRUTH_ROLE], "gsd": 10}
    return out


def collections(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three STAC collections, with extents computed from the items."""
    meta = {
        COLLECTION_L2A: ("Sentinel-2 Level-2A (cloudyeo demo world)",
                         "Synthetic Sentinel-2 MSI surface reflectance (L2A) with SCL, generated "
                         "by cloudyeo's demo world; same layout and metadata as real archives.",
                         ["sentinel-2a", "sentinel-2b"], "sentinel-2", ["msi"]),
        COLLECTION_L1C: ("Sentinel-2 Level-1C (cloudyeo demo world)",
                         "Synthetic Sentinel-2 MSI top-of-atmosphere reflectance (L1C), 13 bands.",
                         ["sentinel-2a", "sentinel-2b"], "sentinel-2", ["msi"]),
        COLLECTION_S1: ("Sentinel-1 GRD (cloudyeo demo world)",
                        "Synthetic Sentinel-1 IW VV/VH sigma0 backscatter in linear power on the "
                        "tiles' 10 m UTM grids (calibrated and terrain-corrected, as declared by "
                        "cloudyeo:sar_radiometry / cloudyeo:sar_geometry).",
                        ["sentinel-1a", "sentinel-1b"], "sentinel-1", ["c-sar"]),
    }
    out = []
    for cid in COLLECTIONS:
        mine = [it for it in items if it["collection"] == cid]
        if mine:
            bbox = [min(it["bbox"][0] for it in mine), min(it["bbox"][1] for it in mine),
                    max(it["bbox"][2] for it in mine), max(it["bbox"][3] for it in mine)]
            times = sorted(it["properties"]["datetime"] for it in mine)
            interval = [times[0], times[-1]]
        else:
            bbox, interval = [-180.0, -90.0, 180.0, 90.0], [None, None]
        title, description, platforms, constellation, instruments = meta[cid]
        summaries: dict[str, Any] = {
            "platform": platforms, "constellation": [constellation], "instruments": instruments,
        }
        if cid == COLLECTION_S1:
            summaries.update({"sar:instrument_mode": ["IW"], "sar:frequency_band": ["C"],
                              "sar:product_type": ["GRD"], "sar:polarizations": ["VV", "VH"],
                              **{k: [v] for k, v in S1_DECLARATION.items()}})
            ext = ["sar", "sat", "proj", "raster", "item_assets"]
        else:
            bands = S2_L2A_BANDS if cid == COLLECTION_L2A else S2_L1C_BANDS
            summaries.update({"eo:bands": [_eo_band(b) for b in bands],
                              "gsd": sorted({S2_BAND_GSD[b] for b in bands})})
            ext = ["eo", "sat", "proj", "raster", "grid", "mgrs", "item_assets"]
        out.append({
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "stac_extensions": [EXT[e] for e in ext],
            "id": cid,
            "title": title,
            "description": description,
            "keywords": ["sentinel", "synthetic", "demo", "cloudyeo"],
            "license": "CC0-1.0",
            "providers": [{"name": "cloudyeo demo generator", "roles": ["producer", "processor", "host"]}],
            "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
            "summaries": summaries,
            "item_assets": _item_assets(cid),
            "links": [],
        })
    return out

