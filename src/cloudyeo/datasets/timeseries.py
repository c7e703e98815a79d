"""SEN12MS-CR-TS-style year-long paired Sentinel-1/2 time series with stored cloud masks.

Per ROI (one Snakemake job each) the configured year is cut into ``intervals`` equal intervals.
Per interval:

1. **S2**: the L1C scenes of the interval whose footprint covers the ROI, tried in order of
   distance to the interval's midpoint (ties: earlier, then id). No mosaicking: a scene with
   nodata pixels inside the ROI (partial coverage) is rejected and the next candidate tried. A
   scene lacking one of the 13 bands makes the time point a recorded gap naming the scene.
2. **S1**: the GRD IW scene covering the ROI closest in time to the chosen S2 scene, paired only
   if ``|dt| <= s1_max_days``; otherwise the time point is a recorded gap. Never a silent shift:
   a gap keeps its time index, its arrays hold fill values and ``valid`` is False.

All bands go to 10 m (:data:`RESAMPLING`), L1C reflectance = (DN + RADIO_ADD_OFFSET) /
quantification, S1 in dB. The ROI is sliced into non-overlapping ``patch_px`` patches (from the
ROI's upper-left corner; a remainder narrower than a patch is dropped). s2cloudless masks are
computed once here, on the whole ROI, and stored; loaders never compute masks.

A dataset builder (:class:`TimeSeriesBuilder`, see :mod:`cloudyeo.datasets.builder`); the generic
drivers run it (``cloudyeo dataset timeseries plan|init|extract --unit <roi>|finalize``):

- plan -> ``plan.parquet`` (GeoParquet, one row per (ROI, interval) with the ordered candidates
  and ``skip_reason``) and ``patches.parquet`` (one row per patch, with its index in the store);
- init -> the empty ``timeseries.zarr`` (leading dimension ``patch``) with every plan-time coordinate;
- extract, one unit per ROI -> the ROI's patches, then ``parts/<roi>.parquet``;
- finalize -> per-(patch, time) coordinates, sampling manifests, mask quality (demo), gaps,
  figures, card; marks the store complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, shape
from tqdm import tqdm

from .. import store
from ..archives import open_archive
from ..archives.base import SceneRecord, SearchQuery
from ..archives.reading import ReadError, read_band, read_raster
from ..archives.s1_source import dataset_s1_source, s1_card_line
from ..config import ConfigError, paths
from ..grids import geojson, to_lonlat, utm_epsg
from ..sentinel import S1_POLARIZATIONS, S2_BAND_GSD, S2_CENTRAL_WAVELENGTH_NM, S2_L1C_BANDS
from .builder import DatasetBuilder, Figure, StoreLayout, Summary, Table, WriteSamples
from .common import S2_FILL, S2_SCALE, SENTINEL_LICENCE, SPLITS, encode_s2, to_db, utc64

log = logging.getLogger(__name__)

L1C = "sentinel-2-l1c"
S1_GRD = "sentinel-1-grd"
U8_FILL = 255
RESAMPLING = ("20 m and 60 m bands: bilinear on pixel centres (x2, x6), edges clamped; "
              "land cover: nearest")
TRUTH_ASSET = "truth_mask"
# Demo land cover = BEN19 class index; ESA WorldCover keeps its own codes.
WORLDCOVER_CODES = {10: "tree cover", 20: "shrubland", 30: "grassland", 40: "cropland",
                    50: "built-up", 60: "bare / sparse vegetation", 70: "snow and ice",
                    80: "permanent water bodies", 90: "herbaceous wetland", 95: "mangroves",
                    100: "moss and lichen"}


class TimeSeriesError(RuntimeError):
    """A time-series job cannot go on; the message names the ROI, scene or file."""


# ------------------------------------------------------------------------------- ROIs


@dataclass(frozen=True)
class Roi:
    """A region of interest on a 10 m UTM grid (rows, cols in 10 m pixels)."""

    name: str
    epsg: int
    transform: tuple[float, ...]
    shape: tuple[int, int]
    lon: float
    lat: float

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform[:6])

    def outline(self):
        """ROI box in its own CRS."""
        t = self.affine
        x0, y0 = t @ (0, 0)
        x1, y1 = t @ (self.shape[1], self.shape[0])
        return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def geometry(self) -> dict[str, Any]:
        """ROI outline in lon/lat (GeoJSON)."""
        return geojson(to_lonlat(self.outline(), self.epsg))

    def patch_grid(self, patch_px: int) -> tuple[int, int]:
        return self.shape[0] // patch_px, self.shape[1] // patch_px


def roi_from_point(name: str, lon: float, lat: float, size_px: int) -> Roi:
    """A square ROI centred on lon/lat in its UTM zone, corner snapped to 60 m (so every
    Sentinel-2 band's pixels tile it exactly on the MGRS grids, whose origins are multiples of 60 m)."""
    epsg = utm_epsg(lon, lat)
    e, n = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    half = size_px * 10 / 2
    x0 = round((e - half) / 60.0) * 60.0
    y0 = round((n + half) / 60.0) * 60.0
    return Roi(name, epsg, (10.0, 0.0, x0, 0.0, -10.0, y0), (size_px, size_px), float(lon), float(lat))


def load_rois(cfg: Mapping[str, Any]) -> list[Roi]:
    """The configured ROIs, or the demo world's (``timeseries.rois: null``)."""
    ts = cfg["timeseries"]
    if ts["rois"] is not None:
        return [roi_from_point(r["name"], r["lon"], r["lat"], int(r.get("size_px", 4000))) for r in ts["rois"]]
    if cfg["archive"] != "demo":
        raise ConfigError("invalid configuration:\n  timeseries.rois: a list of {name, lon, lat} "
                          "is required with a real archive")
    world_path = paths(cfg).demo_timeseries / "world.json"
    if not world_path.exists():
        raise FileNotFoundError(f"{world_path} not found: generate the demo time-series world first "
                                "(cloudyeo demo generate-timeseries)")
    world = json.loads(world_path.read_text())
    return [Roi(r["id"], int(r["epsg"]), tuple(r["transform"]), tuple(r["roi_shape"]),
                float(r["centre_lon"]), float(r["centre_lat"])) for r in world["rois"]]


def split_of(cfg: Mapping[str, Any], rois: list[Roi]) -> dict[str, str]:
    """ROI name -> split from ``timeseries.splits``; every ROI in exactly one list."""
    splits = cfg["timeseries"]["splits"]
    out: dict[str, str] = {}
    for split in SPLITS:
        for name in splits.get(split, []):
            if name in out:
                raise ConfigError(f"invalid configuration:\n  timeseries.splits: ROI {name} is in "
                                  f"both {out[name]} and {split}")
            out[name] = split
    names = {r.name for r in rois}
    missing = sorted(names - set(out))
    if missing:
        raise ConfigError(f"invalid configuration:\n  timeseries.splits: ROI(s) {missing} are in no "
                          f"split (train / validation / test)")
    return {k: v for k, v in out.items() if k in names}


def intervals(year: int, n: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """``n`` equal, contiguous intervals [start, end) covering the calendar year (UTC)."""
    t0 = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    t1 = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    step = (t1 - t0) / n
    return [(t0 + i * step, t0 + (i + 1) * step) for i in range(n)]


def covers(record: SceneRecord, roi: Roi) -> bool:
    """Does the scene footprint cover the ROI? (checked in the ROI's CRS, 1 m tolerance)"""
    to_utm = _to_utm(roi.epsg)
    fp = shapely.transform(shape(record.footprint),
                           lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1])))
    return fp.buffer(1.0).contains(roi.outline())


@lru_cache(maxsize=16)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def _archive(cfg: Mapping[str, Any]):
    return open_archive(cfg, demo_catalog=paths(cfg).demo_timeseries / "catalog")


def _year_span(cfg: Mapping[str, Any], pad_days: float = 0.0) -> tuple[dt.datetime, dt.datetime]:
    year = int(cfg["timeseries"]["year"])
    pad = dt.timedelta(days=pad_days)
    return (dt.datetime(year, 1, 1, tzinfo=dt.UTC) - pad,
            dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC) + pad)


# ------------------------------------------------------------------------------- plan


def plan(cfg: Mapping[str, Any]) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Candidates per (ROI, interval) from metadata only, and the patch table."""
    ts = cfg["timeseries"]
    rois = load_rois(cfg)
    splits = split_of(cfg, rois)
    archive = _archive(cfg)
    dataset_s1_source(cfg, "timeseries")  # refuses raw Sentinel-1 GRD before any extraction
    start, end = _year_span(cfg)
    rows, patch_rows = [], []
    patch_px = int(ts["patch_px"])
    first = 0
    for roi in tqdm(rois, desc="time series: plan", unit="roi", disable=True):
        nr, nc = roi.patch_grid(patch_px)
        if nr * nc == 0:
            raise ConfigError(f"invalid configuration:\n  timeseries.patch_px: ROI {roi.name} "
                              f"({roi.shape[0]}x{roi.shape[1]} px) holds no {patch_px} px patch")
        found = archive.search(SearchQuery(L1C, start, end, intersects=roi.geometry()))
        for i, (a, b) in enumerate(intervals(int(ts["year"]), int(ts["intervals"]))):
            mid = a + (b - a) / 2
            inside = [r for r in found if a <= r.datetime < b]
            covering = [r for r in inside if covers(r, roi)]
            covering.sort(key=lambda r: (abs((r.datetime - mid).total_seconds()), r.datetime, r.id))
            chosen_ids = {r.id for r in covering}
            partial = sorted(r.id for r in inside if r.id not in chosen_ids)
            reason = None
            if not inside:
                reason = "no S2 L1C scene in the interval"
            elif not covering:
                reason = f"no S2 L1C scene covers the ROI whole (partial: {', '.join(partial)})"
            rows.append(dict(
                roi=roi.name, time=i, interval_start=a, interval_end=b,
                candidates=[r.id for r in covering], candidate_datetimes=[r.datetime for r in covering],
                partial=partial, skip_reason=reason, geometry=shape(roi.geometry()),
            ))
        for r in range(nr):
            for c in range(nc):
                t = roi.affine @ Affine.translation(c * patch_px, r * patch_px)
                patch_rows.append(dict(
                    patch=first, patch_id=f"{roi.name}_{r}_{c}", roi=roi.name, row=r, col=c,
                    split=splits[roi.name], epsg=roi.epsg, transform=list(t)[:6],
                    roi_lon=roi.lon, roi_lat=roi.lat,
                ))
                first += 1
    manifest = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    return manifest, pd.DataFrame(patch_rows)


# ------------------------------------------------------------------------------- store


def _mask_params(cfg: Mapping[str, Any]):
    from ..masks import CloudMaskParams

    m = cfg["timeseries"]["masks"]
    return CloudMaskParams(threshold=m["threshold"], average_over=m["average_over"],
                           dilation_size=m["dilation_size"], working_resolution_m=m["working_resolution_m"])


def store_layout(cfg: Mapping[str, Any], patches: pd.DataFrame, code: str) -> StoreLayout:
    """The empty store (one sample per patch) with every plan-time coordinate."""
    from ..masks import detector_attrs, mask_attrs, probability_attrs

    ts = cfg["timeseries"]
    n_t = int(ts["intervals"])
    px = int(ts["patch_px"])
    params = _mask_params(cfg)
    is_demo = cfg["archive"] == "demo"
    variables = {
        "s2": store.VariableSpec(
            ("time", "band", "y", "x"), (n_t, 13, px, px), "int16",
            dict(units="1", long_name="Sentinel-2 L1C top-of-atmosphere reflectance",
                 scale_factor=S2_SCALE, add_offset=0.0, _FillValue=S2_FILL,
                 description="RADIO_ADD_OFFSET and quantification applied; all bands at 10 m"),
            inner_chunks=(1, 13, px, px)),
        "s1": store.VariableSpec(
            ("time", "polarization", "y", "x"), (n_t, 2, px, px), "float32",
            dict(units="dB", long_name="Sentinel-1 GRD IW backscatter (sigma0)", _FillValue=np.nan),
            inner_chunks=(1, 2, px, px)),
        "cloud_probability": store.VariableSpec(
            ("time", "y", "x"), (n_t, px, px), "uint8",
            {**probability_attrs(params), "_FillValue": U8_FILL}, inner_chunks=(1, px, px)),
        "cloud_mask": store.VariableSpec(
            ("time", "y", "x"), (n_t, px, px), "uint8",
            {**mask_attrs(params), "_FillValue": U8_FILL}, inner_chunks=(1, px, px)),
        "landcover": store.VariableSpec(
            ("y", "x"), (px, px), "uint8",
            dict(long_name="land cover" + (" (demo truth, BEN19 class index)" if is_demo
                                           else " (ESA WorldCover 2021 v200 codes)"),
                 _FillValue=U8_FILL)),
    }
    if is_demo:
        variables["truth_mask"] = store.VariableSpec(
            ("time", "y", "x"), (n_t, px, px), "uint8",
            dict(long_name="demo truth: bit flags 1 thick cloud, 2 cirrus, 4 cloud shadow, 8 snow",
                 _FillValue=U8_FILL), inner_chunks=(1, px, px))
    iv = intervals(int(ts["year"]), n_t)
    patch = ("patch",)
    coords = {
        "patch_id": (patch, patches["patch_id"].to_numpy(dtype=str)),
        "roi": (patch, patches["roi"].to_numpy(dtype=str)),
        "split": (patch, patches["split"].to_numpy(dtype=str)),
        "epsg": (patch, patches["epsg"].to_numpy(dtype=np.int32)),
        "transform": (("patch", "affine"), np.stack(patches["transform"].to_numpy()).astype(np.float64)),
        "interval_start": (("time",), np.array([a.replace(tzinfo=None) for a, _ in iv], dtype="datetime64[ns]")),
        "interval_end": (("time",), np.array([b.replace(tzinfo=None) for _, b in iv], dtype="datetime64[ns]")),
        "band": (("band",), np.array(S2_L1C_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
    }
    attrs = dict(
        title="SEN12MS-CR-TS-style time series (cloudyeo)",
        year=int(ts["year"]), intervals=n_t, s1_max_days=float(ts["s1_max_days"]), patch_px=px,
        s2_bands=list(S2_L1C_BANDS),
        s2_band_gsd_m={b: S2_BAND_GSD[b] for b in S2_L1C_BANDS},
        s2_central_wavelength_nm={b: S2_CENTRAL_WAVELENGTH_NM[b] for b in S2_L1C_BANDS},
        s2_encoding="reflectance = stored * 1e-4 ((DN + RADIO_ADD_OFFSET) / 10000 applied per scene)",
        s1_polarizations=list(S1_POLARIZATIONS), s1_units="dB",
        **dataset_s1_source(cfg, "timeseries").attrs(),
        resampling=RESAMPLING,
        transform_convention="affine (a, b, c, d, e, f) of the patch's 10 m grid in its EPSG",
        cloud_detector=detector_attrs(params),
        cloud_coverage_definition="percent of the patch's pixels in the stored s2cloudless cloud_mask",
        gap_rule="a time point without a covering complete L1C scene or without S1 within "
                 "s1_max_days is a gap: fill values, valid = False, gap_reason set",
        landcover_classes=("BEN19 class index (cloudyeo.sentinel.BEN19_CLASSES)" if is_demo
                           else json.dumps(WORLDCOVER_CODES)),
        splits=json.dumps(cfg["timeseries"]["splits"]),
        archive=cfg["archive"], store_codec=ts["store_codec"],
        build_config=json.dumps(cfg, sort_keys=True), code_version=code,
    )
    return StoreLayout(len(patches), variables, coords, attrs, ts["store_codec"], sample_dim="patch",
                       record=dict(n_patches=int(len(patches)), intervals=n_t))


# ------------------------------------------------------------------------------- extract


@dataclass
class TimePoint:
    time: int
    valid: bool = False
    gap_reason: str | None = None
    s2_id: str | None = None
    s2_datetime: dt.datetime | None = None
    baseline: str | None = None
    offset: float | None = None
    s1_id: str | None = None
    s1_datetime: dt.datetime | None = None
    dt_days: float | None = None
    rejected: str = ""


def _read_s2(archive, rec: SceneRecord, roi: Roi) -> np.ndarray:
    """(13, H, W) float32 reflectance on the ROI grid; NaN where the scene has no data."""
    out = np.empty((len(S2_L1C_BANDS), *roi.shape), dtype=np.float32)
    for b, band in enumerate(S2_L1C_BANDS):
        dn = read_band(archive, rec, band, epsg=roi.epsg, transform=roi.affine, shape=roi.shape)
        out[b] = (dn + np.float32(rec.radiometric_offset)) / np.float32(rec.quantification)
    return out


def _read_s1_db(archive, rec: SceneRecord, roi: Roi) -> np.ndarray:
    layers = []
    for pol in S1_POLARIZATIONS:
        key = pol if pol in rec.assets else pol.upper()
        v = read_band(archive, rec, key, epsg=roi.epsg, transform=roi.affine, shape=roi.shape)
        layers.append(to_db(v, rec.sar_units))
    return np.stack(layers)


def _missing_bands(rec: SceneRecord) -> list[str]:
    if not rec.assets:  # pixel-download adapters (Earth Engine, Sentinel Hub) list no assets
        return []
    have = {k.upper() for k in rec.assets}
    return [b for b in S2_L1C_BANDS if b not in have]


def _choose_s1(s1_records: list[SceneRecord], when: dt.datetime, max_days: float) -> list[SceneRecord]:
    """S1 scenes within ``max_days`` of ``when``, closest first (ties: earlier, then id)."""
    lim = dt.timedelta(days=max_days)
    near = [r for r in s1_records if abs(r.datetime - when) <= lim]
    return sorted(near, key=lambda r: (abs((r.datetime - when).total_seconds()), r.datetime, r.id))


def _landcover(cfg: Mapping[str, Any], roi: Roi) -> np.ndarray:
    lc = cfg["timeseries"]["landcover"]
    if cfg["archive"] == "demo":
        href = str(paths(cfg).demo_timeseries / "landcover" / f"{roi.name}.tif")
    elif lc["source"] == "worldcover":
        # A URL (GDAL reads http(s) through /vsicurl/) or a path of a local WorldCover copy.
        href = lc["url_template"].format(tile=worldcover_tile(roi.lon, roi.lat))
    else:
        raise ConfigError("invalid configuration:\n  timeseries.landcover.source: 'demo' needs archive: demo")
    arr = read_raster(href, epsg=roi.epsg, transform=roi.affine, shape=roi.shape, resampling="nearest",
                      what=f"land cover of ROI {roi.name}")
    return np.where(np.isfinite(arr), arr, U8_FILL).astype(np.uint8)


def worldcover_tile(lon: float, lat: float) -> str:
    """ESA WorldCover 3x3 degree tile name holding a point, e.g. ``N36W102``."""
    la = int(np.floor(lat / 3.0) * 3)
    lo = int(np.floor(lon / 3.0) * 3)
    return f"{'N' if la >= 0 else 'S'}{abs(la):02d}{'E' if lo >= 0 else 'W'}{abs(lo):03d}"


# ------------------------------------------------------------------------------- manifests


def sampling_manifest(index: pd.DataFrame, split: str, *, n_inputs: int, samples_per_patch: int,
                      cloud_range: tuple[float, float], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """seq2point samples of one split: ``n_inputs`` input time points and a target.

    Per patch the target is its least cloudy valid time point (ties: the earliest); inputs are
    drawn (seeded by ``seed`` and the patch index) among the *other* valid time points whose
    cloud coverage lies in ``cloud_range`` (percent), sorted in time; duplicates are dropped.
    Returns (samples, skipped patches with the reason).
    """
    lo, hi = cloud_range
    rows, skipped = [], []
    part = index[(index["split"] == split)]
    for patch, g in part.groupby("patch", sort=True):
        g = g[g["valid"]].sort_values("time")
        pid = g["patch_id"].iloc[0] if len(g) else str(patch)
        if g.empty:
            skipped.append(dict(patch=patch, reason="no valid time point"))
            continue
        cov = dict(zip(g["time"], g["cloud_coverage"]))
        target = min(cov, key=lambda t: (cov[t], t))
        eligible = [t for t in sorted(cov) if t != target and lo <= cov[t] <= hi]
        if len(eligible) < n_inputs:
            skipped.append(dict(patch=patch, reason=f"{len(eligible)} eligible input time points "
                                                    f"(cloud in [{lo:g}, {hi:g}] %) < {n_inputs}"))
            continue
        rng = np.random.default_rng([int(seed), int(patch)])
        seen: set[tuple[int, ...]] = set()
        dates = dict(zip(g["time"], g["s2_datetime"]))
        for _ in range(samples_per_patch):
            inputs = tuple(sorted(int(t) for t in rng.choice(eligible, size=n_inputs, replace=False)))
            if inputs in seen:
                continue
            seen.add(inputs)
            if target in inputs:  # by construction impossible; guard the contract anyway
                raise AssertionError(f"patch {patch}: target {target} among inputs {inputs}")
            rows.append(dict(
                patch=int(patch), patch_id=pid, roi=g["roi"].iloc[0], split=split,
                inputs=list(inputs), input_cloud_coverage=[float(cov[t]) for t in inputs],
                input_dates=[dates[t] for t in inputs], target=int(target),
                target_cloud_coverage=float(cov[target]), target_date=dates[target],
            ))
    samples = pd.DataFrame(rows)
    if len(samples):
        samples.insert(0, "sample_id", [f"{split}-{i:06d}" for i in range(len(samples))])
        samples["seed"] = int(seed)
    return samples, pd.DataFrame(skipped, columns=["patch", "reason"])


# ------------------------------------------------------------------------------- the builder


class TimeSeriesBuilder(DatasetBuilder):
    """The time series on the dataset-builder protocol: one unit per ROI."""

    name = "timeseries"
    title = "SEN12MS-CR-TS-style time series (cloudyeo)"
    sections = ("archive", "resources_dir", "results_dir", "stac", "earthengine", "sentinelhub", "timeseries")
    store_keys = ("store_codec",)
    plan_tables = ("plan", "patches")
    outputs = {
        "index": "index.parquet",
        **{f"manifest_{split}": f"manifest_{split}.parquet" for split in SPLITS},
        **{f"manifest_{split}_skipped": f"manifest_{split}_skipped.csv" for split in SPLITS},
        "gaps": "gaps.csv",
        "mask_quality": "mask_quality.csv",  # demo only: measured against the demo world's truth masks
        "coverage_table": "cloud_coverage_by_split.csv",
        "coverage_figure": "cloud_coverage_by_split.png",
        "dt_figure": "dt_s1_s2_histogram.png",
        "example_figure": "example_series.png",
        "card": "dataset_card.md",
    }
    report_outputs = {
        "coverage_figure": ("timeseries_coverage.rst", "Time series"),
        "dt_figure": ("timeseries_dt.rst", "Time series"),
        "example_figure": ("timeseries_example.rst", "Time series"),
    }
    unit_label = "ROI"
    archive_input = "timeseries_archive"
    # Extraction computes s2cloudless masks with CLOUDYEO_THREADS (default 2) threads.
    resources = {"extract": {"mem_mb": 6000, "runtime": 120}}
    threads = {"extract": 2, "finalize": 2}

    def __init__(self, cfg: Mapping[str, Any]):
        super().__init__(cfg)
        if cfg.get("archive") != "demo":  # no truth masks to measure the cloud masks against
            outputs = {k: v for k, v in self.paths.outputs.items() if k != "mask_quality"}
            self.paths = dataclasses.replace(self.paths, outputs=outputs)

    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        manifest, patches = plan(dict(self.cfg))
        n_skip = int(manifest["skip_reason"].notna().sum())
        log.info("time series plan: %d ROIs, %d patches, %d intervals without a covering scene",
                 manifest["roi"].nunique(), len(patches), n_skip)
        return {"plan": manifest, "patches": patches}

    def units(self, plan: dict[str, pd.DataFrame]) -> list[str]:
        """Every ROI of the plan, in patch order (a ROI without any scene still gets its fill values)."""
        return list(dict.fromkeys(plan["patches"]["roi"]))

    def layout(self, plan: dict[str, pd.DataFrame]) -> StoreLayout:
        return store_layout(self.cfg, plan["patches"], self.code_version())

    def extract(self, unit: str, plan: dict[str, pd.DataFrame], write: WriteSamples, *,
                progress: bool = False) -> pd.DataFrame:
        """Build every time point of one ROI, write its patches; return its part table."""
        from ..masks import compute_cloud_masks

        cfg, roi_name = self.cfg, unit
        ts = cfg["timeseries"]
        rois = {r.name: r for r in load_rois(cfg)}
        if roi_name not in rois:
            raise TimeSeriesError(f"ROI {roi_name} is not configured (known: {', '.join(rois)})")
        roi = rois[roi_name]
        manifest = plan["plan"]
        manifest = manifest[manifest["roi"] == roi_name].sort_values("time")
        patches = plan["patches"]
        patches = patches[patches["roi"] == roi_name].sort_values("patch")
        start = int(patches["patch"].iloc[0])
        if not np.array_equal(patches["patch"].to_numpy(), np.arange(start, start + len(patches))):
            raise TimeSeriesError(f"ROI {roi_name}: patch indices in {self.paths.plan['patches']} are not contiguous")
        px = int(ts["patch_px"])
        n_t = int(ts["intervals"])
        n_p = len(patches)
        is_demo = cfg["archive"] == "demo"

        archive = _archive(cfg)
        y0, y1 = _year_span(cfg)
        s2_by_id = {r.id: r for r in archive.search(SearchQuery(L1C, y0, y1, intersects=roi.geometry()))}
        pad = float(ts["s1_max_days"])
        s1_all = [r for r in archive.search(SearchQuery(S1_GRD, *_year_span(cfg, pad), intersects=roi.geometry()))
                  if covers(r, roi)]
        params = _mask_params(cfg)

        s2 = np.full((n_p, n_t, 13, px, px), S2_FILL, dtype=np.int16)
        s1 = np.full((n_p, n_t, 2, px, px), np.nan, dtype=np.float32)
        prob = np.full((n_p, n_t, px, px), U8_FILL, dtype=np.uint8)
        mask = np.full((n_p, n_t, px, px), U8_FILL, dtype=np.uint8)
        truth = np.full((n_p, n_t, px, px), U8_FILL, dtype=np.uint8) if is_demo else None
        points = []
        grid = [(int(r), int(c)) for r, c in zip(patches["row"], patches["col"])]

        def cut(a: np.ndarray) -> np.ndarray:
            return np.stack([a[..., r * px:(r + 1) * px, c * px:(c + 1) * px] for r, c in grid])

        bar = tqdm(manifest.itertuples(), total=len(manifest), desc=f"time series {roi_name}",
                   unit="interval", disable=not progress)
        for row in bar:
            tp = TimePoint(int(row.time))
            points.append(tp)
            if row.skip_reason is not None and not pd.isna(row.skip_reason):
                tp.gap_reason = str(row.skip_reason)
                continue
            refl, rec, rejected = None, None, []
            for cand in row.candidates:
                rec = s2_by_id.get(cand)
                if rec is None:
                    rejected.append(f"{cand}: no longer in the archive")
                    continue
                missing = _missing_bands(rec)
                if missing:
                    tp.gap_reason = f"scene {rec.id} lacks band(s) {', '.join(missing)}"
                    break
                try:
                    refl = _read_s2(archive, rec, roi)
                except ReadError as exc:
                    tp.gap_reason = f"scene {rec.id} unreadable: {exc}"
                    break
                nod = float(np.mean(~np.isfinite(refl).all(axis=0)))
                if nod > 0:
                    rejected.append(f"{rec.id}: partial coverage ({100 * nod:.1f} % nodata in the ROI)")
                    refl = None
                    continue
                break
            tp.rejected = "; ".join(rejected)
            if refl is None:
                tp.gap_reason = tp.gap_reason or ("no complete S2 L1C scene covers the ROI (" + tp.rejected + ")")
                continue
            if rec is None:
                raise RuntimeError(f"ROI {roi_name}, time {tp.time}: S2 pixels read without a scene record")
            tp.s2_id, tp.s2_datetime = rec.id, rec.datetime
            tp.baseline, tp.offset = rec.processing_baseline, float(rec.radiometric_offset)
            s1_arr = None
            near = _choose_s1(s1_all, rec.datetime, float(ts["s1_max_days"]))
            for s1_rec in near:
                try:
                    cand_arr = _read_s1_db(archive, s1_rec, roi)
                except ReadError as exc:
                    log.warning("ROI %s: skipping S1 %s: %s", roi_name, s1_rec.id, exc)
                    continue
                if np.isnan(cand_arr).any():
                    continue  # partial S1 coverage: try the next closest
                s1_arr, tp.s1_id, tp.s1_datetime = cand_arr, s1_rec.id, s1_rec.datetime
                tp.dt_days = (s1_rec.datetime - rec.datetime).total_seconds() / 86400.0
                break
            if s1_arr is None:
                closest = min((abs((r.datetime - rec.datetime).total_seconds()) / 86400 for r in s1_all), default=None)
                tp.gap_reason = (f"no complete S1 scene within {ts['s1_max_days']:g} days of {rec.id}"
                                 + (f" (closest {closest:.1f} days)" if closest is not None else ""))
                continue
            p_u8, m = compute_cloud_masks(refl, params, num_threads=int(os.environ.get("CLOUDYEO_THREADS", "2")))
            t = tp.time
            s2[:, t] = cut(encode_s2(refl))
            s1[:, t] = cut(s1_arr)
            prob[:, t] = cut(p_u8)
            mask[:, t] = cut(m.astype(np.uint8))
            if truth is not None and TRUTH_ASSET in rec.assets:
                tr = read_band(archive, rec, TRUTH_ASSET, epsg=roi.epsg, transform=roi.affine, shape=roi.shape,
                               resampling="nearest")
                truth[:, t] = cut(np.nan_to_num(tr, nan=U8_FILL).astype(np.uint8))
            tp.valid = True

        data: dict[str, np.ndarray] = {"s2": s2, "s1": s1, "cloud_probability": prob, "cloud_mask": mask,
                "landcover": cut(_landcover(cfg, roi))}
        if truth is not None:
            data["truth_mask"] = truth
        write(start, data)

        rows = []
        for i, patch in enumerate(patches.itertuples()):
            for tp in points:
                valid_m = mask[i, tp.time] if tp.valid else None
                rows.append(dict(
                    patch=int(patch.patch), patch_id=patch.patch_id, roi=roi_name, split=patch.split,
                    time=tp.time, valid=tp.valid, gap_reason=tp.gap_reason, s2_id=tp.s2_id,
                    s2_datetime=tp.s2_datetime, processing_baseline=tp.baseline, radiometric_offset=tp.offset,
                    s1_id=tp.s1_id, s1_datetime=tp.s1_datetime, dt_days=tp.dt_days,
                    rejected_candidates=tp.rejected,
                    cloud_coverage=float(100.0 * valid_m.mean()) if valid_m is not None else np.nan,
                ))
        part = pd.DataFrame(rows)
        for col in ("s2_datetime", "s1_datetime"):
            part[col] = pd.to_datetime(part[col], utc=True)
        n_valid = sum(tp.valid for tp in points)
        log.info("ROI %s: %d/%d time points valid, %d gaps", roi_name, n_valid, n_t, n_t - n_valid)
        return part

    def _index(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> pd.DataFrame:
        """The parts as one (patch, time) table, in store order."""
        index = parts.sort_values(["patch", "time"]).reset_index(drop=True)
        n_p, n_t = len(plan["patches"]), int(self.section["intervals"])
        if len(index) != n_p * n_t:
            raise TimeSeriesError(f"parts hold {len(index)} (patch, time) rows, expected {n_p * n_t}")
        return index

    def sample_coords(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> dict[str, tuple]:
        index = self._index(plan, parts)
        pt_shape = (len(plan["patches"]), int(self.section["intervals"]))

        def grid(col, dtype, fill=None):
            a = index[col].to_numpy()
            if fill is not None:
                a = np.where(pd.isna(a), fill, a)
            return a.astype(dtype).reshape(pt_shape)

        pt = ("patch", "time")
        return {
            "valid": (pt, grid("valid", bool)),
            "gap_reason": (pt, grid("gap_reason", object, "").astype(str)),
            "s2_scene_id": (pt, grid("s2_id", object, "").astype(str)),
            "s2_datetime": (pt, utc64(index["s2_datetime"]).reshape(pt_shape)),
            "s1_scene_id": (pt, grid("s1_id", object, "").astype(str)),
            "s1_datetime": (pt, utc64(index["s1_datetime"]).reshape(pt_shape)),
            "dt_s1_days": (pt, grid("dt_days", np.float32, np.nan)),
            "cloud_coverage": (pt, grid("cloud_coverage", np.float32, np.nan)),
        }

    def summarise(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame, ds: Any, *,
                  progress: bool = False) -> Summary:
        ts = self.section
        index = self._index(plan, parts)
        outputs: dict[str, Any] = {"index": index}
        man = ts["manifest"]
        for split in SPLITS:
            samples, skipped = sampling_manifest(
                index, split, n_inputs=int(man["n_inputs"]), samples_per_patch=int(man["samples_per_patch"]),
                cloud_range=tuple(man["cloud_range"][split]), seed=int(man["seed"]))
            outputs[f"manifest_{split}"] = samples
            outputs[f"manifest_{split}_skipped"] = Table(skipped)
        n_p, n_t = len(plan["patches"]), int(ts["intervals"])
        valid = index["valid"].to_numpy(bool).reshape(n_p, n_t)
        quality = self._mask_quality(valid) if "mask_quality" in self.paths.outputs else None
        if quality:
            outputs["mask_quality"] = Table(pd.DataFrame([
                dict(truth_class=k, **{m: v[m] for m in ("iou", "precision", "recall", "tp", "fp", "fn")})
                for k, v in quality.items() if k != "clear"]))
        per_time = index.drop_duplicates(["roi", "time"])
        gaps = index[~index["valid"]].drop_duplicates(["roi", "time"])[["roi", "time", "gap_reason"]]
        example = example_patch(index)
        outputs.update(
            gaps=Table(gaps),
            coverage_table=Table(coverage_table(index), title="Cloud coverage by split"),
            coverage_figure=Figure("timeseries_coverage", dict(index=index)),
            dt_figure=Figure("timeseries_dt", dict(index=index, max_days=float(ts["s1_max_days"]))),
            example_figure=Figure("timeseries_example", self._example_data(index, example)),
        )
        n_valid = int(per_time["valid"].sum())
        log.info("time series: %d patches, %d valid ROI time points", n_p, n_valid)
        return Summary(
            outputs=outputs,
            card=self._card_sections(index, gaps, quality, ds.attrs,
                                     None if example is None else index.loc[index["patch"] == example, "patch_id"].iloc[0]),
            complete_attrs={
                "n_patches": n_p,
                "n_valid_time_points_per_roi": json.dumps(per_time.groupby("roi")["valid"].sum().astype(int).to_dict()),
                "mask_quality": json.dumps(quality) if quality else "not measured (no truth masks)",
            },
            licences={"Sentinel-1/2": SENTINEL_LICENCE, "ESA WorldCover (real archives)": "CC BY 4.0."},
        )

    def _mask_quality(self, valid: np.ndarray) -> dict[str, dict[str, float]]:
        """The stored s2cloudless masks against the demo world's truth masks over the valid
        (patch, time) points ``valid``."""
        from ..masks import confusion_counts, mask_metrics

        grp = store._open_group(self.paths.store, mode="r")
        counts = np.zeros((4, 2), dtype=np.int64)
        for i in range(valid.shape[0]):
            m = np.asarray(grp["cloud_mask"][i])
            t = np.asarray(grp["truth_mask"][i])
            ok = valid[i][:, None, None] & (m != U8_FILL) & (t != U8_FILL)
            counts += confusion_counts(m == 1, t, ok)
        return mask_metrics(counts)

    def _example_data(self, index: pd.DataFrame, patch: int | None) -> dict[str, Any]:
        """The example figure's patch: stored values (int16 reflectance x 1e4, dB, mask) per time point."""
        if patch is None:
            return dict(rows=index.iloc[:0], s2=None, s1=None, cloud_mask=None)
        grp = store._open_group(self.paths.store, mode="r")
        return dict(rows=index[index["patch"] == patch].sort_values("time"), s2=np.asarray(grp["s2"][patch]),
                    s1=np.asarray(grp["s1"][patch]), cloud_mask=np.asarray(grp["cloud_mask"][patch]))

    def _card_sections(self, index: pd.DataFrame, gaps: pd.DataFrame, quality: dict | None,
                       attrs: Mapping[str, Any], example: str | None) -> list[tuple[str, Any]]:
        ts, files = self.section, self.paths.outputs
        per_time = index.drop_duplicates(["roi", "time"])
        avail = per_time.groupby("roi").agg(valid=("valid", "sum"), gaps=("valid", lambda v: int((~v).sum())))
        masks = ts["masks"]
        layout = "\n".join([
            "- `s2` (patch, time, band[13], y, x): L1C TOA reflectance x 1e4 (int16; RADIO_ADD_OFFSET applied), "
            "all bands at 10 m (20/60 m bilinear).",
            f"- `s1` (patch, time, [VV, VH], y, x): IW {attrs.get('s1_radiometry')} in dB, closest to the S2 "
            f"scene, |dt| <= {ts['s1_max_days']:g} days.",
            s1_card_line(attrs),
            "- `cloud_probability`, `cloud_mask` (patch, time, y, x): s2cloudless, computed once at build time "
            f"(threshold {masks['threshold']}, average_over {masks['average_over']}, dilation "
            f"{masks['dilation_size']}, working resolution {masks['working_resolution_m']} m).",
            "- `landcover` (patch, y, x); `truth_mask` (demo only).",
            "- per (patch, time): `valid`, `gap_reason`, scene ids and datetimes, `dt_s1_days`, `cloud_coverage` (%).",
            "- a gap keeps its time index (fill values, valid = False): inputs are never shifted.",
        ])
        out: list[tuple[str, Any]] = [
            ("Overview", f"Archive `{self.cfg['archive']}`, year {ts['year']}, {ts['intervals']} intervals, "
                         f"{index['patch'].nunique()} patches of {ts['patch_px']} px from {index['roi'].nunique()} ROIs."),
            ("Layout", layout),
            ("Availability per ROI", avail.reset_index()),
        ]
        if len(gaps):
            out.append(("Gaps", gaps))
        if quality:
            out.append(("s2cloudless mask vs demo truth", pd.DataFrame([
                dict(truth_class=k, iou=v["iou"], precision=v["precision"], recall=v["recall"])
                for k, v in quality.items() if k != "clear"])))
        out += [
            ("Sampling manifests",
             f"seq2point, {ts['manifest']['n_inputs']} inputs, target = least cloudy valid frame "
             "(ties: earliest), never among the inputs; input cloud ranges: "
             + json.dumps(ts["manifest"]["cloud_range"]) + f"; seed {ts['manifest']['seed']}."),
            ("Figures", "\n".join([
                f"- cloud coverage: `{files['coverage_figure'].name}`",
                f"- S1-S2 dt: `{files['dt_figure'].name}`",
                f"- example series: `{files['example_figure'].name}` (patch {example})"])),
        ]
        return out


BUILDER = TimeSeriesBuilder


# ------------------------------------------------------------------------------- statistics

COVERAGE_BINS = np.linspace(0, 100, 11)


def coverage_table(index: pd.DataFrame) -> pd.DataFrame:
    """Per split: valid (patch, time) samples, cloud-coverage mean/SD and counts per 10 % bin."""
    rows = []
    valid = index[index["valid"]]
    for split, g in valid.groupby("split", sort=False):
        counts, _ = np.histogram(g["cloud_coverage"], bins=COVERAGE_BINS)
        row = {"split": split, "samples": len(g), "mean": g["cloud_coverage"].mean(),
               "sd": g["cloud_coverage"].std(ddof=0)}
        row.update({f"{int(a)}-{int(b)}%": int(n) for a, b, n in zip(COVERAGE_BINS[:-1], COVERAGE_BINS[1:], counts)})
        rows.append(row)
    return pd.DataFrame(rows)


def example_patch(index: pd.DataFrame) -> int | None:
    """The patch with the most valid time points (the first such), shown in the example figure."""
    counts = index.groupby("patch")["valid"].sum()
    if counts.empty or counts.max() == 0:
        return None
    return int(counts.idxmax())
