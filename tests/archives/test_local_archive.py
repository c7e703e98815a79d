"""LocalStacArchive over the demo ndjson layout, and open_archive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cloudyeo.archives import LocalStacArchive, SearchQuery, StacApiArchive, open_archive
from cloudyeo.archives.base import SarPhysicsError

UTC = dt.UTC


def q(collection="sentinel-2-l2a", start=(2022, 3, 1), end=(2022, 3, 31), **kw):
    return SearchQuery(collection, dt.datetime(*start, tzinfo=UTC),
                       dt.datetime(*end, 23, 59, 59, tzinfo=UTC), **kw)


def test_search_by_tile_date_cloud(catalog_dir: Path):
    arch = LocalStacArchive(catalog_dir / "items.ndjson")
    ids = [r.id for r in arch.search(q(tile="33UUP"))]
    assert ids == ["S2A_33UUP_20220301_L2A", "S2A_33UUP_20220306_L2A", "S2A_33UUP_20220311_L2A",
                   "S2A_33UUP_20220316_L2A"]
    ids = [r.id for r in arch.search(q(tile="33UUP", max_cloud_cover=50))]
    assert ids == ["S2A_33UUP_20220301_L2A", "S2A_33UUP_20220311_L2A"]
    ids = [r.id for r in arch.search(q(min_cloud_cover=60))]
    assert ids == ["S2A_33UUP_20220306_L2A", "S2A_32TNT_20220312_L2A"]
    assert [r.id for r in arch.search(q("sentinel-2-l1c"))] == ["S2A_33UUP_20220301_L1C"]
    assert arch.search(q(tile="99XXX")) == []


def test_records_are_normalised_with_absolute_local_hrefs(catalog_dir: Path):
    arch = LocalStacArchive(catalog_dir)  # the folder works too
    rec = arch.search(q(tile="33UUP", start=(2022, 3, 1), end=(2022, 3, 1)))[0]
    assert rec.radiometric_offset == -1000.0 and rec.quantification == 10000.0
    assert rec.processing_baseline == "05.00"
    assert rec.shadow_percent == 1.5 and rec.cirrus_percent == 0.5
    b02 = rec.assets["B02"]
    assert Path(b02.href) == (catalog_dir / "33UUP" / rec.id / "B02.tif").resolve()
    assert b02.epsg == 32633 and b02.shape == (120, 120)
    assert b02.transform == (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0)
    assert rec.assets["B01"].shape == (20, 20)
    old = arch.search(q(tile="33UUP", start=(2021, 12, 1), end=(2021, 12, 1)))[0]
    assert old.radiometric_offset == 0.0  # baseline 03.01, no raster offset


def test_intersects_and_s1(catalog_dir: Path, catalog_tools):
    arch = LocalStacArchive(catalog_dir)
    point = {"type": "Point", "coordinates": [8.2, 46.2]}
    assert [r.tile for r in arch.search(q(intersects=point))] == ["32TNT", "32TNT"]
    s1 = arch.search(q("sentinel-1-grd", intersects={"type": "Point", "coordinates": [12.5, 48.5]}))
    assert [r.sar_units for r in s1] == ["linear", "dB"]
    assert {(r.sar_radiometry, r.sar_geometry) for r in s1} == {("sigma0", "terrain")}
    assert s1[0].assets["VV"].href.endswith("s1/S1A_IW_GRDH_20220303/vv.tif")
    assert len(arch) == len(catalog_tools.demo_items())
    assert [c["id"] for c in arch.collections] == ["sentinel-1-grd", "sentinel-2-l1c", "sentinel-2-l2a"]


def test_missing_catalog_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="demo"):
        LocalStacArchive(tmp_path / "nope" / "items.ndjson").search(q())


def test_bad_line_names_file_and_line(tmp_path: Path, catalog_tools):
    catalog_tools.write_catalog(tmp_path, catalog_tools.demo_items()[:1])
    with open(tmp_path / "items.ndjson", "a") as fh:
        fh.write('{"id": "broken", "properties": {}}\n')
    with pytest.raises(ValueError, match=r"items.ndjson:2"):
        LocalStacArchive(tmp_path).search(q())


def test_open_archive(tmp_path: Path, catalog_tools):
    catalog_tools.write_catalog(tmp_path / "demo" / "catalog", catalog_tools.demo_items())
    arch = open_archive({"archive": "demo", "resources_dir": str(tmp_path)})
    assert isinstance(arch, LocalStacArchive)
    assert len(arch.search(q(tile="32TNT"))) == 2
    api = open_archive({"archive": "stac-api", "resources_dir": str(tmp_path),
                        "stac": {"preset": "planetary-computer", "collections": {"sentinel-2-l1c": "x"},
                                 "page_size": 5000, "max_retries": 2, "timeout_s": 5}})
    assert isinstance(api, StacApiArchive)
    assert api.url == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert api.server_collection("sentinel-2-l1c") == "x"
    assert api.page_size == 1000  # clamped to the preset's maximum
    with pytest.raises(ValueError, match="stac.url"):
        open_archive({"archive": "stac-api", "stac": {"preset": "custom"}})
    with pytest.raises(ValueError, match="stac.preset"):
        open_archive({"archive": "stac-api", "stac": {"preset": "nope"}})


def test_raw_grd_items_are_refused_on_search(tmp_path: Path, catalog_tools):
    raw = catalog_tools.s1_item("S1A_IW_GRDH_1SDV_20220303T050000_X", "2022-03-03T05:00:00Z")
    for key in ("cloudyeo:sar_radiometry", "cloudyeo:sar_geometry"):
        del raw["properties"][key]
    raw["properties"]["sar:product_type"] = "GRD"
    catalog_tools.write_catalog(tmp_path, catalog_tools.demo_items()[:2] + [raw])
    arch = LocalStacArchive(tmp_path)
    assert len(arch.search(q(tile="33UUP"))) == 2  # Sentinel-2 is unaffected
    (rec,) = arch.records("sentinel-1-grd")  # listing states what it is ...
    assert (rec.sar_radiometry, rec.sar_geometry) == ("amplitude_dn", "gcp")
    with pytest.raises(SarPhysicsError) as err:  # ... searching for it to store it is refused
        arch.search(q("sentinel-1-grd"))
    assert "items.ndjson" in str(err.value) and "S1A_IW_GRDH_1SDV_20220303T050000_X" in str(err.value)
    assert "cloudyeo:sar_radiometry" in str(err.value)
