"""CBEN end to end on the tiny demo world: plan, store, extract, finalize, and the acceptance checks."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from affine import Affine

from cloudyeo import drivers, store
from cloudyeo.archives.reading import read_windows
from cloudyeo.config import paths
from cloudyeo.datasets import cben
from cloudyeo.datasets.builder import get_builder
from cloudyeo.reben import ReBEN
from cloudyeo.sentinel import BEN19_CLASSES, S2_L2A_BANDS

SHARD = 8  # samples per shard: several shards, some shared by two products


@pytest.fixture(scope="module")
def built(tiny_world, tmp_path_factory):
    cfg = dict(tiny_world, results_dir=str(tmp_path_factory.mktemp("results")),
               cben=dict(tiny_world["cben"], store_shard_samples=SHARD))
    drivers.run_plan(get_builder("cben", cfg))
    drivers.run_init(get_builder("cben", cfg))
    manifest = cben.read_manifest(get_builder("cben", cfg).paths.manifest)
    for product in manifest.loc[manifest["skip_reason"].isna(), "product"]:
        drivers.run_extract(get_builder("cben", cfg), product)
    drivers.run_finalize(get_builder("cben", cfg))
    return cfg


def test_manifest_windows_and_skip_reasons(built):
    m = cben.read_manifest(get_builder("cben", built).paths.manifest)
    assert m.crs.to_epsg() == 4326
    assert {"product", "scene_id", "cloud_cover", "window_low", "window_high", "delta_days",
            "search_attempts", "skip_reason"} <= set(m.columns)
    chosen = m[m["skip_reason"].isna()]
    assert len(chosen) >= 1
    assert ((chosen["cloud_cover"] >= chosen["window_low"]) & (chosen["cloud_cover"] <= chosen["window_high"])).all()
    assert (chosen["delta_days"].abs() > 0).all()
    assert chosen["scene_id"].notna().all()
    skipped = m[m["skip_reason"].notna()]
    assert skipped["scene_id"].isna().all()


def test_store_grids_equal_reference_grids(built):
    p = paths(built)
    ds = store.open_store(p.cben_store)
    ref = ReBEN(p.reference)
    for i in range(ds.sizes["sample"]):
        pid = str(ds["patch_id"].values[i])
        with rasterio.open(ref.s2_path(pid, "B02")) as src:
            assert int(ds["epsg"].values[i]) == src.crs.to_epsg()
            assert Affine(*ds["transform"].values[i]).almost_equals(src.transform)


def test_labels_match_metadata(built):
    p = paths(built)
    ds = xr.open_zarr(p.cben_store)
    assert list(ds["label"].values) == list(BEN19_CLASSES) == ds.attrs["label_order"]
    meta = ReBEN(p.reference).metadata
    for pid, row in zip(ds["patch_id"].values, ds["labels"].values):
        expected = {BEN19_CLASSES.index(lab) for lab in meta.loc[str(pid), "labels"]}
        assert set(np.flatnonzero(row)) == expected
    # Every reference patch of a built product is in the store.
    built_products = set(ds["product"].values)
    n_expected = meta["product"].isin(built_products).sum()
    assert ds.sizes["sample"] == n_expected


def _clear_mask_10m(cfg, scene_id, when, tile, epsg, transform):
    """Clear pixels of a scene on a patch from its SCL, shrunk by one 20 m pixel at edges."""
    from scipy.ndimage import binary_erosion

    from cloudyeo.archives import open_archive
    from cloudyeo.grids import scaled_transform

    archive = open_archive(cfg)
    scene = cben._find_scene(archive, cben.L2A, scene_id, when, tile)
    scl = read_windows(archive, scene, "SCL", epsg=epsg, transforms=[scaled_transform(transform, 2)], shape=(60, 60))[0]
    clear = binary_erosion(np.isin(scl, (4, 5, 6)), iterations=1)
    return np.kron(clear, np.ones((2, 2), bool))


def test_clear_pixels_agree_with_reference_offset_applied(built):
    p = paths(built)
    ds = xr.open_zarr(p.cben_store)
    checked = 0
    for i in range(ds.sizes["sample"]):
        clear = _clear_mask_10m(built, str(ds["s2_scene_id"].values[i]),
                                pd.Timestamp(ds["s2_datetime"].values[i], tz="UTC").to_pydatetime(),
                                str(ds["patch_id"].values[i]).split("_T")[-1][:5],
                                int(ds["epsg"].values[i]), Affine(*ds["transform"].values[i]))
        if clear.mean() < 0.2:
            continue
        diff = ds["s2"][i].values[:, clear] - ds["s2_reference"][i].values[:, clear]
        assert abs(np.median(diff)) < 0.01, ds["patch_id"].values[i]
        checked += 1
    assert checked >= 3


def test_offset_applied_for_reprocessed_scenes(tiny_world):
    """Nearly clear baseline-05.00 scenes, cut like extraction does, match the clear reference."""
    import datetime as dt

    from cloudyeo.archives import open_archive
    from cloudyeo.archives.base import SearchQuery

    p = paths(tiny_world)
    ref = ReBEN(p.reference)
    archive = open_archive(tiny_world)
    compared = {True: 0, False: 0}
    for product in ref.products():
        pid = ref.patches(product)["patch_id"].iloc[0]
        grid = ref.grid(pid)
        tile = product.split("_T")[-1]
        scenes = archive.search(SearchQuery(cben.L2A, dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                                            dt.datetime(2100, 1, 1, tzinfo=dt.UTC), tile=tile))
        for scene in scenes:
            if scene.cloud_cover > 1 or scene.shadow_percent not in (None, 0.0) and scene.shadow_percent > 1:
                continue
            new = float(scene.processing_baseline) >= 4.0
            assert scene.radiometric_offset == (-1000.0 if new else 0.0)
            cut = read_windows(archive, scene, "B04", epsg=grid.epsg, transforms=[grid.transform], shape=(120, 120))[0]
            cloudy = cben._encode_reflectance(cut, scene.radiometric_offset, scene.quantification, 1) * 1e-4
            clear = cben._encode_reflectance(ref.read_s2(pid, ["B04"])["B04"], 0.0, 1e4, 1) * 1e-4
            assert abs(np.median(cloudy - clear)) < 0.01, scene.id
            raw = cben._encode_reflectance(cut, 0.0, scene.quantification, 1) * 1e-4
            assert np.isclose(np.median(raw - clear), 0.1 if new else 0.0, atol=0.01)
            compared[new] += 1
    assert compared[True] >= 1 and compared[False] >= 1


def test_cloud_fractions_and_outputs(built):
    p = paths(built)
    ds = store.open_store(p.cben_store)
    for name in ("cloud_fraction", "shadow_fraction", "cirrus_fraction"):
        v = ds[name].values
        assert ((v >= 0) & (v <= 1)).all()
    assert ds["cloud_fraction"].values.max() > 0  # the chosen scenes are cloudy
    t2 = pd.read_csv(p.cben / "table_ii_cloud_statistics.csv")
    assert list(t2["cover"]) == ["cloud", "shadow", "cirrus"]
    assert np.isclose(t2.loc[0, "mean"], 100 * ds["cloud_fraction"].values.mean(), atol=1e-3)
    t3 = pd.read_csv(p.cben / "table_iii_time_differences.csv")
    assert list(t3["pair"]) == ["S2ref -> S1", "S2cloud -> S1", "S2cloud -> S2ref"]
    assert (p.cben / "cloud_cover_histogram.png").stat().st_size > 1000
    card = (p.cben / "dataset_card.md").read_text()
    assert "Table II" in card and "B8A" in card and "CC BY-NC 4.0" in card
    index = pd.read_parquet(p.cben / "index.parquet")
    assert len(index) == ds.sizes["sample"]
    assert ds.attrs["s2_bands"] == list(S2_L2A_BANDS)


def test_rerun_one_product_marks_incomplete_until_finalized(built):
    p = paths(built)
    manifest = cben.read_manifest(get_builder("cben", built).paths.manifest)
    product = manifest.loc[manifest["skip_reason"].isna(), "product"].iloc[0]
    before = xr.open_zarr(p.cben_store)["s2"].values.copy()
    shards = {f.name: f.stat().st_ino for f in (p.cben_store / "s2").glob("c.*")}
    assert len(shards) > 1
    drivers.run_extract(get_builder("cben", built), product)
    with pytest.raises(Exception, match="complete"):
        store.open_store(p.cben_store)
    drivers.run_finalize(get_builder("cben", built))
    after = store.open_store(p.cben_store)["s2"].values
    assert np.array_equal(before, after, equal_nan=True)
    # only the shards holding this product's samples were rewritten
    patches = pd.read_parquet(get_builder("cben", built).paths.plan["patches"])
    mine = {f"c.{k}.0.0.0" for k in patches.loc[patches["product"] == product, "sample"] // SHARD}
    now = {f.name: f.stat().st_ino for f in (p.cben_store / "s2").glob("c.*")}
    assert now.keys() == shards.keys()
    assert {k for k in now if now[k] != shards[k]} == mine


def test_corrupt_cog_error_names_the_file(tiny_world, tmp_path):
    # A private copy of the world whose first chosen scene has a corrupt band file.
    world = tmp_path / "resources"
    shutil.copytree(paths(tiny_world).resources, world)
    cfg = dict(tiny_world, resources_dir=str(world), results_dir=str(tmp_path / "results"))
    drivers.run_plan(get_builder("cben", cfg))
    drivers.run_init(get_builder("cben", cfg))
    m = cben.read_manifest(get_builder("cben", cfg).paths.manifest)
    row = m[m["skip_reason"].isna()].iloc[0]
    bad = next((world / "demo" / "archive" / "sentinel-2-l2a" / row["scene_id"]).glob("B04.tif"))
    bad.write_bytes(b"II*\x00 this is not a tiff any more")
    with pytest.raises(cben.ExtractionError) as err:
        drivers.run_extract(get_builder("cben", cfg), row["product"])
    assert "B04.tif" in str(err.value) and row["product"] in str(err.value)
    assert not get_builder("cben", cfg).paths.part(row["product"]).exists()


def test_s1_closest_to_the_cloudy_scene(tiny_world, tmp_path):
    cfg = dict(tiny_world, results_dir=str(tmp_path / "results"),
               cben=dict(tiny_world["cben"], s1_source="closest", s1_max_days=14))
    drivers.run_plan(get_builder("cben", cfg))
    drivers.run_init(get_builder("cben", cfg))
    m = cben.read_manifest(get_builder("cben", cfg).paths.manifest)
    row = m[m["skip_reason"].isna()].iloc[0]
    drivers.run_extract(get_builder("cben", cfg), row["product"])
    part = pd.read_parquet(get_builder("cben", cfg).paths.part(row["product"]))
    assert part["s1_id"].str.startswith("S1").all() and part["s1_id"].nunique() == 1
    dt_days = (pd.to_datetime(part["s1_datetime"]) - pd.Timestamp(row["scene_datetime"])).dt.total_seconds() / 86400
    assert (dt_days.abs() <= 14).all()
    store.pack_shards(paths(cfg).cben_store)  # what finalize does first
    s1 = store.open_store(paths(cfg).cben_store, require_complete=False)["s1"][int(part["sample"].iloc[0])].values
    assert np.isfinite(s1).mean() > 0.99 and -40 < np.nanmedian(s1) < 5  # dB, not linear


# ------------------------------------------------------------------ no valid pixels, plan checks


def test_scl_without_valid_pixels_is_unknown_never_clear():
    empty = np.zeros((60, 60), np.uint8)
    cloud, shadow, cirrus, valid = cben._scl_fractions(empty)
    assert np.isnan(cloud) and np.isnan(shadow) and np.isnan(cirrus) and valid == 0.0
    nan = np.full((60, 60), np.nan, np.float32)  # what read_window services send for no data
    assert np.isnan(cben._scl_fractions(nan)[0]) and cben._scl_fractions(nan)[3] == 0.0
    half = np.zeros((60, 60), np.uint8)
    half[:30] = 9  # high-probability cloud on the valid half
    assert cben._scl_fractions(half) == (1.0, 0.0, 0.0, 0.5)


def _private_world(tiny_world, tmp_path):
    world = tmp_path / "resources"
    shutil.copytree(paths(tiny_world).resources, world)
    return dict(tiny_world, resources_dir=str(world), results_dir=str(tmp_path / "results"))


def test_all_nodata_scene_gives_skipped_samples_not_clear_ones(tiny_world, tmp_path):
    import rasterio

    cfg = _private_world(tiny_world, tmp_path)
    drivers.run_plan(get_builder("cben", cfg))
    m = cben.read_manifest(get_builder("cben", cfg).paths.manifest)
    chosen = m[m["skip_reason"].isna()]
    product, scene_id = chosen["product"].iloc[0], chosen["scene_id"].iloc[0]
    # The chosen scene becomes all no data (every band and its SCL 0).
    for tif in (paths(cfg).demo / "archive" / "sentinel-2-l2a" / scene_id).glob("*.tif"):
        with rasterio.open(tif) as src:
            profile = dict(src.profile, driver="GTiff")
        with rasterio.open(tif, "w", **profile) as dst:
            dst.write(np.zeros((dst.count, dst.height, dst.width), dtype=dst.dtypes[0]))
    cfg = dict(cfg, reference=dict(cfg["reference"], products=list(chosen["product"])))
    drivers.run_plan(get_builder("cben", cfg))
    drivers.run_init(get_builder("cben", cfg))
    for prod in chosen["product"]:
        drivers.run_extract(get_builder("cben", cfg), prod)
    drivers.run_finalize(get_builder("cben", cfg))
    index = pd.read_parquet(paths(cfg).cben / "index.parquet")
    mine = index["product"] == product
    assert mine.any() and (~mine).any()
    assert (index.loc[mine, "skip_reason"] == cben.NO_VALID_PIXEL).all()
    assert index.loc[mine, "cloud_percent"].isna().all()  # unknown, never 0 % (clear)
    assert (index.loc[mine, "split"] == cben.EXCLUDED_SPLIT).all()
    assert index.loc[~mine, "skip_reason"].isna().all()
    assert index.loc[~mine, "split"].isin(["train", "validation", "test"]).all()
    ds = store.open_store(paths(cfg).cben_store)
    assert (ds["split"].values[mine.to_numpy()] == cben.EXCLUDED_SPLIT).all()
    assert np.isnan(ds["s2"].values[mine.to_numpy()]).all()  # the fill value, decoded
    # The split readers never see them; the tables count only usable samples.
    table = pd.read_csv(paths(cfg).cben / "table_ii_cloud_statistics.csv")
    assert (table["n"] == int((~mine).sum())).all()
    from cloudyeo.datasets.cben_torch import CBENDataset

    seen = sum(len(CBENDataset(paths(cfg).cben_store, split=s)) for s in ("train", "validation", "test"))
    assert seen == int((~mine).sum())


def test_missing_reference_patch_folder_skips_only_its_product(tiny_world, tmp_path):
    cfg = _private_world(tiny_world, tmp_path)
    ref = ReBEN(paths(cfg).reference)
    victim = ref.products()[0]
    pid = ref.patches(victim)["patch_id"].iloc[1]
    shutil.rmtree(ref.s2_path(pid, "B02").parent)
    drivers.run_plan(get_builder("cben", cfg))
    m = cben.read_manifest(get_builder("cben", cfg).paths.manifest).set_index("product")
    assert "reference data unreadable" in m.loc[victim, "skip_reason"] and pid in m.loc[victim, "skip_reason"]
    others = m.drop(index=victim)
    assert others["skip_reason"].isna().any()  # the rest of the plan stands
    patches = pd.read_parquet(get_builder("cben", cfg).paths.plan["patches"])
    assert victim not in set(patches["product"])
    assert (patches["sample"] >= 0).any()


def test_scene_lacking_an_asset_is_never_chosen(tiny_world, tmp_path):
    import json

    cfg = _private_world(tiny_world, tmp_path)
    drivers.run_plan(get_builder("cben", cfg))
    before = cben.read_manifest(get_builder("cben", cfg).paths.manifest).set_index("product")
    product = before.index[before["skip_reason"].isna()][0]
    first_choice = before.loc[product, "scene_id"]
    items = paths(cfg).catalog
    lines = []
    for line in items.read_text().splitlines():
        item = json.loads(line)
        if item["id"] == first_choice:
            del item["assets"]["B11"]
        lines.append(json.dumps(item))
    items.write_text("\n".join(lines) + "\n")
    drivers.run_plan(get_builder("cben", cfg))
    after = cben.read_manifest(get_builder("cben", cfg).paths.manifest).set_index("product")
    assert after.loc[product, "scene_id"] != first_choice
    if after.loc[product, "skip_reason"] is None:  # the next candidate: complete, in the window
        assert after.loc[product, "window_low"] <= after.loc[product, "cloud_cover"] <= after.loc[product, "window_high"]
    else:
        assert first_choice in after.loc[product, "skip_reason"] and "B11" in after.loc[product, "skip_reason"]
    assert first_choice not in set(after["scene_id"].dropna())


def test_missing_assets_are_not_checked_for_records_without_assets():
    import datetime as dt

    from cloudyeo.archives.base import AssetInfo, SceneRecord

    bare = SceneRecord("x", cben.L2A, "sentinel-2a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                       {"type": "Point", "coordinates": [0, 0]})
    assert cben.missing_assets(bare) == []  # Sentinel Hub: pixels through the Process API only
    partial = SceneRecord("y", cben.L2A, "sentinel-2a", bare.datetime, bare.footprint,
                          assets={b: AssetInfo(f"{b}.tif") for b in cben.SCENE_ASSETS if b != "SCL"})
    assert cben.missing_assets(partial) == ["SCL"]
