"""SSL4EO: an SSL4EO-S12-style four-season pretraining set (plan, select, extract, finalize).

For every location and every season (a reference date +- ``window_days``, by default the
SSL4EO-S12 dates 2021-03-20, 06-21, 09-22 and 12-21) one Sentinel-2 acquisition is chosen and cut
as a ``patch_px`` x ``patch_px`` patch at 10 m in L1C (13 bands) and L2A (12 bands), together with
the Sentinel-1 GRD (IW, VV + VH, dB) closest in time.

Selection rules (one home: :func:`select_season`, :func:`select_s1`):

* a scene qualifies when its scene cloud cover is known and ``<= max_cloud_cover``, it carries
  every band of its level, and its footprint contains the whole patch (never a partial scene);
* an *acquisition* present in both L1C and L2A (same tile, sensing times within
  :data:`SAME_ACQUISITION`) where both levels qualify is preferred; among those the one closest
  to the season date (calendar days) wins, ties: lower cloud cover (the larger of the two
  levels), then L2A id.  With ``require_same_acquisition: false`` (default) a season without such
  a pair falls back to the closest qualifying L2A and, on its patch grid, the closest qualifying
  L1C (``same_acquisition`` is then False); with ``true`` the season is skipped;
* the season is **valid only with both S2 levels**. A missing S1 is a flag (``s1_valid`` False,
  ``s1_skip_reason``) and the S1 slot stays NaN; the season stays valid;
* S1: the GRD scene (IW or unknown mode, VV and VH) whose footprint contains the patch, inside
  the season window, closest in time to the chosen L2A (ties: id); ``s1_delta_days`` = |dt|;
* a season with nothing that qualifies is recorded in the manifest and the store with a
  ``skip_category`` (no_scene, cloud, unpaired, partial, missing_band, nodata) and a
  ``skip_reason`` naming the window, the counts and every rejected scene id with its reason.

Patch grid: in the chosen L2A scene's UTM CRS, centred on the location and snapped to the
scene's 60 m lattice (origin of its coarsest band), so 20 m and 60 m pixels tile the patch
exactly; EPSG and transform are recorded per (sample, season).

Built by :class:`SSL4EOBuilder` through the generic drivers (``cloudyeo dataset ssl4eo <verb>``):

- plan -> ``manifest.parquet`` (GeoParquet, one row per location x season);
- init -> the empty ``ssl4eo.zarr`` with every plan-time coordinate;
- extract, one unit per batch of ``locations_per_job`` locations (``batch-NNNN``) -> its
  locations' samples, then its part file;
- finalize -> per-(sample, season) nodata checks, statistics, index, availability table,
  figures (renderers of ``report/ssl4eo_figures.py``), dataset card, completion mark (last).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping, shape
from tqdm import tqdm

from .. import store
from ..archives import open_archive
from ..archives.base import Archive, SceneRecord, SearchQuery
from ..archives.reading import ReadError, read_band
from ..archives.s1_source import dataset_s1_source, s1_card_line
from ..config import paths
from ..grids import utm_epsg
from ..sentinel import (
    S1_POLARIZATIONS,
    S2_BAND_GSD,
    S2_CENTRAL_WAVELENGTH_NM,
    S2_L1C_BANDS,
    S2_L2A_BANDS,
)
from .builder import DatasetBuilder, Figure, StoreLayout, Summary, Table, WriteSamples
from .common import S2_FILL, S2_SCALE, SENTINEL_LICENCE, band_statistics, encode_s2, to_db, utc64

log = logging.getLogger(__name__)

L1C = "sentinel-2-l1c"
L2A = "sentinel-2-l2a"
S1_GRD = "sentinel-1-grd"
PIXEL_M = 10.0
LATTICE_M = 60.0  # the coarsest Sentinel-2 band: patches start on its pixel corners
COVER_TOLERANCE_M = 1.0  # footprint containment slack (footprints are rounded to ~1 cm)
SAME_ACQUISITION = dt.timedelta(minutes=5)
RESAMPLING = ("20 m and 60 m bands bilinear on pixel centres (x2, x6) onto the 10 m patch grid, "
              "edges clamped; grids in another CRS warped bilinearly by GDAL")
SKIP_CATEGORIES = ("no_scene", "cloud", "unpaired", "partial", "missing_band", "nodata")
MAX_REJECTED_LISTED = 8


class ExtractionError(RuntimeError):
    """A batch could not be extracted; the message names the location, season, scene and file."""


def demo_catalog(cfg: Mapping[str, Any]) -> Path:
    return paths(cfg).demo_timeseries / "catalog"


def _archive(cfg: Mapping[str, Any]) -> Archive:
    return open_archive(cfg, demo_catalog=demo_catalog(cfg))


# ------------------------------------------------------------------------------ locations


@dataclass(frozen=True)
class Location:
    name: str
    lon: float
    lat: float
    epsg: int  # nominal UTM CRS (search footprint; the chosen scene's CRS may differ)


def load_locations(cfg: Mapping[str, Any]) -> list[Location]:
    """``ssl4eo.locations`` or, when null with ``archive: demo``, the demo world's locations."""
    given = cfg["ssl4eo"]["locations"]
    if given is None:
        if cfg.get("archive", "demo") != "demo":
            raise ValueError(f"ssl4eo.locations: required with archive {cfg['archive']!r} "
                             "(null means the demo world's locations)")
        world = paths(cfg).demo_timeseries / "world.json"
        if not world.exists():
            raise FileNotFoundError(f"{world} not found: generate the demo time-series world first "
                                    "(cloudyeo demo generate-timeseries)")
        data = json.loads(world.read_text())
        locs = [Location(str(d["id"]), float(d["centre_lon"]), float(d["centre_lat"]), int(d["epsg"]))
                for d in data.get("ssl_locations", [])]
        if not locs:
            raise ValueError(f"{world} lists no ssl_locations")
    else:
        locs = [Location(str(d["name"]), float(d["lon"]), float(d["lat"]),
                         utm_epsg(float(d["lon"]), float(d["lat"]))) for d in given]
    names = [loc.name for loc in locs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"ssl4eo.locations: duplicate names {dupes}")
    return locs


def season_dates(cfg: Mapping[str, Any]) -> list[dt.date]:
    out = []
    for i, d in enumerate(cfg["ssl4eo"]["season_dates"]):
        try:
            out.append(dt.date.fromisoformat(str(d)))
        except ValueError as exc:
            raise ValueError(f"ssl4eo.season_dates.{i}: {d!r} is not an ISO date") from exc
    if len(set(out)) != len(out):
        raise ValueError(f"ssl4eo.season_dates: duplicate dates {cfg['ssl4eo']['season_dates']}")
    return out


def season_window(date: dt.date, days: int) -> tuple[dt.datetime, dt.datetime]:
    """[date - days 00:00, date + days 23:59:59.999999] UTC."""
    start = dt.datetime.combine(date - dt.timedelta(days=days), dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(date + dt.timedelta(days=days), dt.time.max, tzinfo=dt.UTC)
    return start, end


# ---------------------------------------------------------------------------------- grids

Transform6 = tuple[float, float, float, float, float, float]  # affine coefficients a, b, c, d, e, f


@dataclass(frozen=True)
class PatchGrid:
    epsg: int
    transform: Transform6
    size: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        return (c, f + e * self.size, c + a * self.size, f)

    def lonlat_polygon(self):
        """The patch outline in lon/lat, 8 points per side (edges are not straight in lon/lat)."""
        x0, y0, x1, y1 = self.bounds()
        t = np.linspace(0.0, 1.0, 9)[:-1]
        xs = np.concatenate([x0 + (x1 - x0) * t, np.full(8, x1), x1 - (x1 - x0) * t, np.full(8, x0)])
        ys = np.concatenate([np.full(8, y0), y0 + (y1 - y0) * t, np.full(8, y1), y1 - (y1 - y0) * t])
        lon, lat = _transformer(self.epsg, 4326).transform(xs, ys)
        from shapely.geometry import Polygon

        return Polygon(zip(lon, lat))


@lru_cache(maxsize=64)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _record_epsg(record: SceneRecord) -> int | None:
    for band in S2_L1C_BANDS:
        info = record.assets.get(band)
        if info is not None and info.epsg:
            return int(info.epsg)
    for info in record.assets.values():
        if info.epsg:
            return int(info.epsg)
    return None


def _lattice_origin(record: SceneRecord | None, epsg: int) -> tuple[float, float]:
    """Origin of the scene's coarsest band grid (mod 60 m); (0, 0) when the archive says nothing.

    Real Sentinel-2 tile origins lie on multiples of 60 m, so (0, 0) is right for them too.
    """
    best: tuple[float, float, float] | None = None
    if record is not None:
        for band in S2_L1C_BANDS:
            info = record.assets.get(band)
            if info is None or not info.transform or (info.epsg and int(info.epsg) != epsg):
                continue
            a, _, c, _, _, f = info.transform[:6]
            if best is None or abs(a) > best[0]:
                best = (abs(a), c, f)
    if best is None:
        return 0.0, 0.0
    return best[1] % LATTICE_M, best[2] % LATTICE_M


def patch_grid(lon: float, lat: float, size: int, epsg: int, record: SceneRecord | None = None) -> PatchGrid:
    """The ``size`` x ``size`` 10 m grid centred on (lon, lat), corner on the 60 m lattice."""
    x, y = _transformer(4326, epsg).transform(lon, lat)
    half = size * PIXEL_M / 2.0
    ox, oy = _lattice_origin(record, epsg)
    x0 = ox + math.floor((x - half - ox) / LATTICE_M + 0.5) * LATTICE_M
    y0 = oy + math.floor((y + half - oy) / LATTICE_M + 0.5) * LATTICE_M
    return PatchGrid(int(epsg), (PIXEL_M, 0.0, float(x0), 0.0, -PIXEL_M, float(y0)), int(size))


def scene_grid(record: SceneRecord, loc: Location, size: int) -> PatchGrid:
    return patch_grid(loc.lon, loc.lat, size, _record_epsg(record) or loc.epsg, record)


def covers(record: SceneRecord, grid: PatchGrid, tolerance_m: float = COVER_TOLERANCE_M) -> bool:
    """True when the scene footprint contains the whole patch (within ``tolerance_m``)."""
    if not record.footprint:
        return False
    try:
        geom = shape(record.footprint)
    except (ValueError, TypeError, AttributeError, KeyError):
        return False
    tr = _transformer(4326, grid.epsg)
    projected = shapely.transform(geom, lambda x, y: tr.transform(x, y), interleaved=False)
    if not projected.is_valid:
        projected = projected.buffer(0)
    return projected.buffer(tolerance_m).contains(box(*grid.bounds()))


# --------------------------------------------------------------------------------- select


@dataclass
class SeasonChoice:
    """What :func:`select_season` decided for one location and season."""

    l1c: SceneRecord | None = None
    l2a: SceneRecord | None = None
    grid: PatchGrid | None = None
    same_acquisition: bool = False
    skip_category: str | None = None
    skip_reason: str | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # scene id -> why
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.l1c is not None and self.l2a is not None


def _cloud_ok(r: SceneRecord, max_cloud: float) -> bool:
    return r.cloud_cover is not None and r.cloud_cover <= max_cloud


def _days_to(r: SceneRecord, date: dt.date) -> int:
    return abs((r.datetime.astimezone(dt.UTC).date() - date).days)


def _rank(r: SceneRecord, date: dt.date) -> tuple:
    return (_days_to(r, date), r.cloud_cover if r.cloud_cover is not None else math.inf, r.id)


def same_acquisition(a: SceneRecord, b: SceneRecord) -> bool:
    """One acquisition in two processing levels: same tile (when known), sensing within minutes."""
    if a.tile and b.tile and a.tile != b.tile:
        return False
    return abs(a.datetime - b.datetime) <= SAME_ACQUISITION


def missing_bands(record: SceneRecord, bands: Sequence[str]) -> list[str]:
    """Bands without an asset; none when the archive lists no assets (pixels via read_window)."""
    if not record.assets:
        return []
    return [b for b in bands if b not in record.assets]


def _problem(record: SceneRecord, bands: Sequence[str], grid: PatchGrid) -> str | None:
    missing = missing_bands(record, bands)
    if missing:
        return f"missing band {', '.join(missing)}"
    if not covers(record, grid):
        return "footprint does not contain the patch (partial scene)"
    return None


def select_season(
    l1c: Sequence[SceneRecord], l2a: Sequence[SceneRecord], loc: Location, date: dt.date, *,
    max_cloud: float, size: int, require_same_acquisition: bool = False,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> SeasonChoice:
    """Choose the L1C + L2A scenes of one season (rules in the module docstring)."""
    choice = SeasonChoice()
    clear_l1c = sorted((r for r in l1c if _cloud_ok(r, max_cloud)), key=lambda r: _rank(r, date))
    clear_l2a = sorted((r for r in l2a if _cloud_ok(r, max_cloud)), key=lambda r: _rank(r, date))
    choice.counts = {"l1c_found": len(l1c), "l2a_found": len(l2a),
                     "l1c_clear": len(clear_l1c), "l2a_clear": len(clear_l2a)}

    def check(r: SceneRecord, bands: Sequence[str], grid: PatchGrid) -> bool:
        why = _problem(r, bands, grid)
        if why is not None:
            choice.rejected.setdefault(r.id, why)
        return why is None

    usable_l2a: list[tuple[SceneRecord, PatchGrid]] = []
    for a in clear_l2a:
        grid = scene_grid(a, loc, size)
        if check(a, S2_L2A_BANDS, grid):
            usable_l2a.append((a, grid))

    pairs = []
    for a, grid in usable_l2a:
        for c in clear_l1c:
            if same_acquisition(a, c) and check(c, S2_L1C_BANDS, grid):
                key = (_days_to(a, date), max(cast(float, a.cloud_cover), cast(float, c.cloud_cover)), a.id, c.id)  # clear: known
                pairs.append((key, a, c, grid))
    if pairs:
        _, a, c, grid = min(pairs, key=lambda p: p[0])
        choice.l2a, choice.l1c, choice.grid, choice.same_acquisition = a, c, grid, True
        return choice

    if not require_same_acquisition and usable_l2a:
        a, grid = usable_l2a[0]
        for c in clear_l1c:
            if check(c, S2_L1C_BANDS, grid):
                choice.l2a, choice.l1c, choice.grid = a, c, grid
                return choice

    usable_l1c = any(r.id not in choice.rejected for r in clear_l1c)
    if not l1c and not l2a:
        category = "no_scene"
    elif clear_l1c and usable_l2a and usable_l1c and require_same_acquisition:
        category = "unpaired"
    elif choice.rejected:
        category = "missing_band" if any(w.startswith("missing band") for w in choice.rejected.values()) \
            else "partial"
    else:
        category = "cloud"
    choice.skip_category = category
    choice.skip_reason = _skip_reason(category, l1c, l2a, choice, date, max_cloud, window)
    return choice


def _lowest(records: Sequence[SceneRecord]) -> str:
    clouds = [r.cloud_cover for r in records if r.cloud_cover is not None]
    return f"{min(clouds):.1f} %" if clouds else "n/a"


def _skip_reason(category: str, l1c, l2a, choice: SeasonChoice, date: dt.date, max_cloud: float,
                 window) -> str:
    span = (f"{window[0].date().isoformat()}..{window[1].date().isoformat()}" if window
            else f"around {date.isoformat()}")
    c = choice.counts
    if category == "no_scene":
        text = f"no Sentinel-2 L1C or L2A scene covers the location within {span}"
    else:
        what = {"cloud": "no Sentinel-2 L1C and L2A scenes with scene cloud cover",
                "unpaired": "no single acquisition in both L1C and L2A with scene cloud cover",
                "partial": "no complete Sentinel-2 L1C and L2A scenes with scene cloud cover",
                "missing_band": "no Sentinel-2 L1C and L2A scenes with every band and scene cloud cover",
                }[category]
        text = (f"{what} <= {max_cloud:g} % within {span} (L1C: {c['l1c_found']} found, "
                f"{c['l1c_clear']} clear enough, lowest {_lowest(l1c)}; L2A: {c['l2a_found']} found, "
                f"{c['l2a_clear']} clear enough, lowest {_lowest(l2a)})")
    if choice.rejected:
        listed = list(choice.rejected.items())
        more = len(listed) - MAX_REJECTED_LISTED
        text += "; rejected: " + "; ".join(f"{sid}: {why}" for sid, why in listed[:MAX_REJECTED_LISTED])
        if more > 0:
            text += f"; and {more} more"
    return text


def select_s1(candidates: Sequence[SceneRecord], when: dt.datetime, grid: PatchGrid
              ) -> tuple[SceneRecord | None, str | None]:
    """GRD IW VV+VH scene containing the patch, closest in time to ``when`` (ties: id)."""
    usable, rejected = [], {}
    for r in candidates:
        mode = (r.instrument_mode or "").upper()
        pols = {p.upper() for p in r.polarizations}
        if mode and mode != "IW":
            rejected[r.id] = f"instrument mode {r.instrument_mode}"
        elif pols and not set(S1_POLARIZATIONS) <= pols:
            rejected[r.id] = f"polarizations {sorted(pols)}"
        elif missing_bands(r, S1_POLARIZATIONS):
            rejected[r.id] = f"missing band {', '.join(missing_bands(r, S1_POLARIZATIONS))}"
        elif not covers(r, grid):
            rejected[r.id] = "footprint does not contain the patch"
        else:
            usable.append(r)
    if usable:
        return min(usable, key=lambda r: (abs((r.datetime - when).total_seconds()), r.id)), None
    reason = f"no Sentinel-1 GRD IW VV+VH scene containing the patch in the season window ({len(candidates)} found)"
    if rejected:
        reason += "; rejected: " + "; ".join(f"{k}: {v}" for k, v in list(rejected.items())[:MAX_REJECTED_LISTED])
    return None, reason


# ----------------------------------------------------------------------------------- plan


def plan(cfg: Mapping[str, Any], *, progress: bool = True) -> gpd.GeoDataFrame:
    """Choose the scenes of every location and season; one manifest row per (location, season)."""
    s = cfg["ssl4eo"]
    size = int(s["patch_px"])
    if size % int(LATTICE_M / PIXEL_M):
        raise ValueError(f"ssl4eo.patch_px: {size} is not a multiple of 6 (whole 60 m pixels)")
    locations = load_locations(cfg)
    dates = season_dates(cfg)
    archive = _archive(cfg)
    dataset_s1_source(cfg, "ssl4eo")  # refuses raw Sentinel-1 GRD before any search
    max_cloud = float(s["max_cloud_cover"])
    rows = []
    for i, loc in enumerate(tqdm(locations, desc="ssl4eo plan", unit="location", disable=not progress)):
        nominal = patch_grid(loc.lon, loc.lat, size, loc.epsg)
        search_area = mapping(nominal.lonlat_polygon())
        for k, date in enumerate(dates):
            start, end = season_window(date, int(s["window_days"]))
            l1c = archive.search(SearchQuery(L1C, start, end, intersects=search_area))
            l2a = archive.search(SearchQuery(L2A, start, end, intersects=search_area))
            choice = select_season(l1c, l2a, loc, date, max_cloud=max_cloud, size=size,
                                   require_same_acquisition=bool(s["require_same_acquisition"]),
                                   window=(start, end))
            grid = choice.grid or nominal
            row = _manifest_row(loc, i, k, date, start, end, int(s["locations_per_job"]), grid, choice)
            if choice.valid:
                l2a_time = cast(SceneRecord, choice.l2a).datetime  # valid: an L2A scene was chosen
                s1_found = archive.search(SearchQuery(S1_GRD, start, end, intersects=mapping(grid.lonlat_polygon())))
                s1, why = select_s1(s1_found, l2a_time, grid)
                row["s1_skip_reason"] = why
                if s1 is not None:
                    row.update(s1_id=s1.id, s1_datetime=pd.Timestamp(s1.datetime),
                               s1_delta_days=abs((s1.datetime - l2a_time).total_seconds()) / 86400,
                               s1_units=s1.sar_units)
            else:
                row["s1_skip_reason"] = "season not valid (no Sentinel-2 scenes)"
            rows.append(row)
    manifest = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    for col in ("skip_category", "skip_reason", "s1_skip_reason", "l1c_id", "l2a_id", "s1_id", "s1_units",
                "l1c_tile", "l2a_tile", "l1c_baseline", "l2a_baseline"):
        manifest[col] = manifest[col].astype(object).where(manifest[col].notna(), None)
    return manifest


def _manifest_row(loc: Location, sample: int, season: int, date: dt.date, start, end, per_job: int,
                  grid: PatchGrid, choice: SeasonChoice) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        location=loc.name, sample=sample, batch=sample // per_job, season=season,
        season_date=date.isoformat(), window_start=pd.Timestamp(start), window_end=pd.Timestamp(end),
        lon=loc.lon, lat=loc.lat, valid=choice.valid, skip_category=choice.skip_category,
        skip_reason=choice.skip_reason, same_acquisition=choice.same_acquisition,
        epsg=grid.epsg if choice.valid else 0,
        transform=list(grid.transform) if choice.valid else [np.nan] * 6,
        rejected="; ".join(f"{k}: {v}" for k, v in choice.rejected.items()),
        **{f"n_{k}": v for k, v in choice.counts.items()},
        s1_id=None, s1_datetime=pd.NaT, s1_delta_days=np.nan, s1_units=None, s1_skip_reason=None,
        geometry=grid.lonlat_polygon(),
    )
    for level, rec in (("l1c", choice.l1c), ("l2a", choice.l2a)):
        row.update({
            f"{level}_id": rec.id if rec else None,
            f"{level}_datetime": pd.Timestamp(rec.datetime) if rec else pd.NaT,
            f"{level}_cloud_cover": float(cast(float, rec.cloud_cover)) if rec else np.nan,  # chosen scenes are clear
            f"{level}_offset": float(rec.radiometric_offset) if rec else np.nan,
            f"{level}_quantification": float(rec.quantification) if rec else np.nan,
            f"{level}_baseline": rec.processing_baseline if rec else None,
            f"{level}_tile": rec.tile if rec else None,
        })
    row["days_to_season"] = float(_days_to(choice.l2a, date)) if choice.l2a else np.nan
    return row


# ------------------------------------------------------------------------------ the store


def _grid2(manifest: pd.DataFrame, column: str, n: int, s: int) -> np.ndarray:
    """A (sample, season) array of one manifest column (rows sorted by sample, season)."""
    return manifest[column].to_numpy().reshape(n, s)


def _utc64(values) -> np.ndarray:
    """:func:`~cloudyeo.datasets.common.utc64` of an array of any shape."""
    return utc64(np.asarray(values).ravel()).reshape(np.shape(values))


def _str2(values: np.ndarray) -> np.ndarray:
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in values.ravel()], dtype=str).reshape(values.shape)


def sorted_manifest(manifest: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The plan's manifest sorted by (sample, season), its number of samples and of seasons."""
    manifest = manifest.sort_values(["sample", "season"]).reset_index(drop=True)
    n, s = manifest["sample"].nunique(), manifest["season"].nunique()
    if len(manifest) != n * s or not (manifest["sample"].to_numpy() == np.repeat(np.arange(n), s)).all():
        raise ValueError(f"ssl4eo manifest: expected one row per (sample 0..{n - 1}, season)")
    return manifest, n, s


def batch_unit(batch: int) -> str:
    """The unit (and part file stem) of one batch of locations."""
    return f"batch-{int(batch):04d}"


def store_layout(cfg: Mapping[str, Any], manifest: pd.DataFrame, version: str) -> StoreLayout:
    """The empty store: arrays, plan-time coordinates and attributes."""
    s = cfg["ssl4eo"]
    size = int(s["patch_px"])
    manifest, n, ns = sorted_manifest(manifest)
    s1_src = dataset_s1_source(cfg, "ssl4eo").attrs()
    refl = dict(units="1", scale_factor=S2_SCALE, add_offset=0.0, _FillValue=S2_FILL,
                resampling_to_10m=RESAMPLING)
    variables = {
        "s2_l1c": store.VariableSpec(
            ("season", "l1c_band", "y", "x"), (ns, len(S2_L1C_BANDS), size, size), "int16",
            dict(refl, long_name="Sentinel-2 L1C top-of-atmosphere reflectance",
                 radiometry="(DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE, stored x 1e4"),
            inner_chunks=(1, len(S2_L1C_BANDS), size, size)),
        "s2_l2a": store.VariableSpec(
            ("season", "l2a_band", "y", "x"), (ns, len(S2_L2A_BANDS), size, size), "int16",
            dict(refl, long_name="Sentinel-2 L2A surface reflectance",
                 radiometry="(DN + BOA_ADD_OFFSET) / QUANTIFICATION_VALUE, stored x 1e4"),
            inner_chunks=(1, len(S2_L2A_BANDS), size, size)),
        "s1": store.VariableSpec(
            ("season", "polarization", "y", "x"), (ns, len(S1_POLARIZATIONS), size, size), "float32",
            dict(units="dB", long_name=f"Sentinel-1 backscatter ({s1_src['s1_radiometry']}, dB)",
                 _FillValue=np.nan,
                 resampling_to_10m="bilinear where the GRD grid differs from the patch grid"),
            inner_chunks=(1, len(S1_POLARIZATIONS), size, size)),
    }
    first = manifest[manifest["season"] == 0]
    smp, ss = ("sample",), ("sample", "season")
    g = lambda col: _grid2(manifest, col, n, ns)
    coords = {
        "location": (smp, first["location"].to_numpy(dtype=str)),
        "lon": (smp, first["lon"].to_numpy(np.float64)),
        "lat": (smp, first["lat"].to_numpy(np.float64)),
        "batch": (smp, first["batch"].to_numpy(np.int32)),
        "season": (("season",), np.array(s["season_dates"], dtype=str)),
        "window_start": (("season",), _utc64(manifest.loc[manifest["sample"] == 0, "window_start"].to_numpy())),
        "window_end": (("season",), _utc64(manifest.loc[manifest["sample"] == 0, "window_end"].to_numpy())),
        "l1c_band": (("l1c_band",), np.array(S2_L1C_BANDS)),
        "l2a_band": (("l2a_band",), np.array(S2_L2A_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        **_season_coords(manifest, n, ns),
        "same_acquisition": (ss, g("same_acquisition").astype(bool)),
        "l1c_id": (ss, _str2(g("l1c_id"))),
        "l2a_id": (ss, _str2(g("l2a_id"))),
        "l1c_datetime": (ss, _utc64(g("l1c_datetime"))),
        "l2a_datetime": (ss, _utc64(g("l2a_datetime"))),
        "l1c_cloud_cover": (ss, g("l1c_cloud_cover").astype(np.float32)),
        "l2a_cloud_cover": (ss, g("l2a_cloud_cover").astype(np.float32)),
        "l1c_offset_dn": (ss, g("l1c_offset").astype(np.float32)),
        "l2a_offset_dn": (ss, g("l2a_offset").astype(np.float32)),
        "days_to_season": (ss, g("days_to_season").astype(np.float32)),
        "s1_id": (ss, _str2(g("s1_id"))),
        "s1_datetime": (ss, _utc64(g("s1_datetime"))),
        "s1_delta_days": (ss, g("s1_delta_days").astype(np.float32)),
        "epsg": (ss, g("epsg").astype(np.int32)),
        "transform": (ss + ("affine",), np.stack(manifest["transform"].map(
            lambda t: np.asarray(t, dtype=np.float64)).to_numpy()).reshape(n, ns, 6)
            if n else np.zeros((0, ns, 6))),
    }
    attrs = dict(
        title="SSL4EO - four-season Sentinel-1/2 pretraining patches (cloudyeo)",
        layout="(sample, season, band, y, x); one chunk per (sample, season) and variable",
        season_dates=list(s["season_dates"]),
        window_days=int(s["window_days"]),
        max_cloud_cover=float(s["max_cloud_cover"]),
        require_same_acquisition=bool(s["require_same_acquisition"]),
        patch_px=size,
        pixel_size_m=PIXEL_M,
        l1c_bands=list(S2_L1C_BANDS),
        l2a_bands=list(S2_L2A_BANDS),
        s2_band_gsd_m={b: S2_BAND_GSD[b] for b in S2_L1C_BANDS},
        s2_central_wavelength_nm={b: S2_CENTRAL_WAVELENGTH_NM[b] for b in S2_L1C_BANDS},
        s2_encoding="reflectance = stored * 1e-4; L1C: (DN + RADIO_ADD_OFFSET) / quantification, "
                    "L2A: (DN + BOA_ADD_OFFSET) / quantification (offsets applied); -32768 = no data",
        s1_polarizations=list(S1_POLARIZATIONS),
        s1_units="dB",
        s1_encoding=f"10 log10(linear {s1_src['s1_radiometry']}) when the archive serves linear "
                    f"power; NaN = no data",
        **s1_src,
        resampling=RESAMPLING,
        grid="patch_px x patch_px at 10 m in the chosen L2A scene's UTM CRS, centred on the "
             "location, upper-left corner on the scene's 60 m lattice",
        transform_convention="affine (a, b, c, d, e, f) of the 10 m patch grid in its EPSG",
        selection="season valid with S2 L1C and L2A (scene cloud cover <= max_cloud_cover, "
                  "every band, footprint containing the patch, no nodata pixels); one acquisition "
                  "in both levels preferred; closest to the season date (ties: lower cloud, id); "
                  "S1 GRD IW VV+VH closest in time within the window (missing S1: s1_valid False)",
        skip_categories=list(SKIP_CATEGORIES),
        archive=cfg["archive"],
        store_codec=s["store_codec"],
        build_config=json.dumps(cfg, sort_keys=True),
        code_version=version,
    )
    return StoreLayout(n_samples=n, variables=variables, coords=coords, attrs=attrs, codec=s["store_codec"],
                       record={"n_seasons": ns})


def _season_coords(manifest: pd.DataFrame, n: int, ns: int) -> dict[str, tuple]:
    """The (sample, season) validity coordinates (plan-time; finalize rewrites them)."""
    ss = ("sample", "season")
    g = lambda col: _grid2(manifest, col, n, ns)
    s1_valid = manifest["valid"].to_numpy(bool) & manifest["s1_id"].notna().to_numpy()
    if "s1_nodata_fraction" in manifest:
        s1_valid &= ~(manifest["s1_nodata_fraction"].fillna(0).to_numpy() > 0)
    return {
        "valid": (ss, g("valid").astype(bool)),
        "skip_category": (ss, _str2(g("skip_category"))),
        "skip_reason": (ss, _str2(g("skip_reason"))),
        "s1_valid": (ss, s1_valid.reshape(n, ns)),
        "s1_skip_reason": (ss, _str2(g("s1_skip_reason"))),
    }


# -------------------------------------------------------------------------------- extract


def _find_record(archive: Archive, collection: str, scene_id: str, when, tile: str | None,
                 area: dict) -> SceneRecord:
    when = pd.Timestamp(when).to_pydatetime()
    span = dt.timedelta(hours=1)
    query = SearchQuery(collection, when - span, when + span, tile=tile or None,
                        intersects=None if tile else area)
    for rec in archive.search(query):
        if rec.id == scene_id:
            return rec
    raise ExtractionError(f"scene {scene_id} ({collection}) no longer found in archive {archive.name}")


def encode_reflectance(dn: np.ndarray, offset: float, quantification: float) -> np.ndarray:
    """DN on the 10 m grid (NaN = no data; 0 is Sentinel-2's no-data DN) -> int16 reflectance x 1e4."""
    refl = (dn.astype(np.float32) + np.float32(offset)) / np.float32(quantification)
    return encode_s2(np.where(dn != 0, refl, np.float32(np.nan)))


def _read(archive, rec: SceneRecord, band: str, grid: PatchGrid, where: str) -> np.ndarray:
    try:
        return read_band(archive, rec, band, epsg=grid.epsg, transform=grid.affine, shape=grid.shape,
                         resampling="bilinear")
    except ReadError as exc:
        raise ExtractionError(f"{where}: {exc}") from exc


def extract_batch(cfg: Mapping[str, Any], unit: str, manifest: pd.DataFrame, write: WriteSamples, *,
                  progress: bool = False) -> pd.DataFrame:
    """Cut the patches of one batch of locations into their samples; the batch's part table."""
    manifest, _, ns = sorted_manifest(manifest)
    rows = manifest[manifest["batch"].map(batch_unit) == unit]
    if rows.empty:
        raise ExtractionError(f"{unit} is not a batch of the ssl4eo manifest")
    size = int(cfg["ssl4eo"]["patch_px"])
    archive = _archive(cfg)
    out_rows = []
    samples = sorted(rows["sample"].unique())
    for sample in tqdm(samples, desc=f"ssl4eo extract {unit}", unit="location", disable=not progress):
        l1c = np.full((ns, len(S2_L1C_BANDS), size, size), S2_FILL, dtype=np.int16)
        l2a = np.full((ns, len(S2_L2A_BANDS), size, size), S2_FILL, dtype=np.int16)
        s1 = np.full((ns, len(S1_POLARIZATIONS), size, size), np.nan, dtype=np.float32)
        for _, row in rows[rows["sample"] == sample].iterrows():
            k = int(row["season"])
            frac = dict(sample=int(sample), season=k, l1c_nodata_fraction=np.nan,
                        l2a_nodata_fraction=np.nan, s1_nodata_fraction=np.nan)
            if row["valid"]:
                where = f"location {row['location']} season {row['season_date']}"
                grid = PatchGrid(int(row["epsg"]), cast(Transform6, tuple(float(v) for v in row["transform"])), size)
                area = mapping(row["geometry"])
                for level, coll, bands, out in (("l1c", L1C, S2_L1C_BANDS, l1c), ("l2a", L2A, S2_L2A_BANDS, l2a)):
                    rec = _find_record(archive, coll, row[f"{level}_id"], row[f"{level}_datetime"],
                                       row[f"{level}_tile"], area)
                    for b, band in enumerate(bands):
                        dn = _read(archive, rec, band, grid, where)
                        out[k, b] = encode_reflectance(dn, rec.radiometric_offset, rec.quantification)
                    frac[f"{level}_nodata_fraction"] = float((out[k] == S2_FILL).any(axis=0).mean())
                if row["s1_id"]:
                    rec = _find_record(archive, S1_GRD, row["s1_id"], row["s1_datetime"], None, area)
                    for b, pol in enumerate(S1_POLARIZATIONS):
                        s1[k, b] = to_db(_read(archive, rec, pol, grid, where), rec.sar_units)
                    frac["s1_nodata_fraction"] = float((~np.isfinite(s1[k])).any(axis=0).mean())
            out_rows.append(frac)
        write(int(sample), {"s2_l1c": l1c[None], "s2_l2a": l2a[None], "s1": s1[None]})
    return pd.DataFrame(out_rows)


# ------------------------------------------------------------------------------- finalize


def checked_seasons(manifest: pd.DataFrame, parts: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """The sorted manifest joined with the extracted parts, after the nodata check."""
    manifest, n, ns = sorted_manifest(manifest)
    merged = manifest.merge(parts, on=["sample", "season"], how="left", validate="one_to_one")
    if len(merged) != len(manifest):
        raise RuntimeError("ssl4eo: the extracted parts disagree with the manifest on (sample, season)")
    return apply_nodata_check(merged), n, ns
def apply_nodata_check(merged: pd.DataFrame) -> pd.DataFrame:
    """A season whose S2 patch holds no-data pixels (a partial scene the footprint hid) is invalid."""
    merged = merged.copy()
    for level in ("l2a", "l1c"):
        bad = merged["valid"] & (merged[f"{level}_nodata_fraction"].fillna(0) > 0)
        for i in np.flatnonzero(bad.to_numpy()):
            r = merged.index[i]
            merged.loc[r, "valid"] = False
            merged.loc[r, "skip_category"] = "nodata"
            merged.loc[r, "skip_reason"] = (
                f"{100 * merged.loc[r, f'{level}_nodata_fraction']:.2f} % of the patch is no data in "
                f"{level.upper()} scene {merged.loc[r, f'{level}_id']} (partial scene)")
    s1_bad = merged["s1_id"].notna() & (merged["s1_nodata_fraction"].fillna(0) > 0)
    merged.loc[s1_bad, "s1_skip_reason"] = [
        f"{100 * f:.2f} % of the patch is no data in S1 scene {sid}"
        for f, sid in zip(merged.loc[s1_bad, "s1_nodata_fraction"], merged.loc[s1_bad, "s1_id"])]
    merged.loc[~merged["valid"] & merged["s1_skip_reason"].isna(), "s1_skip_reason"] = "season not valid"
    return merged


def season_availability(index: pd.DataFrame) -> pd.DataFrame:
    """Per season (and overall): locations, valid seasons, missing ones by category, S1 flags."""
    rows = []
    groups = [(d, g) for d, g in index.groupby("season_date", sort=True)] + [("all", index)]
    for date, g in groups:
        v = g[g["valid"]]
        row = dict(season=date, locations=len(g), valid=int(g["valid"].sum()),
                   missing=int((~g["valid"]).sum()))
        for cat in SKIP_CATEGORIES:
            row[f"missing_{cat}"] = int(((~g["valid"]) & (g["skip_category"] == cat)).sum())
        row.update(
            same_acquisition=int(v["same_acquisition"].sum()),
            s1_missing=int((~v["s1_valid"]).sum()),
            mean_days_to_season=float(v["days_to_season"].mean()) if len(v) else np.nan,
            mean_l2a_cloud_cover=float(v["l2a_cloud_cover"].mean()) if len(v) else np.nan,
            mean_s1_delta_days=float(v["s1_delta_days"].mean()) if len(v) else np.nan,
            max_s1_delta_days=float(v["s1_delta_days"].max()) if len(v) else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)




def example_picks(valid: np.ndarray, max_locations: int = 3) -> list[int]:
    """The samples of the example figure: those with the most valid seasons, and the one with the
    most missing seasons (so the figure shows how a missing season looks)."""
    ranked = list(np.argsort(-valid.sum(axis=1), kind="stable"))
    order = ranked[:max_locations]
    if len(ranked) > max_locations and valid[ranked[-1]].sum() < valid[order[-1]].sum():
        order[-1] = ranked[-1]
    return [int(i) for i in order]


def example_data(ds: Any) -> dict[str, Any]:
    """The example figure's data: per picked sample and season, validity, L2A RGB and S1 VV."""
    picks = example_picks(ds["valid"].values)
    rgb_idx = [list(ds["l2a_band"].values).index(b) for b in ("B04", "B03", "B02")]
    return dict(
        locations=[str(ds["location"].values[i]) for i in picks],
        seasons=[str(s) for s in ds["season"].values],
        valid=ds["valid"].values[picks],
        s1_valid=ds["s1_valid"].values[picks],
        skip_category=ds["skip_category"].values[picks],
        rgb=ds["s2_l2a"].isel(sample=picks, l2a_band=rgb_idx).values,
        vv=ds["s1"].isel(sample=picks, polarization=0).values,
    )


def card_sections(s: Mapping[str, Any], index: pd.DataFrame, attrs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The card's SSL4EO sections: counts, selection, missing seasons, variables, bands."""
    per_loc = index.groupby("sample")["valid"].sum()
    missing = index[~index["valid"]][["location", "season_date", "skip_category", "skip_reason"]]
    bands = pd.DataFrame({
        "band": list(S2_L1C_BANDS),
        "wavelength (nm)": [S2_CENTRAL_WAVELENGTH_NM[b] for b in S2_L1C_BANDS],
        "native GSD (m)": [S2_BAND_GSD[b] for b in S2_L1C_BANDS],
        "in L2A": ["yes" if b in S2_L2A_BANDS else "no" for b in S2_L1C_BANDS],
    })
    counts = "\n".join([
        (f"- locations (samples): {index['sample'].nunique()}; seasons per location: {index['season'].nunique()} "
         f"({', '.join(s['season_dates'])}, +-{s['window_days']} days)"),
        (f"- valid (location, season) pairs: {int(index['valid'].sum())} of {len(index)}; "
         f"with one acquisition in both L1C and L2A: {int(index['same_acquisition'].sum())}"),
        "- locations by number of valid seasons: "
        + ", ".join(f"{k}: {v}" for k, v in per_loc.value_counts().sort_index().items()),
        f"- valid seasons without Sentinel-1: {int((index['valid'] & ~index['s1_valid']).sum())}",
    ])
    selection = "\n".join([
        f"- {attrs.get('selection')}.",
        (f"- Scene cloud cover threshold: {s['max_cloud_cover']:g} % (both levels); "
         f"require one acquisition in both levels: {s['require_same_acquisition']}."),
        f"- Grid: {attrs.get('grid')}.",
        ("- The cloud filter is per scene (as in SSL4EO-S12): a patch of a scene below the threshold "
         "may still hold some cloud."),
    ])
    variables = "\n".join([
        ("- `s2_l1c` (sample, season, l1c_band[13], y, x), `s2_l2a` (sample, season, l2a_band[12], y, x): "
         f"int16, {attrs.get('s2_encoding')}."),
        f"- `s1` (sample, season, polarization[VV, VH], y, x): float32 dB, {attrs.get('s1_encoding')}.",
        s1_card_line(attrs),
        ("- Per (sample, season): `valid`, `skip_category`, `skip_reason`, scene ids, datetimes, cloud "
         "cover, offsets, `s1_id`, `s1_datetime`, `s1_delta_days` (|dt| to the L2A), `s1_valid`, `epsg`, "
         "`transform`, no-data fractions. Per sample: `location`, `lon`, `lat`, `batch`."),
        f"- Patches of {s['patch_px']} x {s['patch_px']} px at 10 m; resampling: {attrs.get('resampling')}.",
        "- Seasons that are not valid hold no data (fill); readers use `valid` / `s1_valid`.",
    ])
    out: list[tuple[str, Any]] = [("Counts", counts), ("Selection", selection)]
    if len(missing):
        out.append(("Missing seasons", missing))
    return out + [("Variables", variables), ("Sentinel-2 bands", bands)]


# -------------------------------------------------------------------------------- builder


class SSL4EOBuilder(DatasetBuilder):
    """The SSL4EO four-season set on the dataset-builder protocol: one unit per batch of locations."""

    name = "ssl4eo"
    title = "SSL4EO - four-season Sentinel-1/2 pretraining patches"
    sections = ("archive", "resources_dir", "results_dir", "stac", "earthengine", "sentinelhub", "ssl4eo")
    store_keys = ("store_codec",)
    plan_tables = ("manifest",)
    outputs = {
        "index": "index.parquet",
        "availability": "season_availability.csv",
        "band_stats": "band_statistics.csv",
        "histogram": "cloud_cover_histogram.png",
        "examples": "examples.png",
        "card": "dataset_card.md",
    }
    report_outputs = {
        "availability": ("ssl4eo_availability.rst", "SSL4EO"),
        "histogram": ("ssl4eo_histogram.rst", "SSL4EO"),
        "examples": ("ssl4eo_examples.rst", "SSL4EO"),
    }
    unit_label = "batch"
    unit_pattern = r"batch-\d{4}"
    archive_input = "timeseries_archive"
    # Extract: one batch of locations_per_job locations x seasons x (13 + 12 + 2) bands in memory.
    resources = {"extract": {"mem_mb": 3000, "runtime": 30}}

    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        manifest = plan(self.cfg, progress=progress)
        n_valid = int(manifest["valid"].sum())
        log.info("planned %d locations x %d seasons: %d valid, %d missing",
                 manifest["sample"].nunique(), manifest["season"].nunique(), n_valid, len(manifest) - n_valid)
        return {"manifest": manifest}

    def units(self, plan: dict[str, pd.DataFrame]) -> list[str]:
        """Every batch of locations (each has a part, even with no valid season), in order."""
        return [batch_unit(b) for b in sorted(plan["manifest"]["batch"].unique())]

    def layout(self, plan: dict[str, pd.DataFrame]) -> StoreLayout:
        return store_layout(self.cfg, plan["manifest"], self.code_version())

    def extract(self, unit: str, plan: dict[str, pd.DataFrame], write: WriteSamples, *,
                progress: bool = False) -> pd.DataFrame:
        return extract_batch(self.cfg, unit, plan["manifest"], write, progress=progress)

    def sample_coords(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> dict[str, tuple]:
        merged, n, ns = checked_seasons(plan["manifest"], parts)
        ss = ("sample", "season")
        return {
            **_season_coords(merged, n, ns),
            **{f"{level}_nodata_fraction": (ss, _grid2(merged, f"{level}_nodata_fraction", n, ns).astype(np.float32))
               for level in ("l1c", "l2a", "s1")},
        }

    def summarise(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame, ds: Any, *,
                  progress: bool = False) -> Summary:
        s = self.section
        merged, n, ns = checked_seasons(plan["manifest"], parts)
        index = pd.DataFrame(merged.drop(columns=["geometry", "rejected"]))
        index["s1_valid"] = ds["s1_valid"].values.ravel()
        availability = season_availability(index)
        season_dims = ("sample", "season", "y", "x")
        band_stats = band_statistics(ds, [("s2_l2a", "l2a_band", season_dims, ds["valid"]),
                                          ("s2_l1c", "l1c_band", season_dims, ds["valid"]),
                                          ("s1", "polarization", season_dims, ds["valid"] & ds["s1_valid"])], count=True)
        return Summary(
            outputs={
                "index": index,
                "availability": Table(availability, float_format="%.3f", title="Season availability"),
                "band_stats": Table(band_stats, float_format="%.6g",
                                    title="Band statistics (reflectance; S1 in dB; valid seasons only)"),
                "histogram": Figure("ssl4eo_cloud_cover", dict(index=index, max_cloud=float(s["max_cloud_cover"]),
                                                               skip_categories=list(SKIP_CATEGORIES))),
                "examples": Figure("ssl4eo_examples", example_data(ds)),
            },
            card=card_sections(s, index, ds.attrs) + [("Store", f"`{self.paths.store}`")],
            complete_attrs={
                "n_samples": int(n),
                "n_seasons": int(ns),
                "n_valid_seasons": int(index["valid"].sum()),
                "n_s1_valid": int(index["s1_valid"].sum()),
                "season_availability": json.loads(availability.to_json(orient="records")),
                "band_statistics": json.loads(band_stats.to_json(orient="records")),
            },
            licences={"Sentinel-1/2": SENTINEL_LICENCE,
                      "SSL4EO-S12": "design after Wang et al. 2023 (IEEE GRSM; CC BY 4.0 data)"},
        )


BUILDER = SSL4EOBuilder
