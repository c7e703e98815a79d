"""The time-series part of the demo world: ROIs outside Europe, a year of scenes, quirks."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import rasterio

from cloudyeo.config import paths
from cloudyeo.demo.timeseries import MISSING_BAND, normalise_cfg, plan_timeseries_world


def test_default_plan_has_rois_outside_europe_and_ssl_locations():
    cfg, rois, ssl = plan_timeseries_world({})
    assert len(rois) >= 2 and len(ssl) >= 8
    assert len({s.tile.epsg for s in rois}) == len(rois)  # one UTM zone each
    for s in rois:
        lon, lat = s.tile.centre_lonlat
        assert not (-25 < lon < 45 and 35 < lat < 72), f"{s.tile.id} lies in Europe"
        days = {a.sensing.date() for a in s.s2}
        assert min(days).year == max(days).year == cfg["year"] and len(days) >= 30
        assert len(s.s1) >= 20
    # Availability quirks: partial scenes exist, one scene lacks a band.
    assert sum(a.swath_edge is not None for s in rois for a in s.s2) > 0
    assert sum(a.missing_band is not None for s in rois for a in s.s2) == cfg["missing_band_scenes"]
    # SSL locations: scenes only inside the four seasonal windows.
    centres = [dt.date.fromisoformat(d) for d in cfg["ssl_dates"]]
    for s in ssl:
        for a in s.s2 + [b for b in s.s1]:
            day = (a.sensing if hasattr(a, "sensing") else a.start).date()
            assert min(abs((day - c).days) for c in centres) <= cfg["ssl_window_days"]
        assert len(s.s2) >= 8


def test_plan_is_deterministic():
    a = plan_timeseries_world({"rois": ["14SKF"], "ssl_locations": []})[1][0]
    b = plan_timeseries_world({"rois": ["14SKF"], "ssl_locations": []})[1][0]
    assert [x.l1c_id for x in a.s2] == [x.l1c_id for x in b.s2]
    assert [x.cloud_target for x in a.s2] == [x.cloud_target for x in b.s2]


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match="demo_timeseries.bogus"):
        normalise_cfg({"bogus": 1})
    with pytest.raises(ValueError, match="roi_size_px"):
        normalise_cfg({"roi_size_px": 500})


def test_written_world_partial_scenes_and_missing_band(tiny_timeseries_world):
    root = paths(tiny_timeseries_world).demo_timeseries
    world = json.loads((root / "world.json").read_text())
    assert [r["id"] for r in world["rois"]] == ["14SKF", "44QKE"]
    items = [json.loads(line) for line in (root / "catalog" / "items.ndjson").read_text().splitlines()]
    l1c = [it for it in items if it["collection"] == "sentinel-2-l1c"]
    partial = [it for it in l1c if it["properties"]["s2:nodata_pixel_percentage"] > 0]
    assert partial, "expected partial-coverage scenes"
    it = partial[0]
    with rasterio.open(root / "catalog" / it["assets"]["B02"]["href"]) as src:
        b02 = src.read(1)
    nodata_pct = 100 * float(np.mean(b02 == 0))
    assert nodata_pct == pytest.approx(it["properties"]["s2:nodata_pixel_percentage"], abs=1.0)
    missing = world["rois"][0]["missing_band_scenes"]
    assert len(missing) == 1
    item = next(it for it in l1c if it["id"] == missing[0])
    assert MISSING_BAND not in item["assets"] and "B08" in item["assets"]
    assert not (root / "archive" / "sentinel-2-l1c" / missing[0] / f"{MISSING_BAND}.tif").exists()
    assert world["counts"]["sentinel-2-l2a"] == 0  # ROIs carry L1C only by default
