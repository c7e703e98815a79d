"""Generate the Planet-CR demo world: PlanetScope + UDM2, Sentinel-1, WorldCover, a local catalog.

Order of work (``world.json`` is written last, atomically; a stale one is removed first together
with the generated folders, so an interrupted run never looks complete):

1. schedules (every scalar of every acquisition) in the main process, seeded per AOI;
2. pixel tasks in a pool - one WorldCover map per AOI, one task per PlanetScope scene and per
   Sentinel-1 acquisition - each seeded by ``(seed, AOI, item id)`` so results do not depend on
   the pool;
3. ``catalog/psscene.ndjson`` (Planet quick-search features), ``catalog/items.ndjson`` +
   ``collections.json`` (STAC: Sentinel-1, WorldCover), ``world.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudyeo.aois import AoiSpec, place_aoi
from cloudyeo.atomic import write_text
from cloudyeo.config import section_defaults
from cloudyeo.demo.generation import WORLD_FILE, clear_world, disk_usage, run_tasks, with_defaults, worker_count
from cloudyeo.demo.planet.aois import KNOWN_AOIS, known_aoi
from cloudyeo.demo.planet.catalog import (
    COLLECTION_S1,
    COLLECTION_WORLDCOVER,
    collections,
    psscene_feature,
    s1_item,
    valid_footprint,
    worldcover_item,
)
from cloudyeo.demo.planet.render import (
    MARGIN_M,
    OPTICAL_ASSET,
    PLANET_RES,
    UDM2_ASSET,
    UDM2_BANDS,
    PlanetGrid,
    PlanetSky,
    aoi_dem_error,
    planet_grid,
    render_planet_scene,
    render_s1,
    render_worldcover,
)
from cloudyeo.demo.planet.surface import GENERIC_PRIORS, aoi_surface
from cloudyeo.demo.rasters import write_cog
from cloudyeo.demo.sar_geometry import geolocation_shift, track_incidence
from cloudyeo.demo.tiles import seeded_rng, stable_hash

GENERATOR_VERSION = "2.1.0"
GENERATED_DIRS = ("archive", "catalog")
PSSCENE_FILE = "psscene.ndjson"

# The demo_planet section with nothing set (defaults live in the config schema only).
DEFAULT_CFG: dict[str, Any] = section_defaults("demo_planet")
SATELLITES = ("2447", "241c", "24a3", "2262", "2439", "2486", "247d", "2416")
INSTRUMENTS = ("PSB.SD", "PSB.SD", "PSB.SD", "PS2.SD")


# ------------------------------------------------------------------------------- config


def normalise_cfg(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fill defaults and check the ``demo_planet`` section (errors name the key)."""
    out = with_defaults("demo_planet", DEFAULT_CFG, cfg)
    aois: list[str | dict[str, Any]] = []
    for a in out["aois"]:
        if isinstance(a, str):
            if a not in KNOWN_AOIS:
                raise ValueError(f"demo_planet.aois: unknown AOI {a!r}; known: {', '.join(KNOWN_AOIS)} "
                                 "(or give {{id, lon, lat}})")
            aois.append(a)
        elif isinstance(a, Mapping) and {"id", "lon", "lat"} <= set(a):
            aois.append({"id": str(a["id"]), "lon": float(a["lon"]), "lat": float(a["lat"]),
                         "clear_share": float(a.get("clear_share", 0.4))})
        else:
            raise ValueError(f"demo_planet.aois: {a!r} is neither a known AOI id nor {{id, lon, lat}}")
    ids = [a if isinstance(a, str) else a["id"] for a in aois]
    if not ids:
        raise ValueError("demo_planet.aois: at least one AOI is needed")
    if len(set(ids)) != len(ids):
        raise ValueError(f"demo_planet.aois: duplicate AOI ids in {ids}")
    out["aois"] = aois
    for key in ("seed", "aoi_size_px", "days", "s1_revisit_days"):
        out[key] = int(out[key])
        if key != "seed" and out[key] < 1:
            raise ValueError(f"demo_planet.{key}: must be >= 1, got {out[key]}")
    if out["aoi_size_px"] % 30 or out["aoi_size_px"] < 90:
        raise ValueError(f"demo_planet.aoi_size_px: must be a multiple of 30 and >= 90, got {out['aoi_size_px']}")
    for key in ("daily_probability", "missing_udm2_fraction", "partial_nodata_fraction"):
        out[key] = float(out[key])
        if not 0.0 <= out[key] <= 1.0:
            raise ValueError(f"demo_planet.{key}: must be in [0, 1], got {out[key]}")
    try:
        dt.date.fromisoformat(str(out["start_date"]))
    except ValueError:
        raise ValueError(f"demo_planet.start_date: not an ISO date: {out['start_date']!r}") from None
    out["start_date"] = str(out["start_date"])
    return out


# ----------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class AoiSetup:
    aoi: AoiSpec
    priors: tuple[tuple[int, float], ...]
    must: tuple[int, ...]
    clear_share: float
    grid: PlanetGrid
    relief_m: float = 50.0

    def surface(self, seed: int):
        return aoi_surface(self.aoi, seed, self.priors, self.must)


@dataclass(frozen=True)
class PlanetAcq:
    aoi_id: str
    item_id: str
    acquired: dt.datetime
    day: int
    satellite_id: str
    instrument: str
    strip_id: str
    sky: PlanetSky
    has_udm2: bool
    sun_elevation: float
    sun_azimuth: float
    view_angle: float


@dataclass(frozen=True)
class S1Acq:
    aoi_id: str
    scene_id: str
    start: dt.datetime
    day: int
    platform: str
    orbit_state: str
    relative_orbit: int
    absolute_orbit: int
    incidence_near: float = 37.0
    incidence_far: float = 37.0
    shift_m: tuple[float, float] = (0.0, 0.0)  # geolocation error against the PlanetScope grid


def aoi_setups(cfg: dict[str, Any]) -> list[AoiSetup]:
    out = []
    for a in cfg["aois"]:
        if isinstance(a, str):
            prof = KNOWN_AOIS[a]
            aoi = known_aoi(a, cfg["aoi_size_px"])
            priors, must, share, relief = prof.priors, prof.must, prof.clear_share, prof.relief_m
        else:
            aoi = place_aoi(a["id"], a["lon"], a["lat"], cfg["aoi_size_px"])
            priors, must, share, relief = GENERIC_PRIORS, (), a["clear_share"], a.get("relief_m", 50.0)
        out.append(AoiSetup(aoi, tuple(priors), tuple(must), float(share), planet_grid(aoi, cfg["seed"]),
                            float(relief)))
    return out


def _utc(day: dt.date, local_hour: float, lon: float) -> dt.datetime:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start + dt.timedelta(hours=local_hour - lon / 15.0)


def build_schedule(cfg: dict[str, Any], setups: list[AoiSetup]) -> tuple[list[PlanetAcq], list[S1Acq]]:
    seed = cfg["seed"]
    start = dt.date.fromisoformat(cfg["start_date"])
    planet: list[PlanetAcq] = []
    s1: list[S1Acq] = []
    draws: list[tuple[float, float, bool]] = []  # (u_udm2, u_nodata, cloudy) per planet acq
    for su in setups:
        aoi = su.aoi
        lon, lat = aoi.centre_lonlat
        rng = seeded_rng(seed, "planet-schedule", aoi.id)
        sats = [SATELLITES[i] for i in rng.permutation(len(SATELLITES))[:4]]
        for d in range(cfg["days"]):
            if rng.random() >= cfg["daily_probability"]:
                continue
            when = _utc(start + dt.timedelta(days=d), rng.uniform(10.0, 11.0), lon)
            when = when.replace(microsecond=0)
            sat = sats[int(rng.integers(len(sats)))]
            item_id = f"{when:%Y%m%d_%H%M%S}_{int(rng.integers(0, 100)):02d}_{sat}"
            clear = rng.random() < su.clear_share
            cloud = 0.0 if clear else float(min(1.0, rng.uniform(0.02, 1.12)))
            haze = float(rng.uniform(0.0, 0.07) if clear else rng.uniform(0.02, 0.36))
            length, angle = rng.uniform(20, 60), rng.uniform(0, 2 * math.pi)
            offset = (int(round(length * math.cos(angle))), int(round(length * math.sin(angle))))
            aerosol = float(rng.uniform(0.7, 1.4))
            direction = float(rng.choice([0.0, 90.0, 180.0, 270.0]) + rng.uniform(-10, 10))
            share = float(rng.uniform(0.35, 0.7))
            u_udm2, u_nodata = float(rng.random()), float(rng.random())
            nodata = (direction, share) if u_nodata < cfg["partial_nodata_fraction"] else None
            planet.append(PlanetAcq(
                aoi_id=aoi.id, item_id=item_id, acquired=when, day=d, satellite_id=sat,
                instrument=INSTRUMENTS[int(rng.integers(len(INSTRUMENTS)))],
                strip_id=str(5_000_000 + int(rng.integers(0, 999_999))),
                sky=PlanetSky(cloud, haze, offset, aerosol, nodata),
                has_udm2=u_udm2 >= cfg["missing_udm2_fraction"],
                sun_elevation=float(rng.uniform(35, 70)), sun_azimuth=float(rng.uniform(60, 160)),
                view_angle=float(rng.uniform(0, 5)),
            ))
            draws.append((u_udm2, u_nodata, not clear))
        revisit = cfg["s1_revisit_days"]
        first = int(rng.integers(0, revisit))
        ascending = rng.random() < 0.5
        rel = int(rng.integers(1, 176))
        for d in range(first, cfg["days"], revisit):
            when = _utc(start + dt.timedelta(days=d), 18.0 if ascending else 6.0, lon)
            when = when.replace(microsecond=0) + dt.timedelta(seconds=int(rng.integers(0, 600)))
            platform = "sentinel-1a"
            abs_orbit = 43_000 + (when.date() - dt.date(2022, 6, 1)).days * 15 + rel % 15
            datatake = int(rng.integers(0, 0xFFFFFF))
            stop = when + dt.timedelta(seconds=25)
            scene_id = (f"S1A_IW_GRDH_1SDV_{when:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{abs_orbit:06d}_"
                        f"{datatake:06X}_{stable_hash(aoi.id, d) % 0xFFFF:04X}")
            state = "ascending" if ascending else "descending"
            near, far = track_incidence(aoi.id, state, aoi.shape[1] * 10.0)
            s1.append(S1Acq(aoi.id, scene_id, when, d, platform, state, rel, abs_orbit,
                            round(near, 3), round(far, 3), geolocation_shift(cfg["seed"], aoi.id, scene_id)))
    _force_special_cases(cfg, planet, draws)
    return planet, s1


def _force_special_cases(cfg: dict[str, Any], planet: list[PlanetAcq],
                         draws: list[tuple[float, float, bool]]) -> None:
    """Guarantee one cloudy scene without UDM2 and one cloudy scene whose edge blanks a whole
    window, whenever the configured fractions are > 0 (so the builder's skips are exercised)."""
    cloudy = [i for i, (_, _, c) in enumerate(draws) if c]
    if not cloudy:
        return
    no_udm2 = None
    if cfg["missing_udm2_fraction"] > 0:
        if not any(not planet[i].has_udm2 for i in cloudy):
            no_udm2 = min(cloudy, key=lambda i: draws[i][0])
            a = planet[no_udm2]
            planet[no_udm2] = PlanetAcq(**{**a.__dict__, "has_udm2": False})
    if cfg["partial_nodata_fraction"] > 0:
        rest = [i for i in cloudy if i != no_udm2 and planet[i].has_udm2]
        if rest:
            i = min(rest, key=lambda j: draws[j][1])
            a = planet[i]
            base = float(round(a.sky.nodata[0] / 90.0) * 90.0) if a.sky.nodata else 0.0
            sky = PlanetSky(a.sky.cloud_target, a.sky.haze_level, a.sky.shadow_offset,
                            a.sky.aerosol, ((base + 2.0) % 360.0, 0.62))
            planet[i] = PlanetAcq(**{**a.__dict__, "sky": sky})


# --------------------------------------------------------------------------- pixel tasks


def _task(task: tuple) -> dict[str, Any]:
    kind, su, seed, payload, out = task
    surf = su.surface(seed)
    aoi = su.aoi
    if kind == "worldcover":
        item_id = f"ESA_WorldCover_10m_2021_v200_{aoi.id}"
        path = out / "archive" / COLLECTION_WORLDCOVER / aoi.id / f"{item_id}_Map.tif"
        counts = render_worldcover(surf, seed, path)
        write_cog(out / "archive" / "truth" / "dem_error" / f"{aoi.id}.tif", aoi_dem_error(aoi, seed, su.relief_m),
                  aoi.transform, aoi.epsg, nodata=None, predictor=3)
        return {"items": [worldcover_item(item_id=item_id, aoi=aoi)], "worldcover": (aoi.id, counts)}
    if kind == "s1":
        s1_acq: S1Acq = payload
        folder = out / "archive" / COLLECTION_S1 / s1_acq.scene_id
        misregistration = render_s1(
            surf, seed, s1_acq.scene_id, s1_acq.day, folder / "vv.tif", folder / "vh.tif",
            dem_error=aoi_dem_error(aoi, seed, su.relief_m), shift_m=s1_acq.shift_m,
            incidence=(s1_acq.incidence_near, s1_acq.incidence_far), orbit_state=s1_acq.orbit_state)
        truth = {"scene_id": s1_acq.scene_id, "aoi": aoi.id, "orbit_state": s1_acq.orbit_state,
                 "incidence_near_deg": s1_acq.incidence_near, "incidence_far_deg": s1_acq.incidence_far,
                 "geolocation_shift_m": list(s1_acq.shift_m), **misregistration}
        return {"s1_truth": truth, "items": [s1_item(scene_id=s1_acq.scene_id, aoi=aoi, start=s1_acq.start,
                                  platform=s1_acq.platform, orbit_state=s1_acq.orbit_state,
                                  relative_orbit=s1_acq.relative_orbit,
                                  absolute_orbit=s1_acq.absolute_orbit)]}
    if kind == "planet":
        acq: PlanetAcq = payload
        folder = out / "archive" / "psscene" / acq.item_id
        stats = render_planet_scene(surf, su.grid, seed, acq.item_id, acq.day, acq.sky,
                                    acq.has_udm2, folder)
        footprint = valid_footprint(stats.pop("valid_mask"), su.grid.affine, aoi.epsg)
        feature = psscene_feature(
            item_id=acq.item_id, aoi=aoi, acquired=acq.acquired, satellite_id=acq.satellite_id,
            instrument=acq.instrument, strip_id=acq.strip_id, stats=stats, footprint=footprint,
            grid_transform=su.grid.transform, grid_shape=su.grid.shape, has_udm2=acq.has_udm2,
            sun_elevation=acq.sun_elevation, sun_azimuth=acq.sun_azimuth, view_angle=acq.view_angle)
        return {"features": [feature], "scene": {
            "id": acq.item_id, "aoi": aoi.id, "percent": stats["percent"],
            "valid_percent": stats["valid_percent"], "has_udm2": acq.has_udm2,
            "partial_nodata": acq.sky.nodata is not None}}
    raise ValueError(f"unknown task kind {kind!r}")


# ------------------------------------------------------------------------------- world


def _ndjson(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def plan_world(cfg: Mapping[str, Any] | None):
    """Everything but the pixels: normalised cfg, AOI setups, schedules."""
    cfg = normalise_cfg(cfg)
    setups = aoi_setups(cfg)
    planet, s1 = build_schedule(cfg, setups)
    return cfg, setups, planet, s1


def generate_planet_world(cfg: Mapping[str, Any] | None, out_dir: os.PathLike[str] | str, *,
                          progress: bool = True, workers: int | None = None) -> Path:
    """Generate the Planet-CR demo world under ``out_dir`` (e.g. ``resources/demo-planet``).

    ``cfg`` is the config's ``demo_planet`` section (missing keys take the defaults);
    ``workers`` defaults to min(2, CPUs); results do not depend on it.
    """
    cfg, setups, planet, s1 = plan_world(cfg)  # a bad config fails before the disk is touched
    seed = cfg["seed"]
    workers = worker_count(workers)
    out = Path(out_dir)
    world_path = clear_world(out, GENERATED_DIRS)

    by_id = {su.aoi.id: su for su in setups}
    tasks: list[tuple] = [("worldcover", su, seed, None, out) for su in setups]
    # Planet scenes first (the longest tasks), grouped by AOI so each worker reuses its surface.
    tasks += [("planet", by_id[a.aoi_id], seed, a, out) for a in planet]
    tasks += [("s1", by_id[a.aoi_id], seed, a, out) for a in s1]
    results = run_tasks(_task, tasks, workers=workers, progress=progress, desc="demo Planet world", chunksize=2)

    order = {su.aoi.id: i for i, su in enumerate(setups)}
    features = sorted((f for r in results for f in r.get("features", ())),
                      key=lambda f: (order[f["properties"]["cloudyeo:aoi"]], f["properties"]["acquired"], f["id"]))
    items = sorted((it for r in results for it in r.get("items", ())),
                   key=lambda it: (it["collection"], order[it["properties"]["cloudyeo:aoi"]],
                                   it["properties"]["datetime"], it["id"]))
    scenes = {r["scene"]["id"]: r["scene"] for r in results if "scene" in r}
    worldcover = dict(r["worldcover"] for r in results if "worldcover" in r)
    write_text(out / "catalog" / PSSCENE_FILE, _ndjson(features))
    write_text(out / "catalog" / "items.ndjson", _ndjson(items))
    cols = collections(items)
    write_text(out / "catalog" / "collections.json", json.dumps(cols, indent=1) + "\n")
    for col in cols:
        write_text(out / "catalog" / "collections" / f"{col['id']}.json", json.dumps(col, indent=1) + "\n")

    n_files, n_bytes = disk_usage(out, exclude=[world_path])
    code_counts: dict[int, int] = {}
    for counts in worldcover.values():
        for c, n in counts.items():
            code_counts[c] = code_counts.get(c, 0) + n
    world = {
        "generator": "cloudyeo.demo.planet",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "cfg": cfg,
        "layout": {
            "psscene_catalog": f"catalog/{PSSCENE_FILE}",
            "stac_catalog": "catalog/items.ndjson",
            "collections": "catalog/collections.json",
            "archive": "archive",
            "optical_asset": OPTICAL_ASSET,
            "udm2_asset": UDM2_ASSET,
            "udm2_bands": list(UDM2_BANDS),
            "optical_encoding": "TOA reflectance x 10000, uint16, 0 = nodata (blue, green, red, nir)",
            "s1_encoding": "sigma0 linear power, float32, NaN = nodata",
        },
        "aois": [{
            **su.aoi.describe(),
            "planet_transform_3m": list(su.grid.transform),
            "planet_shape_3m": list(su.grid.shape),
            "planet_lattice_offset_m": list(su.grid.offset_m),
            "planet_margin_m": MARGIN_M,
            "planet_scenes": sum(1 for a in planet if a.aoi_id == su.aoi.id),
            "s1_scenes": sum(1 for a in s1 if a.aoi_id == su.aoi.id),
            "clear_share": su.clear_share,
            "worldcover_pixels": {str(c): n for c, n in sorted(worldcover[su.aoi.id].items())},
        } for su in setups],
        # Truth: each S1 product's viewing geometry and misregistration against the PlanetScope
        # grid (cloudyeo.demo.sar_geometry; the height-error rasters are archive/truth/dem_error/).
        "s1_truth": sorted((r["s1_truth"] for r in results if "s1_truth" in r), key=lambda t: t["scene_id"]),
        "scenes_without_udm2": sorted(a.item_id for a in planet if not a.has_udm2),
        "scenes_with_partial_nodata": sorted(a.item_id for a in planet if a.sky.nodata is not None),
        "scene_cloud_percent": {k: round(v["percent"]["cloud"], 3) for k, v in sorted(scenes.items())},
        "worldcover_codes": sorted(code_counts),
        "counts": {"aois": len(setups), "psscene": len(features),
                   COLLECTION_S1: sum(1 for it in items if it["collection"] == COLLECTION_S1),
                   COLLECTION_WORLDCOVER: len(worldcover), "files": n_files},
        "pixel_size_m": {"planet": PLANET_RES, "s1": 10, "worldcover": 10},
        "bytes": n_bytes,
    }
    write_text(world_path, json.dumps(world, indent=1) + "\n")
    return out


def load_planet_world(out_dir: os.PathLike[str] | str) -> dict[str, Any]:
    """Read ``world.json``; raises FileNotFoundError when the world is missing or incomplete."""
    path = Path(out_dir) / WORLD_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the Planet demo world is missing or was interrupted; regenerate it "
            f"with `cloudyeo demo generate-planet` (rule demo_planet)")
    return json.loads(path.read_text(encoding="utf-8"))
