"""Generate the demo world: climatology, archive (COGs + STAC), land cover and reBEN reference.

Order of work (``world.json`` is written last, atomically, so an interrupted run never looks
complete; a stale one is removed first together with the generated folders):

1. climatology (the scene cloud covers are drawn from it),
2. schedules (every scalar of every acquisition, in the main process),
3. pixel tasks in a pool (land cover per tile, one task per S2 datatake (L2A + L1C + truth) and
   per S1 acquisition), each seeded by ``(seed, tile, date)`` so results do not depend on the
   pool,
4. reBEN patches cut from the written archive files (one task per reference product),
5. catalog (``items.ndjson``, ``collections.json``), ``reben/metadata.parquet``, ``world.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio
from rasterio.windows import Window

from cloudyeo.atomic import write_text
from cloudyeo.config import section_defaults
from cloudyeo.demo.atmosphere import (
    TOA_TRANSMITTANCE,
    b10_toa,
    block_mean,
    compose,
    make_sky,
    scene_classification,
    toa_reflectance,
    truth_mask,
)
from cloudyeo.demo.climatology import build_climatology, write_climatology
from cloudyeo.demo.generation import WORLD_FILE, clear_world, disk_usage, run_tasks, with_defaults, worker_count
from cloudyeo.demo.rasters import discard_float_bits, write_cog, write_gtiff
from cloudyeo.demo.sar_geometry import displace, displacement_truth, incidence_angles, s1_displacement
from cloudyeo.demo.schedule import (
    S1Acquisition,
    S2Acquisition,
    TileSchedule,
    build_schedule,
    iso,
    season_slots,
)
from cloudyeo.demo.stac import (
    COLLECTION_L1C,
    COLLECTION_L2A,
    COLLECTION_S1,
    COLLECTIONS,
    collections,
    s1_item,
    s2_l1c_item,
    s2_l2a_item,
)
from cloudyeo.demo.surface import BAND_INDEX, sar_sigma0_db, surface_reflectance, tile_surface
from cloudyeo.demo.tiles import PIXEL_M, TileSpec, make_tile, seeded_rng
from cloudyeo.masks.truth import TRUTH_CIRRUS, TRUTH_CLOUD, TRUTH_SHADOW, TRUTH_SNOW
from cloudyeo.sentinel import (
    BEN19_CLASSES,
    S2_BAND_GSD,
    S2_L1C_BANDS,
    S2_L2A_BANDS,
    S2_QUANTIFICATION,
)

GENERATOR_VERSION = "2.1.0"
GENERATED_DIRS = ("archive", "catalog", "climatology", "landcover", "reben")

# The demo section with nothing set (defaults live in the config schema only).
DEFAULT_CFG: dict[str, Any] = section_defaults("demo")

# Per-acquisition sensor noise (reflectance, 1 sigma), signal dependent like a real radiometric
# noise model: sigma = sqrt(floor_b^2 + (SENSOR_NOISE_REL * reflectance)^2), i.e. ~0.002 over dark
# land, ~0.003 over bright vegetation in the NIR, ~0.005 over clouds. B01..B12 incl. B10.
SENSOR_NOISE_FLOOR = np.array([.003, .002, .002, .002, .002, .002, .002, .002, .002, .003,
                               .0004, .0025, .0025], dtype=np.float32)
SENSOR_NOISE_REL = 0.008
SAR_ENL = 4.4
SAR_MANTISSA_BITS = 8
LABEL_MIN_FRACTION = 0.01
SPLITS = (("train", 0.6), ("validation", 0.2), ("test", 0.2))
LANDCOVER_NODATA = 255


# --------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------


def normalise_cfg(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults and check the demo section (errors name the key)."""
    out = with_defaults("demo", DEFAULT_CFG, cfg)
    out["tiles"] = [str(t).strip().upper() for t in out["tiles"]]
    if not out["tiles"]:
        raise ValueError("demo.tiles: at least one tile is needed")
    if len(set(out["tiles"])) != len(out["tiles"]):
        raise ValueError(f"demo.tiles: duplicate tile ids in {out['tiles']}")
    for key in ("seed", "tile_size_px", "references_per_tile", "days_around_reference",
                "s2_revisit_days", "s1_revisit_days"):
        out[key] = int(out[key])
        if key != "seed" and out[key] < 1:
            raise ValueError(f"demo.{key}: must be >= 1, got {out[key]}")
    if out["tile_size_px"] % 120:
        raise ValueError(f"demo.tile_size_px: must be a multiple of 120, got {out['tile_size_px']}")
    out["climatology_resolution_deg"] = float(out["climatology_resolution_deg"])
    if not 0 < out["climatology_resolution_deg"] <= 10:
        raise ValueError("demo.climatology_resolution_deg: must be in (0, 10]")
    return out


# --------------------------------------------------------------------------------------
# pixel tasks (run in worker processes)
# --------------------------------------------------------------------------------------


def to_dn(refl: np.ndarray, offset_dn: float) -> np.ndarray:
    """Reflectance -> uint16 DN with the baseline's offset (DN = refl * 10000 - offset)."""
    dn = np.rint(refl.astype(np.float64) * S2_QUANTIFICATION - offset_dn)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def _scl_percent(scl: np.ndarray) -> dict[int, float]:
    counts = np.bincount(scl.ravel(), minlength=12)
    return {int(c): 100.0 * float(n) / scl.size for c, n in enumerate(counts) if n}


def swath_valid(tile: TileSpec, swath_edge: float | None, res: int = 10) -> np.ndarray | None:
    """Pixels inside the swath at ``res`` (None: the scene covers the whole tile).

    The swath edge is a slanted line: valid where ``col/W + 0.25 * row/H < swath_edge``. A
    coarse pixel is valid only when all its 10 m pixels are.
    """
    if swath_edge is None:
        return None
    h, w = tile.shape_at(10)
    rr, cc = np.mgrid[0:h, 0:w]
    valid = (cc + 0.5) / w + 0.25 * (rr + 0.5) / h < swath_edge
    k = res // 10
    return valid.reshape(h // k, k, w // k, k).all(axis=(1, 3)) if k > 1 else valid


def swath_footprint(tile: TileSpec, swath_edge: float) -> dict[str, Any]:
    """GeoJSON (EPSG:4326) of the part of the tile inside the swath."""
    import shapely
    from shapely.geometry import Polygon, box, mapping

    h, w = tile.shape_at(10)
    half = Polygon([(0, 0), (swath_edge * w, 0), ((swath_edge - 0.25) * w, h), (0, h)])
    pix = box(0, 0, w, h).intersection(half)
    t = tile.transform
    to_ll = tile._to_lonlat
    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        x, y = t @ (xy[:, 0], xy[:, 1])
        return np.column_stack(to_ll.transform(x, y))

    geo = shapely.transform(pix, to_lonlat)
    geom = mapping(geo.buffer(0))
    return json.loads(json.dumps(geom))


def render_s2(tile: TileSpec, seed: int, acq: S2Acquisition, out: Path, with_l2a: bool = True) -> dict[str, Any]:
    """Write L2A (12 bands + SCL, unless ``with_l2a`` is False), L1C (13 bands) and the truth mask
    of one datatake. Pixels outside a partial scene's swath are nodata (DN 0, SCL 0)."""
    surf = tile_surface(tile, seed)
    day = acq.sensing.date()
    clear, snow, water = surface_reflectance(surf, day)
    rng = seeded_rng(seed, "s2-pixels", tile.id, day.isoformat())
    sky = make_sky(rng, clear.shape[1:], acq.sky)
    boa = compose(clear, sky, acq.sky.shadow_strength)
    truth = truth_mask(sky, snow, water)
    scl = scene_classification(truth, sky, clear)
    toa = toa_reflectance(boa, acq.sky.aerosol)
    b10 = b10_toa(sky, acq.sky.aerosol)
    t_band = TOA_TRANSMITTANCE ** (0.8 + 0.2 * acq.sky.aerosol)
    offset = acq.offset_dn
    l2a_dir = out / "archive" / COLLECTION_L2A / acq.l2a_id
    l1c_dir = out / "archive" / COLLECTION_L1C / acq.l1c_id

    def cut(dn: np.ndarray, res: int) -> np.ndarray:
        valid = swath_valid(tile, acq.swath_edge, res)
        return dn if valid is None else np.where(valid, dn, 0).astype(dn.dtype)

    for band in S2_L1C_BANDS:
        res = S2_BAND_GSD[band]
        k = res // 10
        i = BAND_INDEX[band]
        transform = tile.transform_at(res)
        signal = block_mean(b10 if band == "B10" else boa[i], k)
        sigma = np.sqrt(SENSOR_NOISE_FLOOR[i] ** 2 + (SENSOR_NOISE_REL * signal) ** 2)
        noise = (rng.standard_normal(signal.shape, dtype=np.float32) * sigma).astype(np.float32)
        if band == "B10":
            l1c = signal + noise
        else:
            l2a = signal + noise
            if with_l2a:
                write_cog(l2a_dir / f"{band}.tif", cut(to_dn(l2a, offset), res), transform, tile.epsg,
                          nodata=0)
            # L2A is derived from L1C: the same detector noise, seen through the atmosphere.
            l1c = block_mean(toa[i], k) + noise * t_band[i]
        if band != acq.missing_band:
            write_cog(l1c_dir / f"{band}.tif", cut(to_dn(l1c, offset), res), transform, tile.epsg,
                      nodata=0)
    scl = cut(scl, 20)
    if with_l2a:
        write_cog(l2a_dir / "SCL.tif", scl, tile.transform_at(20), tile.epsg, nodata=0, predictor=1)
    write_cog(out / "archive" / "truth" / f"{acq.datatake}.tif", truth, tile.transform, tile.epsg,
              nodata=None, predictor=1)
    valid10 = swath_valid(tile, acq.swath_edge, 10)
    cloudy = (truth & (TRUTH_CLOUD | TRUTH_CIRRUS)) > 0
    # Like real metadata, percentages refer to the valid (in-swath) pixels.
    l1c_cloud = 100.0 * float(np.mean(cloudy if valid10 is None else cloudy[valid10]))
    valid20 = swath_valid(tile, acq.swath_edge, 20)
    items = [s2_l1c_item(acq, tile, l1c_cloud)]
    if with_l2a:
        items.insert(0, s2_l2a_item(acq, tile, _scl_percent(scl if valid20 is None else scl[valid20])))
    for item in items:
        if acq.swath_edge is not None:
            item["geometry"] = swath_footprint(tile, acq.swath_edge)
            ring = item["geometry"]["coordinates"][0]
            item["bbox"] = [min(p[0] for p in ring), min(p[1] for p in ring),
                            max(p[0] for p in ring), max(p[1] for p in ring)]
            item["properties"]["s2:nodata_pixel_percentage"] = round(100.0 * float(1 - cast(np.ndarray, valid10).mean()), 4)  # swath edge: a mask
        if acq.missing_band is not None and item["collection"] == COLLECTION_L1C:
            item["assets"].pop(acq.missing_band, None)
    return {"items": items}


def render_s1(tile: TileSpec, seed: int, acq: S1Acquisition, out: Path) -> dict[str, Any]:
    """Write VV/VH sigma0 (linear power, float32, speckled) on the tile's 10 m grid, seen at the
    acquisition's incidence angles and displaced by its geolocation error and terrain distortion."""
    surf = tile_surface(tile, seed)
    day = acq.start.date()
    rng = seeded_rng(seed, "s1-pixels", tile.id, day.isoformat())
    theta = incidence_angles(surf.landcover.shape, acq.incidence_near, acq.incidence_far,
                             acq.orbit_state == "descending")
    db = sar_sigma0_db(surf, day, rng, theta)
    d_row, d_col = s1_displacement(surf.dem_error, acq.shift_m, acq.incidence_near, acq.incidence_far,
                                   acq.orbit_state, PIXEL_M)
    lin_mean = displace(10.0 ** (db.astype(np.float64) / 10.0), d_row, d_col)
    # IW GRDH: ~20 m resolution at 10 m pixel spacing, ENL ~4.4 per resolution cell. The mean
    # backscatter is averaged to 20 m cells, speckled, and each cell fills 2 x 2 pixels.
    mean20 = block_mean(lin_mean, 2)
    speckle = rng.gamma(SAR_ENL, 1.0 / SAR_ENL, size=mean20.shape)
    lin = np.repeat(np.repeat(mean20 * speckle, 2, axis=1), 2, axis=2)
    folder = out / "archive" / COLLECTION_S1 / acq.scene_id
    for i, pol in enumerate(("vv", "vh")):
        arr = discard_float_bits(lin[i].astype(np.float32), SAR_MANTISSA_BITS)
        write_cog(folder / f"{pol}.tif", arr, tile.transform, tile.epsg, nodata=float("nan"),
                  predictor=3)
    truth = {
        "scene_id": acq.scene_id, "tile": tile.id, "orbit_state": acq.orbit_state,
        "incidence_near_deg": acq.incidence_near, "incidence_far_deg": acq.incidence_far,
        "geolocation_shift_m": list(acq.shift_m), **displacement_truth(d_row, d_col, PIXEL_M),
    }
    return {"items": [s1_item(acq, tile)], "s1_truth": truth}


def render_landcover(tile: TileSpec, seed: int, out: Path) -> dict[str, Any]:
    surf = tile_surface(tile, seed)
    write_cog(out / "landcover" / f"{tile.id}.tif", surf.landcover, tile.transform, tile.epsg,
              nodata=LANDCOVER_NODATA, predictor=1)
    # Truth for S1 misregistration: the terrain model's height error (cloudyeo.demo.sar_geometry).
    write_cog(out / "archive" / "truth" / "dem_error" / f"{tile.id}.tif", surf.dem_error, tile.transform,
              tile.epsg, nodata=None, predictor=3)
    return {}


def reference_product_name(acq: S2Acquisition) -> str:
    return f"{acq.platform}_MSIL2A_{acq.sensing:%Y%m%dT%H%M%S}_N9999_R{acq.relative_orbit:03d}_T{acq.tile}"


def s1_reference_product(s1: S1Acquisition) -> str:
    """The reBEN S1 product folder: the S1 product name up to its start time (as released)."""
    return f"{s1.platform}_IW_GRDH_1SDV_{s1.start:%Y%m%dT%H%M%S}"


def s1_patch_prefix(s1: S1Acquisition, tile: TileSpec) -> str:
    """``<S1 product>_<tile>``: an S1 patch name is this plus ``_<row>_<col>``."""
    return f"{s1_reference_product(s1)}_{tile.id}"


def render_reference(tile: TileSpec, seed: int, acq: S2Acquisition, s1: S1Acquisition,
                     out: Path) -> dict[str, Any]:
    """Cut the reBEN patches of one reference acquisition from the archive files."""
    product = reference_product_name(acq)
    s1_product = s1_reference_product(s1)
    s1_prefix = s1_patch_prefix(s1, tile)
    l2a_dir = out / "archive" / COLLECTION_L2A / acq.l2a_id
    s1_dir = out / "archive" / COLLECTION_S1 / s1.scene_id
    truth_path = out / "archive" / "truth" / f"{acq.datatake}.tif"
    s2_root = out / "reben" / "BigEarthNet-S2" / product
    s1_root = out / "reben" / "BigEarthNet-S1" / s1_product  # reBEN: one folder per S1 product
    surf = tile_surface(tile, seed)
    with rasterio.open(truth_path) as src:
        truth = src.read(1)
    bands = {b: rasterio.open(l2a_dir / f"{b}.tif") for b in S2_L2A_BANDS}
    pols = {p: rasterio.open(s1_dir / f"{p}.tif") for p in ("vv", "vh")}
    rows = []
    try:
        for r in range(tile.patches_per_side):
            for c in range(tile.patches_per_side):
                patch_id = f"{product}_{r}_{c}"
                for b, src in bands.items():
                    ro, co, n = tile.patch_window(r, c, S2_BAND_GSD[b])
                    win = Window(co, ro, n, n)
                    write_gtiff(s2_root / patch_id / f"{patch_id}_{b}.tif", src.read(1, window=win),
                                src.window_transform(win), tile.epsg)
                s1_name = f"{s1_prefix}_{r}_{c}"
                ro, co, n = tile.patch_window(r, c, 10)
                win = Window(co, ro, n, n)
                for p, src in pols.items():
                    lin = src.read(1, window=win).astype(np.float64)
                    db = (10.0 * np.log10(np.maximum(lin, 1e-10))).astype(np.float32)
                    write_gtiff(s1_root / s1_name / f"{s1_name}_{p.upper()}.tif", db,
                                src.window_transform(win), tile.epsg, predictor=3)
                lc = surf.landcover[ro:ro + n, co:co + n]
                frac = np.bincount(lc.ravel(), minlength=len(BEN19_CLASSES)) / lc.size
                labels = [BEN19_CLASSES[k] for k in range(len(BEN19_CLASSES))
                          if frac[k] >= LABEL_MIN_FRACTION]
                t = truth[ro:ro + n, co:co + n]
                rows.append({
                    "patch_id": patch_id,
                    "labels": labels,
                    "country": tile.country,
                    "s1_name": s1_name,
                    "s2v1_name": f"{acq.platform}_MSIL2A_{acq.sensing:%Y%m%dT%H%M%S}_{r}_{c}",
                    "contains_seasonal_snow": bool(((t & TRUTH_SNOW) > 0).any()),
                    "contains_cloud_or_shadow": bool(
                        ((t & (TRUTH_CLOUD | TRUTH_CIRRUS | TRUTH_SHADOW)) > 0).any()),
                    "_location": f"{tile.id}_{r}_{c}",
                })
    finally:
        for src in list(bands.values()) + list(pols.values()):
            src.close()
    return {"rows": rows, "reference": {
        "product": product, "tile": tile.id, "datetime": iso(acq.sensing),
        "l2a_scene_id": acq.l2a_id, "l1c_scene_id": acq.l1c_id, "s1_scene_id": s1.scene_id,
        "s1_product": s1_product, "patches": len(rows),
    }}


def render_task(task: tuple) -> dict[str, Any]:
    kind, tile, seed, payload, out = task
    if kind == "s2":
        return render_s2(tile, seed, payload, out)
    if kind == "s2-l1c":
        return render_s2(tile, seed, payload, out, with_l2a=False)
    if kind == "s1":
        return render_s1(tile, seed, payload, out)
    if kind == "landcover":
        return render_landcover(tile, seed, out)
    if kind == "reference":
        acq, s1 = payload
        return render_reference(tile, seed, acq, s1, out)
    raise ValueError(f"unknown task kind {kind!r}")


# --------------------------------------------------------------------------------------
# the whole world
# --------------------------------------------------------------------------------------


def _assign_splits(rows: list[dict[str, Any]], seed: int) -> None:
    """Split by patch location (both references of one place share a split): ~60/20/20."""
    locations = sorted({r["_location"] for r in rows})
    order = seeded_rng(seed, "splits").permutation(len(locations))
    n = len(locations)
    bounds, acc = [], 0.0
    for name, share in SPLITS:
        acc += share
        bounds.append((name, round(acc * n)))
    split_of = {}
    for rank, idx in enumerate(order):
        split_of[locations[idx]] = next(name for name, b in bounds if rank < b)
    for r in rows:
        r["split"] = split_of[r.pop("_location")]


def _write_metadata(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sorted(rows, key=lambda r: r["patch_id"])
    table = pa.table({
        "patch_id": pa.array([r["patch_id"] for r in rows], pa.string()),
        "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.string())),
        "split": pa.array([r["split"] for r in rows], pa.string()),
        "country": pa.array([r["country"] for r in rows], pa.string()),
        "s1_name": pa.array([r["s1_name"] for r in rows], pa.string()),
        "s2v1_name": pa.array([r["s2v1_name"] for r in rows], pa.string()),
        "contains_seasonal_snow": pa.array([r["contains_seasonal_snow"] for r in rows], pa.bool_()),
        "contains_cloud_or_shadow": pa.array([r["contains_cloud_or_shadow"] for r in rows], pa.bool_()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _item_sort_key(item: dict[str, Any]) -> tuple:
    props = item["properties"]
    return (COLLECTIONS.index(item["collection"]), props.get("s2:mgrs_tile", ""),
            props["datetime"], item["id"])


def _write_catalog(items: list[dict[str, Any]], folder: Path) -> None:
    items = sorted(items, key=_item_sort_key)
    lines = "".join(json.dumps(it, separators=(",", ":")) + "\n" for it in items)
    write_text(folder / "items.ndjson", lines)
    cols = collections(items)
    write_text(folder / "collections.json", json.dumps(cols, indent=1) + "\n")
    # One file per collection too: `rustac serve catalog/collections/*.json catalog/items.ndjson`
    # loads these (it does not take a JSON list).
    for col in cols:
        write_text(folder / "collections" / f"{col['id']}.json", json.dumps(col, indent=1) + "\n")


def plan_world(cfg: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[TileSpec], Any, list[TileSchedule]]:
    """Everything but the pixels: normalised cfg, tiles, climatology, schedules."""
    cfg = normalise_cfg(cfg)
    tiles = [make_tile(t, cfg["tile_size_px"]) for t in cfg["tiles"]]
    centres = {t.id: t.centre_lonlat for t in tiles}
    clim = build_climatology(cfg["climatology_resolution_deg"], cfg["seed"], centres.values())
    slots = season_slots(tiles, {k: v[1] for k, v in centres.items()})
    schedules = [build_schedule(t, cfg, clim, slots[t.id]) for t in tiles]
    return cfg, tiles, clim, schedules


def generate_world(cfg: Mapping[str, Any] | None, out_dir: os.PathLike[str] | str, *,
                   progress: bool = True, workers: int | None = None) -> Path:
    """Generate the demo world under ``out_dir`` and return ``out_dir``.

    ``cfg`` is the config's ``demo`` section (missing keys take the defaults). ``workers``
    defaults to min(2, CPUs); results do not depend on it.
    """
    # Plan first: a bad config fails here, before anything on disk is touched.
    cfg, tiles, clim, schedules = plan_world(cfg)
    seed = cfg["seed"]
    workers = worker_count(workers)

    out = Path(out_dir)
    world_path = clear_world(out, GENERATED_DIRS)
    write_climatology(clim, out / "climatology")

    tasks: list[tuple] = []
    for sched in schedules:
        t = sched.tile
        tasks.append(("landcover", t, seed, None, out))
        tasks.extend(("s2", t, seed, a, out) for a in sched.s2)
        tasks.extend(("s1", t, seed, a, out) for a in sched.s1)
    results = run_tasks(render_task, tasks, workers=workers, progress=progress, desc="demo world: scenes")
    items = [it for r in results for it in r.get("items", ())]
    s1_truth = sorted((r["s1_truth"] for r in results if "s1_truth" in r), key=lambda t: t["scene_id"])

    ref_tasks = []
    for sched in schedules:
        for acq in sched.reference_acquisitions():
            ref_tasks.append(("reference", sched.tile, seed, (acq, sched.closest_s1(acq.sensing)), out))
    ref_results = run_tasks(render_task, ref_tasks, workers=workers, progress=progress, desc="demo world: reBEN")
    rows = [row for r in ref_results for row in r["rows"]]
    references = sorted((r["reference"] for r in ref_results), key=lambda r: r["product"])
    _assign_splits(rows, seed)
    _write_metadata(rows, out / "reben" / "metadata.parquet")
    _write_catalog(items, out / "catalog")

    n_files, n_bytes = disk_usage(out, exclude=[world_path])
    counts = {c: sum(1 for it in items if it["collection"] == c) for c in COLLECTIONS}
    counts.update({"reference_products": len(references), "patches": len(rows), "files": n_files})
    world = {
        "generator": "cloudyeo.demo",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "cfg": cfg,
        "layout": {
            "catalog": "catalog/items.ndjson",
            "collections": "catalog/collections.json",
            "collection_files": "catalog/collections",
            "archive": "archive",
            "truth": "archive/truth",
            "landcover": "landcover",
            "climatology": "climatology",
            "reben": "reben",
            "reben_metadata": "reben/metadata.parquet",
        },
        "tiles": [
            {
                **s.tile.describe(),
                "date_start": s.start.isoformat(),
                "date_end": s.end.isoformat(),
                "reference_dates": [d.isoformat() for d in s.references],
                "s2_scenes": len(s.s2),
                "s1_scenes": len(s.s1),
                "climatology_percent": {f"{m:02d}": [round(v[0], 2), round(v[1], 2)]
                                        for m, v in s.climatology.items()},
            }
            for s in schedules
        ],
        "references": references,
        # Truth the archive's metadata does not carry: each S1 product's viewing geometry and
        # misregistration against the S2 grid (cloudyeo.demo.world.s1_displacement).
        "s1_truth": s1_truth,
        "counts": counts,
        "bytes": n_bytes,
    }
    write_text(world_path, json.dumps(world, indent=1) + "\n")
    return out


def clear_sky_reflectance(cfg: Mapping[str, Any] | None, tile_id: str,
                          day: dt.date | dt.datetime) -> np.ndarray:
    """The noise-free clear-sky surface reflectance (13, H, W) at 10 m that the generator used.

    For tests and diagnostics: clear pixels of an L2A band are ``to_dn`` of this (+ noise).
    """
    c = normalise_cfg(cfg)
    tile = make_tile(tile_id, c["tile_size_px"])
    refl, _, _ = surface_reflectance(tile_surface(tile, c["seed"]), day)
    return refl


def load_world(out_dir: os.PathLike[str] | str) -> dict[str, Any]:
    """Read ``world.json``; raises FileNotFoundError when the world is missing or incomplete."""
    path = Path(out_dir) / WORLD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the demo world is missing or was interrupted; "
                                f"regenerate it with cloudyeo.demo.generate_world")
    return json.loads(path.read_text(encoding="utf-8"))
