"""The Planet-CR demo world: determinism, layout, UDM2, WorldCover codes, grids, catalogs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudyeo.archives import SearchQuery
from cloudyeo.archives.local import LocalStacArchive
from cloudyeo.archives.planet import LocalPlanetArchive
from cloudyeo.demo.planet import (
    KNOWN_AOIS,
    OPTICAL_ASSET,
    UDM2_ASSET,
    UDM2_BANDS,
    generate_planet_world,
    load_planet_world,
    normalise_cfg,
    plan_world,
)
from cloudyeo.landcover import WORLDCOVER_CLASSES

TINY = {"seed": 11, "aois": ["usa-iowa", "swiss-alps"], "aoi_size_px": 120, "days": 8,
        "daily_probability": 0.9, "s1_revisit_days": 3, "missing_udm2_fraction": 0.05,
        "partial_nodata_fraction": 0.15}


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    return generate_planet_world(TINY, tmp_path_factory.mktemp("pw") / "demo-planet",
                                 progress=False, workers=2)


@pytest.fixture(scope="module")
def world(world_dir) -> dict:
    return load_planet_world(world_dir)


def _features(world_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (world_dir / "catalog" / "psscene.ndjson").read_text().splitlines()]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_independent_of_workers(world_dir, tmp_path):
    again = generate_planet_world(TINY, tmp_path / "again", progress=False, workers=1)
    assert _digest(again) == _digest(world_dir)


def test_default_world_spans_continents_and_zones():
    cfg, setups, planet, s1 = plan_world(None)  # schedules only, no pixels
    continents = {KNOWN_AOIS[su.aoi.id].continent for su in setups}
    zones = {su.aoi.epsg for su in setups}
    assert len(setups) >= 6 and len(continents) >= 3 and len(zones) == len(setups)
    assert {e // 100 for e in zones} == {326, 327}  # both hemispheres
    per_aoi = {su.aoi.id: sum(a.aoi_id == su.aoi.id for a in planet) for su in setups}
    assert all(n >= 0.6 * cfg["days"] for n in per_aoi.values())  # near-daily
    assert any(not a.has_udm2 for a in planet) and any(a.sky.nodata for a in planet)
    gaps = {round((b.start - a.start).total_seconds() / 86400) for a, b in zip(s1, s1[1:]) if a.aoi_id == b.aoi_id}
    assert gaps == {cfg["s1_revisit_days"]}


def test_layout_and_world_json(world_dir, world):
    assert world["generator"] == "cloudyeo.demo.planet" and world["cfg"] == normalise_cfg(TINY)
    for key in ("psscene_catalog", "stac_catalog", "collections"):
        assert (world_dir / world["layout"][key]).is_file()
    assert world["counts"]["aois"] == 2 and world["counts"]["psscene"] == len(_features(world_dir))
    assert world["scenes_without_udm2"] and world["scenes_with_partial_nodata"]
    for a in world["aois"]:
        # The 3 m lattice is shifted 1-2 m (each axis) from the 10 m one, as in the real data.
        dx, dy = a["planet_lattice_offset_m"]
        assert 1.0 <= abs(dx) <= 2.0 and 1.0 <= abs(dy) <= 2.0
        t3, t10 = a["planet_transform_3m"], a["transform_10m"]
        assert t3[0] == 3.0 and t10[0] == 10.0
        assert t3[2] == pytest.approx(t10[2] - 15 + dx) and t3[5] == pytest.approx(t10[5] + 15 + dy)


def test_psscene_features_use_planet_property_names(world_dir, world):
    missing = set(world["scenes_without_udm2"])
    for f in _features(world_dir):
        p = f["properties"]
        assert p["item_type"] == "PSScene" and p["pixel_resolution"] == 3.0
        assert 0.0 <= p["cloud_cover"] <= 1.0 and p["instrument"] in ("PSB.SD", "PS2.SD")
        assert p["epsg_code"] in (32615, 32632) and p["acquired"].endswith("Z")
        assert (world_dir / "catalog" / f["assets"][OPTICAL_ASSET]["href"]).resolve().is_file()
        if f["id"] in missing:
            assert UDM2_ASSET not in f["assets"] and "clear_percent" not in p
            assert not list((world_dir / "archive" / "psscene" / f["id"]).glob("*udm2*"))
        else:
            assert 0 <= p["clear_percent"] <= 100
            assert (world_dir / "catalog" / f["assets"][UDM2_ASSET]["href"]).resolve().is_file()


def test_udm2_bands_are_consistent_with_the_pixels(world_dir, world):
    feats = {f["id"]: f for f in _features(world_dir)}
    partial = [i for i in world["scenes_with_partial_nodata"] if i not in world["scenes_without_udm2"]]
    cloudy = [i for i, v in world["scene_cloud_percent"].items() if v > 5 and i not in world["scenes_without_udm2"]]
    for item in {partial[0], cloudy[0]}:
        folder = world_dir / "archive" / "psscene" / item
        with rasterio.open(folder / f"{item}_3B_udm2.tif") as f:
            assert f.count == 8 and f.dtypes[0] == "uint8" and f.descriptions == UDM2_BANDS
            udm = f.read()
        with rasterio.open(folder / f"{item}_3B_AnalyticMS_toar.tif") as f:
            assert f.count == 4 and f.dtypes[0] == "uint16" and f.nodata == 0
            assert f.descriptions == ("blue", "green", "red", "nir")
            dn = f.read()
        blackfill = (udm[7] & 1) > 0
        np.testing.assert_array_equal(blackfill, np.all(dn == 0, axis=0))
        classes = udm[:6].astype(int).sum(axis=0)
        assert (classes[~blackfill] == 1).all() and (classes[blackfill] == 0).all()  # exclusive
        assert udm[6].max() <= 100
        cloud = 100 * udm[5][~blackfill].mean()
        assert cloud == pytest.approx(world["scene_cloud_percent"][item], abs=1e-3)
        assert feats[item]["properties"]["cloud_cover"] == pytest.approx(cloud / 100, abs=0.006)
        # Clouds are bright in every band, clear land is not.
        clear = udm[0].astype(bool)
        if udm[5].any() and clear.any():
            assert dn[0][udm[5].astype(bool)].mean() > 2 * dn[0][clear].mean()
    assert partial and 0 < world["counts"]["psscene"]


def test_worldcover_codes_and_s1(world_dir, world):
    codes = set()
    for a in world["aois"]:
        item = f"ESA_WorldCover_10m_2021_v200_{a['id']}"
        with rasterio.open(world_dir / "archive" / "esa-worldcover" / a["id"] / f"{item}_Map.tif") as f:
            assert f.dtypes[0] == "uint8" and f.nodata == 0 and list(f.transform)[:6] == a["transform_10m"]
            arr = f.read(1)
        codes |= set(np.unique(arr).tolist())
        assert set(np.unique(arr).tolist()) == {int(c) for c in a["worldcover_pixels"]}
    assert codes <= set(WORLDCOVER_CLASSES) and 0 not in codes
    assert {70, 100} <= codes  # the Alps AOI carries snow/ice and moss/lichen
    stac = LocalStacArchive(world_dir / "catalog" / "items.ndjson")
    s1 = stac.records("sentinel-1-grd")
    assert s1 and all(r.sar_units == "linear" and {"VV", "VH"} <= set(r.assets) for r in s1)
    with rasterio.open(s1[0].assets["VV"].href) as f:
        vv = f.read(1)
    db = 10 * np.log10(vv[np.isfinite(vv)])
    assert -30 < np.median(db) < 0


def test_local_adapter_gives_planet_records(world_dir, world):
    arch = LocalPlanetArchive(world_dir / "catalog" / "psscene.ndjson", asset_type=OPTICAL_ASSET)
    aoi = world["aois"][0]
    ring = [[aoi["bbox"][0], aoi["bbox"][1]], [aoi["bbox"][2], aoi["bbox"][1]],
            [aoi["bbox"][2], aoi["bbox"][3]], [aoi["bbox"][0], aoi["bbox"][3]], [aoi["bbox"][0], aoi["bbox"][1]]]
    import datetime as dt

    q = SearchQuery("planetscope", dt.datetime(2022, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                    intersects={"type": "Polygon", "coordinates": [ring]})
    recs = arch.search(q)
    assert recs and all(r.collection == "planetscope" and r.quantification == 10000.0 for r in recs)
    assert {r.id for r in recs} == {f["id"] for f in _features(world_dir)
                                    if f["properties"]["cloudyeo:aoi"] == aoi["id"]}
    r = recs[0]
    assert Path(arch.download_asset(r, OPTICAL_ASSET)).is_file()
    assert r.assets[OPTICAL_ASSET].transform == tuple(aoi["planet_transform_3m"])
    assert (UDM2_ASSET in r.assets) == (r.id not in world["scenes_without_udm2"])


def test_interrupted_generation_never_looks_complete(tmp_path, monkeypatch):
    import cloudyeo.demo.planet.world as w

    out = tmp_path / "w"
    out.mkdir()
    (out / "world.json").write_text("{}")  # a stale marker from an older run

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(w, "run_tasks", boom)
    with pytest.raises(RuntimeError, match="killed"):
        generate_planet_world(TINY, out, progress=False, workers=1)
    assert not (out / "world.json").exists()
    with pytest.raises(FileNotFoundError, match="generate-planet"):
        load_planet_world(out)
    with pytest.raises(ValueError, match="demo_planet.aoi_size_px"):
        normalise_cfg({"aoi_size_px": 100})
    with pytest.raises(ValueError, match="unknown AOI"):
        normalise_cfg({"aois": ["atlantis"]})
