"""Planet-CR-style builder end to end on a tiny Planet demo world: plan, store, extract, finalize."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.windows import Window
from support.datasets import build_dataset

from cloudyeo import drivers, store
from cloudyeo.config import paths, validate_config
from cloudyeo.datasets import planetcr
from cloudyeo.datasets.builder import get_builder
from cloudyeo.demo.planet import generate_planet_world, load_planet_world
from cloudyeo.landcover import CLASSES, remap_table_attrs, remap_worldcover

TINY_WORLD = {"seed": 11, "aois": ["usa-iowa", "swiss-alps"], "aoi_size_px": 120, "days": 8,
              "daily_probability": 0.9, "s1_revisit_days": 3, "missing_udm2_fraction": 0.05,
              "partial_nodata_fraction": 0.15}
# 150 x 150 at 3 m <-> 45 x 45 at 10 m: the default 300/90 pair scaled to the tiny AOIs.
TINY_PLANETCR = {"window_3m": 150, "window_10m": 45, "stride_10m": 45, "samples_per_bin": 3,
                 "aois_per_batch": 1, "max_s1_days": 4, "store_codec": "blosc-lz4"}


def tiny_cfg(base, **planetcr_over) -> dict:
    return validate_config({
        "archive": "demo", "resources_dir": str(base / "resources"), "results_dir": str(base / "results"),
        "demo_planet": dict(TINY_WORLD), "planetcr": {**TINY_PLANETCR, **planetcr_over},
    })


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("planetcr")
    cfg = tiny_cfg(base)
    generate_planet_world(cfg["demo_planet"], paths(cfg).demo_planet, progress=False, workers=2)
    build_dataset("planetcr", cfg)
    return cfg


@pytest.fixture(scope="module")
def builder(built):
    return get_builder("planetcr", built)


@pytest.fixture(scope="module")
def manifest(builder):
    return drivers.read_plan(builder)["manifest"]


def test_builder_files_units_and_resources(builder, manifest):
    b = builder
    assert {t: p.name for t, p in b.paths.plan.items()} == {"manifest": "manifest.parquet", "scenes": "scenes.parquet"}
    assert b.paths.root.name == "planetcr" and b.paths.store.name == "planetcr.zarr"
    assert b.units(drivers.read_plan(b)) == ["batch-000", "batch-001"]
    assert all(b.paths.part(u).is_file() for u in b.units(drivers.read_plan(b)))
    assert {k: p.name for k, p in b.paths.outputs.items()}["examples"] == "example_quartets.png"
    assert b.job_resources("extract")["runtime"] == 30
    api = get_builder("planetcr", dict(b.cfg, planetcr={**b.cfg["planetcr"], "source": "planet-api"}))
    assert api.job_resources("plan")["runtime"] == 240 and api.job_resources("finalize")["runtime"] == 30
    assert "store_codec" not in b.params("plan") and "store_codec" in b.params("init")


def test_plan_skips_scenes_without_udm2_and_all_nodata_windows(built, builder, manifest):
    world = load_planet_world(paths(built).demo_planet)
    scenes = drivers.read_plan(builder)["scenes"]
    no_udm2 = scenes[~scenes["has_udm2"]]
    assert set(no_udm2["scene_id"]) == set(world["scenes_without_udm2"])
    assert no_udm2["skip_reason"].str.contains("no UDM2 asset").all()
    rows = manifest[manifest["cloudy_id"].isin(world["scenes_without_udm2"])]
    assert len(rows) == len(no_udm2) and rows["skip_reason"].str.contains("UDM2").all()
    assert not rows["selected"].any()
    nodata = manifest[manifest["skip_reason"].fillna("").str.startswith("all-nodata window")]
    assert len(nodata) and (nodata["nodata_percent"] == 100).all() and not nodata["selected"].any()
    assert set(nodata["cloudy_id"]) <= set(world["scenes_with_partial_nodata"])
    # Every selected window has a pair, an S1 within bounds and a usable cloudy window.
    sel = manifest[manifest["selected"]]
    assert len(sel) and sel["skip_reason"].isna().all()
    assert (sel["dt_clear_days"].abs() <= 5).all() and (sel["dt_s1_days"].abs() <= 4).all()
    assert (sel["clear_id"] != sel["cloudy_id"]).all() and (sel["nodata_percent"] <= 5).all()
    assert sel["geometry"].notna().all() and manifest.crs.to_epsg() == 4326


def test_alignment_holds_on_every_sample(built, manifest):
    sel = manifest[manifest["selected"]]
    for _, r in sel.iterrows():
        t10, t3, t3c = Affine(*r["transform_10m"]), Affine(*r["transform_3m"]), Affine(*r["transform_3m_clear"])
        dx, dy = planetcr.check_alignment(t10, 45, t3, 150, 10.0)
        assert (dx, dy) == pytest.approx((r["offset_x_m"], r["offset_y_m"]))
        assert 0.9 <= abs(dx) <= 1.5 and 0.9 <= abs(dy) <= 1.5  # the world's 1-2 m shift, snapped
        assert t3 == t3c  # cloudy and clear on one 3 m lattice: pixel-aligned pairs


def test_split_by_aoi_and_batches(built, manifest):
    sel = manifest[manifest["selected"]]
    per_aoi = sel.groupby("aoi")["split"].nunique()
    assert (per_aoi == 1).all() and set(sel["split"]) == {"train", "test"}
    assert (sel.groupby("aoi")["batch"].nunique() == 1).all() and sel["batch"].nunique() == 2
    assert np.array_equal(np.sort(sel["sample"].to_numpy()), np.arange(len(sel)))
    # Balanced: no bin holds more than samples_per_bin.
    assert sel["cloud_bin"].value_counts().max() <= 3


def test_store_layout_values_and_index(builder, manifest):
    p = builder.paths
    ds = xr.open_zarr(p.store)
    n = int(manifest["selected"].sum())
    assert dict(ds.sizes) == {"sample": n, "band": 4, "y": 150, "x": 150, "polarization": 2,
                              "y_10m": 45, "x_10m": 45, "landcover_class": 6, "affine": 6}
    assert ds["optical_cloudy"].dims == ("sample", "band", "y", "x")
    assert ds["s1"].dims == ("sample", "polarization", "y_10m", "x_10m") and ds["s1"].dtype == np.float32
    assert ds["landcover"].dtype == np.uint8 and ds["cloud_mask"].dtype == np.uint8
    assert list(ds["band"].values) == ["B", "G", "R", "NIR"]
    raw = store.open_store(p.store, mask_and_scale=False)
    assert raw["optical_clear"].dtype == np.uint16 and raw["optical_clear"].attrs["scale_factor"] == 1e-4
    assert ds.attrs["landcover_remap"] == remap_table_attrs()
    assert ds.attrs["udm2_cloud_classes"] == ["cloud", "heavy_haze"]
    assert set(np.unique(ds["landcover"].values)) <= set(range(6)) | {255}
    assert set(np.unique(ds["cloud_mask"].values)) <= {0, 1, 2, 255}
    # Coordinates: cloud percent agrees with the stored mask, dt's, ids, transforms.
    mask = ds["cloud_mask"].values
    valid = (mask != 255).sum(axis=(1, 2))
    np.testing.assert_allclose(100 * (mask == 1).sum(axis=(1, 2)) / valid, ds["cloud_percent"].values, atol=1e-3)
    assert np.isfinite(ds["dt_clear_days"].values).all() and (np.abs(ds["dt_s1_days"].values) <= 4).all()
    assert ds["transform_3m"].shape == (n, 6) and (ds["epsg"].values > 32600).all()
    assert np.isfinite(ds["s1"].values).all() and (-40 < ds["s1"].values).all() and (ds["s1"].values < 15).all()
    index = pd.read_parquet(p.outputs["index"])
    assert list(index["sample_id"]) == list(ds["sample_id"].values)
    for name in ("distributions.png", "example_quartets.png", "dataset_card.md", "statistics.csv",
                 "band_statistics.csv", "skip_reasons.csv"):
        assert (p.root / name).stat().st_size > 0
    card = p.outputs["card"].read_text()
    assert "no UDM2 asset" in card and "all-nodata window" in card and "| 95 | Mangroves | ignore | 255 |" in card


def test_samples_equal_the_source_files(built, manifest):
    """Optical windows are the files' pixels (no resampling); land cover is the remapped map."""
    p = paths(built)
    ds = store.open_store(p.dataset_store("planetcr"), mask_and_scale=False)
    sel = manifest[manifest["selected"]].sort_values("sample")
    r = sel.iloc[len(sel) // 2]
    i = int(r["sample"])
    archive = p.demo_planet / "archive"
    for var, scene, tr in (("optical_cloudy", r["cloudy_id"], r["transform_3m"]),
                           ("optical_clear", r["clear_id"], r["transform_3m_clear"])):
        with rasterio.open(archive / "psscene" / scene / f"{scene}_3B_AnalyticMS_toar.tif") as f:
            col, row = ~f.transform @ (tr[2], tr[5])
            win = Window(round(col), round(row), 150, 150)
            np.testing.assert_array_equal(ds[var].values[i], f.read(window=win))
    item = f"ESA_WorldCover_10m_2021_v200_{r['aoi']}"
    with rasterio.open(archive / "esa-worldcover" / r["aoi"] / f"{item}_Map.tif") as f:
        codes = f.read(1)[r["row_10m"]:r["row_10m"] + 45, r["col_10m"]:r["col_10m"] + 45]
    np.testing.assert_array_equal(ds["landcover"].values[i], remap_worldcover(codes))
    frac = ds["landcover_fraction"].values[i]
    assert frac == pytest.approx([r[f"lc_{c}"] for c in CLASSES], abs=1e-6)


def test_rerun_one_batch_and_completeness(builder, manifest):
    p = builder.paths
    before = store.open_store(p.store)["optical_cloudy"].values
    batch = sorted(manifest.loc[manifest["selected"], "batch"].unique())[0]
    drivers.run_extract(builder, batch)
    assert not store.is_complete(p.store)  # any write removes the marker
    with pytest.raises(store.IncompleteStoreError):
        store.open_store(p.store)
    p.part(batch).unlink()
    with pytest.raises(RuntimeError, match=f"no extracted part for batch {batch}"):
        drivers.run_finalize(builder)
    drivers.run_extract(builder, batch)
    drivers.run_finalize(builder)
    np.testing.assert_array_equal(before, store.open_store(p.store)["optical_cloudy"].values)
    with pytest.raises(KeyError, match="batch 'batch-099' is not a unit"):
        drivers.run_extract(builder, "batch-099")
    with pytest.raises(planetcr.ExtractionError, match="no selected samples"):
        builder.extract("batch-099", drivers.read_plan(builder), lambda start, data: None)


def test_explicit_test_aois_and_config_errors(built, tmp_path):
    s = planetcr.Settings.from_config(tiny_cfg(tmp_path, splits={"test_aois": ["usa-iowa"]}))
    assert planetcr.assign_splits(["swiss-alps", "usa-iowa"], s) == {"swiss-alps": "train", "usa-iowa": "test"}
    with pytest.raises(ValueError, match="test_aois"):
        planetcr.assign_splits(["swiss-alps"], s)
    with pytest.raises(ValueError, match="planetcr.bins"):
        planetcr.Settings.from_config(tiny_cfg(tmp_path, bins=[0, 50, 40]))
    with pytest.raises(ValueError, match="not in the demo world"):
        planetcr.Source(tiny_cfg(paths(built).resources.parent, aois=["atlantis"]))


def test_builder_imports_neither_the_demo_nor_the_report_layer():
    """The demo world is read as an archive; figures are named, drawn by the drivers."""
    import subprocess
    import sys

    code = ("import sys, cloudyeo.datasets.planetcr; "
            "print(sorted(m for m in sys.modules if m.startswith(('cloudyeo.demo', 'cloudyeo.report'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
