"""The time-series part of the demo world: year-long ROIs and SSL4EO-like sample locations.

``generate_timeseries_world(cfg, out_dir)`` writes, under ``out_dir`` (``resources/demo-timeseries``),
the same layout as the CBEN part (:mod:`cloudyeo.demo.world`)::

    archive/sentinel-2-l1c/<scene>/<band>.tif   (and sentinel-2-l2a/ where configured)
    archive/sentinel-1-grd/<scene>/{vv,vh}.tif  linear power, float32
    archive/truth/<datatake>.tif                bits 1 cloud 2 cirrus 4 shadow 8 snow
    landcover/<tile>.tif                        BEN19 class index (the demo's land-cover truth)
    catalog/items.ndjson, catalog/collections/*.json
    world.json                                  ROIs, locations, counts; written last

**ROIs** (SEN12MS-CR-TS-like, outside Europe, one UTM zone each): a square tile observed over one
calendar year by Sentinel-2 every ``s2_revisit_days`` (L1C; L2A too with ``roi_l2a``) and
Sentinel-1 every ``s1_revisit_days``, with the quirks of real archives: some acquisitions are
missing (``missing_fraction``), some S2 scenes cover the ROI only partly (``partial_fraction``:
nodata beyond a slanted swath edge, footprint clipped), and ``missing_band_scenes`` L1C scenes
lack band B09. No cloud filtering: cloud cover follows the climatology.

**SSL4EO locations**: small tiles observed in four seasonal windows (``ssl_dates`` ±
``ssl_window_days``) with L1C + L2A + S1; ``ssl_clear_fraction`` of the S2 scenes are drawn
clear (SSL4EO-S12 keeps scenes below 10 % cloud; a season may have none, which the dataset records).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cloudyeo.atomic import write_text
from cloudyeo.config import section_defaults
from cloudyeo.demo.climatology import build_climatology
from cloudyeo.demo.generation import clear_world, disk_usage, run_tasks, with_defaults, worker_count
from cloudyeo.demo.schedule import (
    TileSchedule,
    _draw_cloud_percent,
    _s1_time,
    _s2_time,
    _sky,
    revisit_grid,
    s1_acquisition,
    s2_acquisition,
)
from cloudyeo.demo.stac import COLLECTIONS
from cloudyeo.demo.tiles import TileSpec, make_tile, seeded_rng
from cloudyeo.demo.world import _write_catalog, render_task

GENERATOR_VERSION = "2.1.0"
GENERATED_DIRS = ("archive", "catalog", "landcover")
PIXEL_UNIT = 6  # tile sizes in whole 60 m pixels
MISSING_BAND = "B09"

# The demo_timeseries section with nothing set (defaults live in the config schema only).
DEFAULT_CFG: dict[str, Any] = section_defaults("demo_timeseries")


def normalise_cfg(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults and check the ``demo_timeseries`` section (errors name the key)."""
    out = with_defaults("demo_timeseries", DEFAULT_CFG, cfg)
    for key in ("rois", "ssl_locations"):
        out[key] = [str(t).strip().upper() for t in out[key]]
        if len(set(out[key])) != len(out[key]):
            raise ValueError(f"demo_timeseries.{key}: duplicate ids in {out[key]}")
    if set(out["rois"]) & set(out["ssl_locations"]):
        raise ValueError("demo_timeseries: an id is both an ROI and an SSL location")
    for key in ("roi_size_px", "ssl_size_px"):
        if int(out[key]) % PIXEL_UNIT or int(out[key]) <= 0:
            raise ValueError(f"demo_timeseries.{key}: must be a positive multiple of {PIXEL_UNIT}")
    out["ssl_dates"] = [dt.date.fromisoformat(str(d)).isoformat() for d in out["ssl_dates"]]
    return out


def roi_size(tile_px: int, patch_px: int = 256) -> int:
    """Side of the ROI inside a tile: the largest multiple of ``patch_px`` that fits."""
    return (tile_px // patch_px) * patch_px



def _series(tile: TileSpec, cfg: dict[str, Any], clim, windows: list[tuple[dt.date, dt.date]], *,
            s2_revisit: int, s1_revisit: int, quirks: bool, clear_fraction: float | None,
            kind: str) -> TileSchedule:
    """Acquisitions of one tile inside ``windows`` on fixed revisit grids (with quirks for ROIs)."""
    seed = int(cfg["seed"])
    lon, lat = tile.centre_lonlat
    rng = seeded_rng(seed, kind, "schedule", tile.id)
    start, end = windows[0][0], windows[-1][1]
    sched = TileSchedule(tile=tile, references=[], start=start, end=end)
    for m in range(1, 13):
        sched.climatology[m] = clim.at(lon, lat, m)

    def inside(day: dt.date) -> bool:
        return any(a <= day <= b for a, b in windows)

    phase2 = int(rng.integers(0, s2_revisit))
    t2 = _solar_overpass(lon, 10.5, _s2_time(tile, lon, seed).second)
    for k, day in revisit_grid(start, end, phase2, s2_revisit):
        if inside(day):
            r = seeded_rng(seed, "availability", tile.id, day.isoformat())
            extra: dict[str, Any] = {}
            u = r.random()
            if quirks and u < cfg["missing_fraction"]:
                continue
            if quirks and u < cfg["missing_fraction"] + cfg["partial_fraction"]:
                extra["swath_edge"] = float(r.uniform(0.35, 0.9))
            acq = s2_acquisition(tile, seed, k, day, t2, sched.climatology, lat, **extra)
            if clear_fraction is not None:
                # Drier sampling sites: redraw the cloud cover with more clear scenes.
                mean, sd = sched.climatology[day.month]
                rc = seeded_rng(seed, "ssl-cloud", tile.id, day.isoformat())
                cloud = 0.0 if rc.random() < clear_fraction else _draw_cloud_percent(rc, mean, sd)
                acq = _with_cloud(acq, cloud, rc, lat)
            sched.s2.append(acq)

    phase1 = int(rng.integers(0, s1_revisit))
    t1 = _solar_overpass(lon, 18.0, _s1_time(tile, lon, seed).second)
    for k, day in revisit_grid(start, end, phase1, s1_revisit):
        if inside(day):
            r = seeded_rng(seed, "s1-availability", tile.id, day.isoformat())
            if not (quirks and r.random() < cfg["s1_missing_fraction"]):
                sched.s1.append(s1_acquisition(tile, seed, k, day, t1))
    return sched


def _solar_overpass(lon: float, local_hour: float, second: int) -> dt.time:
    """UTC time of a sun-synchronous overpass at ``local_hour`` mean solar time (wrapped to the
    same UTC day: the demo's dates are UTC dates)."""
    minutes = round((local_hour - lon / 15.0) * 60.0) % (24 * 60)
    return dt.time(minutes // 60, minutes % 60, second)


def _with_cloud(acq, cloud: float, rng: np.random.Generator, lat: float):
    from dataclasses import replace

    sky = _sky(rng, cloud, acq.sensing.timetuple().tm_yday, lat)
    return replace(acq, cloud_target=cloud, sky=sky)


def plan_timeseries_world(cfg: Mapping[str, Any] | None):
    """Everything but the pixels: normalised cfg, ROI and location schedules."""
    cfg = normalise_cfg(cfg)
    rois = [make_tile(t, int(cfg["roi_size_px"]), PIXEL_UNIT) for t in cfg["rois"]]
    locs = [make_tile(t, int(cfg["ssl_size_px"]), PIXEL_UNIT) for t in cfg["ssl_locations"]]
    clim = build_climatology(float(cfg["climatology_resolution_deg"]), int(cfg["seed"]),
                             [t.centre_lonlat for t in rois + locs])
    year = int(cfg["year"])
    roi_scheds = [
        _series(t, cfg, clim, [(dt.date(year, 1, 1), dt.date(year, 12, 31))],
                s2_revisit=int(cfg["s2_revisit_days"]), s1_revisit=int(cfg["s1_revisit_days"]),
                quirks=True, clear_fraction=None, kind="roi")
        for t in rois
    ]
    # The first ``missing_band_scenes`` ROIs lose band B09 in one complete L1C scene each.
    from dataclasses import replace

    for sched in roi_scheds[: int(cfg["missing_band_scenes"])]:
        full = [i for i, a in enumerate(sched.s2) if a.swath_edge is None]
        i = full[int(seeded_rng(int(cfg["seed"]), "missing-band", sched.tile.id).integers(0, len(full)))]
        sched.s2[i] = replace(sched.s2[i], missing_band=MISSING_BAND)
    half = dt.timedelta(days=int(cfg["ssl_window_days"]))
    windows = [(dt.date.fromisoformat(d) - half, dt.date.fromisoformat(d) + half) for d in cfg["ssl_dates"]]
    ssl_scheds = [
        _series(t, cfg, clim, windows, s2_revisit=int(cfg["ssl_s2_revisit_days"]),
                s1_revisit=int(cfg["ssl_s1_revisit_days"]), quirks=False,
                clear_fraction=float(cfg["ssl_clear_fraction"]), kind="ssl")
        for t in locs
    ]
    return cfg, roi_scheds, ssl_scheds


def generate_timeseries_world(cfg: Mapping[str, Any] | None, out_dir: os.PathLike[str] | str, *,
                              progress: bool = True, workers: int | None = None) -> Path:
    """Generate the time-series part of the demo world under ``out_dir``; returns ``out_dir``."""
    cfg, roi_scheds, ssl_scheds = plan_timeseries_world(cfg)
    seed = int(cfg["seed"])
    workers = worker_count(workers)
    out = Path(out_dir)
    world_path = clear_world(out, GENERATED_DIRS)

    roi_kind = "s2" if cfg["roi_l2a"] else "s2-l1c"
    tasks: list[tuple] = []
    for sched in roi_scheds:
        tasks.append(("landcover", sched.tile, seed, None, out))
        tasks.extend((roi_kind, sched.tile, seed, a, out) for a in sched.s2)
        tasks.extend(("s1", sched.tile, seed, a, out) for a in sched.s1)
    for sched in ssl_scheds:
        tasks.append(("landcover", sched.tile, seed, None, out))
        tasks.extend(("s2", sched.tile, seed, a, out) for a in sched.s2)
        tasks.extend(("s1", sched.tile, seed, a, out) for a in sched.s1)
    # Big tasks first keeps both workers busy to the end.
    tasks.sort(key=lambda t: -t[1].size_px)
    results = run_tasks(render_task, tasks, workers=workers, progress=progress, desc="demo time series: scenes")
    items = [it for r in results for it in r.get("items", ())]
    s1_truth = sorted((r["s1_truth"] for r in results if "s1_truth" in r), key=lambda t: t["scene_id"])
    _write_catalog(items, out / "catalog")

    n_files, n_bytes = disk_usage(out, exclude=[world_path])
    counts = {c: sum(1 for it in items if it["collection"] == c) for c in COLLECTIONS}
    counts["files"] = n_files

    def describe(sched: TileSchedule, kind: str) -> dict[str, Any]:
        t = sched.tile
        d = {**t.describe(), "kind": kind, "landcover": f"landcover/{t.id}.tif",
             "date_start": sched.start.isoformat(), "date_end": sched.end.isoformat(),
             "s2_scenes": len(sched.s2), "s1_scenes": len(sched.s1),
             "partial_scenes": sum(a.swath_edge is not None for a in sched.s2),
             "missing_band_scenes": [a.l1c_id for a in sched.s2 if a.missing_band]}
        d.pop("patches_per_side", None)
        if kind == "roi":
            n = roi_size(t.size_px)
            d["roi_shape"] = [n, n]
        return d

    world = {
        "generator": "cloudyeo.demo.timeseries",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "cfg": cfg,
        "layout": {"catalog": "catalog/items.ndjson", "archive": "archive", "truth": "archive/truth",
                   "landcover": "landcover"},
        "landcover_classes": "BEN19 class index (cloudyeo.sentinel.BEN19_CLASSES), 255 nodata",
        "rois": [describe(s, "roi") for s in roi_scheds],
        "ssl_locations": [describe(s, "ssl") for s in ssl_scheds],
        "s1_truth": s1_truth,  # viewing geometry and misregistration per S1 product
        "counts": counts,
        "bytes": n_bytes,
    }
    import json

    write_text(world_path, json.dumps(world, indent=1) + "\n")
    return out
