"""SSL4EO selection rules on hand-made scene records (no files): closest, threshold, partial scenes,
missing bands, L1C/L2A pairing, the 60 m lattice, S1 choice, radiometry, and the plan's manifest."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping

from cloudyeo.archives.base import AssetInfo, SceneRecord, apply_filters
from cloudyeo.datasets import ssl4eo
from cloudyeo.datasets.common import S2_FILL, to_db
from cloudyeo.datasets.ssl4eo import (
    L1C,
    L2A,
    S1_GRD,
    Location,
    select_s1,
    select_season,
)
from cloudyeo.sentinel import S2_BAND_GSD, S2_L1C_BANDS, S2_L2A_BANDS

from .conftest import tiny_ssl4eo_config

EPSG = 32633
# A scene grid whose origin is NOT a multiple of 60 m (x 10, y 10 mod 60) to see the snapping.
X0, Y0 = 490_010.0, 5_310_010.0
SIZE_M = 20_000.0
TO_LL = Transformer.from_crs(EPSG, 4326, always_xy=True)
CENTRE = (500_033.0, 5_300_017.0)
LON, LAT = TO_LL.transform(*CENTRE)
LOC = Location("here", LON, LAT, EPSG)
DATE = dt.date(2021, 6, 21)
NOON = dt.datetime(2021, 6, 21, 10, 0, tzinfo=dt.UTC)
PATCH = 264


def lonlat(x0, y0, x1, y1):
    outline = box(x0, y0, x1, y1).segmentize(500)
    return dict(mapping(shapely.transform(outline, lambda x, y: TO_LL.transform(x, y), interleaved=False)))


FULL = lonlat(X0, Y0 - SIZE_M, X0 + SIZE_M, Y0)
HALF = lonlat(CENTRE[0], Y0 - SIZE_M, X0 + SIZE_M, Y0)  # swath edge through the patch centre


def scene(sid, collection, days, cloud, *, minutes=0, tile="33UUP", footprint=FULL, drop=(), when=None):
    bands = S2_L1C_BANDS if collection == L1C else S2_L2A_BANDS
    assets = {b: AssetInfo(f"/nowhere/{sid}/{b}.tif", EPSG,
                           (S2_BAND_GSD[b], 0.0, X0, 0.0, -S2_BAND_GSD[b], Y0),
                           (int(SIZE_M // S2_BAND_GSD[b]),) * 2) for b in bands if b not in drop}
    return SceneRecord(id=sid, collection=collection, platform="sentinel-2a",
                       datetime=when or NOON + dt.timedelta(days=days, minutes=minutes), footprint=footprint,
                       tile=tile, cloud_cover=cloud, assets=assets, processing_baseline="05.00",
                       radiometric_offset=-1000.0)


def pair(tag, days, cloud_l1c, cloud_l2a=None, **kw):
    cloud_l2a = cloud_l1c if cloud_l2a is None else cloud_l2a
    return scene(f"L1C_{tag}", L1C, days, cloud_l1c, **kw), scene(f"L2A_{tag}", L2A, days, cloud_l2a, **kw)


def choose(scenes, **kw):
    l1c = [s for s in scenes if s.collection == L1C]
    l2a = [s for s in scenes if s.collection == L2A]
    kw.setdefault("max_cloud", 10.0)
    return select_season(l1c, l2a, LOC, DATE, size=PATCH, **kw)


def test_closest_to_season_date_below_threshold():
    c = choose([*pair("far", -12, 0.0), *pair("near", 4, 9.5), *pair("closest_cloudy", 1, 30.0)])
    assert c.valid and c.l2a.id == "L2A_near" and c.l1c.id == "L1C_near" and c.same_acquisition
    # The threshold holds for both levels: an L2A above it disqualifies the acquisition.
    c = choose([*pair("a", 1, 5.0, 12.0), *pair("b", 6, 2.0)])
    assert c.l2a.id == "L2A_b"
    # <= threshold qualifies
    assert choose([*pair("edge", 0, 10.0)]).valid


def test_ties_lower_cloud_then_id():
    c = choose([*pair("plus", 3, 6.0), *pair("minus", -3, 2.0)])
    assert c.l2a.id == "L2A_minus"
    c = choose([*pair("B", 3, 2.0), *pair("A", -3, 2.0)])
    assert c.l2a.id == "L2A_A"
    # Same calendar-day distance: hours do not matter, cloud decides.
    c = choose([*pair("early", 2, 1.0, minutes=-300), *pair("late", -2, 0.5, minutes=600)])
    assert c.l2a.id == "L2A_late"


def test_partial_scene_rejected_next_candidate_used():
    c = choose([*pair("partial", 0, 0.0, footprint=HALF), *pair("whole", 7, 3.0)])
    assert c.valid and c.l2a.id == "L2A_whole"
    assert "partial" in c.rejected["L2A_partial"]
    c = choose([*pair("partial", 0, 0.0, footprint=HALF)])
    assert not c.valid and c.skip_category == "partial"
    assert "L2A_partial" in c.skip_reason and "partial scene" in c.skip_reason


def test_missing_band_rejected_next_candidate_used():
    l1c_bad, l2a_ok = pair("gap", 0, 0.0)
    l1c_bad = scene("L1C_gap", L1C, 0, 0.0, drop=("B09",))
    c = choose([l1c_bad, l2a_ok, *pair("ok", 5, 1.0)])
    assert c.valid and c.l1c.id == "L1C_ok"
    c = choose([l1c_bad, l2a_ok])
    assert not c.valid and c.skip_category == "missing_band"
    assert "L1C_gap: missing band B09" in c.skip_reason


def test_pairing_preferred_over_closer_single_levels():
    lone_l2a = scene("L2A_lone", L2A, 0, 0.0)
    lone_l1c = scene("L1C_lone", L1C, 1, 0.0)
    far = pair("far", 9, 4.0)
    c = choose([lone_l2a, lone_l1c, *far])
    assert c.same_acquisition and c.l2a.id == "L2A_far" and c.l1c.id == "L1C_far"
    # Without any pair: closest of each level, recorded as not one acquisition ...
    c = choose([lone_l2a, lone_l1c])
    assert c.valid and not c.same_acquisition and (c.l1c.id, c.l2a.id) == ("L1C_lone", "L2A_lone")
    # ... unless one acquisition is required.
    c = choose([lone_l2a, lone_l1c], require_same_acquisition=True)
    assert not c.valid and c.skip_category == "unpaired"
    # Another tile at the same time is not the same acquisition.
    c = choose([scene("L1C_t", L1C, 0, 0.0, tile="33UVP"), scene("L2A_t", L2A, 0, 0.0)],
               require_same_acquisition=True)
    assert not c.valid
    # Sensing times minutes apart are (different product ids of) one acquisition.
    c = choose([scene("L1C_m", L1C, 0, 0.0, minutes=2), scene("L2A_m", L2A, 0, 0.0)],
               require_same_acquisition=True)
    assert c.valid and c.same_acquisition


def test_no_scene_and_cloud_reasons():
    c = choose([], window=ssl4eo.season_window(DATE, 15))
    assert c.skip_category == "no_scene" and "2021-06-06..2021-07-06" in c.skip_reason
    c = choose([*pair("cloudy", 0, 55.0, 60.0)], window=ssl4eo.season_window(DATE, 15))
    assert c.skip_category == "cloud"
    assert "<= 10 %" in c.skip_reason and "lowest 55.0 %" in c.skip_reason and "lowest 60.0 %" in c.skip_reason
    # Unknown cloud cover never qualifies.
    assert not choose([*pair("unknown", 0, None)]).valid


def test_patch_grid_centred_and_on_the_scene_lattice():
    c = choose([*pair("a", 0, 0.0)])
    g = c.grid
    assert g.epsg == EPSG and g.shape == (PATCH, PATCH)
    a, b, x0, d, e, y0 = g.transform
    assert (a, b, d, e) == (10.0, 0.0, 0.0, -10.0)
    assert (x0 - X0) % 60 == 0 and (y0 - Y0) % 60 == 0
    cx, cy = x0 + PATCH * 5, y0 - PATCH * 5
    assert abs(cx - CENTRE[0]) <= 30 and abs(cy - CENTRE[1]) <= 30
    # Without asset grids the lattice is absolute multiples of 60 m (real S2 tile origins).
    bare = ssl4eo.patch_grid(LON, LAT, PATCH, EPSG)
    assert bare.transform[2] % 60 == 0 and bare.transform[5] % 60 == 0


def s1(sid, hours, *, mode="IW", pols=("VV", "VH"), footprint=FULL):
    assets = {p: AssetInfo(f"/nowhere/{sid}/{p.lower()}.tif", EPSG) for p in pols}
    return SceneRecord(id=sid, collection=S1_GRD, platform="sentinel-1a", datetime=NOON + dt.timedelta(hours=hours),
                       footprint=footprint, instrument_mode=mode, polarizations=tuple(pols), sar_units="linear",
                       assets=assets)


def test_s1_closest_in_time_with_iw_vv_vh_covering_the_patch():
    grid = choose([*pair("a", 0, 0.0)]).grid
    cands = [s1("ew", 1, mode="EW"), s1("vv_only", 2, pols=("VV",)), s1("partial", 3, footprint=HALF),
             s1("ok_far", -50), s1("ok_near", 30)]
    best, why = select_s1(cands, NOON, grid)
    assert best.id == "ok_near" and why is None
    best, why = select_s1(cands[:3], NOON, grid)
    assert best is None
    assert "ew: instrument mode EW" in why and "vv_only" in why and "partial" in why


def test_encode_reflectance_applies_offset_and_fill():
    dn = np.array([[0.0, 1000.0], [3456.0, np.nan]], dtype=np.float32)
    out = ssl4eo.encode_reflectance(dn, -1000.0, 10000.0)
    assert out.dtype == np.int16
    assert out.tolist() == [[S2_FILL, 0], [2456, S2_FILL]]
    assert ssl4eo.encode_reflectance(dn, 0.0, 10000.0)[1, 0] == 3456
    db = to_db(np.array([1.0, 0.01, 0.0, np.nan], dtype=np.float32), "linear")
    np.testing.assert_allclose(db[:2], [0.0, -20.0])
    assert np.isnan(db[2:]).all()
    assert to_db(np.array([-12.5], dtype=np.float32), "dB")[0] == -12.5


class FakeArchive:
    name = "fake"

    def __init__(self, records):
        self.records = records
        self.queries = []

    def search(self, query):
        self.queries.append(query)
        return [r for r in apply_filters(self.records, query) if r.collection == query.collection]


def test_plan_manifest_rows_windows_and_s1(tmp_path, monkeypatch):
    jun = [*pair("jun", 2, 1.0), s1("s1_jun", 2 * 24 + 7)]
    sep_date = dt.datetime(2021, 9, 22, 10, tzinfo=dt.UTC)
    sep = [scene("L1C_sep", L1C, 0, 3.0, when=sep_date), scene("L2A_sep", L2A, 0, 3.0, when=sep_date)]
    outside = pair("outside", 16, 0.0)  # 2021-07-07: one day past the +-15 day window
    archive = FakeArchive([*jun, *sep, *outside])
    monkeypatch.setattr(ssl4eo, "_archive", lambda cfg: archive)
    cfg = tiny_ssl4eo_config(tmp_path, patch_px=PATCH, locations_per_job=1,
                             season_dates=["2021-06-21", "2021-09-22"],
                             locations=[{"name": "here", "lon": LON, "lat": LAT},
                                        {"name": "there", "lon": LON + 1.0, "lat": LAT}])
    m = ssl4eo.plan(cfg, progress=False).set_index(["location", "season_date"])
    assert len(m) == 4 and m.crs.to_epsg() == 4326
    here_jun = m.loc[("here", "2021-06-21")]
    assert here_jun["valid"] and here_jun["l2a_id"] == "L2A_jun" and here_jun["days_to_season"] == 2
    assert here_jun["s1_id"] == "s1_jun" and here_jun["s1_delta_days"] == pytest.approx(7 / 24)
    here_sep = m.loc[("here", "2021-09-22")]
    assert here_sep["valid"] and here_sep["s1_id"] is None and "Sentinel-1" in here_sep["s1_skip_reason"]
    there = m.loc["there"]
    assert not there["valid"].any() and (there["skip_category"] == "no_scene").all()
    assert m["batch"].tolist() == [0, 0, 1, 1]
    s2_queries = [q for q in archive.queries if q.collection == L2A]
    assert {(q.start.date().isoformat(), q.end.date().isoformat()) for q in s2_queries} == {
        ("2021-06-06", "2021-07-06"), ("2021-09-07", "2021-10-07")}
    assert all(q.intersects is not None for q in archive.queries)


def test_plan_through_the_builder_and_location_zones(tmp_path, monkeypatch):
    """The builder's plan is the manifest; configured locations get their standard UTM zone."""
    from cloudyeo.datasets.builder import get_builder

    monkeypatch.setattr(ssl4eo, "_archive", lambda cfg: FakeArchive([*pair("jun", 2, 1.0)]))
    cfg = tiny_ssl4eo_config(tmp_path, patch_px=PATCH, season_dates=["2021-06-21"],
                             locations=[{"name": "here", "lon": LON, "lat": LAT}])
    tables = get_builder("ssl4eo", cfg).plan()
    assert list(tables) == ["manifest"] and tables["manifest"]["l2a_id"].tolist() == ["L2A_jun"]
    locs = ssl4eo.load_locations(tiny_ssl4eo_config(tmp_path, locations=[
        {"name": "a", "lon": LON, "lat": LAT}, {"name": "b", "lon": -70.0, "lat": -20.0}]))
    assert [loc.epsg for loc in locs] == [EPSG, 32719]


def test_ssl4eo_imports_neither_the_report_layer_nor_the_demo():
    code = ("import sys, cloudyeo.datasets.ssl4eo; "
            "print(sorted(m for m in sys.modules if m.startswith(('cloudyeo.demo', 'cloudyeo.report'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
