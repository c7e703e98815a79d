"""Sentinel-1 physics per archive: records from each server's item shape, config-level refusal
of raw GRD at plan time, and the store attributes/card line that state it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cloudyeo.archives import earthengine, sentinelhub
from cloudyeo.archives.base import SarPhysicsError, SearchQuery, normalise_and_filter
from cloudyeo.archives.s1_source import (
    REBEN_S1,
    check_s1_source,
    dataset_s1_source,
    s1_card_line,
    s1_source,
)

UTC = dt.UTC
QUERY = SearchQuery("sentinel-1-grd", dt.datetime(2022, 3, 1, tzinfo=UTC), dt.datetime(2022, 3, 31, tzinfo=UTC))


def ee_s1_image(collection_id: str) -> dict[str, Any]:
    """The shape of an Earth Engine COPERNICUS/S1_GRD image's getInfo dictionary."""
    when = int(dt.datetime(2022, 3, 3, 5, tzinfo=UTC).timestamp() * 1000)
    return {
        "type": "Image", "id": f"{collection_id}/S1A_IW_GRDH_1SDV_20220303T050000_X",
        "bands": [{"id": pol, "crs": "EPSG:32633", "crs_transform": [10, 0, 290000, 0, -10, 5420000],
                   "dimensions": [25000, 17000]} for pol in ("VV", "VH", "angle")],
        "properties": {
            "system:index": "S1A_IW_GRDH_1SDV_20220303T050000_X", "system:time_start": when,
            "system:footprint": {"type": "LinearRing", "coordinates": [
                [11.0, 47.0], [14.0, 47.0], [14.0, 50.0], [11.0, 50.0], [11.0, 47.0]]},
            "instrumentMode": "IW", "transmitterReceiverPolarisation": ["VV", "VH"],
            "orbitProperties_pass": "ASCENDING", "relativeOrbitNumber_start": 117, "platform_number": "A",
        },
    }


def sh_s1_item() -> dict[str, Any]:
    """The shape of a Sentinel Hub Catalog sentinel-1-grd item."""
    return {
        "type": "Feature", "id": "S1A_IW_GRDH_1SDV_20220303T050000_20220303T050025_042151_0505D4_9A8C",
        "geometry": {"type": "Polygon", "coordinates": [[[11.0, 47.0], [14.0, 47.0], [14.0, 50.0],
                                                         [11.0, 50.0], [11.0, 47.0]]]},
        "properties": {"datetime": "2022-03-03T05:00:00Z", "platform": "sentinel-1a",
                       "sar:instrument_mode": "IW", "s1:polarization": "DV", "sat:orbit_state": "ascending",
                       "s1:resolution": "HIGH"},
        "assets": {}, "links": [],
    }


# ------------------------------------------------------------------------------ records


def test_earth_engine_s1_grd_is_sigma0_db_terrain_corrected():
    cid = "COPERNICUS/S1_GRD"
    (rec,) = normalise_and_filter([ee_s1_image(cid)], lambda i: earthengine.image_to_record(i, "sentinel-1-grd", cid),
                                  QUERY, "Earth Engine")
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == ("sigma0", "terrain", "dB")
    assert rec.source_collection == cid


def test_earth_engine_s1_grd_float_is_linear_and_unknown_collections_are_refused():
    cid = "COPERNICUS/S1_GRD_FLOAT"
    rec = earthengine.image_to_record(ee_s1_image(cid), "sentinel-1-grd", cid)
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == ("sigma0", "terrain", "linear")
    other = "users/someone/S1_COLLECTION"
    rec = earthengine.image_to_record(ee_s1_image(other), "sentinel-1-grd", other)
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == (None, None, None)
    with pytest.raises(SarPhysicsError, match=r"users/someone/S1_COLLECTION.*earthengine\.collections\.sentinel-1-grd"):
        normalise_and_filter([ee_s1_image(other)],
                             lambda i: earthengine.image_to_record(i, "sentinel-1-grd", other), QUERY, "Earth Engine")


def test_sentinel_hub_s1_is_what_the_process_request_asks():
    (rec,) = normalise_and_filter([sh_s1_item()], lambda i: sentinelhub.item_to_record(i, "sentinel-1-grd"),
                                  QUERY, "Sentinel Hub")
    assert (rec.sar_radiometry, rec.sar_geometry, rec.sar_units) == ("sigma0", "terrain", "linear")


# ------------------------------------------------------------------------------ config level


def stac_cfg(preset: str, **collections: str) -> dict[str, Any]:
    return {"archive": "stac-api", "stac": {"preset": preset, "collections": collections or {}}}


@pytest.mark.parametrize("preset", ["earth-search", "cdse"])
def test_raw_grd_presets_are_refused_at_plan_naming_collection_and_key(preset):
    src = s1_source(stac_cfg(preset))
    assert (src.collection, src.product.radiometry, src.product.geometry) == ("sentinel-1-grd", "amplitude_dn", "gcp")
    with pytest.raises(SarPhysicsError) as err:
        check_s1_source(stac_cfg(preset), "ssl4eo")
    msg = str(err.value)
    assert msg.startswith("ssl4eo:") and "'sentinel-1-grd'" in msg
    assert "stac.collections.sentinel-1-grd" in msg and "stac.preset" in msg


def test_planetary_computer_takes_rtc_and_refuses_its_raw_grd():
    src = check_s1_source(stac_cfg("planetary-computer"), "timeseries")
    assert src.collection == "sentinel-1-rtc"
    assert (src.product.radiometry, src.product.geometry, src.product.units) == ("gamma0_terrain", "terrain", "linear")
    with pytest.raises(SarPhysicsError, match="stac.collections.sentinel-1-grd"):
        check_s1_source(stac_cfg("planetary-computer", **{"sentinel-1-grd": "sentinel-1-grd"}), "timeseries")


def test_custom_collections_are_judged_per_item():
    src = check_s1_source(stac_cfg("custom"), "ssl4eo")  # no refusal: the items decide at search
    assert not src.known and src.collection == "sentinel-1-grd"
    src = check_s1_source(stac_cfg("earth-search", **{"sentinel-1-grd": "my-s1-sigma0"}), "ssl4eo")
    assert not src.known and src.attrs()["s1_source_collection"] == "my-s1-sigma0"
    assert src.attrs()["s1_radiometry"] == "unknown"


def test_other_archives():
    ee = check_s1_source({"archive": "earthengine"}, "ssl4eo")
    assert (ee.collection, ee.product.radiometry, ee.product.units) == ("COPERNICUS/S1_GRD", "sigma0", "dB")
    with pytest.raises(SarPhysicsError, match=r"earthengine\.collections\.sentinel-1-grd"):
        check_s1_source({"archive": "earthengine",
                         "earthengine": {"collections": {"sentinel-1-grd": "COPERNICUS/S1_RAW"}}}, "ssl4eo")
    sh = check_s1_source({"archive": "sentinelhub", "sentinelhub": {"preset": "cdse"}}, "ssl4eo")
    assert (sh.product.radiometry, sh.product.geometry, sh.product.units) == ("sigma0", "terrain", "linear")
    demo = check_s1_source({"archive": "demo"}, "ssl4eo")
    assert (demo.product.radiometry, demo.product.geometry) == ("sigma0", "terrain")


def test_dataset_sources():
    es = stac_cfg("earth-search")
    # CBEN with S1 from the reBEN reference never touches the archive's raw GRD.
    cben = dataset_s1_source({**es, "cben": {"s1_source": "reference"}}, "cben")
    assert cben.product == REBEN_S1 and cben.attrs()["s1_source_units"] == "dB"
    with pytest.raises(SarPhysicsError, match="^cben:"):
        dataset_s1_source({**es, "cben": {"s1_source": "closest"}}, "cben")
    # Planet-CR takes S1 from the stac section with the Planet API, whatever `archive` is.
    with pytest.raises(SarPhysicsError, match="^planetcr:"):
        dataset_s1_source({"archive": "demo", "stac": {"preset": "cdse"},
                           "planetcr": {"source": "planet-api"}}, "planetcr")
    demo = dataset_s1_source({"archive": "stac-api", "stac": {"preset": "cdse"},
                              "planetcr": {"source": "demo"}}, "planetcr")
    assert demo.product.radiometry == "sigma0"


def test_attrs_and_card_line():
    attrs = check_s1_source(stac_cfg("planetary-computer"), "ssl4eo").attrs()
    assert attrs["s1_radiometry"] == "gamma0_terrain" and attrs["s1_geometry"] == "terrain"
    assert attrs["s1_source_collection"] == "sentinel-1-rtc"
    assert attrs["s1_source_archive"] == "stac-api (planetary-computer)"
    assert all(isinstance(v, str) for v in attrs.values())  # Zarr attributes
    line = s1_card_line(attrs)
    assert "gamma0_terrain" in line and "terrain-flattened" in line and "`sentinel-1-rtc`" in line


def test_every_dataset_plan_refuses_raw_grd_before_any_request(tmp_path):
    """With Earth Search (raw GRD only), planning fails at once with the config key to change;
    the STAC URL points at a closed loopback port, so a request would fail differently."""
    from cloudyeo.config import load_config
    from cloudyeo.datasets import cben, planetcr, ssl4eo, timeseries

    cfg = load_config("config/examples/earth-search.yaml", {
        "stac": {"url": "http://127.0.0.1:9/v1", "max_retries": 0},
        "resources_dir": str(tmp_path / "resources"), "results_dir": str(tmp_path / "results"),
        "reference": {"root": str(tmp_path / "no-reben")},
        "cben": {"s1_source": "closest"},
        "ssl4eo": {"locations": [{"name": "a", "lon": 12.0, "lat": 48.0}]},
        "timeseries": {"rois": [{"name": "r", "lon": 12.0, "lat": 48.0}],
                       "splits": {"train": ["r"], "validation": [], "test": []}},
        "planetcr": {"source": "planet-api",
                     "aois": [{"id": "a", "lon": 12.0, "lat": 48.0, "start": "2022-03-01", "end": "2022-03-31"}]},
    })
    for name, plan in (("cben", cben.plan), ("ssl4eo", ssl4eo.plan), ("timeseries", timeseries.plan),
                       ("planetcr", planetcr.plan)):
        with pytest.raises(SarPhysicsError, match=rf"^{name}: .*'sentinel-1-grd'.*stac\.collections\.sentinel-1-grd"):
            plan(cfg)
