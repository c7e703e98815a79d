"""The demo world generator: determinism, layout, georeferencing, metadata vs truth."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window
from scipy.ndimage import binary_dilation, binary_erosion, uniform_filter

import cloudyeo.demo.world as world_mod
from cloudyeo.demo import clear_sky_reflectance, generate_world, load_world, normalise_cfg
from cloudyeo.demo.climatology import NODATA as CLIM_NODATA
from cloudyeo.demo.climatology import SD_NAME, monthly_mean_name
from cloudyeo.reben import ReBEN, s1_product_of
from cloudyeo.sentinel import BEN19_CLASSES, S2_BAND_GSD, S2_L1C_BANDS, S2_L2A_BANDS

L2A_ID = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{6}_N(\d{4})_R\d{3}_T(\d{2}[C-X][A-Z]{2})_\d{8}T\d{6}$")
L1C_ID = re.compile(r"^S2[AB]_MSIL1C_\d{8}T\d{6}_N(\d{4})_R\d{3}_T(\d{2}[C-X][A-Z]{2})_\d{8}T\d{6}$")
S1_ID = re.compile(r"^S1[AB]_IW_GRDH_1SDV_\d{8}T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_[0-9A-F]{4}$")
TRUTH_CLOUD, TRUTH_CIRRUS, TRUTH_SHADOW, TRUTH_SNOW = 1, 2, 4, 8


def _by_collection(items, collection):
    return [it for it in items if it["collection"] == collection]


def _href(world_dir: Path, asset: dict) -> Path:
    assert not os.path.isabs(asset["href"]) and asset["href"].startswith("../archive/")
    return (world_dir / "catalog" / asset["href"]).resolve()


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


# --------------------------------------------------------------------------------------
# determinism and completeness
# --------------------------------------------------------------------------------------


def test_same_cfg_gives_identical_world(world_dir, tiny_cfg, tmp_path):
    other = generate_world(tiny_cfg, tmp_path / "again", progress=False, workers=1)
    for name in ("catalog/items.ndjson", "catalog/collections.json", "world.json"):
        assert (world_dir / name).read_bytes() == (other / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_parquet(world_dir / "reben/metadata.parquet"),
                                  pd.read_parquet(other / "reben/metadata.parquet"))
    tifs = sorted(p.relative_to(world_dir) for p in world_dir.rglob("*.tif"))
    assert tifs == sorted(p.relative_to(other) for p in other.rglob("*.tif"))
    assert len(tifs) > 500
    for rel in tifs:
        with rasterio.open(world_dir / rel) as a, rasterio.open(other / rel) as b:
            assert a.transform == b.transform and a.crs == b.crs, rel
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=str(rel))


def test_different_seed_changes_the_world(tiny_cfg):
    a = clear_sky_reflectance(tiny_cfg, "33UUP", dt.date(2017, 7, 1))
    b = clear_sky_reflectance({**tiny_cfg, "seed": tiny_cfg["seed"] + 1}, "33UUP", dt.date(2017, 7, 1))
    assert a.shape == b.shape == (13, 240, 240)
    assert np.abs(a - b).mean() > 0.005


def test_world_json_is_written_last(world_dir, world):
    mtime = (world_dir / "world.json").stat().st_mtime_ns
    newest = max(p.stat().st_mtime_ns for p in world_dir.rglob("*") if p.is_file() and p.name != "world.json")
    assert mtime >= newest
    assert world["generator_version"] and world["seed"] == 424242
    assert world["counts"]["files"] == sum(
        1 for p in world_dir.rglob("*") if p.is_file() and p.name != "world.json")
    assert world["bytes"] > 1_000_000
    assert not list(world_dir.rglob("*.part")), "temporary files left behind"


def test_interrupted_generation_never_looks_complete(tiny_cfg, tmp_path, monkeypatch):
    out = tmp_path / "broken"
    out.mkdir()
    (out / "world.json").write_text("{}")  # stale marker of an older world
    (out / "archive").mkdir()
    (out / "archive" / "stale.tif").write_bytes(b"x")

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(world_mod, "_write_catalog", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_world({**tiny_cfg, "tiles": ["35VLH"], "days_around_reference": 10}, out,
                       progress=False, workers=1)
    assert not (out / "world.json").exists()
    assert not (out / "archive" / "stale.tif").exists()
    assert (out / "archive" / "sentinel-2-l2a").is_dir()  # pixel work happened, marker did not
    with pytest.raises(FileNotFoundError, match="interrupted"):
        load_world(out)


def test_cfg_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="demo.tile_size_px"):
        normalise_cfg({"tile_size_px": 250})
    with pytest.raises(ValueError, match="demo.colour"):
        normalise_cfg({"colour": "blue"})
    out = tmp_path / "not-created"
    with pytest.raises(ValueError, match="not an MGRS-like id"):
        generate_world({"tiles": ["XYZ"]}, out, progress=False)
    assert not out.exists(), "a bad config must fail before touching the disk"


# --------------------------------------------------------------------------------------
# layout, ids and georeferencing
# --------------------------------------------------------------------------------------


def test_archive_layout_and_ids(world_dir, world, items):
    l2a, l1c, s1 = (_by_collection(items, c) for c in ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd"))
    assert len(l2a) == len(l1c) == sum(t["s2_scenes"] for t in world["tiles"])
    assert len(s1) == sum(t["s1_scenes"] for t in world["tiles"])
    assert len(items) == len(l2a) + len(l1c) + len(s1)
    for it in l2a:
        assert L2A_ID.match(it["id"]), it["id"]
        assert sorted(k for k in it["assets"] if k not in ("SCL", "truth_mask")) == sorted(S2_L2A_BANDS)
        assert (world_dir / "archive/sentinel-2-l2a" / it["id"] / "SCL.tif").exists()
    for it in l1c:
        assert L1C_ID.match(it["id"]), it["id"]
        assert sorted(k for k in it["assets"] if k != "truth_mask") == sorted(S2_L1C_BANDS)
    for it in s1:
        assert S1_ID.match(it["id"]), it["id"]
        assert set(it["assets"]) == {"vv", "vh"}
    # Platforms alternate along each tile's time line.
    for tile in world["tiles"]:
        mine = sorted((it for it in l2a if it["properties"]["s2:mgrs_tile"] == tile["id"]),
                      key=lambda it: it["properties"]["datetime"])
        plats = [it["properties"]["platform"] for it in mine]
        assert all(a != b for a, b in zip(plats, plats[1:])), plats
        days = [dt.date.fromisoformat(it["properties"]["datetime"][:10]) for it in mine]
        assert {(b - a).days for a, b in zip(days, days[1:])} == {5}
        assert days[0] >= dt.date.fromisoformat(tile["date_start"])
        assert days[-1] <= dt.date.fromisoformat(tile["date_end"])
    # Every asset exists where its relative href points.
    for it in items:
        for asset in it["assets"].values():
            assert _href(world_dir, asset).exists(), asset["href"]


def test_assets_georeferencing_matches_metadata(world_dir, world, items):
    tiles = {t["id"]: t for t in world["tiles"]}
    checked = 0
    for it in items[:: max(1, len(items) // 25)]:
        epsg = it["properties"]["proj:epsg"]
        assert it["properties"]["proj:code"] == f"EPSG:{epsg}"
        for key, asset in it["assets"].items():
            with rasterio.open(_href(world_dir, asset)) as src:
                assert src.crs.to_epsg() == epsg
                assert list(src.transform)[:6] == pytest.approx(asset["proj:transform"])
                assert [src.height, src.width] == asset["proj:shape"]
                assert src.profile["tiled"] and src.profile["compress"].lower() in ("deflate", "lerc_deflate", "zstd")
                if key in S2_BAND_GSD:
                    assert src.res == (S2_BAND_GSD[key], S2_BAND_GSD[key])
                    assert src.dtypes[0] == "uint16" and src.nodata == 0
                if key in ("vv", "vh"):
                    assert src.dtypes[0] == "float32" and np.isnan(src.nodata)
            checked += 1
        # Tile grid: upper-left corner on a multiple of 1200 m, zone from the tile id.
        tile = tiles.get(it["properties"].get("s2:mgrs_tile"))
        if tile:
            assert epsg == 32600 + int(tile["id"][:2])
            minx, miny, maxx, maxy = tile["bounds"]
            assert minx % 1200 == 0 and maxy % 1200 == 0 and maxx - minx == 2400
            lon, lat = tile["centre_lon"], tile["centre_lat"]
            assert it["bbox"][0] < lon < it["bbox"][2] and it["bbox"][1] < lat < it["bbox"][3]
    assert checked > 50


def test_landcover_maps(world_dir, world):
    for tile in world["tiles"]:
        with rasterio.open(world_dir / "landcover" / f"{tile['id']}.tif") as src:
            lc = src.read(1)
            assert src.nodata == 255 and src.crs.to_epsg() == tile["epsg"]
            assert list(src.transform)[:6] == tile["transform"]
        assert lc.max() < len(BEN19_CLASSES)
        fractions = np.bincount(lc.ravel(), minlength=len(BEN19_CLASSES)) / lc.size
        assert (fractions > 0.02).sum() >= 3, "a tile should mix several land-cover classes"
        # Spatially coherent: neighbouring pixels mostly share the class.
        assert (lc[:, 1:] == lc[:, :-1]).mean() > 0.95


# --------------------------------------------------------------------------------------
# metadata agrees with the truth
# --------------------------------------------------------------------------------------


def test_l2a_properties_agree_with_scl_and_truth(world_dir, items):
    l2a = _by_collection(items, "sentinel-2-l2a")
    covers = []
    for it in l2a:
        p = it["properties"]
        scl = _read(_href(world_dir, it["assets"]["SCL"]))
        truth = _read(_href(world_dir, it["assets"]["truth_mask"]))
        pct = lambda *codes, scl=scl: 100.0 * np.isin(scl, codes).mean()
        assert p["eo:cloud_cover"] == pytest.approx(pct(8, 9, 10), abs=1e-3)
        assert p["s2:high_proba_clouds_percentage"] == pytest.approx(pct(9), abs=1e-3)
        assert p["s2:medium_proba_clouds_percentage"] == pytest.approx(pct(8), abs=1e-3)
        assert p["s2:thin_cirrus_percentage"] == pytest.approx(pct(10), abs=1e-3)
        assert p["s2:cloud_shadow_percentage"] == pytest.approx(pct(3), abs=1e-3)
        assert p["s2:snow_ice_percentage"] == pytest.approx(pct(11), abs=1e-3)
        assert p["s2:nodata_pixel_percentage"] == 0.0 and (scl > 0).all()
        # SCL is derived from the truth: high-probability cloud sits on truth clouds, and the
        # truth's thick cloud never exceeds what the SCL reports as cloud.
        t20 = truth.reshape(scl.shape[0], 2, scl.shape[1], 2)
        cloud20 = ((t20 & TRUTH_CLOUD) > 0).mean(axis=(1, 3))
        shadow20 = ((t20 & TRUTH_SHADOW) > 0).mean(axis=(1, 3))
        if (scl == 9).any():
            assert cloud20[scl == 9].mean() > 0.9
        if (scl == 3).any():
            assert shadow20[scl == 3].mean() > 0.5
        assert 100.0 * cloud20.mean() <= p["eo:cloud_cover"] + 1.0
        # Shadows are never flagged under a thick cloud.
        assert not ((truth & TRUTH_CLOUD) & ((truth & TRUTH_SHADOW) >> 2)).any()
        covers.append(p["eo:cloud_cover"])
    covers = np.array(covers)
    assert (covers == 0).sum() >= 2, "references are clear"
    assert ((covers > 5) & (covers < 95)).sum() >= 5, "cloud covers spread over 0-100 %"


def test_l1c_pairs_with_l2a(world_dir, items):
    l2a = {it["properties"]["datetime"] + it["properties"]["s2:mgrs_tile"]: it
           for it in _by_collection(items, "sentinel-2-l2a")}
    for it in _by_collection(items, "sentinel-2-l1c"):
        p = it["properties"]
        twin = l2a[p["datetime"] + p["s2:mgrs_tile"]]
        assert twin["properties"]["s2:processing_baseline"] == p["s2:processing_baseline"]
        assert twin["assets"]["truth_mask"]["href"] == it["assets"]["truth_mask"]["href"]
        truth = _read(_href(world_dir, it["assets"]["truth_mask"]))
        expected = 100.0 * ((truth & (TRUTH_CLOUD | TRUTH_CIRRUS)) > 0).mean()
        assert p["eo:cloud_cover"] == pytest.approx(expected, abs=1e-3)
        assert p["s2:product_type"] == "S2MSI1C"


def test_cirrus_band_rises_under_cirrus_and_cloud(world_dir, items):
    seen_cirrus = 0
    for it in _by_collection(items, "sentinel-2-l1c"):
        truth = _read(_href(world_dir, it["assets"]["truth_mask"]))
        offset = it["assets"]["B10"]["raster:bands"][0]["offset"]
        b10 = _read(_href(world_dir, it["assets"]["B10"])).astype(float) * 1e-4 + offset
        t60 = truth.reshape(b10.shape[0], 6, b10.shape[1], 6)
        haze_free = ~binary_dilation((truth & (TRUTH_CLOUD | TRUTH_CIRRUS)) > 0, iterations=10)
        clear = haze_free.reshape(t60.shape).all(axis=(1, 3))
        cirrus = ((t60 & TRUTH_CIRRUS) > 0).all(axis=(1, 3)) & ((t60 & TRUTH_CLOUD) == 0).all(axis=(1, 3))
        if clear.any():
            assert 0.001 < np.median(b10[clear]) < 0.006
        if cirrus.sum() >= 3:
            seen_cirrus += 1
            assert np.median(b10[cirrus]) > 0.015
    assert seen_cirrus >= 1


def test_baseline_offset_on_clear_pixels(world_dir, world, items):
    """DN = reflectance * 10000 + 1000 from baseline 04.00 on, DN = reflectance * 10000 before."""
    found = {True: 0, False: 0}
    for it in _by_collection(items, "sentinel-2-l2a"):
        p = it["properties"]
        if p["eo:cloud_cover"] > 90:
            continue
        new = float(p["s2:processing_baseline"]) >= 4.0
        assert it["assets"]["B04"]["raster:bands"][0]["offset"] == (-0.1 if new else 0.0)
        assert ("_N0500_" in it["id"]) == new
        truth = _read(_href(world_dir, it["assets"]["truth_mask"]))
        clean = ~binary_dilation((truth & (TRUTH_CLOUD | TRUTH_CIRRUS | TRUTH_SHADOW)) > 0, iterations=10)
        if clean.sum() < 500:
            continue
        surface = clear_sky_reflectance(world["cfg"], p["s2:mgrs_tile"], dt.date.fromisoformat(p["datetime"][:10]))
        for band in ("B04", "B08"):
            dn = _read(_href(world_dir, it["assets"][band])).astype(float)
            idx = S2_L1C_BANDS.index(band)
            resid = dn[clean] - 10000.0 * surface[idx][clean]
            assert np.median(resid) == pytest.approx(1000.0 if new else 0.0, abs=4.0)
            # Sensor noise: ~0.002 reflectance over dark land .. ~0.007 over snow.
            robust_sd = 1.4826 * np.median(np.abs(resid - np.median(resid)))
            assert 10.0 < robust_sd < 80.0
        found[new] += 1
    assert found[True] >= 1 and found[False] >= 1, found


def test_reference_acquisitions_are_clear_and_pre_04(world, items):
    l2a = {it["id"]: it for it in _by_collection(items, "sentinel-2-l2a")}
    assert len(world["references"]) == 2
    for ref in world["references"]:
        it = l2a[ref["l2a_scene_id"]]
        p = it["properties"]
        assert float(p["s2:processing_baseline"]) < 4.0
        assert p["eo:cloud_cover"] == 0 and p["s2:cloud_shadow_percentage"] == 0
        assert ref["product"] == "_".join(ref["l2a_scene_id"].split("_")[:3]) + \
            f"_N9999_R{p['sat:relative_orbit']:03d}_T{p['s2:mgrs_tile']}"
        day = dt.date.fromisoformat(p["datetime"][:10])
        assert dt.date(2017, 6, 1) <= day <= dt.date(2018, 5, 31)


def test_s1_backscatter_by_class(world_dir, world, items):
    tile = world["tiles"][1]["id"]  # Finland: forest, water, wetlands
    lc = _read(world_dir / "landcover" / f"{tile}.tif")
    s1 = [it for it in _by_collection(items, "sentinel-1-grd")
          if it["bbox"] == next(i["bbox"] for i in items if i["properties"].get("s2:mgrs_tile") == tile)]
    assert s1
    vv = np.stack([_read(_href(world_dir, it["assets"]["vv"])) for it in s1]).astype(float)
    vh = np.stack([_read(_href(world_dir, it["assets"]["vh"])) for it in s1]).astype(float)
    assert np.isfinite(vv).all() and (vv > 0).all() and (vh > 0).all()
    # Class interiors (rivers are 2-5 pixels wide and every product is misregistered by metres).
    inner = {c: binary_erosion(lc == c, iterations=2) for c in np.unique(lc)}
    mean_db = {c: 10 * np.log10(np.median(vv[:, m])) for c, m in inner.items() if m.sum() > 100}
    assert len(mean_db) >= 2
    for c, db in mean_db.items():
        if c in (17, 18):
            assert db < -15, (c, db)
        elif c in (8, 9, 10):
            assert -10 < db < -4, (c, db)
    assert (vh.mean() < vv.mean())
    # Multiplicative speckle: a 20 m cell varies between acquisitions, ENL ~4.4.
    ratio = vv / vv.mean(axis=0, keepdims=True)
    assert 2.5 < 1.0 / ratio.var() < 8.0


# --------------------------------------------------------------------------------------
# reBEN reference
# --------------------------------------------------------------------------------------


def test_reben_patches_are_archive_cuts(world_dir, world, items):
    md = pd.read_parquet(world_dir / "reben" / "metadata.parquet")
    l2a = {it["id"]: it for it in _by_collection(items, "sentinel-2-l2a")}
    s1 = {it["id"]: it for it in _by_collection(items, "sentinel-1-grd")}
    n_checked = 0
    for ref in world["references"]:
        scene = l2a[ref["l2a_scene_id"]]
        rows = md[md.patch_id.str.startswith(ref["product"] + "_")]
        assert len(rows) == ref["patches"] == 4  # 240 px tile -> 2 x 2 patches
        for row in rows.itertuples():
            r, c = (int(v) for v in row.patch_id.rsplit("_", 2)[1:])
            folder = world_dir / "reben" / "BigEarthNet-S2" / ref["product"] / row.patch_id
            assert sorted(p.name for p in folder.iterdir()) == sorted(f"{row.patch_id}_{b}.tif" for b in S2_L2A_BANDS)
            for band in S2_L2A_BANDS:
                res = S2_BAND_GSD[band]
                n = 1200 // res
                with rasterio.open(folder / f"{row.patch_id}_{band}.tif") as src, \
                        rasterio.open(_href(world_dir, scene["assets"][band])) as arc:
                    win = Window(c * n, r * n, n, n)
                    assert (src.width, src.height) == (n, n) and src.dtypes[0] == "uint16"
                    assert src.crs == arc.crs
                    assert src.transform == arc.window_transform(win)
                    np.testing.assert_array_equal(src.read(1), arc.read(1, window=win))
            # S1: dB of the archive's linear values, same grid as the S2 patch.
            # reBEN layout: the S1 product folder is the S1 name without tile and grid indices.
            assert row.s1_name == f"{ref['s1_product']}_{ref['tile']}_{r}_{c}"
            assert s1_product_of(row.s1_name) == ref["s1_product"]
            s1_folder = world_dir / "reben" / "BigEarthNet-S1" / ref["s1_product"] / row.s1_name
            for pol in ("VV", "VH"):
                with rasterio.open(s1_folder / f"{row.s1_name}_{pol}.tif") as src, \
                        rasterio.open(_href(world_dir, s1[ref["s1_scene_id"]]["assets"][pol.lower()])) as arc:
                    win = Window(c * 120, r * 120, 120, 120)
                    assert src.dtypes[0] == "float32" and src.transform == arc.window_transform(win)
                    np.testing.assert_allclose(src.read(1), 10 * np.log10(arc.read(1, window=win)),
                                               atol=1e-4)
            n_checked += 1
    assert n_checked == len(md) == 8


def test_reben_reader_reads_the_demo_world_in_the_release_layout(world_dir, world):
    """The demo's reBEN folder has the real release layout: the reader derives every path from
    the names (no directory scan) and every band has its reBEN patch shape."""
    ref = ReBEN(world_dir / "reben")
    s1_products = {r["s1_product"] for r in world["references"]}
    assert {p.name for p in (world_dir / "reben" / "BigEarthNet-S1").iterdir()} == s1_products
    for row in ref.metadata.itertuples():
        assert ref.s1_dir(row.s1_name).parent.name == s1_product_of(row.s1_name)
        s1 = ref.read_s1(row.s1_name)
        assert s1.shape == (2, 120, 120) and s1.dtype == np.float32
        bands = ref.read_s2(row.patch_id)
        assert {b: a.shape for b, a in bands.items()} == {
            b: (1200 // S2_BAND_GSD[b],) * 2 for b in S2_L2A_BANDS}


def test_reben_metadata_matches_landcover_and_truth(world_dir, world, items):
    md = pd.read_parquet(world_dir / "reben" / "metadata.parquet")
    assert list(md.columns) == ["patch_id", "labels", "split", "country", "s1_name", "s2v1_name",
                                "contains_seasonal_snow", "contains_cloud_or_shadow"]
    refs = {r["product"]: r for r in world["references"]}
    countries = {t["id"]: t["country"] for t in world["tiles"]}
    l2a = {it["id"]: it for it in _by_collection(items, "sentinel-2-l2a")}
    for row in md.itertuples():
        product, r, c = row.patch_id.rsplit("_", 2)
        ref = refs[product]
        r, c = int(r), int(c)
        lc = _read(world_dir / "landcover" / f"{ref['tile']}.tif")[r * 120:(r + 1) * 120, c * 120:(c + 1) * 120]
        frac = np.bincount(lc.ravel(), minlength=19) / lc.size
        expected = [BEN19_CLASSES[k] for k in range(19) if frac[k] >= 0.01]
        assert list(row.labels) == expected and 1 <= len(expected) <= 8
        assert row.country == countries[ref["tile"]]
        assert row.split in ("train", "validation", "test")
        assert row.s2v1_name == "_".join(product.split("_")[:3]) + f"_{r}_{c}"
        truth = _read(_href(world_dir, l2a[ref["l2a_scene_id"]]["assets"]["truth_mask"]))
        t = truth[r * 120:(r + 1) * 120, c * 120:(c + 1) * 120]
        assert row.contains_seasonal_snow == bool((t & TRUTH_SNOW).any())
        assert row.contains_cloud_or_shadow == bool((t & (TRUTH_CLOUD | TRUTH_CIRRUS | TRUTH_SHADOW)).any())
        assert not row.contains_cloud_or_shadow  # references are forced clear


def test_labels_learnable_from_s2_better_than_s1(world_dir, world, items):
    """A nearest-centroid pixel classifier recovers the land cover from S2, less well from
    (multilooked) S1."""
    l2a = {it["id"]: it for it in _by_collection(items, "sentinel-2-l2a")}
    s1 = {it["id"]: it for it in _by_collection(items, "sentinel-1-grd")}
    ref = world["references"][0]
    lc = _read(world_dir / "landcover" / f"{ref['tile']}.tif").ravel()
    s2x = np.stack([_read(_href(world_dir, l2a[ref["l2a_scene_id"]]["assets"][b])).ravel()
                    for b in ("B02", "B03", "B04", "B08")], axis=1).astype(float)
    # S1 multilooked first (5 x 5 boxcar in linear power), as any pixel classifier of GRD does.
    s1x = np.stack([10 * np.log10(uniform_filter(_read(_href(world_dir, s1[ref["s1_scene_id"]]["assets"][p])), 5)
                                  ).ravel() for p in ("vv", "vh")], axis=1).astype(float)
    rng = np.random.default_rng(0)
    idx = rng.permutation(lc.size)
    train, test = idx[: lc.size // 2], idx[lc.size // 2:]

    def accuracy(x):
        classes = np.unique(lc[train])
        mu = np.stack([x[train][lc[train] == k].mean(axis=0) for k in classes])
        sd = x[train].std(axis=0)
        d = (((x[test][:, None, :] - mu[None]) / sd) ** 2).sum(axis=-1)
        return float((classes[d.argmin(axis=1)] == lc[test]).mean())

    majority = float((lc[test] == np.bincount(lc[train]).argmax()).mean())
    acc_s2, acc_s1 = accuracy(s2x), accuracy(s1x)
    assert acc_s2 > 0.7 and acc_s2 > acc_s1 > majority + 0.05, (acc_s2, acc_s1, majority)


# --------------------------------------------------------------------------------------
# climatology and catalog
# --------------------------------------------------------------------------------------


def test_climatology_files(world_dir, world):
    folder = world_dir / "climatology"
    names = [monthly_mean_name(m) for m in range(1, 13)] + [SD_NAME]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    means = []
    for name in names:
        with rasterio.open(folder / name) as src:
            assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "uint16" and src.nodata == CLIM_NODATA
            assert src.res == pytest.approx((1.0, 1.0)) and (src.width, src.height) == (360, 180)
            a = src.read(1)
            land = a != CLIM_NODATA
            assert 0.15 < land.mean() < 0.5, "land mask: continents, not the whole globe"
            vals = a[land]
            if name == SD_NAME:
                assert 100 <= vals.min() and vals.max() <= 1500
            else:
                assert 300 <= vals.min() and vals.max() <= 9700 and 3000 < vals.mean() < 7500
                means.append(a)
            for tile in world["tiles"]:
                row, col = src.index(tile["centre_lon"], tile["centre_lat"])
                assert a[row, col] != CLIM_NODATA, (name, tile["id"])
    jan, jul = means[0].astype(float), means[6].astype(float)
    with rasterio.open(folder / names[0]) as src:
        r_med, c_med = src.index(-4.0, 39.0)  # inner Spain: dry Mediterranean summer
        r_sah, c_sah = src.index(10.0, 23.0)  # Sahara: clear subtropics
        r_itcz, c_itcz = src.index(20.0, 0.0)  # Congo: ITCZ
    assert jul[r_med, c_med] < jan[r_med, c_med] - 1500
    assert jan[r_sah, c_sah] < 3500 and jan[r_itcz, c_itcz] > 6000
    for tile in world["tiles"]:
        for month, (mean, _sd) in tile["climatology_percent"].items():
            with rasterio.open(folder / monthly_mean_name(int(month))) as src:
                assert next(src.sample([(tile["centre_lon"], tile["centre_lat"])]))[0] / 100 == pytest.approx(mean)


def test_catalog_is_stac(world_dir, items):
    import pystac

    for it in items[:: max(1, len(items) // 10)]:
        item = pystac.Item.from_dict(it)
        assert item.collection_id in ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd")
        assert it["properties"]["datetime"].endswith("Z")
    cols = json.loads((world_dir / "catalog" / "collections.json").read_text())
    assert [c["id"] for c in cols] == ["sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd"]
    for c in cols:
        pystac.Collection.from_dict(c)
        single = json.loads((world_dir / "catalog" / "collections" / f"{c['id']}.json").read_text())
        assert single == c
    s2 = next(it for it in items if it["collection"] == "sentinel-2-l2a")
    p = s2["properties"]
    assert p["grid:code"] == f"MGRS-{p['s2:mgrs_tile']}" and p["constellation"] == "sentinel-2"
    assert f"{p['mgrs:utm_zone']:02d}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}" == p["s2:mgrs_tile"]
    assert s2["assets"]["truth_mask"]["roles"] == ["demo-truth"]
    s1 = next(it for it in items if it["collection"] == "sentinel-1-grd")
    assert s1["properties"]["sar:polarizations"] == ["VV", "VH"]
    assert s1["assets"]["vv"]["raster:bands"][0]["unit"] == "linear"


def test_local_archive_reads_the_demo_catalog(world_dir, world):
    """The package's own adapter understands the demo catalog (as for a real archive)."""
    from cloudyeo.archives.base import SearchQuery
    from cloudyeo.archives.local import LocalStacArchive

    arc = LocalStacArchive(world_dir / "catalog" / "items.ndjson")
    tile = world["tiles"][0]
    start = dt.datetime.fromisoformat(tile["date_start"]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(tile["date_end"]).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    recs = arc.search(SearchQuery(collection="sentinel-2-l2a", start=start, end=end, tile=tile["id"]))
    assert len(recs) == tile["s2_scenes"]
    for r in recs:
        assert r.radiometric_offset == (-1000.0 if float(r.processing_baseline) >= 4 else 0.0)
        assert r.assets["B02"].epsg == tile["epsg"] and Path(r.assets["B02"].href).exists()
