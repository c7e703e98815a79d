"""Measure a generated demo world against the published statistics of :mod:`cloudyeo.demo.literature`.

Pixels are read from the written archive (the COGs, the truth masks, the land-cover maps), the
way a user would; only the state a file cannot carry (each parcel's greenness, harvest and mowing
dates, where snow is wet) is asked of the generator. :func:`measure` returns the statistics
table and the data the validation page (:mod:`cloudyeo.report.demo_validation`) plots.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from scipy.ndimage import binary_erosion, uniform_filter
from tqdm.auto import tqdm

from cloudyeo.demo.literature import BY_KEY, FOREST_SHARE_PERCENT, STATISTICS, cite
from cloudyeo.demo.surface import (
    AGRI_CLASSES,
    COUNTRY_RELIEF,
    DEFAULT_RELIEF,
    N_CLASSES,
    PASTURE_CLASS,
    TileSurface,
    _circ,
    parcel_state,
    snow_fraction,
    snow_is_wet,
    tile_surface,
)
from cloudyeo.demo.tiles import make_tile
from cloudyeo.masks.truth import TRUTH_CIRRUS, TRUTH_CLOUD, TRUTH_SHADOW, TRUTH_SNOW
from cloudyeo.sentinel import BEN19_CLASSES, baseline_offset

# Class groups the statistics speak of (BigEarthNet-19 indices).
GROUPS: dict[str, tuple[int, ...]] = {
    "urban": (0,), "arable": (2,), "pasture": (4,), "broad-leaved forest": (8,),
    "coniferous forest": (9,), "mixed forest": (10,), "inland water": (17,),
}
SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM", 6: "JJA", 7: "JJA", 8: "JJA",
           9: "SON", 10: "SON", 11: "SON"}
MIN_PIXELS = 50
FOREST_CLASSES = (8, 9, 10, 13)  # FAO's forest includes temporarily unstocked stands (transitional woodland)
STEEP_RELIEF_M = 1000.0  # tiles at or above this local relief count as high relief
# Pixel statistics read a deterministic sample of the archive: at most MAX_TILES tiles per world
# (evenly spread over its tile list) and per tile PAIRS_PER_TILE pairs of consecutive products
# (evenly spread over time; pairs keep the ascending/descending and across-harvest comparisons).
MAX_TILES = 16
PAIRS_PER_TILE = 8
CLOUDY = TRUTH_CLOUD | TRUTH_CIRRUS | TRUTH_SHADOW


@dataclass
class Validation:
    """The statistics (one row each, with range, source and verdict) and the figure data."""

    table: pd.DataFrame
    sigma0: pd.DataFrame = field(default_factory=pd.DataFrame)  # per acquisition, class group
    ndvi: pd.DataFrame = field(default_factory=pd.DataFrame)  # per acquisition, class group
    misregistration: pd.DataFrame = field(default_factory=pd.DataFrame)  # per S1 product (+ Planet)
    parcels: pd.DataFrame = field(default_factory=pd.DataFrame)  # per agricultural parcel
    examples: list[dict[str, Any]] = field(default_factory=list)  # S1/S2 pairs to show
    landcover: pd.DataFrame = field(default_factory=pd.DataFrame)  # per tile: class shares vs the country

    @property
    def all_hold(self) -> bool:
        return bool(self.table["holds"].all())


def _world(folder: Path) -> dict[str, Any]:
    path = folder / "world.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no demo world here (generate it first)")
    return json.loads(path.read_text(encoding="utf-8"))


def _items(folder: Path) -> list[dict[str, Any]]:
    with open(folder / "catalog" / "items.ndjson", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _read(folder: Path, href: str) -> np.ndarray:
    with rasterio.open((folder / "catalog" / href).resolve()) as src:
        return src.read(1)


def _surface_of(world: dict[str, Any], tile_id: str) -> TileSurface:
    """The generator's surface of a tile (for the state no file carries)."""
    tiles = world.get("tiles", []) + world.get("rois", []) + world.get("ssl_locations", [])
    size = next(int(t["shape"][0]) for t in tiles if t["id"] == tile_id)
    return tile_surface(make_tile(tile_id, size, unit_px=1), int(world["seed"]))


def sample_products(records: list[Any], tile_of: Any, date_of: Any, tiles: set[str]) -> list[Any]:
    """Of each tile in ``tiles``: PAIRS_PER_TILE pairs of time-consecutive records, evenly spread."""
    by_tile: dict[str, list[Any]] = {}
    for r in records:
        if tile_of(r) in tiles:
            by_tile.setdefault(tile_of(r), []).append(r)
    out = []
    for tile in sorted(by_tile):
        rs = sorted(by_tile[tile], key=date_of)
        if len(rs) <= 2 * PAIRS_PER_TILE:
            out += rs
            continue
        starts = np.unique(np.linspace(0, len(rs) - 2, PAIRS_PER_TILE).round().astype(int))
        out += [rs[j] for i in starts for j in (i, i + 1)]
    return out


def sample_tiles(world: dict[str, Any]) -> set[str]:
    """At most MAX_TILES of the world's tiles, evenly spread over its lists."""
    ids = [t["id"] for t in world.get("tiles", []) + world.get("rois", []) + world.get("ssl_locations", [])]
    if not ids:
        return set()
    keep = np.unique(np.linspace(0, len(ids) - 1, min(MAX_TILES, len(ids))).round().astype(int))
    return {ids[int(i)] for i in keep}


def _s1_date(scene_id: str) -> dt.date:
    """The start date in an S1 product name (``S1A_IW_GRDH_1SDV_<start>_...``)."""
    return dt.datetime.strptime(scene_id.split("_")[4][:8], "%Y%m%d").date()


def _doy(day: dt.date) -> float:
    return float(day.timetuple().tm_yday)


# ------------------------------------------------------------------------------- Sentinel-1


def _s1_records(folder: Path, world: dict[str, Any], progress: bool) -> tuple[pd.DataFrame, list[float]]:
    """Median sigma0 per S1 product and class group (and state), and ENL estimates."""
    rows, enl = [], []
    truth = sample_products(world.get("s1_truth", []), lambda t: t["tile"], lambda t: _s1_date(t["scene_id"]),
                            sample_tiles(world))
    for t in tqdm(truth, desc=f"validate: S1 ({folder.name})", disable=not progress):
        surf = _surface_of(world, t["tile"])
        folder_s1 = folder / "archive" / "sentinel-1-grd" / t["scene_id"]
        day = _s1_date(t["scene_id"])
        doy = _doy(day)
        with rasterio.open(folder_s1 / "vv.tif") as src:
            vv = src.read(1).astype(np.float64)
        with rasterio.open(folder_s1 / "vh.tif") as src:
            vh = src.read(1).astype(np.float64)
        # One value per 20 m resolution cell (the product repeats each cell over 2 x 2 pixels).
        vv20, vh20 = vv[::2, ::2], vh[::2, ::2]
        lc = surf.landcover[::2, ::2]
        snow = snow_fraction(surf, doy)[::2, ::2] > 0.5
        wet = snow & snow_is_wet(surf, doy)[::2, ::2]
        green = parcel_state(surf, doy)[surf.parcel][::2, ::2]
        edge = binary_erosion(np.ones_like(lc, dtype=bool), iterations=2)
        base = dict(scene=t["scene_id"], tile=t["tile"], date=day, month=day.month, season=SEASONS[day.month],
                    orbit_state=t["orbit_state"],
                    incidence=(t["incidence_near_deg"] + t["incidence_far_deg"]) / 2.0)
        for group, classes in GROUPS.items():
            # Class interiors only (misregistration moves class edges by a few metres).
            inside = binary_erosion(np.isin(lc, classes), iterations=2) & edge & ~snow
            states = {"all": inside}
            if group == "arable":
                states["bare"] = inside & (green < 0.1)
                states["peak"] = inside & (green > 0.85)
            for state, sel in states.items():
                if sel.sum() >= MIN_PIXELS:
                    rows.append({**base, "group": group, "state": state, "n": int(sel.sum()),
                                 "vv_db": float(10 * np.log10(np.median(vv20[sel]))),
                                 "vh_db": float(10 * np.log10(np.median(vh20[sel])))})
        for c in np.unique(lc[wet]):
            w = wet & (lc == c)
            dry = binary_erosion((lc == c) & ~snow, iterations=1) & edge
            if w.sum() >= MIN_PIXELS and dry.sum() >= MIN_PIXELS:
                rows.append({**base, "group": f"wet snow on {BEN19_CLASSES[int(c)]}", "state": "wet_snow_drop",
                             "n": int(w.sum()),
                             "vv_db": float(10 * np.log10(np.median(vv20[dry])) - 10 * np.log10(np.median(vv20[w]))),
                             "vh_db": float(10 * np.log10(np.median(vh20[dry])) - 10 * np.log10(np.median(vh20[w])))})
        # ENL: intensity over its local (9 x 9 cell) mean inside calm, homogeneous water.
        water = binary_erosion(np.isin(lc, (17,)), iterations=5)
        if water.sum() >= MIN_PIXELS:
            ratio = vv20 / np.maximum(uniform_filter(vv20, 9), 1e-12)
            r = ratio[water]
            enl.append(float(np.mean(r) ** 2 / np.var(r)))
    return pd.DataFrame(rows), enl


# ------------------------------------------------------------------------------- Sentinel-2


def _ndvi_records(folder: Path, world: dict[str, Any], progress: bool, examples: list[dict[str, Any]]
                  ) -> tuple[pd.DataFrame, list[float]]:
    """Clear-pixel NDVI per L2A product and class group; NDVI drops across crop harvests."""
    items = sample_products([it for it in _items(folder) if it["collection"] == "sentinel-2-l2a"],
                            lambda it: it["properties"]["s2:mgrs_tile"], lambda it: it["properties"]["datetime"],
                            sample_tiles(world))
    rows: list[dict[str, Any]] = []
    per_tile: dict[str, list[tuple[dt.date, np.ndarray, np.ndarray]]] = {}
    for it in tqdm(items, desc=f"validate: S2 ({folder.name})", disable=not progress):
        props = it["properties"]
        tile = props["s2:mgrs_tile"]
        day = dt.date.fromisoformat(props["datetime"][:10])
        offset = baseline_offset(props.get("s2:processing_baseline"))
        red = (_read(folder, it["assets"]["B04"]["href"]).astype(np.float64) + offset) / 10000.0
        nir = (_read(folder, it["assets"]["B08"]["href"]).astype(np.float64) + offset) / 10000.0
        truth = _read(folder, it["assets"]["truth_mask"]["href"])
        valid = (red > -0.09) & ((truth & (CLOUDY | TRUTH_SNOW)) == 0)
        ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
        surf = _surface_of(world, tile)
        lc = surf.landcover
        for group, classes in GROUPS.items():
            sel = valid & np.isin(lc, classes)
            if sel.sum() >= MIN_PIXELS:
                v = ndvi[sel]
                rows.append({"tile": tile, "date": day, "month": day.month, "season": SEASONS[day.month],
                             "group": group, "n": int(sel.sum()), "ndvi": float(np.median(v)),
                             "p10": float(np.percentile(v, 10)), "p90": float(np.percentile(v, 90))})
        per_tile.setdefault(tile, []).append((day, ndvi, valid))
        if valid.mean() > 0.9 and len(examples) < 3 and all(e["tile"] != tile for e in examples):
            examples.append({"tile": tile, "date": day, "folder": str(folder),
                             "l2a": {b: it["assets"][b]["href"] for b in ("B02", "B03", "B04")},
                             "offset": offset})
    drops = []
    for tile, series in per_tile.items():
        surf = _surface_of(world, tile)
        series.sort(key=lambda s: s[0])
        crop = surf.parcel_class == 2
        harvest = (surf.parcel_crop_peak + surf.parcel_offset + surf.parcel_harvest) % 365.0
        for (d0, n0, v0), (d1, n1, v1) in zip(series[:-1], series[1:], strict=False):
            if (d1 - d0).days > 12:
                continue
            a, b = _doy(d0), _doy(d1)
            straddle = crop & (_circ(harvest - a) > 0) & (_circ(b - harvest) >= 0)
            for p in np.flatnonzero(straddle):
                sel = (surf.parcel == p) & v0 & v1
                if sel.sum() >= 20:
                    drops.append(float(np.median(n0[sel]) - np.median(n1[sel])))
    return pd.DataFrame(rows), drops


# ------------------------------------------------------------------------------- structure


def _surface_records(world: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From each tile's surface, built once: its agricultural parcels (area, mowing, harvest day)
    and, for Sentinel-2 tiles of a country with a published forest share, its class shares."""
    parcel_rows, cover_rows = [], []
    s2_tiles = {t["id"] for t in world.get("tiles", [])}
    for t in world.get("tiles", []) + world.get("rois", []):
        surf = _surface_of(world, t["id"])
        sizes = np.bincount(surf.parcel.ravel(), minlength=len(surf.parcel_class))
        for p in np.flatnonzero(np.isin(surf.parcel_class, AGRI_CLASSES + (PASTURE_CLASS,))):
            mow = surf.parcel_mowing[p]
            peak = surf.parcel_crop_peak[p] + surf.parcel_offset[p]
            parcel_rows.append({"tile": t["id"], "parcel": int(p), "class": int(surf.parcel_class[p]),
                                "area_ha": sizes[p] * 0.01, "mowings": int(np.isfinite(mow).sum()),
                                "harvest_doy": float((peak + surf.parcel_harvest[p]) % 365.0)})
        country = t.get("country", "")
        if t["id"] in s2_tiles and country in FOREST_SHARE_PERCENT:
            counts = np.bincount(surf.landcover.ravel(), minlength=N_CLASSES)
            share = 100.0 * counts / counts.sum()
            cover_rows.append({"tile": t["id"], "country": country,
                               "forest_percent": float(share[list(FOREST_CLASSES)].sum()),
                               "country_forest_percent": FOREST_SHARE_PERCENT[country],
                               **{f"class_{c}": float(share[c]) for c in range(N_CLASSES)}})
    return pd.DataFrame(parcel_rows), pd.DataFrame(cover_rows)


# ------------------------------------------------------------------------------- the whole


def _stat(key: str, value: float | None, detail: str = "") -> dict[str, Any]:
    s = BY_KEY[key]
    measured = value is not None and np.isfinite(value)
    v = float(value) if value is not None and measured else float("nan")
    return {"key": key, "statistic": s.description, "value": v,
            "low": s.low, "high": s.high, "unit": s.unit, "holds": bool(measured and s.holds(v)),
            "detail": detail, "source": s.source, "reference": cite(s.source)}


def _median(df: pd.DataFrame, column: str, **where: Any) -> float | None:
    sel = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        sel &= df[k].isin(v if isinstance(v, (list, tuple)) else [v]).to_numpy()
    return float(np.median(df.loc[sel, column])) if sel.any() else None


def _incidence_slope(s1: pd.DataFrame) -> float | None:
    """Slope of sigma0 VV against incidence over pastures and arable land, from ascending/
    descending acquisitions of one tile at most 6 days apart (season held fixed)."""
    d_db, d_theta = [], []
    for (_tile, _group), g in s1[(s1["state"] == "all") & s1["group"].isin(["pasture"])].groupby(["tile", "group"]):
        g = g.sort_values("date")
        for (_, a), (_, b) in zip(g.iloc[:-1].iterrows(), g.iloc[1:].iterrows(), strict=False):
            if a["orbit_state"] != b["orbit_state"] and (b["date"] - a["date"]).days <= 6:
                d_db.append(b["vv_db"] - a["vv_db"])
                d_theta.append(b["incidence"] - a["incidence"])
    if len(d_db) < 3:
        return None
    x, y = np.asarray(d_theta), np.asarray(d_db)
    return float((x @ y) / (x @ x))


def measure(worlds: Iterable[Path], planet_world: Path | None = None, *, progress: bool = False) -> Validation:
    """Measure every statistic of :data:`cloudyeo.demo.literature.STATISTICS` on the worlds."""
    s1_parts, ndvi_parts, parcel_parts, cover_parts, mis_parts, enl, drops = [], [], [], [], [], [], []
    examples: list[dict[str, Any]] = []
    for folder in worlds:
        folder = Path(folder)
        world = _world(folder)
        s1, e = _s1_records(folder, world, progress)
        s1_parts.append(s1.assign(world=folder.name))
        enl += e
        first = len(examples)
        nd, dr = _ndvi_records(folder, world, progress, examples)
        for ex in examples[first:]:  # the tile's S1 product closest in time, beside the S2 view
            near = [(abs((_s1_date(t["scene_id"]) - ex["date"]).days), t["scene_id"])
                    for t in world.get("s1_truth", []) if t["tile"] == ex["tile"]]
            if near:
                days, scene = min(near)
                ex["s1_vv"] = str(folder / "archive" / "sentinel-1-grd" / scene / "vv.tif")
                ex["s1_date"] = _s1_date(scene).isoformat()
        ndvi_parts.append(nd.assign(world=folder.name))
        drops += dr
        parcel_records, cover_records = _surface_records(world)
        parcel_parts.append(parcel_records.assign(world=folder.name))
        cover_parts.append(cover_records.assign(world=folder.name))
        relief = {t["id"]: COUNTRY_RELIEF.get(t.get("country", ""), DEFAULT_RELIEF)[1]
                  for t in world.get("tiles", []) + world.get("rois", []) + world.get("ssl_locations", [])}
        for t in world.get("s1_truth", []):
            relief_m = relief.get(t["tile"], DEFAULT_RELIEF[1])
            mis_parts.append({"pair": "S2 vs S1", "world": folder.name, "tile": t["tile"], "relief_m": relief_m,
                              "terrain": "high relief" if relief_m >= STEEP_RELIEF_M else "gentle",
                              "geolocation_m": float(np.hypot(*t["geolocation_shift_m"])),
                              "p95_m": t["displacement_m_p95"], "incidence_near": t["incidence_near_deg"],
                              "incidence_far": t["incidence_far_deg"]})
    if planet_world is not None:
        for t in _world(Path(planet_world)).get("s1_truth", []):
            mis_parts.append({"pair": "PlanetScope vs S1", "world": Path(planet_world).name, "tile": t["aoi"],
                              "geolocation_m": float(np.hypot(*t["geolocation_shift_m"])),
                              "p95_m": t["displacement_m_p95"]})
    s1 = pd.concat(s1_parts, ignore_index=True) if s1_parts else pd.DataFrame()
    ndvi = pd.concat(ndvi_parts, ignore_index=True) if ndvi_parts else pd.DataFrame()
    parcels = pd.concat(parcel_parts, ignore_index=True) if parcel_parts else pd.DataFrame()
    cover = pd.concat(cover_parts, ignore_index=True) if cover_parts else pd.DataFrame()
    gap = (cover["forest_percent"] - cover["country_forest_percent"]).abs() if len(cover) else pd.Series(dtype=float)
    mis = pd.DataFrame(mis_parts)
    s2s1 = mis[mis["pair"] == "S2 vs S1"] if len(mis) else mis
    gentle = s2s1[s2s1["terrain"] == "gentle"] if len(s2s1) else s2s1
    steep = s2s1[s2s1["terrain"] == "high relief"] if len(s2s1) else s2s1
    planet = mis[mis["pair"] == "PlanetScope vs S1"] if len(mis) else mis

    forest = ["broad-leaved forest", "mixed forest"]
    crops = parcels[parcels["class"] == 2] if len(parcels) else parcels
    summer_crops = crops[crops["harvest_doy"] > 150] if len(crops) else crops
    grass = parcels[parcels["class"] == PASTURE_CLASS] if len(parcels) else parcels
    decid = ndvi[ndvi["group"] == "broad-leaved forest"] if len(ndvi) else ndvi
    conifer = ndvi[ndvi["group"] == "coniferous forest"] if len(ndvi) else ndvi
    arable = ndvi[ndvi["group"] == "arable"] if len(ndvi) else ndvi
    monthly_conifer = conifer.groupby("month")["ndvi"].median() if len(conifer) else pd.Series(dtype=float)
    rows = [
        _stat("s1_enl", float(np.median(enl)) if enl else None, f"{len(enl)} products, calm inland water"),
        _stat("s1_incidence_min", float(s2s1["incidence_near"].min()) if len(s2s1) else None),
        _stat("s1_incidence_max", float(s2s1["incidence_far"].max()) if len(s2s1) else None),
        _stat("s1_incidence_slope_vv", _incidence_slope(s1) if len(s1) else None, "ascending/descending pairs <= 6 days"),
        _stat("s1_vv_water", _median(s1, "vv_db", group="inland water", state="all") if len(s1) else None),
        _stat("s1_vv_forest", _median(s1, "vv_db", group=forest, state="all") if len(s1) else None),
        _stat("s1_vh_forest", _median(s1, "vh_db", group=forest, state="all") if len(s1) else None),
        _stat("s1_vv_urban", _median(s1, "vv_db", group="urban", state="all") if len(s1) else None),
        _stat("s1_vh_crop_bare", _median(s1, "vh_db", group="arable", state="bare") if len(s1) else None),
        _stat("s1_vh_crop_peak", _median(s1, "vh_db", group="arable", state="peak") if len(s1) else None),
        _stat("s1_vv_wet_snow_drop", _median(s1, "vv_db", state="wet_snow_drop") if len(s1) else None),
        _stat("ndvi_crop_peak", float(arable["p90"].quantile(0.9)) if len(arable) else None),
        _stat("ndvi_crop_bare", float(arable["p10"].quantile(0.1)) if len(arable) else None),
        _stat("ndvi_deciduous_summer", _median(decid, "ndvi", season="JJA") if len(decid) else None),
        _stat("ndvi_deciduous_winter", _median(decid, "ndvi", season="DJF") if len(decid) else None),
        _stat("ndvi_conifer_range", float(monthly_conifer.max() - monthly_conifer.min()) if len(monthly_conifer) else None),
        _stat("ndvi_water", _median(ndvi, "ndvi", group="inland water") if len(ndvi) else None),
        _stat("crop_harvest_drop", float(np.median(drops)) if drops else None, f"{len(drops)} parcel harvests"),
        _stat("crop_harvest_doy", float(summer_crops["harvest_doy"].median()) if len(summer_crops) else None),
        _stat("grass_mowing_events", float(grass["mowings"].median()) if len(grass) else None),
        _stat("parcel_median_ha", float(parcels["area_ha"].median()) if len(parcels) else None,
              f"{len(parcels)} agricultural parcels"),
        _stat("forest_share_gap", float(gap.median()) if len(gap) else None, f"{len(gap)} tiles"),
        _stat("s1_shift_p95_m", float(s2s1["geolocation_m"].quantile(0.95)) if len(s2s1) else None),
        _stat("s2_s1_shift_p95_m", float(gentle["p95_m"].quantile(0.95)) if len(gentle) else None,
              f"{len(gentle)} products"),
        _stat("s2_s1_relief_p95_m", float(steep["p95_m"].quantile(0.95)) if len(steep) else None,
              f"{len(steep)} products"),
        _stat("planet_s1_shift_p95_m", float(planet["p95_m"].quantile(0.95)) if len(planet) else None),
    ]
    table = pd.DataFrame(rows)
    missing = {s.key for s in STATISTICS} - set(table["key"])
    if missing:  # every literature statistic has a measurement row
        raise AssertionError(f"statistics without a measurement: {sorted(missing)}")
    return Validation(table=table, sigma0=s1, ndvi=ndvi, misregistration=mis, parcels=parcels, examples=examples,
                      landcover=cover)
