"""Planet-CR-style quartets: cloudy/clear PlanetScope 3 m, Sentinel-1 10 m, WorldCover classes.

After Xu et al., "High-Resolution Cloud Removal with Multi-Modal and Multi-Resolution Data
Fusion" (Planet-CR): per AOI, each cloudy PlanetScope scene is paired with the temporally
closest clear scene (at most ``max_clear_days`` apart) and the closest Sentinel-1 GRD
acquisition; ESA WorldCover is remapped to six DeepGlobe classes (:mod:`cloudyeo.landcover`);
samples are 300 x 300 windows at 3 m with the 90 x 90 windows at 10 m covering the same ground.

A dataset builder (:class:`PlanetCRBuilder`, see :mod:`cloudyeo.datasets.builder`); the generic
drivers run it (``cloudyeo dataset planetcr plan|init|extract --unit batch-000|finalize``):

- plan -> ``manifest.parquet`` (GeoParquet, one row per candidate window and one per
  skipped scene, with ``skip_reason``, ``selected``, ``split``, ``batch``, ``sample``) and
  ``scenes.parquet`` (one row per PlanetScope scene: UDM2 statistics, role, skip reason). Only
  UDM2 masks and the WorldCover map are read here (small); they decide cloud cover per window,
  pairing, the alignment check, the balanced selection and the AOI-level split.
- init -> the empty ``planetcr.zarr`` with every plan-time coordinate.
- extract, one unit per batch of AOIs -> reads the optical, UDM2, Sentinel-1 and WorldCover
  windows of the batch, re-checks alignment on the files themselves, writes the batch's samples;
  the driver then writes ``parts/<batch>.parquet``.
- finalize -> per-sample extract statistics, index, tables, figures (named renderers of
  :mod:`cloudyeo.report.planetcr_figures`), card sections.

The demo source is an archive like any other: the demo world's ``world.json`` is read as data
(AOI grids, period, asset names, catalog files) and its catalogs through the archives layer.

Grids: the AOI's 10 m grid (corner on a 30 m multiple, in the AOI's UTM zone) is where
Sentinel-1 and WorldCover are read (window reads when their files are on that lattice, else a
warped read). PlanetScope windows are cut on each scene's own 3 m grid - never resampled - at the
3 m pixel corner nearest to the 10 m window corner; both transforms are kept per sample, and the
two footprints must agree within ``max_offset_m`` (default one 10 m pixel) at both corners.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import box

from .. import store
from ..aois import AoiSpec, place_aoi
from ..archives.base import SceneRecord, SearchQuery
from ..archives.planet import ASSETS_KEY, PL_API_KEY_ENV, LocalPlanetArchive, PlanetArchive, PlanetAssetMissing
from ..archives.reading import ReadError, open_raster, read_asset_on_grid, read_exact_window
from ..archives.s1_source import dataset_s1_source, s1_card_line
from ..config import paths
from ..grids import footprint, to_lonlat
from ..landcover import (
    CLASSES,
    IGNORE_INDEX,
    WORLDCOVER_CLASSES,
    WORLDCOVER_TO_CLASS,
    class_fractions,
    remap_table_attrs,
    remap_worldcover,
)
from .builder import DatasetBuilder, Figure, StoreLayout, Summary, Table, WriteSamples
from .common import SENTINEL_LICENCE, band_statistics, to_db, utc64

log = logging.getLogger(__name__)

PLANETSCOPE = "planetscope"
S1_GRD = "sentinel-1-grd"
WORLDCOVER = "esa-worldcover"
DEMO_OPTICAL_ASSET = "ortho_analytic_4b_toar"
OPTICAL_BANDS = ("B", "G", "R", "NIR")
OPTICAL_NAMES = {"B": "blue", "G": "green", "R": "red", "NIR": "near-infrared"}
OPTICAL_WAVELENGTH_NM = {"B": 490, "G": 565, "R": 665, "NIR": 865}
S1_POLARIZATIONS = ("VV", "VH")
#: UDM2 bands (1-based in the file) of the classes a config may name.
UDM2_CLASS_BANDS = {"clear": 1, "snow": 2, "shadow": 3, "light_haze": 4, "heavy_haze": 5, "cloud": 6}
UDM2_CONFIDENCE_BAND = 7
UDM2_UDM1_BAND = 8
UDM1_BLACKFILL = 1
# Atmospheric, i.e. not allowed in a "clear" window (snow is ground, not sky).
ATMOSPHERIC = ("cloud", "heavy_haze", "light_haze", "shadow")
MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_NODATA = 0, 1, 2, 255
MASK_MEANINGS = {MASK_CLEAR: "clear_or_other", MASK_CLOUD: "cloud", MASK_SHADOW: "shadow",
                 MASK_NODATA: "nodata"}
OPTICAL_SCALE = 1e-4
SAME_SCENE = dt.timedelta(minutes=1)
# The demo world's description (cloudyeo demo generate-planet writes it last).
DEMO_WORLD_FILE = "world.json"
LICENCES = {
    "PlanetScope": "Planet Labs PBC, licensed per Planet's terms (the Planet-CR release is gated); "
                   "demo builds use synthetic scenes (CC0).",
    "Sentinel-1": SENTINEL_LICENCE,
    "ESA WorldCover": "CC BY 4.0, (c) ESA WorldCover project / Contains modified Copernicus "
                      "Sentinel data processed by ESA WorldCover consortium.",
}


class ExtractionError(RuntimeError):
    """A batch could not be extracted; the message names the batch, sample and file."""


class AlignmentError(ValueError):
    """The 3 m and 10 m footprints of a window disagree by more than the tolerance."""


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Settings:
    cloud_range: tuple[float, float]
    window_cloud_range: tuple[float, float]
    clear_max_percent: float
    max_clear_days: float
    max_s1_days: float
    cloud_classes: tuple[str, ...]
    window_3m: int
    window_10m: int
    stride_10m: int
    max_offset_m: float
    max_nodata_percent: float
    bins: tuple[float, ...]
    samples_per_bin: int
    balance_landcover: bool
    max_overlap: float
    test_fraction: float
    test_aois: tuple[str, ...] | None
    seed: int
    aois_per_batch: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Settings:
        s = cfg["planetcr"]
        splits = s.get("splits") or {}
        classes = tuple(s["cloud_classes"])
        unknown = [c for c in classes if c not in UDM2_CLASS_BANDS]
        if unknown or not classes:
            raise ValueError(f"planetcr.cloud_classes: unknown UDM2 classes {unknown}; "
                             f"choose from {sorted(UDM2_CLASS_BANDS)}")
        bins = tuple(float(b) for b in s["bins"])
        if len(bins) < 2 or any(hi <= lo for lo, hi in zip(bins, bins[1:])):
            raise ValueError(f"planetcr.bins: must be at least two increasing values, got {list(bins)}")
        return cls(
            cloud_range=cast(tuple[float, float], tuple(float(v) for v in s["cloud_range"])),  # schema: [lo, hi]
            window_cloud_range=cast(tuple[float, float], tuple(float(v) for v in s["window_cloud_range"])),
            clear_max_percent=float(s["clear_max_percent"]),
            max_clear_days=float(s["max_clear_days"]),
            max_s1_days=float(s["max_s1_days"]),
            cloud_classes=classes,
            window_3m=int(s["window_3m"]),
            window_10m=int(s["window_10m"]),
            stride_10m=int(s["stride_10m"]),
            max_offset_m=float(s["max_offset_m"]),
            max_nodata_percent=float(s["max_nodata_percent"]),
            bins=bins,
            samples_per_bin=int(s["samples_per_bin"]),
            balance_landcover=bool(s["balance_landcover"]),
            max_overlap=float(s["max_overlap"]),
            test_fraction=float(splits.get("test_fraction", 0.34)),
            test_aois=tuple(splits["test_aois"]) if splits.get("test_aois") else None,
            seed=int(s["seed"]),
            aois_per_batch=int(s["aois_per_batch"]),
        )


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}%"


def cloud_bin(percent: float, bins: tuple[float, ...]) -> str | None:
    """The bin label of a cloud percentage (last bin closed on the right), None outside."""
    for lo, hi in zip(bins, bins[1:]):
        if lo <= percent < hi or (hi == bins[-1] and percent == hi):
            return bin_label(lo, hi)
    return None


# -------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class AoiWork:
    """One AOI to build: its 10 m grid and the acquisition period searched."""

    aoi: AoiSpec
    start: dt.datetime
    end: dt.datetime


def read_demo_world(world_dir: Path) -> dict[str, Any]:
    """The demo world's ``world.json`` (AOIs, period, asset names, catalog files), read as data."""
    path = world_dir / DEMO_WORLD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the Planet demo world is missing or was interrupted; "
                                "regenerate it with `cloudyeo demo generate-planet` (rule demo_planet)")
    return json.loads(path.read_text(encoding="utf-8"))


class Source:
    """Where the scenes of a build come from (demo world or Planet API + STAC API)."""

    def __init__(self, cfg: Mapping[str, Any]):
        from ..archives.local import LocalStacArchive
        from ..archives.stac_api import StacApiArchive

        self.cfg = cfg
        sec = cfg["planetcr"]
        p = paths(cfg)
        self.kind = sec["source"]
        self.planet: LocalPlanetArchive | PlanetArchive
        self.stac: LocalStacArchive | StacApiArchive
        if self.kind == "demo":
            world = read_demo_world(p.demo_planet)
            layout = world["layout"]
            self.optical_asset = layout["optical_asset"]
            self.udm2_asset = layout["udm2_asset"]
            self.planet = LocalPlanetArchive(p.demo_planet / layout["psscene_catalog"], asset_type=self.optical_asset)
            self.stac = LocalStacArchive(p.demo_planet / layout["stac_catalog"])
            start = dt.datetime.fromisoformat(world["cfg"]["start_date"]).replace(tzinfo=dt.UTC)
            end = start + dt.timedelta(days=int(world["cfg"]["days"]))
            known = {a["id"]: AoiSpec.from_dict(a) for a in world["aois"]}
            wanted = sec.get("aois") or list(known)
            bad = [a for a in wanted if not isinstance(a, str) or a not in known]
            if bad:
                raise ValueError(f"planetcr.aois: {bad} not in the demo world (has {sorted(known)})")
            self.aois = [AoiWork(known[a], start, end) for a in wanted]
        elif self.kind == "planet-api":
            api = dict(sec.get("planet_api") or {})
            self.optical_asset = api.get("asset_type") or "ortho_analytic_4b_sr"
            self.udm2_asset = api.get("udm2_asset") or "ortho_udm2"
            self.planet = PlanetArchive.from_config(api, asset_type=self.optical_asset)
            self.poll_s = float(api.get("poll_s", 10.0))
            self.activation_timeout_s = float(api.get("activation_timeout_s", 900.0))
            self.stac = StacApiArchive.from_config(cfg)
            self.aois = []
            for a in sec.get("aois") or []:
                if not isinstance(a, dict) or not {"id", "lon", "lat", "start", "end"} <= set(a):
                    raise ValueError("planetcr.aois: with source planet-api every AOI needs "
                                     f"id, lon, lat, start, end; got {a!r}")
                aoi = place_aoi(str(a["id"]), float(a["lon"]), float(a["lat"]), int(sec["aoi_size_px"]))
                start = pd.Timestamp(a["start"], tz="UTC").to_pydatetime()
                end = pd.Timestamp(a["end"], tz="UTC").to_pydatetime()
                self.aois.append(AoiWork(aoi, start, end))
            if not self.aois:
                raise ValueError("planetcr.aois: list the AOIs to build with source planet-api")
        else:
            raise ValueError(f"planetcr.source: unknown source {self.kind!r} (demo | planet-api)")
        self.cache = p.resources / "planet" / "assets"

    def aoi(self, aoi_id: str) -> AoiWork:
        for w in self.aois:
            if w.aoi.id == aoi_id:
                return w
        raise KeyError(f"AOI {aoi_id!r} is not part of this build")

    def planet_scenes(self, work: AoiWork) -> list[SceneRecord]:
        q = SearchQuery(PLANETSCOPE, work.start, work.end, intersects=work.aoi.footprint())
        return self.planet.search(q)

    def s1_scenes(self, work: AoiWork, margin_days: float) -> list[SceneRecord]:
        span = dt.timedelta(days=margin_days)
        q = SearchQuery(S1_GRD, work.start - span, work.end + span, intersects=work.aoi.footprint())
        return self.stac.search(q)

    def worldcover(self, work: AoiWork) -> SceneRecord | None:
        q = SearchQuery(WORLDCOVER, dt.datetime(2015, 1, 1, tzinfo=dt.UTC),
                        dt.datetime(2100, 1, 1, tzinfo=dt.UTC), intersects=work.aoi.footprint())
        found = [r for r in self.stac.search(q) if "map" in r.assets]
        return max(found, key=lambda r: (r.datetime, r.id)) if found else None

    def planet_path(self, record: SceneRecord, asset_type: str) -> str:
        """A local file for a PlanetScope asset (activated and downloaded for the API)."""
        if self.kind == "demo":
            return str(cast(LocalPlanetArchive, self.planet).download_asset(record, asset_type))  # demo: a local catalog
        dest = self.cache / record.id / f"{record.id}_{asset_type}.tif"
        return str(self.planet.download_asset(record, asset_type, dest, poll_s=self.poll_s,
                                              timeout_s=self.activation_timeout_s))


# ------------------------------------------------------------------------------- raster io


def _stac_on_grid(src: Source, record: SceneRecord, band: str, transform: Affine, shape: tuple[int, int],
                  epsg: int, *, resampling: str = "nearest", fill: float = 0) -> np.ndarray:
    """Band ``band`` of a STAC scene (S1, WorldCover) on the AOI grid, through the reading layer:
    a window read on the raster's lattice, else a warp; ``fill`` outside the raster."""
    try:
        return read_asset_on_grid(src.stac, record, band, epsg=epsg, transform=transform, shape=shape,
                                  resampling=resampling, fill=fill)
    except ReadError as exc:
        raise ExtractionError(f"{record.id} {band}: {exc}") from None


# ------------------------------------------------------------------------------ alignment


def window_footprint_offsets(t10: Affine, size10: int, t3: Affine, size3: int) -> tuple[float, float, float, float]:
    """(dx_ul, dy_ul, dx_lr, dy_lr) in metres: the 3 m window's corners minus the 10 m window's."""
    ul10 = t10 @ (0, 0)
    lr10 = t10 @ (size10, size10)
    ul3 = t3 @ (0, 0)
    lr3 = t3 @ (size3, size3)
    return (ul3[0] - ul10[0], ul3[1] - ul10[1], lr3[0] - lr10[0], lr3[1] - lr10[1])


def check_alignment(t10: Affine, size10: int, t3: Affine, size3: int, max_offset_m: float,
                    epsg10: int | None = None, epsg3: int | None = None) -> tuple[float, float]:
    """Check that two windows cover the same ground; return the (dx, dy) corner offset in m.

    Raises :class:`AlignmentError` when the CRSs differ or any corner is further apart than
    ``max_offset_m`` along either axis.
    """
    if epsg10 is not None and epsg3 is not None and epsg10 != epsg3:
        raise AlignmentError(f"3 m grid in EPSG:{epsg3}, 10 m grid in EPSG:{epsg10}")
    offs = window_footprint_offsets(t10, size10, t3, size3)
    worst = max(abs(v) for v in offs)
    if not worst <= max_offset_m:
        raise AlignmentError(
            f"3 m and 10 m window footprints differ by {worst:.2f} m (> {max_offset_m:g} m): "
            f"corner offsets (dx, dy) upper-left ({offs[0]:.2f}, {offs[1]:.2f}), "
            f"lower-right ({offs[2]:.2f}, {offs[3]:.2f})")
    return offs[0], offs[1]


def planet_window(t3_scene: Affine, shape3: tuple[int, int], t10_window: Affine,
                  size3: int) -> tuple[Window, Affine] | None:
    """The 3 m window whose corner is the scene pixel corner nearest the 10 m window's corner;
    None when it leaves the scene's raster."""
    col, row = ~t3_scene @ (t10_window.c, t10_window.f)
    c, r = int(round(col)), int(round(row))
    if c < 0 or r < 0 or c + size3 > shape3[1] or r + size3 > shape3[0]:
        return None
    win = Window(c, r, size3, size3)
    return win, rasterio.windows.transform(win, t3_scene)


# ---------------------------------------------------------------------------------- udm2


def udm2_layers(udm: np.ndarray, cloud_classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Boolean layers from an 8-band UDM2 block: cloud (configured classes), shadow, atmos
    (cloud, haze, shadow), nodata (blackfill, or no class flagged)."""
    b = {name: udm[i - 1].astype(bool) for name, i in UDM2_CLASS_BANDS.items()}
    nodata = ((udm[UDM2_UDM1_BAND - 1] & UDM1_BLACKFILL) > 0) | ~np.any(udm[:6] > 0, axis=0)
    cloud = np.zeros(nodata.shape, dtype=bool)
    for c in cloud_classes:
        cloud |= b[c]
    shadow = b["shadow"] & ~cloud
    atmos = np.zeros(nodata.shape, dtype=bool)
    for c in ATMOSPHERIC:
        atmos |= b[c]
    return {"cloud": cloud & ~nodata, "shadow": shadow & ~nodata, "atmos": atmos & ~nodata,
            "nodata": nodata}


def udm2_percent(layers: dict[str, np.ndarray]) -> dict[str, float]:
    """Cloud / shadow / atmos percent of the *imaged* pixels, nodata percent of all."""
    nodata = layers["nodata"]
    n_valid = int((~nodata).sum())
    out = {"nodata_percent": 100.0 * float(nodata.mean()) if nodata.size else 100.0}
    for k in ("cloud", "shadow", "atmos"):
        out[f"{k}_percent"] = 100.0 * float(layers[k].sum()) / n_valid if n_valid else float("nan")
    return out


def cloud_mask(layers: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 mask: 0 clear/other, 1 cloud (configured classes), 2 shadow, 255 nodata."""
    m = np.full(layers["nodata"].shape, MASK_CLEAR, dtype=np.uint8)
    m[layers["shadow"]] = MASK_SHADOW
    m[layers["cloud"]] = MASK_CLOUD
    m[layers["nodata"]] = MASK_NODATA
    return m


def mask_percent(mask: np.ndarray) -> dict[str, float]:
    valid = mask != MASK_NODATA
    n = max(int(valid.sum()), 1)
    return {"cloud_percent": 100.0 * float((mask == MASK_CLOUD).sum()) / n,
            "shadow_percent": 100.0 * float((mask == MASK_SHADOW).sum()) / n,
            "nodata_percent": 100.0 * float((~valid).mean())}


# ------------------------------------------------------------------------------ selection


def select_balanced(cands: pd.DataFrame, s: Settings) -> np.ndarray:
    """Boolean selection over candidate windows balancing cloud bins and land-cover types.

    Per cloud bin, at most ``samples_per_bin`` windows are taken: round-robin over dominant
    land-cover classes (when ``balance_landcover``; classes in seeded order), each turn taking
    the class's candidate from the AOI with the fewest picks in the bin so far (candidates in
    seeded order). A window overlapping an already chosen window of the same cloudy scene by
    more than ``max_overlap`` of its area is passed over.
    """
    rng = np.random.default_rng(s.seed)
    chosen = np.zeros(len(cands), dtype=bool)
    if not len(cands):
        return chosen
    order = rng.permutation(len(cands))
    rank = np.empty(len(cands), dtype=np.int64)
    rank[order] = np.arange(len(cands))
    n = s.window_10m
    taken: dict[str, list[tuple[int, int]]] = {}
    cloudy = cands["cloudy_id"].to_numpy()
    rows = cands["row_10m"].to_numpy()
    cols = cands["col_10m"].to_numpy()
    aois = cands["aoi"].to_numpy()

    def overlaps(i: int) -> bool:
        for r, c in taken.get(cloudy[i], ()):
            inter = max(0, n - abs(r - rows[i])) * max(0, n - abs(c - cols[i]))
            if inter > s.max_overlap * n * n:
                return True
        return False

    for label in [bin_label(lo, hi) for lo, hi in zip(s.bins, s.bins[1:])]:
        in_bin = np.flatnonzero(cands["cloud_bin"].to_numpy() == label)
        if not len(in_bin):
            continue
        keys = cands["dominant_class"].to_numpy()[in_bin] if s.balance_landcover else np.zeros(len(in_bin))
        groups = []  # per class: {aoi: [candidate indices in seeded order]}
        for key in sorted(set(keys.tolist()), key=str):
            members = sorted(in_bin[keys == key], key=lambda i: rank[i])
            by_aoi: dict[str, list[int]] = {}
            for i in members:
                by_aoi.setdefault(aois[i], []).append(int(i))
            groups.append(by_aoi)
        groups = [groups[k] for k in rng.permutation(len(groups))]
        picks: dict[str, int] = {}
        count = 0
        while count < s.samples_per_bin:
            progressed = False
            for by_aoi in groups:
                while any(by_aoi.values()):
                    aoi = min((a for a, q in by_aoi.items() if q),
                              key=lambda a: (picks.get(a, 0), rank[by_aoi[a][0]]))
                    i = by_aoi[aoi].pop(0)
                    if overlaps(i):
                        continue
                    chosen[i] = True
                    taken.setdefault(cloudy[i], []).append((int(rows[i]), int(cols[i])))
                    picks[aoi] = picks.get(aoi, 0) + 1
                    count += 1
                    progressed = True
                    break
                if count >= s.samples_per_bin:
                    break
            if not progressed:
                break
    return chosen


def assign_splits(aoi_ids: list[str], s: Settings) -> dict[str, str]:
    """AOI -> "train" | "test" (seeded; explicit ``splits.test_aois`` win)."""
    ids = sorted(aoi_ids)
    if s.test_aois is not None:
        unknown = sorted(set(s.test_aois) - set(ids))
        if unknown:
            raise ValueError(f"planetcr.splits.test_aois: {unknown} are not AOIs of this build ({ids})")
        return {a: ("test" if a in s.test_aois else "train") for a in ids}
    rng = np.random.default_rng([s.seed, 2])
    perm = [ids[i] for i in rng.permutation(len(ids))]
    n_test = int(round(s.test_fraction * len(ids)))
    if len(ids) > 1 and s.test_fraction > 0:
        n_test = min(max(n_test, 1), len(ids) - 1)
    test = set(perm[:n_test])
    return {a: ("test" if a in test else "train") for a in ids}


# ----------------------------------------------------------------------------------- plan


def _days(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() / 86400.0


def _scene_row(aoi_id: str, rec: SceneRecord) -> dict[str, Any]:
    return dict(aoi=aoi_id, scene_id=rec.id, datetime=rec.datetime, platform=rec.platform,
                metadata_cloud_cover=rec.cloud_cover, has_udm2=False, epsg=None,
                cloud_percent=np.nan, shadow_percent=np.nan, atmos_percent=np.nan,
                nodata_percent=np.nan, role="unused", skip_reason=None)


def plan_aoi(src: Source, work: AoiWork, s: Settings) -> tuple[list[dict], list[dict]]:
    """Candidate windows and scene rows of one AOI."""
    aoi = work.aoi
    t10 = aoi.transform
    scenes = src.planet_scenes(work)
    scene_rows: list[dict] = []
    info: dict[str, dict] = {}
    for rec in scenes:
        row = _scene_row(aoi.id, rec)
        scene_rows.append(row)
        # Search results list the item's asset types; when a server does not, ask at download.
        listed = any(k != ASSETS_KEY for k in rec.assets)
        if listed and src.udm2_asset not in rec.assets:
            row["skip_reason"] = f"no UDM2 asset ({src.udm2_asset}): usable-data mask unavailable"
            continue
        if listed and src.optical_asset not in rec.assets:
            row["skip_reason"] = f"no optical asset ({src.optical_asset})"
            continue
        for name in (src.udm2_asset, src.optical_asset):
            if getattr(rec.assets.get(name), "permitted", None) is False:
                row["skip_reason"] = f"no download permission for {name} ({PL_API_KEY_ENV}'s access)"
        if row["skip_reason"]:
            continue
        try:
            udm_path = src.planet_path(rec, src.udm2_asset)
        except PlanetAssetMissing:
            row["skip_reason"] = f"no UDM2 asset ({src.udm2_asset}): usable-data mask unavailable"
            continue
        row["has_udm2"] = True
        with open_raster(src.planet, udm_path, what=f"UDM2 of {rec.id}") as f:
            epsg3 = f.crs.to_epsg() if f.crs else None
            row["epsg"] = epsg3
            if epsg3 != aoi.epsg:
                row["skip_reason"] = (f"scene in EPSG:{epsg3}, AOI grid in EPSG:{aoi.epsg} "
                                      "(PlanetScope is never resampled)")
                continue
            # Only the AOI (+ a margin) of a real ~25 x 11 km scene; outside the scene reads as
            # all-zero UDM2, i.e. nodata.
            minx, miny, maxx, maxy = aoi.bounds
            m = 2 * abs(f.transform.a)
            win = rasterio.windows.from_bounds(minx - m, miny - m, maxx + m, maxy + m, transform=f.transform)
            win = Window(int(np.floor(win.col_off)), int(np.floor(win.row_off)),
                         int(np.ceil(win.width)) + 1, int(np.ceil(win.height)) + 1)
            udm = f.read(window=win, boundless=True, fill_value=0)
            t3 = f.window_transform(win)
        shape3 = udm.shape[1:]
        layers = udm2_layers(udm, s.cloud_classes)
        # AOI-level statistics over the scene pixels inside the AOI.
        aoi_win = rasterio.windows.from_bounds(*aoi.bounds, transform=t3).round_offsets().round_lengths()
        sub = {k: v[max(aoi_win.row_off, 0):aoi_win.row_off + aoi_win.height,
                     max(aoi_win.col_off, 0):aoi_win.col_off + aoi_win.width] for k, v in layers.items()}
        row.update(udm2_percent(sub))
        info[rec.id] = dict(rec=rec, t3=t3, shape3=shape3, layers=layers, row=row)

    cloudy = [i for i in info.values()
              if s.cloud_range[0] <= i["row"]["cloud_percent"] <= s.cloud_range[1]]
    clear = [i for i in info.values() if i["row"]["atmos_percent"] <= s.clear_max_percent
             and i["row"]["nodata_percent"] < 100.0]
    cloudy_ids = {i["rec"].id for i in cloudy}
    clear_ids = {i["rec"].id for i in clear}
    for i in info.values():
        r = i["row"]
        if i["rec"].id in cloudy_ids:
            r["role"] = "cloudy"
        elif i["rec"].id in clear_ids:
            r["role"] = "clear"
        else:
            r["skip_reason"] = (f"AOI cloud {r['cloud_percent']:.1f} % outside cloud_range "
                                f"{list(s.cloud_range)} and not clear (cloud+haze+shadow "
                                f"{r['atmos_percent']:.1f} % > {s.clear_max_percent:g} %)")

    # WorldCover on the AOI grid, remapped once.
    wc = src.worldcover(work)
    lc = None
    if wc is not None:
        codes = _stac_on_grid(src, wc, "map", t10, aoi.shape, aoi.epsg)
        lc = remap_worldcover(codes)
    s1 = src.s1_scenes(work, s.max_s1_days)

    n = s.window_10m
    positions = range(0, aoi.size_px - n + 1, s.stride_10m)
    cands: list[dict] = []
    for ci in sorted(cloudy, key=lambda i: (i["rec"].datetime, i["rec"].id)):
        rec = ci["rec"]
        s1_rec = min(s1, key=lambda r: (abs(_days(rec.datetime, r.datetime)), r.id)) if s1 else None
        if s1_rec is not None and abs(_days(rec.datetime, s1_rec.datetime)) > s.max_s1_days:
            s1_rec = None
        near = sorted((c for c in clear if c["rec"].id != rec.id
                       and abs(rec.datetime - c["rec"].datetime) >= SAME_SCENE
                       and abs(_days(rec.datetime, c["rec"].datetime)) <= s.max_clear_days),
                      key=lambda c: (abs(_days(rec.datetime, c["rec"].datetime)), c["rec"].id))
        for r10 in positions:
            for c10 in positions:
                tw = t10 @ Affine.translation(c10, r10)
                row = dict(
                    aoi=aoi.id, epsg=aoi.epsg, cloudy_id=rec.id, cloudy_datetime=rec.datetime,
                    clear_id=None, clear_datetime=pd.NaT, dt_clear_days=np.nan,
                    s1_id=s1_rec.id if s1_rec else None,
                    s1_datetime=s1_rec.datetime if s1_rec else pd.NaT,
                    dt_s1_days=_days(rec.datetime, s1_rec.datetime) if s1_rec else np.nan,
                    worldcover_id=wc.id if wc else None,
                    row_10m=r10, col_10m=c10, transform_10m=list(tw)[:6], transform_3m=None,
                    transform_3m_clear=None, offset_x_m=np.nan, offset_y_m=np.nan,
                    scene_cloud_percent=ci["row"]["cloud_percent"], cloud_percent=np.nan,
                    shadow_percent=np.nan, nodata_percent=np.nan, cloud_bin=None,
                    dominant_class=None, skip_reason=None,
                    geometry=to_lonlat(footprint(tw, (n, n)), aoi.epsg),
                    **{f"lc_{c}": np.nan for c in CLASSES}, lc_ignore=np.nan,
                )
                cands.append(row)
                row["skip_reason"] = _evaluate_window(row, ci, near, lc, tw, s)
    return cands, scene_rows


def _evaluate_window(row: dict, ci: dict, near: list[dict], lc: np.ndarray | None, tw: Affine,
                     s: Settings) -> str | None:
    """Fill a candidate's window statistics; return its skip reason (None = usable)."""
    n, n3 = s.window_10m, s.window_3m
    pw = planet_window(ci["t3"], ci["shape3"], tw, n3)
    if pw is None:
        return "window outside the cloudy scene's 3 m grid"
    win, t3w = pw
    row["transform_3m"] = list(t3w)[:6]
    try:
        dx, dy = check_alignment(tw, n, t3w, n3, s.max_offset_m)
    except AlignmentError as exc:
        return f"alignment: {exc}"
    row["offset_x_m"], row["offset_y_m"] = dx, dy
    sl = (slice(win.row_off, win.row_off + n3), slice(win.col_off, win.col_off + n3))
    stats = udm2_percent({k: v[sl] for k, v in ci["layers"].items()})
    row.update(cloud_percent=stats["cloud_percent"], shadow_percent=stats["shadow_percent"],
               nodata_percent=stats["nodata_percent"])
    if lc is not None:
        cls = lc[row["row_10m"]:row["row_10m"] + n, row["col_10m"]:row["col_10m"] + n]
        frac = class_fractions(cls)
        for class_name, f in zip(CLASSES, frac):
            row[f"lc_{class_name}"] = float(f)
        row["lc_ignore"] = float((cls == IGNORE_INDEX).mean())
        row["dominant_class"] = CLASSES[int(np.argmax(frac))] if frac.max() > 0 else "ignore"
    if stats["nodata_percent"] >= 100.0:
        return "all-nodata window (UDM2 blackfill over the whole cloudy window)"
    if stats["nodata_percent"] > s.max_nodata_percent:
        return f"cloudy window {stats['nodata_percent']:.1f} % nodata > max_nodata_percent {s.max_nodata_percent:g}"
    lo, hi = s.window_cloud_range
    if not lo <= stats["cloud_percent"] <= hi:
        return f"window cloud {stats['cloud_percent']:.1f} % outside window_cloud_range [{lo:g}, {hi:g}]"
    row["cloud_bin"] = cloud_bin(stats["cloud_percent"], s.bins)
    if row["cloud_bin"] is None:
        return f"window cloud {stats['cloud_percent']:.1f} % outside the bins"
    if lc is None:
        return "no WorldCover map covers the AOI"
    if row["s1_id"] is None:
        return f"no Sentinel-1 acquisition within {s.max_s1_days:g} days of the cloudy scene"
    for c in near:
        pc = planet_window(c["t3"], c["shape3"], tw, n3)
        if pc is None:
            continue
        cwin, ct3 = pc
        if not np.allclose(list(ct3)[:6], row["transform_3m"], atol=1e-6 * 3.0 + 1e-3):
            continue  # another 3 m lattice: cloudy and clear would not be pixel-aligned
        csl = (slice(cwin.row_off, cwin.row_off + n3), slice(cwin.col_off, cwin.col_off + n3))
        cst = udm2_percent({k: v[csl] for k, v in c["layers"].items()})
        if cst["nodata_percent"] > 0 or cst["atmos_percent"] > s.clear_max_percent:
            continue
        row.update(clear_id=c["rec"].id, clear_datetime=c["rec"].datetime,
                   transform_3m_clear=list(ct3)[:6],
                   dt_clear_days=_days(ci["rec"].datetime, c["rec"].datetime))
        return None
    return (f"no clear scene within {s.max_clear_days:g} days with a fully imaged, clear window "
            f"(cloud+haze+shadow <= {s.clear_max_percent:g} %) on the same 3 m lattice")


def plan(cfg: Mapping[str, Any]) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Decide every window: candidates, skips, balanced selection, splits, batches, samples."""
    s = Settings.from_config(cfg)
    dataset_s1_source(cfg, "planetcr")  # refuses raw Sentinel-1 GRD before any search
    src = Source(cfg)
    rows: list[dict] = []
    scene_rows: list[dict] = []
    for work in src.aois:
        log.info("planning AOI %s", work.aoi.id)
        c, sc = plan_aoi(src, work, s)
        rows += c
        scene_rows += sc
        # One manifest row per scene that could not even be considered (e.g. without UDM2).
        for r in sc:
            if r["skip_reason"] and r["role"] == "unused" and not r["has_udm2"]:
                rows.append(dict(aoi=r["aoi"], epsg=work.aoi.epsg, cloudy_id=r["scene_id"],
                                 cloudy_datetime=r["datetime"], skip_reason=r["skip_reason"],
                                 geometry=to_lonlat(box(*work.aoi.bounds), work.aoi.epsg)))
    manifest = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs="EPSG:4326")
    for col, default in (("row_10m", -1), ("col_10m", -1)):
        manifest[col] = manifest[col].fillna(default).astype(np.int64)
    usable = manifest["skip_reason"].isna().to_numpy()
    split_of = assign_splits([w.aoi.id for w in src.aois], s)
    manifest["split"] = manifest["aoi"].map(split_of)
    selected = np.zeros(len(manifest), dtype=bool)
    idx = np.flatnonzero(usable)
    selected[idx] = select_balanced(manifest.iloc[idx].reset_index(drop=True), s)
    manifest["selected"] = selected
    not_chosen = usable & ~selected
    manifest.loc[not_chosen, "skip_reason"] = (
        "not selected: its cloud bin / land-cover type was full, or it overlaps a chosen window")
    # Batches of AOIs (in build order) that hold selected samples; samples contiguous per batch.
    with_samples = [w.aoi.id for w in src.aois if manifest.loc[selected, "aoi"].eq(w.aoi.id).any()]
    batch_of = {a: f"batch-{i // s.aois_per_batch:03d}" for i, a in enumerate(with_samples)}
    manifest["batch"] = manifest["aoi"].map(batch_of)
    aoi_rank = {w.aoi.id: i for i, w in enumerate(src.aois)}
    manifest["_rank"] = manifest["aoi"].map(aoi_rank)
    manifest = manifest.sort_values(["_rank", "cloudy_datetime", "cloudy_id", "row_10m", "col_10m"],
                                    kind="stable").drop(columns="_rank").reset_index(drop=True)
    sel = manifest["selected"].to_numpy()
    manifest["sample"] = -1
    manifest.loc[sel, "sample"] = np.arange(int(sel.sum()))
    manifest["sample"] = manifest["sample"].astype(np.int64)
    manifest["sample_id"] = None
    manifest.loc[sel, "sample_id"] = [
        f"{a}_{c}_r{r:03d}_c{q:03d}" for a, c, r, q in
        manifest.loc[sel, ["aoi", "cloudy_id", "row_10m", "col_10m"]].itertuples(index=False)]
    manifest["skip_reason"] = manifest["skip_reason"].astype(object).where(manifest["skip_reason"].notna(), None)
    scenes = pd.DataFrame(scene_rows)
    return manifest, scenes




def selected_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest[manifest["selected"]].sort_values("sample").reset_index(drop=True)


# ------------------------------------------------------------------------------ the store


def store_layout(cfg: Mapping[str, Any], rows: pd.DataFrame, code: str, build_config: str) -> StoreLayout:
    """The empty store (one sample per selected window): variables, plan-time coordinates, attributes."""
    s = Settings.from_config(cfg)
    sec = cfg["planetcr"]
    n3, n10 = s.window_3m, s.window_10m
    s1_src = dataset_s1_source(cfg, "planetcr").attrs()
    optical_attrs = dict(units="1", scale_factor=OPTICAL_SCALE, add_offset=0.0, _FillValue=0,
                         long_name="PlanetScope reflectance")
    variables = {
        "optical_cloudy": store.VariableSpec(("band", "y", "x"), (4, n3, n3), "uint16",
                                             dict(optical_attrs, description="cloudy PlanetScope window (3 m)")),
        "optical_clear": store.VariableSpec(("band", "y", "x"), (4, n3, n3), "uint16",
                                            dict(optical_attrs, description="clear PlanetScope window (3 m)")),
        "cloud_mask": store.VariableSpec(("y", "x"), (n3, n3), "uint8", dict(
            long_name="cloud mask of the cloudy window from UDM2",
            flag_values=list(MASK_MEANINGS), flag_meanings=" ".join(MASK_MEANINGS.values()),
            cloud_classes=list(s.cloud_classes))),
        "clear_mask": store.VariableSpec(("y", "x"), (n3, n3), "uint8", dict(
            long_name="cloud mask of the clear (target) window from UDM2: its residual cloud and shadow",
            flag_values=list(MASK_MEANINGS), flag_meanings=" ".join(MASK_MEANINGS.values()),
            cloud_classes=list(s.cloud_classes))),
        "s1": store.VariableSpec(("polarization", "y_10m", "x_10m"), (2, n10, n10), "float32",
                                 dict(units="dB", long_name=f"Sentinel-1 {s1_src['s1_radiometry']}",
                                      _FillValue=np.nan)),
        "landcover": store.VariableSpec(("y_10m", "x_10m"), (n10, n10), "uint8", dict(
            long_name="WorldCover remapped to the 6 Planet-CR (DeepGlobe) classes",
            flag_values=list(range(len(CLASSES))) + [IGNORE_INDEX],
            flag_meanings=" ".join(CLASSES) + " ignore", ignore_index=IGNORE_INDEX)),
    }
    sample = ("sample",)

    def strs(col):
        return rows[col].fillna("").astype(str).to_numpy() if len(rows) else np.array([], dtype=str)

    def f32(col):
        return rows[col].to_numpy(dtype=np.float32) if len(rows) else np.zeros(0, np.float32)

    def aff(col):
        return np.stack(rows[col].to_numpy()).astype(np.float64) if len(rows) else np.zeros((0, 6))

    coords = {
        "sample_id": (sample, strs("sample_id")),
        "aoi": (sample, strs("aoi")),
        "split": (sample, strs("split")),
        "batch": (sample, strs("batch")),
        "cloudy_id": (sample, strs("cloudy_id")),
        "clear_id": (sample, strs("clear_id")),
        "s1_id": (sample, strs("s1_id")),
        "worldcover_id": (sample, strs("worldcover_id")),
        "cloudy_datetime": (sample, utc64(rows["cloudy_datetime"])),
        "clear_datetime": (sample, utc64(rows["clear_datetime"])),
        "s1_datetime": (sample, utc64(rows["s1_datetime"])),
        "dt_clear_days": (sample, f32("dt_clear_days")),
        "dt_s1_days": (sample, f32("dt_s1_days")),
        "cloud_percent": (sample, f32("cloud_percent")),
        "shadow_percent": (sample, f32("shadow_percent")),
        "nodata_percent": (sample, f32("nodata_percent")),
        "scene_cloud_percent": (sample, f32("scene_cloud_percent")),
        "cloud_bin": (sample, strs("cloud_bin")),
        "dominant_class": (sample, strs("dominant_class")),
        "epsg": (sample, rows["epsg"].to_numpy(dtype=np.int32) if len(rows) else np.zeros(0, np.int32)),
        "transform_3m": (("sample", "affine"), aff("transform_3m")),
        "transform_10m": (("sample", "affine"), aff("transform_10m")),
        "offset_x_m": (sample, f32("offset_x_m")),
        "offset_y_m": (sample, f32("offset_y_m")),
        "landcover_fraction": (("sample", "landcover_class"),
                               rows[[f"lc_{c}" for c in CLASSES]].to_numpy(dtype=np.float32)
                               if len(rows) else np.zeros((0, len(CLASSES)), np.float32)),
        "band": (("band",), np.array(OPTICAL_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        "landcover_class": (("landcover_class",), np.array(CLASSES)),
    }
    src_kind = sec["source"]
    optical_asset = DEMO_OPTICAL_ASSET if src_kind == "demo" else (
        (sec.get("planet_api") or {}).get("asset_type") or "ortho_analytic_4b_sr")
    attrs = dict(
        title="Planet-CR-style quartets (cloudyeo)",
        optical_bands=list(OPTICAL_BANDS),
        optical_band_names=OPTICAL_NAMES,
        optical_central_wavelength_nm=OPTICAL_WAVELENGTH_NM,
        optical_asset=optical_asset,
        optical_radiometry=("top-of-atmosphere reflectance" if optical_asset.endswith("_toar")
                            else "surface reflectance" if optical_asset.endswith("_sr")
                            else optical_asset),
        optical_encoding="reflectance = stored * 1e-4; 0 = nodata (CF _FillValue)",
        optical_pixel_size_m=3.0,
        s1_polarizations=list(S1_POLARIZATIONS),
        s1_units=f"dB (10 log10 of linear {s1_src['s1_radiometry']})",
        **s1_src,
        s1_pixel_size_m=10.0,
        landcover_remap=remap_table_attrs(),
        landcover_classes=list(CLASSES),
        ignore_index=IGNORE_INDEX,
        udm2_cloud_classes=list(s.cloud_classes),
        udm2_shadow="UDM2 band 3 (shadow), stored separately as mask value 2",
        cloud_mask_values=MASK_MEANINGS,
        cloud_percent_definition="pixels of the configured UDM2 cloud classes / imaged pixels of the 3 m window",
        cloud_bins=[bin_label(lo, hi) for lo, hi in zip(s.bins, s.bins[1:])],
        transform_convention="affine (a, b, c, d, e, f) in the sample's EPSG; transform_3m = the cloudy "
                             "and clear PlanetScope window (one 3 m lattice), transform_10m = S1/WorldCover",
        alignment="3 m and 10 m window corners agree within max_offset_m on both axes; offset_x_m/"
                  "offset_y_m = 3 m corner minus 10 m corner (upper-left)",
        max_offset_m=s.max_offset_m,
        dt_definition="days, clear (or S1) acquisition minus cloudy acquisition",
        source=src_kind,
        store_codec=sec["store_codec"],
        build_config=build_config,
        code_version=code,
    )
    return StoreLayout(n_samples=len(rows), variables=variables, coords=coords, attrs=attrs, codec=sec["store_codec"])


# -------------------------------------------------------------------------------- extract


def _find(records: list[SceneRecord], scene_id: str, what: str) -> SceneRecord:
    for r in records:
        if r.id == scene_id:
            return r
    raise ExtractionError(f"{what} {scene_id} no longer found in the archive")



def _read_window(archive: Any, href: str, t_window: Affine, size: int, epsg: int, bands: list[int],
                 what: str) -> np.ndarray:
    """An exact window (no resampling): its transform must be on the raster's lattice.

    A window reaching past the scene edge reads as nodata (0), as the plan's UDM2 did.
    """
    try:
        return read_exact_window(archive, href, epsg=epsg, transform=t_window, shape=(size, size),
                                 bands=bands, fill=0, what=what)
    except ReadError as exc:
        raise ExtractionError(str(exc)) from None


def extract_batch(cfg: Mapping[str, Any], batch: str, manifest: pd.DataFrame, write: WriteSamples, *,
                  progress: bool = False, manifest_path: Any = "the manifest") -> pd.DataFrame:
    """Cut one batch's samples, write them through ``write``; return the batch's part table."""
    from tqdm import tqdm

    s = Settings.from_config(cfg)
    rows = selected_rows(manifest)
    rows = rows[rows["batch"] == batch].reset_index(drop=True)
    if rows.empty:
        raise ExtractionError(f"batch {batch} has no selected samples in {manifest_path}")
    start = int(rows["sample"].iloc[0])
    if not np.array_equal(rows["sample"].to_numpy(), np.arange(start, start + len(rows))):
        raise ExtractionError(f"batch {batch}: sample indices in {manifest_path} are not contiguous")
    src = Source(cfg)
    n, n3 = len(rows), s.window_3m
    n10 = s.window_10m
    out: dict[str, np.ndarray] = {
        "optical_cloudy": np.zeros((n, 4, n3, n3), dtype=np.uint16),
        "optical_clear": np.zeros((n, 4, n3, n3), dtype=np.uint16),
        "cloud_mask": np.full((n, n3, n3), MASK_NODATA, dtype=np.uint8),
        "clear_mask": np.full((n, n3, n3), MASK_NODATA, dtype=np.uint8),
        "s1": np.full((n, 2, n10, n10), np.nan, dtype=np.float32),
        "landcover": np.full((n, n10, n10), IGNORE_INDEX, dtype=np.uint8),
    }
    part_rows = []
    bar = tqdm(total=n, desc=f"extract {batch}", unit="sample", disable=not progress)
    for aoi_id, group in rows.groupby("aoi", sort=False):
        work = src.aoi(aoi_id)
        aoi = work.aoi
        planet = {r.id: r for r in src.planet_scenes(work)}
        s1_recs = src.s1_scenes(work, s.max_s1_days)
        wc = src.worldcover(work)
        if wc is None or wc.id != group["worldcover_id"].iloc[0]:
            raise ExtractionError(f"batch {batch}, AOI {aoi_id}: WorldCover item "
                                  f"{group['worldcover_id'].iloc[0]} no longer found")
        codes = _stac_on_grid(src, wc, "map", aoi.transform, aoi.shape, aoi.epsg)
        lc_aoi = remap_worldcover(codes)
        s1_cache: dict[str, np.ndarray] = {}
        for i, row in group.iterrows():
            sid = row["sample_id"]
            epsg = int(row["epsg"])
            t10 = Affine(*row["transform_10m"])
            t3 = Affine(*row["transform_3m"])
            t3c = Affine(*row["transform_3m_clear"])
            cloudy = planet.get(row["cloudy_id"]) or _find([], row["cloudy_id"], "PlanetScope scene")
            clear = planet.get(row["clear_id"]) or _find([], row["clear_id"], "PlanetScope scene")
            # The alignment check again, on the transforms the files give.
            try:
                dx, dy = check_alignment(t10, n10, t3, n3, s.max_offset_m, aoi.epsg, epsg)
                check_alignment(t10, n10, t3c, n3, s.max_offset_m, aoi.epsg, epsg)
            except AlignmentError as exc:
                raise ExtractionError(f"batch {batch}, sample {sid}: {exc}") from None
            opt_c = _read_window(src.planet, src.planet_path(cloudy, src.optical_asset), t3, n3, epsg,
                                 [1, 2, 3, 4], f"sample {sid} cloudy optical")
            opt_r = _read_window(src.planet, src.planet_path(clear, src.optical_asset), t3c, n3, epsg,
                                 [1, 2, 3, 4], f"sample {sid} clear optical")
            udm = _read_window(src.planet, src.planet_path(cloudy, src.udm2_asset), t3, n3, epsg,
                               list(range(1, 9)), f"sample {sid} UDM2")
            mask = cloud_mask(udm2_layers(udm, s.cloud_classes))
            udm_r = _read_window(src.planet, src.planet_path(clear, src.udm2_asset), t3c, n3, epsg,
                                 list(range(1, 9)), f"sample {sid} clear UDM2")
            optical_nodata = np.all(opt_c == 0, axis=0)
            if optical_nodata.all():
                raise ExtractionError(f"batch {batch}, sample {sid}: the cloudy window of "
                                      f"{cloudy.id} is all nodata although its UDM2 says otherwise")
            if np.all(opt_r == 0, axis=0).any():
                raise ExtractionError(f"batch {batch}, sample {sid}: the clear window of {clear.id} "
                                      "has nodata pixels although its UDM2 says it is fully imaged")
            mask[optical_nodata] = MASK_NODATA
            if row["s1_id"] not in s1_cache:
                s1_rec = _find(s1_recs, row["s1_id"], "Sentinel-1 scene")
                layers = []
                for pol in S1_POLARIZATIONS:
                    arr = _stac_on_grid(src, s1_rec, pol, aoi.transform, aoi.shape, aoi.epsg,
                                        resampling="bilinear", fill=np.nan).astype(np.float32)
                    layers.append(to_db(arr, s1_rec.sar_units))
                s1_cache[row["s1_id"]] = np.stack(layers)
            r0, c0 = int(row["row_10m"]), int(row["col_10m"])
            k = i  # position within the batch
            out["optical_cloudy"][k] = opt_c
            out["optical_clear"][k] = opt_r
            out["cloud_mask"][k] = mask
            out["clear_mask"][k] = cloud_mask(udm2_layers(udm_r, s.cloud_classes))
            out["s1"][k] = s1_cache[row["s1_id"]][:, r0:r0 + n10, c0:c0 + n10]
            out["landcover"][k] = lc_aoi[r0:r0 + n10, c0:c0 + n10]
            mp = mask_percent(mask)
            part_rows.append(dict(
                sample=int(row["sample"]), sample_id=sid, extract_cloud_percent=mp["cloud_percent"],
                extract_shadow_percent=mp["shadow_percent"], extract_nodata_percent=mp["nodata_percent"],
                extract_offset_x_m=dx, extract_offset_y_m=dy,
                s1_valid_fraction=float(np.isfinite(out["s1"][k]).all(axis=0).mean()),
                landcover_ignore_fraction=float((out["landcover"][k] == IGNORE_INDEX).mean()),
            ))
            bar.update(1)
    bar.close()
    write(start, out)
    return pd.DataFrame(part_rows).sort_values("sample")


# ------------------------------------------------------------------------------- finalize

INDEX_COLUMNS = (["sample", "sample_id", "aoi", "split", "batch", "cloudy_id", "cloudy_datetime",
                  "clear_id", "clear_datetime", "dt_clear_days", "s1_id", "s1_datetime", "dt_s1_days",
                  "cloud_percent", "shadow_percent", "nodata_percent", "scene_cloud_percent",
                  "cloud_bin", "dominant_class", "epsg", "offset_x_m", "offset_y_m", "row_10m", "col_10m"]
                 + [f"lc_{c}" for c in CLASSES] + ["lc_ignore"])
PART_COLUMNS = ["sample", "sample_id", "extract_cloud_percent", "extract_shadow_percent", "extract_nodata_percent",
                "extract_offset_x_m", "extract_offset_y_m", "s1_valid_fraction", "landcover_ignore_fraction"]


def parts_in_sample_order(rows: pd.DataFrame, parts: pd.DataFrame) -> pd.DataFrame:
    """The batches' part rows in store order, checked against the plan (ids, cloud percent)."""
    if parts.empty:
        parts = pd.DataFrame(columns=PART_COLUMNS)
    parts = parts.set_index("sample").reindex(rows["sample"]).reset_index()
    if len(rows) and not (parts["sample_id"].to_numpy() == rows["sample_id"].to_numpy()).all():
        raise RuntimeError("the extracted parts disagree with the manifest on sample order")
    if len(rows):
        diff = np.abs(parts["extract_cloud_percent"].to_numpy() - rows["cloud_percent"].to_numpy())
        if np.nanmax(diff) > 0.5:
            raise RuntimeError(f"extracted cloud percent differs from the plan by up to {np.nanmax(diff):.2f} %")
    return parts


def sample_statistics(index: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Counts per split x cloud bin and per split x dominant class; Δt and offset summaries."""
    rows = []
    labels = [bin_label(lo, hi) for lo, hi in zip(s.bins, s.bins[1:])]
    for split in ["all"] + sorted(index["split"].unique()):
        sub = index if split == "all" else index[index["split"] == split]
        for b in labels:
            rows.append(dict(split=split, kind="cloud_bin", key=b, value=int((sub["cloud_bin"] == b).sum())))
        for c in list(CLASSES) + ["ignore"]:
            rows.append(dict(split=split, kind="dominant_class", key=c,
                             value=int((sub["dominant_class"] == c).sum())))
        for c in CLASSES:
            rows.append(dict(split=split, kind="pixel_share", key=c,
                             value=float(sub[f"lc_{c}"].mean()) if len(sub) else np.nan))
        rows.append(dict(split=split, kind="aois", key="count", value=int(sub["aoi"].nunique())))
        for col in ("dt_clear_days", "dt_s1_days", "offset_x_m", "offset_y_m", "cloud_percent"):
            v = sub[col].astype(float)
            for stat, val in (("mean", v.mean()), ("mean_abs", v.abs().mean()), ("min", v.min()),
                              ("max", v.max())):
                rows.append(dict(split=split, kind=col, key=stat, value=val))
    return pd.DataFrame(rows)


def skip_summary(manifest: pd.DataFrame, scenes: pd.DataFrame) -> pd.DataFrame:
    """How many windows and scenes were skipped, by reason (the number-free part of it)."""
    def kind(reason: str) -> str:
        return re.sub(r"(?<![A-Za-z_\d])[-+]?\d+(\.\d+)?(?![A-Za-z_\d])", "#", reason)

    out = []
    sk = manifest.loc[manifest["skip_reason"].notna(), "skip_reason"]
    for reason, count in sk.map(kind).value_counts().items():
        out.append(dict(level="window", reason=reason, count=int(count)))
    if len(scenes):
        ss = scenes.loc[scenes["skip_reason"].notna(), "skip_reason"]
        for reason, count in ss.map(kind).value_counts().items():
            out.append(dict(level="scene", reason=reason, count=int(count)))
    return pd.DataFrame(out, columns=["level", "reason", "count"])


def example_picks(index: pd.DataFrame, per_bin: int = 1) -> list[int]:
    """The samples of the example figure: per cloud bin (in bin order), the median by cloud percent."""
    picks = []
    for b in sorted(index["cloud_bin"].dropna().unique(), key=lambda s: float(s.split("-")[0])):
        sub = index[index["cloud_bin"] == b]
        if len(sub):
            picks += list(sub.sort_values("cloud_percent")["sample"].iloc[[len(sub) // 2]])[:per_bin]
    return picks


def card_sections(sec: Mapping[str, Any], index: pd.DataFrame, manifest: pd.DataFrame, scenes: pd.DataFrame,
                  attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The card's dataset-specific sections (markdown text or tables)."""
    bins = [bin_label(float(lo), float(hi)) for lo, hi in zip(sec["bins"], sec["bins"][1:])]
    by_bin = (pd.crosstab(index["cloud_bin"], index["split"]).reindex(bins, fill_value=0).reset_index()
              if len(index) else "-")
    by_class = pd.crosstab(index["dominant_class"], index["split"]).reset_index() if len(index) else "-"
    aois = index.groupby(["aoi", "split"]).size().reset_index(name="samples") if len(index) else "-"
    remap = pd.DataFrame({
        "WorldCover code": list(WORLDCOVER_TO_CLASS),
        "WorldCover class": [WORLDCOVER_CLASSES[c] for c in WORLDCOVER_TO_CLASS],
        "Planet-CR class": list(WORLDCOVER_TO_CLASS.values()),
        "index": [CLASSES.index(v) if v in CLASSES else IGNORE_INDEX for v in WORLDCOVER_TO_CLASS.values()],
    })
    off = index[["offset_x_m", "offset_y_m"]].abs()
    dts = index[["dt_clear_days", "dt_s1_days"]]
    overview = (
        f"Source `{sec['source']}` (optical asset `{attrs.get('optical_asset')}`: {attrs.get('optical_radiometry')}).\n\n"
        "After Xu et al., *High-Resolution Cloud Removal with Multi-Modal and Multi-Resolution Data "
        "Fusion* (Planet-CR): per AOI, a cloudy PlanetScope scene, the closest clear scene "
        f"(|dt| <= {sec['max_clear_days']} days), the closest Sentinel-1 GRD (|dt| <= "
        f"{sec['max_s1_days']} days) and ESA WorldCover remapped to six classes.")
    counts = "\n".join([
        f"- samples: {len(index)} from {index['aoi'].nunique() if len(index) else 0} AOIs; "
        f"PlanetScope scenes seen: {len(scenes)} ({int((~scenes['has_udm2']).sum()) if len(scenes) else 0} "
        "without UDM2, skipped)",
        f"- candidate windows: {int((manifest['row_10m'] >= 0).sum())}; selected: {int(manifest['selected'].sum())}",
        "- split by AOI (seeded; no AOI in two splits): "
        + ", ".join(f"{k}: {v}" for k, v in index["split"].value_counts().sort_index().items()),
    ])
    variables = "\n".join([
        f"- `optical_cloudy`, `optical_clear` (sample, band, y, x): uint16, {attrs.get('optical_encoding')}; "
        f"bands {', '.join(attrs.get('optical_bands', []))}; {sec['window_3m']} x {sec['window_3m']} at 3 m.",
        f"- `cloud_mask` (sample, y, x): uint8, {attrs.get('cloud_mask_values')}; cloud = UDM2 "
        f"{', '.join(attrs.get('udm2_cloud_classes', []))}.",
        "- `clear_mask` (sample, y, x): the same from the clear window's UDM2 (its residual cloud and "
        "shadow: metrics may exclude them, AllClear's rule).",
        f"- `s1` (sample, polarization, y_10m, x_10m): float32 {attrs.get('s1_units')}, VV and VH, "
        f"{sec['window_10m']} x {sec['window_10m']} at 10 m.",
        s1_card_line(attrs),
        f"- `landcover` (sample, y_10m, x_10m): uint8 class index {list(CLASSES)}, {IGNORE_INDEX} = ignore.",
        "- per-sample coordinates: `sample_id`, `aoi`, `split`, `batch`, scene ids and datetimes "
        "(`cloudy_*`, `clear_*`, `s1_*`), `dt_clear_days`, `dt_s1_days`, `cloud_percent`, "
        "`shadow_percent`, `nodata_percent`, `cloud_bin`, `dominant_class`, `landcover_fraction`, "
        "`epsg`, `transform_3m`, `transform_10m`, `offset_x_m`, `offset_y_m`, `s1_valid_fraction`.",
    ])
    alignment = (
        "PlanetScope windows are cut on the scenes' own 3 m grid (never resampled); the 10 m windows "
        "on the AOI grid. Every sample's footprints agree within "
        f"{sec['max_offset_m']} m at both corners (checked at plan and again at extraction); "
        f"corner offsets found: |dx| {off['offset_x_m'].min():.2f}-{off['offset_x_m'].max():.2f} m, "
        f"|dy| {off['offset_y_m'].min():.2f}-{off['offset_y_m'].max():.2f} m." if len(index) else "-")
    return [
        ("Overview", overview),
        ("Counts", counts),
        ("Samples per cloud-coverage bin and split", by_bin),
        ("Samples per dominant land-cover class and split", by_class),
        ("Samples per AOI", aois),
        ("Variables", variables),
        ("WorldCover -> Planet-CR classes", remap),
        ("Alignment", alignment),
        ("Time differences (days)",
         dts.describe().T.reset_index().rename(columns={"index": "pair"}) if len(index) else "-"),
    ]


# --------------------------------------------------------------------------------- builder


class PlanetCRBuilder(DatasetBuilder):
    """Planet-CR-style quartets on the dataset-builder protocol: one unit per batch of AOIs."""

    name = "planetcr"
    title = "Planet-CR-style quartets (cloudyeo)"
    sections = ("resources_dir", "results_dir", "stac", "planetcr")
    store_keys = ("store_codec",)
    plan_tables = ("manifest", "scenes")
    outputs = {
        "index": "index.parquet",
        "stats": "statistics.csv",
        "band_stats": "band_statistics.csv",
        "skips": "skip_reasons.csv",
        "distributions": "distributions.png",
        "examples": "example_quartets.png",
        "card": "dataset_card.md",
    }
    report_outputs = {
        "stats": ("planetcr_statistics.rst", "Planet-CR"),
        "distributions": ("planetcr_distributions.rst", "Planet-CR"),
        "examples": ("planetcr_examples.rst", "Planet-CR"),
    }
    unit_label = "batch"
    unit_pattern = r"batch-\d{3}"
    archive_input = "planet_archive"
    # Extract: a batch of aois_per_batch AOIs, ~1.7 MB per sample in memory, at most
    # len(bins) - 1 x samples_per_bin samples.
    resources = {
        "plan": {"mem_mb": 2000, "runtime": 30},
        "extract": {"mem_mb": 3000, "runtime": 30},
        "finalize": {"mem_mb": 3000, "runtime": 30},
    }

    def make_settings(self, cfg: Mapping[str, Any]) -> Settings:
        return Settings.from_config(cfg)

    def job_resources(self, verb: str) -> dict[str, int]:
        """The planet-api source activates and downloads every candidate scene's assets: longer
        plan and extract jobs."""
        out = super().job_resources(verb)
        if verb in ("plan", "extract") and self.section.get("source") != "demo":
            out["runtime"] = 240
        return out

    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        manifest, scenes = plan(self.cfg)
        n_sel = int(manifest["selected"].sum())
        log.info("planned %d candidate windows, %d samples in %d batches; %d scenes (%d without UDM2)",
                 len(manifest), n_sel, manifest.loc[manifest["selected"], "batch"].nunique(), len(scenes),
                 int((~scenes["has_udm2"]).sum()) if len(scenes) else 0)
        return {"manifest": manifest, "scenes": scenes}

    def units(self, plan: dict[str, pd.DataFrame]) -> list[str]:
        """The batches holding selected samples, in order."""
        manifest = plan["manifest"]
        return sorted(manifest.loc[manifest["selected"], "batch"].dropna().unique())

    def layout(self, plan: dict[str, pd.DataFrame]) -> StoreLayout:
        return store_layout(self.cfg, selected_rows(plan["manifest"]), self.code_version(), self.params("init"))

    def extract(self, unit: str, plan: dict[str, pd.DataFrame], write: WriteSamples, *,
                progress: bool = False) -> pd.DataFrame:
        return extract_batch(self.cfg, unit, plan["manifest"], write, progress=progress,
                             manifest_path=self.paths.manifest)

    def sample_coords(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> dict[str, tuple]:
        parts = parts_in_sample_order(selected_rows(plan["manifest"]), parts)
        sample = ("sample",)
        return {
            "s1_valid_fraction": (sample, parts["s1_valid_fraction"].to_numpy(np.float32)),
            "landcover_ignore_fraction": (sample, parts["landcover_ignore_fraction"].to_numpy(np.float32)),
        }

    def summarise(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame, ds: Any, *,
                  progress: bool = False) -> Summary:
        s = self.settings
        manifest, scenes = plan["manifest"], plan["scenes"]
        rows = selected_rows(manifest)
        parts = parts_in_sample_order(rows, parts)
        index = pd.DataFrame(rows[INDEX_COLUMNS].copy())
        index["s1_valid_fraction"] = parts["s1_valid_fraction"].to_numpy()
        band_stats = band_statistics(ds, [("optical_cloudy", "band", ("sample", "y", "x"), None),
                                          ("optical_clear", "band", ("sample", "y", "x"), None),
                                          ("s1", "polarization", ("sample", "y_10m", "x_10m"), None)])
        skips = skip_summary(manifest, scenes)
        return Summary(
            outputs={
                "index": index,
                "stats": Table(sample_statistics(index, s), float_format="%.3f"),
                "band_stats": Table(band_stats, float_format="%.6g", title="Band statistics (reflectance; S1 in dB)"),
                "skips": Table(skips, title="Skips"),
                "distributions": Figure("planetcr_distributions", dict(
                    index=index, bin_labels=[bin_label(lo, hi) for lo, hi in zip(s.bins, s.bins[1:])])),
                "examples": Figure("planetcr_examples", self._example_data(index)),
            },
            card=card_sections(self.section, index, manifest, scenes, ds.attrs),
            complete_attrs={
                "n_samples": int(len(index)),
                "split_counts": {k: int(v) for k, v in index["split"].value_counts().items()},
                "cloud_bin_counts": {k: int(v) for k, v in index["cloud_bin"].value_counts().items()},
                "max_alignment_offset_m": float(np.nanmax(np.abs(index[["offset_x_m", "offset_y_m"]].to_numpy())))
                if len(index) else None,
            },
            licences=dict(LICENCES),
        )

    def _example_data(self, index: pd.DataFrame) -> dict[str, Any]:
        """The example figure's samples: index rows and stored values (optical DN, mask, S1 dB, classes)."""
        picks = example_picks(index)
        grp = store._open_group(self.paths.store, mode="r")
        return dict(rows=index.set_index("sample", drop=False).loc[picks].reset_index(drop=True),
                    **{var: [np.asarray(grp[var][i]) for i in picks]
                       for var in ("optical_cloudy", "optical_clear", "cloud_mask", "s1", "landcover")})


BUILDER = PlanetCRBuilder
