"""SSL4EO end to end on the tiny demo world: the store, recorded missing seasons, radiometry,
finalize outputs, and bad input (a scene missing a band, an unreadable file, interrupted runs)."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr
from affine import Affine

from cloudyeo import drivers, store
from cloudyeo.archives import open_archive
from cloudyeo.archives.base import SearchQuery
from cloudyeo.config import paths
from cloudyeo.datasets import ssl4eo
from cloudyeo.datasets.builder import get_builder
from cloudyeo.sentinel import S1_POLARIZATIONS, S2_L1C_BANDS, S2_L2A_BANDS


def manifest_of(cfg) -> pd.DataFrame:
    return drivers.read_plan(get_builder("ssl4eo", cfg))["manifest"]


def test_store_opens_with_stated_dims_and_chunks(ssl4eo_built):
    p = paths(ssl4eo_built)
    ds = xr.open_zarr(p.ssl4eo_store)
    n = len(json.loads((p.demo_timeseries / "world.json").read_text())["ssl_locations"])
    assert ds.sizes["sample"] == n and ds.sizes["season"] == 4
    assert ds["s2_l1c"].dims == ("sample", "season", "l1c_band", "y", "x")
    assert ds["s2_l2a"].dims == ("sample", "season", "l2a_band", "y", "x")
    assert ds["s1"].dims == ("sample", "season", "polarization", "y", "x")
    assert ds["s2_l1c"].shape[2:] == (13, 84, 84) and ds["s2_l2a"].shape[2:] == (12, 84, 84)
    assert list(ds["l1c_band"].values) == list(S2_L1C_BANDS) == ds.attrs["l1c_bands"]
    assert list(ds["l2a_band"].values) == list(S2_L2A_BANDS)
    assert list(ds["polarization"].values) == list(S1_POLARIZATIONS)
    assert list(ds["season"].values) == ds.attrs["season_dates"]
    for var, bands in (("s2_l1c", 13), ("s2_l2a", 12), ("s1", 2)):
        assert zarr.open_array(str(p.ssl4eo_store / var), mode="r").chunks == (1, 1, bands, 84, 84)
    assert ds["transform"].dims == ("sample", "season", "affine")
    assert ds.attrs["code_version"].startswith("0.") and "build_config" in ds.attrs
    assert store.is_complete(p.ssl4eo_store)
    # Locations and their coordinates come from the demo world.
    world = json.loads((p.demo_timeseries / "world.json").read_text())["ssl_locations"]
    assert list(ds["location"].values) == [w["id"] for w in world]
    np.testing.assert_allclose(ds["lon"].values, [w["centre_lon"] for w in world])


def test_valid_seasons_complete_missing_ones_empty_and_recorded(ssl4eo_built):
    ds = store.open_store(paths(ssl4eo_built).ssl4eo_store)
    valid = ds["valid"].values
    assert valid.any() and not valid.all(), "the tiny world should have valid and missing seasons"
    for i, k in zip(*np.nonzero(valid)):
        assert np.isfinite(ds["s2_l2a"][i, k].values).all() and np.isfinite(ds["s2_l1c"][i, k].values).all()
        assert ds["l2a_id"].values[i, k] and ds["skip_reason"].values[i, k] == ""
    for i, k in zip(*np.nonzero(~valid)):
        assert np.isnan(ds["s2_l2a"][i, k].values).all() and np.isnan(ds["s1"][i, k].values).all()
        assert ds["skip_category"].values[i, k] in ssl4eo.SKIP_CATEGORIES
        assert "<= 10 %" in ds["skip_reason"].values[i, k] or ds["skip_category"].values[i, k] == "no_scene"
        assert ds["l2a_id"].values[i, k] == "" and not ds["s1_valid"].values[i, k]
    assert (ds["s1_valid"].values <= valid).all()
    s1_ok = ds["s1_valid"].values
    assert np.isfinite(ds["s1"].values[s1_ok]).all()


def test_selection_against_the_archive(ssl4eo_built):
    cfg = ssl4eo_built
    m = manifest_of(cfg)
    archive = open_archive(cfg, demo_catalog=ssl4eo.demo_catalog(cfg))
    for _, row in m.iterrows():
        date = pd.Timestamp(row["season_date"]).date()
        start, end = ssl4eo.season_window(date, 15)
        found = {c: archive.search(SearchQuery(c, start, end, tile=row["location"]))
                 for c in (ssl4eo.L1C, ssl4eo.L2A)}
        clear = {c: [r for r in recs if r.cloud_cover <= 10] for c, recs in found.items()}
        if row["valid"]:
            assert row["l1c_cloud_cover"] <= 10 and row["l2a_cloud_cover"] <= 10
            assert row["same_acquisition"] and row["l1c_datetime"] == row["l2a_datetime"]
            assert start <= row["l2a_datetime"] <= end
            # Closest to the season date among the qualifying L2A scenes (pairs in the demo).
            best = min(abs((r.datetime.date() - date).days) for r in clear[ssl4eo.L2A]
                       if any(abs(r.datetime - c.datetime).total_seconds() < 300 for c in clear[ssl4eo.L1C]))
            assert row["days_to_season"] == best
            if row["s1_id"]:
                s1 = archive.search(SearchQuery(ssl4eo.S1_GRD, start, end, tile=None,
                                                intersects=row["geometry"].__geo_interface__))
                dts = [abs((r.datetime - row["l2a_datetime"]).total_seconds()) / 86400 for r in s1]
                assert row["s1_delta_days"] == pytest.approx(min(dts))
        else:
            # Recorded as missing only when no acquisition qualifies in both levels.
            pairs = [a for a in clear[ssl4eo.L2A] if any(a.datetime == c.datetime for c in clear[ssl4eo.L1C])]
            assert not pairs, row["skip_reason"]
            assert row["skip_reason"] and row["batch"] == row["sample"] // 2


def test_builder_paths_units_and_resources(ssl4eo_built):
    b = get_builder("ssl4eo", ssl4eo_built)
    p = paths(ssl4eo_built)
    assert b.paths.store == p.ssl4eo_store and b.paths.manifest == p.ssl4eo / "manifest.parquet"
    assert b.paths.created == p.ssl4eo / "store.created.json"
    units = b.units(drivers.read_plan(b))
    assert units == ["batch-0000", "batch-0001"]  # three locations, two per job
    assert b.paths.part(units[1]) == p.ssl4eo / "parts" / "batch-0001.parquet" and b.paths.part(units[1]).is_file()
    assert all(re.fullmatch(b.unit_pattern, u) for u in units)
    assert b.job_resources("extract") == {"mem_mb": 3000, "runtime": 30}
    assert json.loads(b.params("plan"))["ssl4eo"].keys() == b.section.keys() - {"store_codec"}
    created = json.loads(b.paths.created.read_text())
    assert (created["n_samples"], created["n_seasons"]) == (3, 4)


def test_radiometric_offsets_applied(ssl4eo_built):
    """Stored reflectance = (DN + offset) / 10000 at 10 m bands, for both levels."""
    p = paths(ssl4eo_built)
    ds = store.open_store(p.ssl4eo_store)
    m = manifest_of(ssl4eo_built).set_index(["sample", "season"])
    offsets = set()
    for i, k in zip(*np.nonzero(ds["valid"].values)):
        t = Affine(*ds["transform"].values[i, k])
        for level, var, dim in (("l1c", "s2_l1c", "l1c_band"), ("l2a", "s2_l2a", "l2a_band")):
            sid = str(ds[f"{level}_id"].values[i, k])
            offset = float(ds[f"{level}_offset_dn"].values[i, k])
            assert offset == m.loc[(i, k), f"{level}_offset"]
            offsets.add(offset)
            tif = p.demo_timeseries / "archive" / f"sentinel-2-{level}" / sid / "B04.tif"
            with rasterio.open(tif) as src:
                col, row = ~src.transform @ (t.c, t.f)
                assert col == int(col) and row == int(row)
                dn = src.read(1, window=((int(row), int(row) + 84), (int(col), int(col) + 84)))
            stored = ds[var].isel(sample=i, season=k).sel({dim: "B04"}).values
            np.testing.assert_allclose(stored, (dn.astype(float) + offset) / 1e4, atol=1e-6)
    assert offsets == {0.0, -1000.0}, "the tiny world should include baseline 04.00+ scenes"


def test_finalize_outputs(ssl4eo_built):
    p = paths(ssl4eo_built)
    out = get_builder("ssl4eo", ssl4eo_built).paths.outputs
    assert {path.name for path in out.values()} == {
        "index.parquet", "season_availability.csv", "band_statistics.csv", "cloud_cover_histogram.png",
        "examples.png", "dataset_card.md"}
    for path in out.values():
        assert path.exists() and path.stat().st_size > 0
    index = pd.read_parquet(out["index"])
    ds = store.open_store(p.ssl4eo_store)
    assert len(index) == ds.sizes["sample"] * 4
    avail = pd.read_csv(out["availability"])
    assert list(avail["season"]) == [*ds.attrs["season_dates"], "all"]
    total = avail.iloc[-1]
    assert total["valid"] == int(ds["valid"].values.sum()) == ds.attrs["n_valid_seasons"]
    assert total["missing"] == sum(total[f"missing_{c}"] for c in ssl4eo.SKIP_CATEGORIES)
    card = out["card"].read_text()
    assert "Missing seasons" in card and "<= 10 %" in card and ds.attrs["code_version"] in card
    assert "## Season availability" in card and "## Sentinel-2 bands" in card and "Copernicus Sentinel data" in card
    stats = pd.read_csv(out["band_stats"])
    l2a = stats[stats["variable"] == "s2_l2a"]
    assert len(l2a) == 12 and (l2a["mean"].between(0, 1)).all() and (l2a["std"] > 0).all()
    assert stats.loc[stats["variable"] == "s1", "mean"].between(-40, 10).all()


# ------------------------------------------------------------------------------ bad input


def alternate_world(cfg, base, edit):
    """A copy of the demo world's catalog (items changed by ``edit``) over the same archive files."""
    src = paths(cfg).demo_timeseries
    dst = base / "resources" / "demo-timeseries"
    (dst / "catalog").mkdir(parents=True)
    os.symlink(src / "archive", dst / "archive")
    shutil.copy(src / "world.json", dst / "world.json")
    lines = []
    for line in (src / "catalog" / "items.ndjson").read_text().splitlines():
        item = edit(json.loads(line))
        lines.append(json.dumps(item))
    (dst / "catalog" / "items.ndjson").write_text("\n".join(lines) + "\n")
    return dict(cfg, resources_dir=str(base / "resources"), results_dir=str(base / "results"))


def test_scene_missing_a_band_is_skipped_and_named(ssl4eo_built, tmp_path):
    m = manifest_of(ssl4eo_built)
    row = m[m["valid"]].iloc[0]
    bad = row["l1c_id"]

    def drop_b09(item):
        if item["id"] == bad:
            item["assets"].pop("B09")
        return item

    cfg = alternate_world(ssl4eo_built, tmp_path, drop_b09)
    drivers.run_plan(get_builder("ssl4eo", cfg))
    new = manifest_of(cfg).set_index(["sample", "season"]).loc[(row["sample"], row["season"])]
    assert new["l1c_id"] != bad
    assert f"{bad}: missing band B09" in (new["rejected"] or "")
    if not new["valid"]:
        assert new["skip_category"] == "missing_band" and bad in new["skip_reason"]


def test_read_error_names_scene_and_file_and_store_stays_incomplete(ssl4eo_built, tmp_path):
    m = manifest_of(ssl4eo_built)
    row = m[m["valid"]].iloc[-1]
    broken = tmp_path / "broken" / "B03.tif"
    broken.parent.mkdir()
    broken.write_bytes(b"not a GeoTIFF")

    def corrupt(item):
        if item["id"] == row["l2a_id"]:
            item["assets"]["B03"]["href"] = str(broken)
        return item

    cfg = alternate_world(ssl4eo_built, tmp_path, corrupt)
    b = get_builder("ssl4eo", cfg)
    drivers.run_plan(b)
    drivers.run_init(b)
    unit = ssl4eo.batch_unit(row["batch"])
    with pytest.raises(ssl4eo.ExtractionError) as err:
        drivers.run_extract(b, unit)
    msg = str(err.value)
    assert row["l2a_id"] in msg and "B03" in msg and str(broken) in msg and row["location"] in msg
    p = paths(cfg)
    assert not b.paths.part(unit).exists()
    assert not store.is_complete(p.ssl4eo_store)
    with pytest.raises(RuntimeError, match=f"no extracted part for batch .*{unit}"):
        drivers.run_finalize(b)
    with pytest.raises(store.IncompleteStoreError):
        store.open_store(p.ssl4eo_store)


def test_extract_after_finalize_unmarks_the_store(ssl4eo_built, tmp_path):
    shutil.copytree(paths(ssl4eo_built).results, tmp_path / "results", symlinks=True)
    cfg = dict(ssl4eo_built, results_dir=str(tmp_path / "results"))
    p = paths(cfg)
    assert store.is_complete(p.ssl4eo_store)
    b = get_builder("ssl4eo", cfg)
    drivers.run_extract(b, "batch-0000")  # a rerun of one shard
    assert not store.is_complete(p.ssl4eo_store)
    with pytest.raises(store.IncompleteStoreError):
        store.open_store(p.ssl4eo_store)
    with pytest.raises(KeyError, match="batch 'batch-0009' is not a unit"):
        drivers.run_extract(b, "batch-0009")
