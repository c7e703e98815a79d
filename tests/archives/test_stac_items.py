"""Item -> SceneRecord normalisation across server dialects (hand-written minimal items)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from cloudyeo.archives.base import SarPhysicsError, SearchQuery, normalise_and_filter, sar_physics_problem
from cloudyeo.archives.stac_items import (
    asset_band_name,
    item_to_record,
    normalise_tile,
    parse_datetime,
    resolve_href,
    s1_physics,
)

GEOM = {"type": "Polygon", "coordinates": [[[12, 48], [13, 48], [13, 49], [12, 49], [12, 48]]]}
RB = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}]


def _item(props, assets, item_id="X", collection="sentinel-2-l2a", links=()):
    return {"type": "Feature", "id": item_id, "collection": collection, "geometry": GEOM,
            "properties": {"datetime": "2023-06-01T10:00:00.123456789Z", **props},
            "assets": assets, "links": list(links)}


def test_earth_search_v1_dialect():
    assets = {k: {"href": f"https://bucket.s3/{k}.tif", "raster:bands": RB,
                  "proj:shape": [10980, 10980],
                  "proj:transform": [10, 0, 300000, 0, -10, 5400000]}
              for k in ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir",
                        "nir08", "nir09", "swir16", "swir22")}
    assets["scl"] = {"href": "https://bucket.s3/SCL.tif", "proj:shape": [5490, 5490],
                     "proj:transform": [20, 0, 300000, 0, -20, 5400000]}
    assets["blue-jp2"] = {"href": "s3://bucket/B02.jp2"}
    assets["visual"] = {"href": "https://bucket.s3/TCI.tif"}
    props = {"platform": "sentinel-2b", "eo:cloud_cover": 12.3, "mgrs:utm_zone": 33,
             "mgrs:latitude_band": "U", "mgrs:grid_square": "UP", "grid:code": "MGRS-33UUP",
             "s2:processing_baseline": "05.09", "s2:cloud_shadow_percentage": 2.5,
             "s2:thin_cirrus_percentage": 0.75, "proj:epsg": 32633,
             "earthsearch:boa_offset_applied": True}
    rec = item_to_record(_item(props, assets, "S2B_33UUP_20230601_0_L2A"))
    assert rec.tile == "33UUP"
    assert (rec.cloud_cover, rec.shadow_percent, rec.cirrus_percent) == (12.3, 2.5, 0.75)
    assert set(rec.assets) == {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                               "B09", "B11", "B12", "SCL"}
    assert rec.assets["B02"].href == "https://bucket.s3/blue.tif"  # COG, not the jp2 twin
    assert rec.assets["B8A"].href.endswith("nir08.tif")
    assert rec.assets["SCL"].shape == (5490, 5490)
    assert rec.assets["B04"].epsg == 32633
    assert rec.assets["B04"].transform == (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0)
    # Offset already applied by Earth Search -> 0, even though raster:bands says -0.1.
    assert rec.radiometric_offset == 0.0 and rec.quantification == 10000.0
    assert rec.datetime == dt.datetime(2023, 6, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    assert rec.platform == "sentinel-2b"

    props["earthsearch:boa_offset_applied"] = False
    rec = item_to_record(_item(props, assets))
    assert rec.radiometric_offset == -1000.0


def test_cdse_dialect_nested_statistics_and_resolution_suffixes():
    assets = {}
    for band, res in (("B02", 10), ("B02", 20), ("B02", 60), ("B05", 20), ("B05", 60),
                      ("SCL", 20), ("SCL", 60), ("AOT", 10)):
        assets[f"{band}_{res}m"] = {"href": f"s3://eodata/{band}_{res}m.jp2", "proj:code": "EPSG:32629",
                                    "proj:shape": [109800 // res] * 2,
                                    "raster:scale": 0.0001, "raster:offset": -0.1}
    props = {"platform": "sentinel-2a", "grid:code": "MGRS-29UNU", "eo:cloud_cover": 83.41,
             "statistics": {"cloud_shadow": 0.83, "thin_cirrus": 3.81, "water": 0.2},
             "processing:version": "05.12", "sat:relative_orbit": 23, "sat:orbit_state": "descending"}
    rec = item_to_record(_item(props, assets, "S2A_MSIL2A_20260628T115421_N0512_R023_T29UNU_20260628T194416"))
    assert rec.tile == "29UNU"
    assert rec.shadow_percent == 0.83 and rec.cirrus_percent == 3.81
    assert rec.processing_baseline == "05.12"
    assert set(rec.assets) == {"B02", "B05", "SCL"}
    assert rec.assets["B02"].href.endswith("B02_10m.jp2")  # native resolution chosen
    assert rec.assets["B05"].href.endswith("B05_20m.jp2")
    assert rec.assets["SCL"].href.endswith("SCL_20m.jp2")
    assert rec.assets["B02"].epsg == 32629
    assert rec.radiometric_offset == -1000.0  # STAC 1.1 raster:offset / raster:scale
    assert rec.relative_orbit == 23 and rec.orbit_state == "descending"


def test_s3_hrefs_read_from_their_https_alternate():
    """CDSE: s3://eodata needs S3 keys; the https twin on the download service takes the token."""
    dl = "https://download.dataspace.copernicus.eu/odata/v1/Products(x)/Nodes(B02_10m.jp2)/$value"
    assets = {"B02_10m": {"href": "s3://eodata/B02_10m.jp2", "proj:code": "EPSG:32629",
                          "alternate": {"s3": {"href": "s3://eodata/B02_10m.jp2"}, "https": {"href": dl}}},
              "B03_10m": {"href": "s3://eodata/B03_10m.jp2", "proj:code": "EPSG:32629"}}
    props = {"platform": "sentinel-2a", "grid:code": "MGRS-29UNU", "eo:cloud_cover": 1.0,
             "processing:version": "05.12"}
    rec = item_to_record(_item(props, assets, "S2A_MSIL2A_20260628T115421_N0512_R023_T29UNU_20260628T194416"))
    assert rec.assets["B02"].href == dl
    assert rec.assets["B03"].href == "s3://eodata/B03_10m.jp2"  # no twin: kept as given


def test_planetary_computer_dialect_and_baseline_fallback():
    assets = {b: {"href": f"https://pc.blob.core.windows.net/x/{b}.tif", "proj:shape": [10980, 10980],
                  "proj:transform": [10, 0, 499980, 0, -10, 5300040]}
              for b in ("B02", "B03", "B04", "B08", "SCL")}
    props = {"platform": "Sentinel-2A", "s2:mgrs_tile": "32TNT", "eo:cloud_cover": 3.0,
             "s2:processing_baseline": "04.00", "s2:cloud_shadow_percentage": 0.1,
             "s2:thin_cirrus_percentage": 0.2, "proj:epsg": 32632}
    rec = item_to_record(_item(props, assets))
    assert rec.platform == "sentinel-2a"
    assert rec.tile == "32TNT"
    assert rec.assets["B08"].epsg == 32632  # item-level EPSG
    assert rec.radiometric_offset == -1000.0  # from the baseline: no raster:bands
    props["s2:processing_baseline"] = "03.01"
    assert item_to_record(_item(props, assets)).radiometric_offset == 0.0
    del props["s2:processing_baseline"]
    rec = item_to_record(_item(props, assets, "S2A_MSIL2A_20220301T101021_N0400_R022_T32TNT_20220301T130000"))
    assert rec.processing_baseline == "04.00" and rec.radiometric_offset == -1000.0


def test_sentinel1_units_and_polarisations():
    assets = {"vv": {"href": "a/vv.tif", "raster:bands": [{"unit": "dB"}]}, "vh": {"href": "a/vh.tif"}}
    props = {"platform": "SENTINEL-1A", "sar:polarizations": ["VV", "VH"], "sar:instrument_mode": "IW",
             "sat:orbit_state": "ASCENDING", "sat:relative_orbit": 117}
    rec = item_to_record(_item(props, assets, "S1A_X", "sentinel-1-grd"), base_href="/data/cat/")
    assert set(rec.assets) == {"VV", "VH"}
    assert rec.sar_units == "dB" and rec.polarizations == ("VV", "VH")
    assert rec.orbit_state == "ascending" and rec.relative_orbit == 117
    assert rec.tile is None and rec.cloud_cover is None and rec.radiometric_offset == 0.0
    assert rec.assets["VV"].href == "/data/cat/a/vv.tif"
    assets["vv"].pop("raster:bands")
    assert item_to_record(_item(props, assets, "S1A_X", "sentinel-1-grd")).sar_units == "linear"


@pytest.mark.parametrize("raw, want", [("MGRS-33UUP", "33UUP"), ("MGRS-T20QRF", "20QRF"),
                                       ("T33UUP", "33UUP"), ("9WXT", "09WXT"), ("XYZ", None),
                                       ("33uup", "33UUP"), (None, None), ("", None)])
def test_normalise_tile(raw, want):
    assert normalise_tile(raw) == want


def test_asset_band_names():
    assert asset_band_name("B8A") == ("B8A", None)
    assert asset_band_name("B8A_20m") == ("B8A", 20)
    assert asset_band_name("nir08") == ("B8A", None)
    assert asset_band_name("scl") == ("SCL", None)
    assert asset_band_name("VH") == ("VH", None)
    assert asset_band_name("visual") is None and asset_band_name("TCI_10m") is None


def test_relative_hrefs_against_self_link_and_base():
    item = _item({"eo:cloud_cover": 1}, {"B02": {"href": "./B02.tif"}},
                 links=[{"rel": "self", "href": "https://stac.example/items/X.json"}])
    assert item_to_record(item).assets["B02"].href == "https://stac.example/items/B02.tif"
    assert item_to_record(item, base_href="https://cdn.example/cat/").assets["B02"].href == \
        "https://cdn.example/cat/B02.tif"
    assert resolve_href("s3://b/k.tif", "/x/") == "s3://b/k.tif"
    assert resolve_href("/abs/k.tif", "/x/") == "/abs/k.tif"


def test_parse_datetime_variants():
    assert parse_datetime("2022-01-25T10:00:00Z").tzinfo is dt.UTC
    assert parse_datetime("2022-01-25T12:00:00+02:00") == dt.datetime(2022, 1, 25, 10, tzinfo=dt.UTC)
    assert parse_datetime("2022-01-25T10:00:00") == dt.datetime(2022, 1, 25, 10, tzinfo=dt.UTC)


def test_mgrs_tile_bbox_contains_tile_footprints():
    from shapely.geometry import Point, box

    from cloudyeo.archives.stac_items import mgrs_tile_bbox

    # 33UUP covers roughly 12-13.5E, 48.6-49.6N (zone 33: 12-18E, band U: 48-56N).
    bb = mgrs_tile_bbox("33UUP")
    assert box(*bb).contains(Point(12.5, 49.0)) and box(*bb).contains(Point(10.6, 48.0))
    assert not box(*bb).contains(Point(25.0, 50.0))
    assert mgrs_tile_bbox("32VNM")[0] < 3.0  # Norway's widened zone 32V starts at 3E
    assert mgrs_tile_bbox("01CAA")[:3:2] == [-180.0, 180.0]  # antimeridian: no lon filter
    assert mgrs_tile_bbox("nonsense") is None


def test_other_data_assets_keep_their_keys():
    assets = {
        "B04": {"href": "../archive/B04.tif", "roles": ["data", "reflectance"]},
        "truth_mask": {"href": "../archive/truth/x.tif", "roles": ["demo-truth"],
                       "type": "image/tiff; application=geotiff; profile=cloud-optimized"},
        "aot": {"href": "https://x/AOT.tif", "roles": ["data"],
                "raster:bands": [{"scale": 0.001, "offset": 0}]},
        "aot-jp2": {"href": "s3://x/AOT.jp2", "roles": ["data"]},
        "thumbnail": {"href": "https://x/preview.jpg", "roles": ["thumbnail"]},
        "granule_metadata": {"href": "https://x/MTD.xml", "roles": ["metadata"]},
    }
    rec = item_to_record(_item({"s2:processing_baseline": "04.00"}, assets), base_href="/r/demo/catalog/")
    assert set(rec.assets) == {"B04", "truth_mask", "aot"}
    assert rec.assets["truth_mask"].href == "/r/demo/archive/truth/x.tif"
    assert rec.radiometric_offset == -1000.0 and rec.quantification == 10000.0  # not from AOT


# --------------------------------------------------------------------------------------
# Sentinel-1 physics from what each server declares (item shapes of each server)
# --------------------------------------------------------------------------------------

S1_ID = "S1A_IW_GRDH_1SDV_20230628T210705_20230628T210730_049191_05EA4D_21D1"
S1_PROPS = {"platform": "SENTINEL-1A", "constellation": "sentinel-1", "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"], "sar:frequency_band": "C", "sar:product_type": "GRD",
            "sat:orbit_state": "descending", "sat:relative_orbit": 119}


def earth_search_grd_item():
    """Earth Search v1 sentinel-1-grd: SAFE measurement tiffs (uint16 DN) on requester-pays S3."""
    base = f"s3://sentinel-s1-l1c/GRD/2023/6/28/IW/DV/{S1_ID[:-5]}_21D1"
    assets = {pol: {"href": f"{base}/measurement/iw-{pol}.tiff", "type": "image/tiff; application=geotiff",
                    "roles": ["data"], "sar:polarizations": [pol.upper()],
                    "raster:bands": [{"nodata": 0, "data_type": "uint16"}]} for pol in ("vv", "vh")}
    assets["schema-calibration-vv"] = {"href": f"{base}/annotation/calibration/calibration-iw-vv.xml",
                                       "type": "application/xml", "roles": ["metadata"]}
    return _item({**S1_PROPS, "s1:processing_level": "1", "storage:requester_pays": True}, assets,
                 S1_ID, "sentinel-1-grd")


def cdse_grd_item():
    """CDSE STAC v1 sentinel-1-grd: processing:level L1, product:type IW_GRDH_1S, eodata paths."""
    safe = f"s3://eodata/Sentinel-1/SAR/IW_GRDH_1S/2023/06/28/{S1_ID}.SAFE"
    assets = {pol: {"href": f"{safe}/measurement/s1a-iw-grd-{pol}-20230628t210705-001.tiff",
                    "type": "image/tiff; application=geotiff", "roles": ["data"],
                    "raster:bands": [{"data_type": "uint16"}]} for pol in ("vv", "vh")}
    assets["product"] = {"href": "https://download.dataspace.copernicus.eu/odata/v1/Products(x)/$value",
                         "type": "application/zip", "roles": ["data", "archive"]}
    props = {**S1_PROPS, "processing:level": "L1", "product:type": "IW_GRDH_1S"}
    return _item(props, assets, f"{S1_ID}.SAFE", "sentinel-1-grd")


def pc_grd_item():
    """Planetary Computer sentinel-1-grd: COG copies of the measurement tiffs (no proj grid)."""
    blob = f"https://sentinel1euwest.blob.core.windows.net/s1-grd/GRD/2023/6/28/IW/DV/{S1_ID}"
    assets = {pol: {"href": f"{blob}/measurement/iw-{pol}.tiff",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "roles": ["data"], "description": "Actual SAR data that have been processed into an image"}
              for pol in ("vv", "vh")}
    return _item({**S1_PROPS, "s1:processing_level": "1", "s1:resolution": "high"}, assets, S1_ID,
                 "sentinel-1-grd")


def pc_rtc_item():
    """Planetary Computer sentinel-1-rtc: gamma0 RTC COGs on a UTM grid (sar:product_type stays GRD)."""
    blob = f"https://sentinel1euwestrtc.blob.core.windows.net/sentinel1-grd-rtc/GRD/2023/6/28/IW/DV/{S1_ID}"
    assets = {pol: {"href": f"{blob}/measurement/iw-{pol}.rtc.tiff",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
                    "description": "Terrain-corrected gamma naught values ... with radiometric terrain "
                                   "correction applied.",
                    "proj:shape": [21000, 27000], "proj:transform": [10, 0, 399960, 0, -10, 7800040],
                    "raster:bands": [{"nodata": -32768, "data_type": "float32", "spatial_resolution": 10}]}
              for pol in ("vv", "vh")}
    return _item({**S1_PROPS, "proj:epsg": 32751, "s1:processing_level": "1"}, assets, f"{S1_ID}_rtc",
                 "sentinel-1-rtc")


@pytest.mark.parametrize("make", [earth_search_grd_item, cdse_grd_item, pc_grd_item])
def test_raw_grd_of_every_server_is_amplitude_dn_in_gcp_geometry(make):
    rec = item_to_record(make(), collection="sentinel-1-grd")
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == ("amplitude_dn", "gcp", "linear")
    assert rec.source_collection == "sentinel-1-grd" and set(rec.assets) == {"VV", "VH"}
    assert sar_physics_problem(rec.sar_radiometry, rec.sar_geometry, rec.sar_units) is not None


@pytest.mark.parametrize("make", [earth_search_grd_item, cdse_grd_item, pc_grd_item])
def test_raw_grd_is_refused_at_search_naming_collection_and_config_key(make):
    query = SearchQuery("sentinel-1-grd", dt.datetime(2023, 6, 1, tzinfo=dt.UTC),
                        dt.datetime(2023, 6, 30, tzinfo=dt.UTC))
    to_record = lambda it: item_to_record(it, collection="sentinel-1-grd")  # noqa: E731
    with pytest.raises(SarPhysicsError) as err:
        normalise_and_filter([make()], to_record, query, "STAC")
    msg = str(err.value)
    assert "'sentinel-1-grd'" in msg and "amplitude_dn" in msg
    assert "stac.collections.sentinel-1-grd" in msg and "stac.preset" in msg


def test_planetary_computer_rtc_is_terrain_flattened_gamma0_and_accepted():
    query = SearchQuery("sentinel-1-grd", dt.datetime(2023, 6, 1, tzinfo=dt.UTC),
                        dt.datetime(2023, 6, 30, tzinfo=dt.UTC))
    (rec,) = normalise_and_filter([pc_rtc_item()], lambda it: item_to_record(it, collection="sentinel-1-grd"),
                                  query, "STAC")
    assert rec.collection == "sentinel-1-grd" and rec.source_collection == "sentinel-1-rtc"
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == ("gamma0_terrain", "terrain", "linear")
    assert rec.assets["VV"].epsg == 32751 and rec.assets["VV"].transform[0] == 10.0


def test_demo_world_s1_declares_what_it_generates():
    from cloudyeo.demo import stac as demo_stac
    from cloudyeo.demo.schedule import s1_acquisition
    from cloudyeo.demo.tiles import make_tile

    tile = make_tile("33UUP", 120)
    item = demo_stac.s1_item(s1_acquisition(tile, 7, 0, dt.date(2022, 3, 3), dt.time(5, 0)), tile)
    rec = item_to_record(item)
    assert item["properties"]["sar:product_type"] == "GRD"  # GRD-like, but declared calibrated
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == (
        demo_stac.S1_RADIOMETRY, demo_stac.S1_GEOMETRY, demo_stac.S1_UNITS) == ("sigma0", "terrain", "linear")
    assert rec.assets["VV"].epsg == tile.epsg and rec.assets["VV"].transform is not None


def test_s1_declarations_card4l_and_unknown():
    nrb = _item({**S1_PROPS, "card4l:specification": "NRB", "card4l:measurement_type": "gamma0"},
                {"vv": {"href": "vv.tif"}}, "S1A_NRB", "my-nrb")
    assert s1_physics(nrb) == ("gamma0_terrain", "terrain")
    # An explicit declaration wins over the GRD product type; a value outside the vocabulary is
    # unknown (and so refused), never guessed.
    declared = _item({**S1_PROPS, "cloudyeo:sar_radiometry": "sigma0", "cloudyeo:sar_geometry": "ellipsoid"},
                     {"vv": {"href": "vv.tif"}}, S1_ID, "mine")
    assert s1_physics(declared) == ("sigma0", "ellipsoid")
    bad = _item({"cloudyeo:sar_radiometry": "sigma-nought", "cloudyeo:sar_geometry": "terrain"},
                {"vv": {"href": "vv.tif"}}, "X1", "mine")
    assert s1_physics(bad) == (None, "terrain")
    assert s1_physics(_item({}, {"vv": {"href": "vv.tif"}}, "X1", "mine")) == (None, None)
    mixed = _item({**S1_PROPS, "cloudyeo:sar_geometry": "terrain"},
                  {"vv": {"href": "vv.tif", "cloudyeo:sar_radiometry": "sigma0"},
                   "vh": {"href": "vh.tif", "cloudyeo:sar_radiometry": "gamma0"}}, S1_ID, "mine")
    assert s1_physics(mixed, mixed["assets"].values()) == (None, None)  # assets disagree: unknown
    rec = item_to_record(mixed)
    assert (rec.sar_radiometry, rec.sar_geometry) == (None, None)
    assert s1_physics(_item({}, {}, S1_ID, "mine")) == ("amplitude_dn", "gcp")  # GRD by its id


# --------------------------------------------------------------------------------------
# BOA/RADIO offset precedence on item shapes of each server
# --------------------------------------------------------------------------------------

ES_BANDS = ("blue", "green", "red", "nir")


def _es_item(baseline, applied, offset=-0.1):
    rb = [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": offset}]
    assets = {k: {"href": f"https://sentinel-cogs/{k}.tif", "raster:bands": rb} for k in ES_BANDS}
    props = {"platform": "sentinel-2a", "grid:code": "MGRS-33UUP", "s2:processing_baseline": baseline,
             "eo:cloud_cover": 1.0}
    if applied is not None:
        props["earthsearch:boa_offset_applied"] = applied
    return _item(props, assets, "S2A_33UUP_20211201_0_L2A")


def _cdse_item(baseline, offset=-0.1):
    assets = {f"{b}_10m": {"href": f"s3://eodata/{b}_10m.jp2", "raster:scale": 0.0001, "raster:offset": offset}
              for b in ("B02", "B03", "B04", "B08")}
    return _item({"grid:code": "MGRS-33UUP", "processing:version": baseline}, assets, "S2A_MSIL2A_X")


def _pc_item(baseline):
    assets = {b: {"href": f"https://pc/{b}.tif"} for b in ("B02", "B03", "B04", "B08")}
    return _item({"s2:mgrs_tile": "33UUP", "s2:processing_baseline": baseline}, assets, "S2A_MSIL2A_X")


@pytest.mark.parametrize("item, want", [
    # Earth Search: flag -> 0 whatever raster:bands says
    (_es_item("04.00", True), 0.0),
    (_es_item("05.09", True), 0.0),
    # Earth Search: no flag -> band metadata; a baseline below 04.00 never gets -1000
    (_es_item("04.00", False), -1000.0),
    (_es_item("05.09", None), -1000.0),
    (_es_item("02.14", False), 0.0),
    (_es_item("03.01", None), 0.0),
    # band metadata saying 0 for a 04.00 scene is believed over the baseline rule
    (_es_item("04.00", False, offset=0.0), 0.0),
    # CDSE: STAC 1.1 raster:offset; baseline from processing:version
    (_cdse_item("05.11"), -1000.0),
    (_cdse_item("03.01"), 0.0),
    (_cdse_item("04.00", offset=-0.2), -2000.0),
    # Planetary Computer: no raster offset -> the baseline rule
    (_pc_item("04.00"), -1000.0),
    (_pc_item("05.10"), -1000.0),
    (_pc_item("03.00"), 0.0),
])
def test_offset_precedence_on_each_server(item, want):
    rec = item_to_record(item)
    assert rec.radiometric_offset == want
    assert math.copysign(1.0, rec.radiometric_offset) == (1.0 if want >= 0 else -1.0)  # no -0.0
