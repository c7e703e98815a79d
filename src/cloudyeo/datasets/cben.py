"""CBEN, a cloudy BigEarthNet: plan, select, extract, finalize.

For each reBEN product the cloud climatology (monthly mean +- interannual SD at the product
centroid, month of the reference acquisition) gives a cloud-cover window; the temporally
closest Sentinel-2 L2A scene of the same MGRS tile whose scene cloud cover lies in that window
is cut on the exact patch grid of every reference patch of the product.

A dataset builder (:class:`CBENBuilder`, see :mod:`cloudyeo.datasets.builder`); the generic
drivers run it (``cloudyeo dataset cben plan|init|extract --unit <product>|finalize``):

- plan -> ``manifest.parquet`` (one row per product, GeoParquet) and ``patches.parquet`` (one
  row per patch, with its sample index in the store);
- init -> the empty ``cben.zarr`` with every coordinate known at plan time;
- extract, one unit per selected product -> the product's samples, then its part file;
- finalize -> per-sample cloud fractions, statistics, index, card, completion mark.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from shapely.ops import unary_union
from tqdm import tqdm

from .. import store
from ..archives import open_archive
from ..archives.base import Archive, SceneRecord, SearchQuery
from ..archives.reading import ReadError, read_windows, reads_pixels_itself
from ..archives.s1_source import dataset_s1_source, s1_card_line
from ..climatology import Climatology
from ..config import paths
from ..grids import footprint, geojson, scaled_transform, to_lonlat, upsample_bilinear
from ..provenance import code_version
from ..reben import ReBEN, ReferenceDataError, parse_product, s1_datetime
from ..sentinel import (
    BEN19_CLASSES,
    S1_POLARIZATIONS,
    S2_BAND_GSD,
    S2_CENTRAL_WAVELENGTH_NM,
    S2_L2A_BANDS,
    S2_QUANTIFICATION,
    SCL_CIRRUS,
    SCL_CLOUD,
    SCL_SHADOW,
)
from .builder import DatasetBuilder, Figure, StoreLayout, Summary, Table, WriteSamples
from .common import S2_FILL, S2_SCALE, SENTINEL_LICENCE, band_statistics, encode_s2, to_db, utc64

log = logging.getLogger(__name__)

L2A = "sentinel-2-l2a"
S1_GRD = "sentinel-1-grd"
PATCH_PX = 120
# reBEN patches hold sen2cor DNs without BOA_ADD_OFFSET (all products precede baseline 04.00).
REFERENCE_OFFSET_DN = 0.0
RESAMPLING = "bilinear on pixel centres (20 m x2, 60 m x6), edges clamped"
SAME_ACQUISITION = dt.timedelta(hours=1)
# Every asset a CBEN scene must have (checked at plan time where the archive lists assets).
SCENE_ASSETS: tuple[str, ...] = (*S2_L2A_BANDS, "SCL")
NO_VALID_PIXEL = "no valid pixel: the cloudy scene's SCL is no data over the whole patch"
EXCLUDED_SPLIT = "excluded"


class ExtractionError(RuntimeError):
    """A product could not be extracted; the message names the product and the file."""


# --------------------------------------------------------------------------------- select


@dataclass(frozen=True)
class Selection:
    scene: SceneRecord | None
    search_attempts: int
    search_days: int
    skip_reason: str | None


def choose_scene(
    candidates: list[SceneRecord], reference_time: dt.datetime, low: float, high: float, mean: float
) -> SceneRecord | None:
    """Temporally closest scene with cloud cover in [low, high]; ties: |cloud - mean|, then id.

    The reference acquisition itself (same sensing time) is never a candidate.
    """
    eligible = [
        s for s in candidates
        if s.cloud_cover is not None and low <= s.cloud_cover <= high
        and abs(s.datetime - reference_time) >= SAME_ACQUISITION
    ]
    if not eligible:
        return None
    return min(
        eligible,
        key=lambda s: (abs((s.datetime - reference_time).total_seconds()), abs(cast(float, s.cloud_cover) - mean), s.id),  # eligible: cloud known
    )


def missing_assets(scene: SceneRecord) -> list[str]:
    """The CBEN assets a scene lacks; none when the archive lists no assets (Sentinel Hub
    serves pixels through its Process API only)."""
    if not scene.assets:
        return []
    return [b for b in SCENE_ASSETS if b not in scene.assets]


def select_scene(
    archive: Archive, tile: str, reference_time: dt.datetime, low: float, high: float, mean: float,
    search_days: int, max_search_days: int,
) -> Selection:
    """Search +-search_days, widening by search_days up to max_search_days.

    A scene lacking one of :data:`SCENE_ASSETS` is never chosen: the next candidate is.
    """
    days, attempts = search_days, 0
    incomplete: dict[str, list[str]] = {}
    while True:
        attempts += 1
        span = dt.timedelta(days=days)
        found = archive.search(SearchQuery(L2A, reference_time - span, reference_time + span, tile=tile))
        complete = []
        for rec in found:
            lacks = missing_assets(rec)
            if lacks:
                incomplete[rec.id] = lacks
            else:
                complete.append(rec)
        scene = choose_scene(complete, reference_time, low, high, mean)
        if scene is not None:
            return Selection(scene, attempts, days, None)
        if days >= max_search_days:
            lacking = (f" ({len(incomplete)} scene(s) lacking assets, e.g. {next(iter(incomplete))} "
                       f"without {', '.join(next(iter(incomplete.values())))})" if incomplete else "")
            return Selection(
                None, attempts, days,
                f"no L2A scene of tile {tile} with cloud cover in [{low:.1f}, {high:.1f}] % "
                f"within +-{days} days{lacking}",
            )
        days = min(days + search_days, max_search_days)


# ----------------------------------------------------------------------------------- plan


def plan(cfg: Mapping[str, Any]) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Decide per product which scene to cut; return (manifest, patches)."""
    dataset_s1_source(cfg, "cben")  # refuses raw Sentinel-1 GRD before reading anything
    p = paths(cfg)
    reference = ReBEN(p.reference)
    climatology = Climatology(p.climatology)
    archive = open_archive(cfg)
    products = cfg["reference"]["products"] or reference.products()
    known = set(reference.products())
    unknown = [x for x in products if x not in known]
    if unknown:
        raise ValueError(f"reference.products names products absent from {reference.metadata_path}: {unknown}")

    rows, patch_rows = [], []
    for product in tqdm(products, desc="cben plan", unit="product"):
        name = parse_product(product)
        patches = reference.patches(product)
        try:
            grids = {pid: reference.grid(pid) for pid in patches["patch_id"]}
        except ReferenceDataError as exc:
            # One missing patch folder skips its product, not the whole plan.
            rows.append(_reference_skip(product, name, len(patches), exc))
            continue
        epsgs = {g.epsg for g in grids.values()}
        if len(epsgs) != 1:
            raise ValueError(f"product {product}: patches in several CRSs {sorted(epsgs)}")
        epsg = epsgs.pop()
        outline = to_lonlat(unary_union([footprint(g.transform, g.shape) for g in grids.values()]).envelope, epsg)
        centre = outline.centroid
        month = name.datetime.month
        clim = climatology.lookup(centre.x, centre.y, month)
        patch_centres = [to_lonlat(footprint(g.transform, g.shape), epsg).centroid for g in grids.values()]
        patch_clim = climatology.lookup_many(
            np.array([c.x for c in patch_centres]), np.array([c.y for c in patch_centres]),
            np.full(len(patch_centres), month),
        )
        row = dict(
            product=product, tile=name.tile, reference_datetime=name.datetime,
            clim_month=month, clim_mean=clim.mean_percent, clim_sd=clim.sd_percent,
            window_low=np.nan, window_high=np.nan, scene_id=None, scene_datetime=pd.NaT,
            cloud_cover=np.nan, processing_baseline=None, delta_days=np.nan,
            search_attempts=0, search_days=0, n_patches=len(patches), skip_reason=clim.skip_reason,
            geometry=outline,
        )
        if clim.skip_reason is None:
            low = max(0.0, clim.mean_percent - clim.sd_percent)
            high = min(100.0, clim.mean_percent + clim.sd_percent)
            sel = select_scene(
                archive, name.tile, name.datetime, low, high, clim.mean_percent,
                cfg["cben"]["search_days"], cfg["cben"]["max_search_days"],
            )
            row.update(window_low=low, window_high=high, search_attempts=sel.search_attempts,
                       search_days=sel.search_days, skip_reason=sel.skip_reason)
            if sel.scene is not None:
                row.update(
                    scene_id=sel.scene.id, scene_datetime=sel.scene.datetime,
                    cloud_cover=sel.scene.cloud_cover, processing_baseline=sel.scene.processing_baseline,
                    delta_days=(sel.scene.datetime - name.datetime).total_seconds() / 86400,
                )
        rows.append(row)
        for (pid, meta), c_mean, c_sd in zip(patches.iterrows(), patch_clim.mean_percent, patch_clim.sd_percent):
            g = grids[pid]
            patch_rows.append(dict(
                patch_id=pid, product=product, split=meta["split"], labels=list(meta["labels"]),
                s1_name=meta["s1_name"], epsg=g.epsg, transform=list(g.transform)[:6],
                height=g.shape[0], width=g.shape[1], clim_mean=c_mean, clim_sd=c_sd,
            ))

    manifest = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    manifest["skip_reason"] = manifest["skip_reason"].astype(object).where(manifest["skip_reason"].notna(), None)
    patches = pd.DataFrame(patch_rows, columns=PATCH_COLUMNS)
    # Sample indices: selected products in manifest order, patches sorted by id.
    chosen = manifest.loc[manifest["skip_reason"].isna(), "product"]
    order = {prod: i for i, prod in enumerate(chosen)}
    patches["product_rank"] = patches["product"].map(order)
    patches = patches.sort_values(["product_rank", "patch_id"], na_position="last")
    sample = np.full(len(patches), -1, dtype=np.int64)
    selected = patches["product_rank"].notna().to_numpy()
    sample[selected] = np.arange(selected.sum())
    patches["sample"] = sample
    patches = patches.drop(columns="product_rank").reset_index(drop=True)
    first = patches[patches["sample"] >= 0].groupby("product")["sample"].min()
    manifest["sample_start"] = manifest["product"].map(first).fillna(-1).astype(np.int64)
    return manifest, patches


def _reference_skip(product: str, name, n_patches: int, exc: Exception) -> dict[str, Any]:
    return dict(
        product=product, tile=name.tile, reference_datetime=name.datetime,
        clim_month=name.datetime.month, clim_mean=np.nan, clim_sd=np.nan,
        window_low=np.nan, window_high=np.nan, scene_id=None, scene_datetime=pd.NaT,
        cloud_cover=np.nan, processing_baseline=None, delta_days=np.nan,
        search_attempts=0, search_days=0, n_patches=n_patches,
        skip_reason=f"reference data unreadable: {exc}", geometry=None,
    )


PATCH_COLUMNS = ["patch_id", "product", "split", "labels", "s1_name", "epsg", "transform", "height",
                 "width", "clim_mean", "clim_sd"]


def read_manifest(path: str | Path) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path)


# ------------------------------------------------------------------------------ the store


def _multi_hot(labels: list[list[str]]) -> np.ndarray:
    index = {c: i for i, c in enumerate(BEN19_CLASSES)}
    out = np.zeros((len(labels), len(BEN19_CLASSES)), dtype=np.uint8)
    for row, labs in enumerate(labels):
        for lab in labs:
            out[row, index[lab]] = 1
    return out


def _store_rows(plan: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The patches that have a sample in the store, in sample order."""
    patches = plan["patches"]
    return patches[patches["sample"] >= 0].sort_values("sample").reset_index(drop=True)


def store_layout(cfg: Mapping[str, Any], plan: dict[str, pd.DataFrame]) -> StoreLayout:
    """The empty store: arrays, plan-time coordinates, labels and attributes."""
    rows = _store_rows(plan)
    scenes = plan["manifest"].set_index("product")
    s2_vars = dict(
        units="1", long_name="surface reflectance", scale_factor=S2_SCALE, add_offset=0.0,
        _FillValue=S2_FILL, resampling_to_10m=RESAMPLING,
    )
    shard = cfg["cben"]["store_shard_samples"]
    variables = {
        "s2": store.VariableSpec(("band", "y", "x"), (12, PATCH_PX, PATCH_PX), "int16",
                                 dict(s2_vars, description="cloudy Sentinel-2 L2A, BOA_ADD_OFFSET applied"),
                                 samples_per_shard=shard),
        "s2_reference": store.VariableSpec(("band", "y", "x"), (12, PATCH_PX, PATCH_PX), "int16",
                                           dict(s2_vars, description="clear reBEN reference Sentinel-2 L2A"),
                                           samples_per_shard=shard),
        "s1": store.VariableSpec(("polarization", "y", "x"), (2, PATCH_PX, PATCH_PX), "float32",
                                 dict(units="dB", long_name="Sentinel-1 GRD backscatter", _FillValue=np.nan),
                                 samples_per_shard=shard),
        # Known at plan time and written once here, so one chunk for all samples.
        "labels": store.VariableSpec(("label",), (len(BEN19_CLASSES),), "uint8",
                                     dict(long_name="BigEarthNet 19-class multi-hot labels"),
                                     samples_per_chunk=None),
    }
    sample = ("sample",)
    prod = rows["product"].to_numpy()
    coords = {
        "patch_id": (sample, rows["patch_id"].to_numpy(dtype=str)),
        "product": (sample, prod.astype(str)),
        "split": (sample, rows["split"].to_numpy(dtype=str)),
        "s2_scene_id": (sample, scenes.loc[prod, "scene_id"].to_numpy(dtype=str)),
        "s2_datetime": (sample, utc64(scenes.loc[prod, "scene_datetime"])),
        "s2_reference_datetime": (sample, utc64(scenes.loc[prod, "reference_datetime"])),
        "scene_cloud_cover": (sample, scenes.loc[prod, "cloud_cover"].to_numpy(dtype=np.float32)),
        "window_low": (sample, scenes.loc[prod, "window_low"].to_numpy(dtype=np.float32)),
        "window_high": (sample, scenes.loc[prod, "window_high"].to_numpy(dtype=np.float32)),
        "clim_mean": (sample, rows["clim_mean"].to_numpy(dtype=np.float32)),
        "clim_sd": (sample, rows["clim_sd"].to_numpy(dtype=np.float32)),
        "epsg": (sample, rows["epsg"].to_numpy(dtype=np.int32)),
        "transform": (("sample", "affine"), np.stack(rows["transform"].to_numpy()).astype(np.float64)
                      if len(rows) else np.zeros((0, 6))),
        "band": (("band",), np.array(S2_L2A_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        "label": (("label",), np.array(BEN19_CLASSES)),
    }
    attrs = dict(
        title="CBEN - cloudy BigEarthNet (cloudyeo)",
        s2_bands=list(S2_L2A_BANDS),
        s2_band_gsd_m={b: S2_BAND_GSD[b] for b in S2_L2A_BANDS},
        s2_central_wavelength_nm={b: S2_CENTRAL_WAVELENGTH_NM[b] for b in S2_L2A_BANDS},
        s2_encoding="reflectance = stored * 1e-4 (BOA_ADD_OFFSET and quantification already applied)",
        s1_polarizations=list(S1_POLARIZATIONS),
        s1_units="dB",
        label_order=list(BEN19_CLASSES),
        resampling=RESAMPLING,
        transform_convention="affine (a, b, c, d, e, f) of the 10 m patch grid in its EPSG",
        cloud_fraction_definition="SCL 8 (medium) or 9 (high probability cloud), per valid 20 m pixel",
        cirrus_fraction_definition="SCL 10 (thin cirrus), per valid 20 m pixel",
        shadow_fraction_definition="SCL 3 (cloud shadow), per valid 20 m pixel",
        s1_source=cfg["cben"]["s1_source"],
        **dataset_s1_source(cfg, "cben").attrs(),
        archive=cfg["archive"],
        store_codec=cfg["cben"]["store_codec"],
        store_shard_samples=shard,
        build_config=json.dumps(cfg, sort_keys=True),
        code_version=code_version("cben"),
    )
    initial = {"labels": _multi_hot(list(rows["labels"]))} if len(rows) else {}
    return StoreLayout(len(rows), variables, coords, attrs, cfg["cben"]["store_codec"], initial,
                       record=dict(shard_samples=shard))


# -------------------------------------------------------------------------------- extract


def _find_scene(archive: Archive, collection: str, scene_id: str, when: dt.datetime, tile: str | None) -> SceneRecord:
    span = dt.timedelta(hours=1)
    for rec in archive.search(SearchQuery(collection, when - span, when + span, tile=tile)):
        if rec.id == scene_id:
            return rec
    raise ExtractionError(f"scene {scene_id} no longer found in archive {archive.name}")


def _cut(archive: Archive, scene: SceneRecord, band: str, epsg: int, transforms: list[Affine],
         shape: tuple[int, int], what: str) -> list[np.ndarray]:
    """One window per patch of ``band`` on the scene's own grid (float32, NaN = no data),
    through the reading layer (rasterio archives decode the windows' union once)."""
    try:
        return read_windows(archive, scene, band, epsg=epsg, transforms=transforms, shape=shape,
                            resampling="nearest", exact=True, what=what)
    except ReadError as exc:
        raise ExtractionError(f"{what}: {exc}") from None


def _encode_reflectance(dn: np.ndarray, offset: float, quantification: float, factor: int,
                        nodata: int | None = 0) -> np.ndarray:
    """DNs at native resolution -> int16 reflectance * 1e4 at 10 m (fill for nodata: NaN or
    ``nodata``)."""
    refl = (dn.astype(np.float32) + offset) / quantification
    if nodata is not None:
        refl[dn == nodata] = np.nan
    return encode_s2(upsample_bilinear(refl, factor))


def _scl_fractions(scl: np.ndarray) -> tuple[float, float, float, float]:
    """(cloud, shadow, cirrus, valid) fractions of a patch's SCL (0 or NaN = no data).

    Without a single valid pixel the cover fractions are NaN (unknown), never 0 (clear).
    """
    valid = np.isfinite(scl) & (scl != 0)
    n = int(valid.sum())
    if n == 0:
        return np.nan, np.nan, np.nan, 0.0
    cloud = np.isin(scl, SCL_CLOUD).sum() / n
    shadow = np.isin(scl, SCL_SHADOW).sum() / n
    cirrus = np.isin(scl, SCL_CIRRUS).sum() / n
    return cloud, shadow, cirrus, valid.mean()


def _extract_s1(cfg, archive, reference, patches, scene, epsg, t10, outline):
    n = len(patches)
    if cfg["cben"]["s1_source"] == "reference":
        s1 = np.stack([reference.read_s1(name) for name in patches["s1_name"]]) if n else np.empty((0, 2, PATCH_PX, PATCH_PX), np.float32)
        times = [s1_datetime(name) for name in patches["s1_name"]]
        return s1, list(patches["s1_name"]), pd.to_datetime(times, utc=True)
    # closest: the S1 acquisition nearest the cloudy scene, cut from the archive.
    span = dt.timedelta(days=cfg["cben"]["s1_max_days"])
    found = archive.search(SearchQuery(S1_GRD, scene.datetime - span, scene.datetime + span, intersects=geojson(outline)))
    if not found:
        raise ExtractionError(f"no Sentinel-1 scene within +-{span.days} days of {scene.id}")
    s1_scene = min(found, key=lambda r: (abs((r.datetime - scene.datetime).total_seconds()), r.id))
    layers = []
    for pol in S1_POLARIZATIONS:
        cuts = _cut(archive, s1_scene, pol, epsg, t10, (PATCH_PX, PATCH_PX), f"S1 {s1_scene.id} {pol}")
        stack = np.stack(cuts).astype(np.float32)
        layers.append(stack if s1_scene.sar_units == "dB" else to_db(stack))
    s1 = np.stack(layers, axis=1)
    return s1, [s1_scene.id] * n, pd.to_datetime([s1_scene.datetime] * n, utc=True)


class CBENBuilder(DatasetBuilder):
    """CBEN on the dataset-builder protocol: one unit per reference product."""

    name = "cben"
    title = "CBEN - cloudy BigEarthNet"
    sections = ("archive", "resources_dir", "results_dir", "stac", "earthengine", "sentinelhub",
                "climatology", "reference", "cben")
    plan_tables = ("manifest", "patches")
    outputs = {
        "index": "index.parquet",
        "table_ii": "table_ii_cloud_statistics.csv",
        "table_iii": "table_iii_time_differences.csv",
        "band_stats": "band_statistics.csv",
        "histogram": "cloud_cover_histogram.png",
        "card": "dataset_card.md",
    }
    report_outputs = {
        "table_ii": ("cben_table_ii.rst", "CBEN"),
        "table_iii": ("cben_table_iii.rst", "CBEN"),
        "histogram": ("cben_histogram.rst", "CBEN"),
    }
    unit_label = "product"
    archive_input = "archive"
    # The CBEN experiment (pretrain -> fine-tune -> evaluate -> Table VI) waits on this store:
    # building it first keeps the 2-core default run from ending on that chain alone.
    priority = 1

    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        manifest, patches = plan(self.cfg)
        n_skip = int(manifest["skip_reason"].notna().sum())
        log.info("planned %d products (%d skipped), %d samples", len(manifest), n_skip, int((patches["sample"] >= 0).sum()))
        return {"manifest": manifest, "patches": patches}

    def units(self, plan: dict[str, pd.DataFrame]) -> list[str]:
        """The products the plan selected (products with a skip reason have no samples)."""
        manifest = plan["manifest"]
        return manifest.loc[manifest["skip_reason"].isna(), "product"].tolist()

    def layout(self, plan: dict[str, pd.DataFrame]) -> StoreLayout:
        return store_layout(self.cfg, plan)

    def extract(self, unit: str, plan: dict[str, pd.DataFrame], write: WriteSamples, *,
                progress: bool = False) -> pd.DataFrame:
        """Cut one product's patches into its rows of the store; return its part table."""
        cfg, product = self.cfg, unit
        row = plan["manifest"].set_index("product").loc[product]
        patches = plan["patches"]
        patches = patches[patches["product"] == product].sort_values("sample")
        start = int(patches["sample"].iloc[0])
        if not np.array_equal(patches["sample"].to_numpy(), np.arange(start, start + len(patches))):
            raise ExtractionError(f"product {product}: sample indices in {self.paths.plan['patches']} are not contiguous")

        archive = open_archive(cfg)
        reference = ReBEN(paths(cfg).reference)
        scene = _find_scene(archive, L2A, row["scene_id"], pd.Timestamp(row["scene_datetime"]).to_pydatetime(), row["tile"])
        epsg = int(patches["epsg"].iloc[0])
        t10 = [Affine(*t) for t in patches["transform"]]
        n = len(patches)
        s2 = np.empty((n, len(S2_L2A_BANDS), PATCH_PX, PATCH_PX), dtype=np.int16)
        s2_ref = np.empty_like(s2)
        # Files hold raw DN with 0 = no data (L2A convention, also where a COG declares no nodata);
        # read_window services send NaN for no data and may send a harmonized DN of 0 as data.
        dn_nodata = None if reads_pixels_itself(archive) else 0
        bar = tqdm(S2_L2A_BANDS, desc=f"extract {product}", unit="band", disable=not progress)
        for b, band in enumerate(bar):
            factor = S2_BAND_GSD[band] // 10
            size = PATCH_PX // factor
            cuts = _cut(archive, scene, band, epsg, [scaled_transform(t, factor) for t in t10], (size, size),
                        f"{product} {band}")
            for i, cut in enumerate(cuts):
                s2[i, b] = _encode_reflectance(cut, scene.radiometric_offset, scene.quantification, factor,
                                               nodata=dn_nodata)
        for i, pid in enumerate(patches["patch_id"]):
            ref_bands = reference.read_s2(pid)
            for b, band in enumerate(S2_L2A_BANDS):
                s2_ref[i, b] = _encode_reflectance(ref_bands[band], REFERENCE_OFFSET_DN, S2_QUANTIFICATION,
                                                   S2_BAND_GSD[band] // 10)

        scl = _cut(archive, scene, "SCL", epsg, [scaled_transform(t, 2) for t in t10], (PATCH_PX // 2,) * 2,
                   f"{product} SCL")
        fractions = np.array([_scl_fractions(c) for c in scl], dtype=np.float32)

        s1, s1_ids, s1_times = _extract_s1(cfg, archive, reference, patches, scene, epsg, t10, row["geometry"])
        write(start, {"s2": s2, "s2_reference": s2_ref, "s1": s1})
        return pd.DataFrame(dict(
            patch_id=patches["patch_id"].to_numpy(), sample=patches["sample"].to_numpy(),
            cloud_fraction=fractions[:, 0], shadow_fraction=fractions[:, 1], cirrus_fraction=fractions[:, 2],
            valid_fraction=fractions[:, 3], s1_id=s1_ids, s1_datetime=s1_times,
            skip_reason=[None if f > 0 else NO_VALID_PIXEL for f in fractions[:, 3]],
        ))

    def _ordered_parts(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(store rows, parts in the same sample order; skip_reason None where usable)."""
        rows = _store_rows(plan)
        parts = parts.set_index("sample").loc[rows["sample"]].reset_index()
        if not (parts["patch_id"].to_numpy() == rows["patch_id"].to_numpy()).all():
            raise RuntimeError(f"{self.paths.parts} disagree with {self.paths.plan['patches']} on sample order")
        if "skip_reason" not in parts:
            parts["skip_reason"] = None
        parts["skip_reason"] = parts["skip_reason"].astype(object).where(parts["skip_reason"].notna(), None)
        return rows, parts

    def _splits(self, rows: pd.DataFrame, parts: pd.DataFrame) -> np.ndarray:
        """A sample without one valid pixel has unknown cover: recorded, and kept out of the splits."""
        skipped = parts["skip_reason"].notna().to_numpy()
        split = rows["split"].to_numpy(dtype=object).copy()
        split[skipped] = EXCLUDED_SPLIT
        return split

    def sample_coords(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> dict[str, tuple]:
        rows, parts = self._ordered_parts(plan, parts)
        skipped = parts["skip_reason"].notna().to_numpy()
        if skipped.any():
            log.warning("%d samples without a valid pixel are excluded from the splits: %s", int(skipped.sum()),
                        ", ".join(parts.loc[skipped, "patch_id"].astype(str)[:5]))
        sample = ("sample",)
        return {
            "cloud_fraction": (sample, parts["cloud_fraction"].to_numpy(np.float32)),
            "shadow_fraction": (sample, parts["shadow_fraction"].to_numpy(np.float32)),
            "cirrus_fraction": (sample, parts["cirrus_fraction"].to_numpy(np.float32)),
            "valid_fraction": (sample, parts["valid_fraction"].to_numpy(np.float32)),
            "skip_reason": (sample, parts["skip_reason"].fillna("").to_numpy(dtype=str)),
            "split": (sample, self._splits(rows, parts).astype(str)),
            "s1_id": (sample, parts["s1_id"].to_numpy(dtype=str)),
            "s1_datetime": (sample, utc64(parts["s1_datetime"])),
        }

    def summarise(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame, ds: Any, *,
                  progress: bool = False) -> Summary:
        rows, parts = self._ordered_parts(plan, parts)
        split = self._splits(rows, parts)
        index = pd.DataFrame({
            "sample": rows["sample"], "patch_id": rows["patch_id"], "product": rows["product"],
            "split": split, "skip_reason": parts["skip_reason"], "labels": rows["labels"],
            "s2_scene_id": ds["s2_scene_id"].values, "s2_datetime": ds["s2_datetime"].values,
            "s2_reference_datetime": ds["s2_reference_datetime"].values,
            "s1_id": parts["s1_id"], "s1_datetime": ds["s1_datetime"].values,
            "cloud_percent": 100 * parts["cloud_fraction"], "shadow_percent": 100 * parts["shadow_fraction"],
            "cirrus_percent": 100 * parts["cirrus_fraction"],
            "scene_cloud_cover": ds["scene_cloud_cover"].values,
            "window_low": ds["window_low"].values, "window_high": ds["window_high"].values,
            "clim_mean": rows["clim_mean"], "clim_sd": rows["clim_sd"], "epsg": rows["epsg"],
        })
        usable = index[index["skip_reason"].isna()]
        band_stats = band_statistics(ds, [(v, d, ("sample", "y", "x"), None) for v, d in
                                          (("s2", "band"), ("s2_reference", "band"), ("s1", "polarization"))])
        return Summary(
            outputs={
                "index": index,
                "table_ii": Table(cloud_statistics(usable), "%.3f",
                                  "Table II analogue - cloud, shadow and cirrus cover per patch (%)"),
                "table_iii": Table(time_differences(usable), "%.3f", "Table III analogue - time differences (days)"),
                "band_stats": Table(band_stats, "%.6g", "Band statistics (reflectance; S1 in dB)"),
                "histogram": Figure("cben_cloud_cover", dict(index=usable, manifest=plan["manifest"])),
            },
            card=_card_sections(plan["manifest"], index, ds.attrs),
            complete_attrs={
                "n_samples": int(len(index)),
                "split_counts": {k: int(v) for k, v in index["split"].value_counts().items()},
                "n_skipped": int(index["skip_reason"].notna().sum()),
                "band_statistics": json.loads(band_stats.to_json(orient="records")),
            },
            licences=LICENCES,
        )


BUILDER = CBENBuilder

LICENCES = {
    "Sentinel-1/2": SENTINEL_LICENCE,
    "BigEarthNet v2.0 (reBEN)": "CDLA-Permissive-1.0; cite Clasen et al. 2024.",
    "EarthEnv cloud climatology": "CC BY-NC 4.0, Wilson & Jetz 2016 (PLoS Biology 14(3): e1002415); non-commercial use.",
}


def _card_sections(manifest: pd.DataFrame, index: pd.DataFrame, attrs: dict[str, Any]) -> list[tuple[str, Any]]:
    skipped = manifest[manifest["skip_reason"].notna()]
    s2_bands = attrs.get("s2_bands", [])
    band_table = pd.DataFrame({
        "band": s2_bands,
        "wavelength (nm)": [attrs.get("s2_central_wavelength_nm", {}).get(b) for b in s2_bands],
        "native GSD (m)": [attrs.get("s2_band_gsd_m", {}).get(b) for b in s2_bands],
    })
    label_counts = pd.Series(0, index=attrs.get("label_order", []), dtype=int)
    for labs in index["labels"]:
        for lab in labs:
            label_counts[lab] += 1
    labels = pd.DataFrame({"index": range(len(label_counts)), "class": label_counts.index,
                           "patches": label_counts.values})
    counts = "\n".join([
        f"- products planned: {len(manifest)}; built: {len(manifest) - len(skipped)}; skipped: {len(skipped)}",
        f"- samples (patches): {len(index)}; by split: "
        + ", ".join(f"{k} {v}" for k, v in index["split"].value_counts().sort_index().items()),
    ])
    variables = "\n".join([
        "- `s2`: cloudy Sentinel-2 L2A, `s2_reference`: clear reBEN reference; int16, "
        f"{attrs.get('s2_encoding')}.",
        f"- `s1`: Sentinel-1 VV, VH in {attrs.get('s1_units')} (source: {attrs.get('s1_source')}).",
        s1_card_line(attrs),
        "- `labels`: multi-hot over the 19 BigEarthNet classes, order below.",
        f"- All bands at 10 m; resampling: {attrs.get('resampling')}.",
        f"- Cloud fraction: {attrs.get('cloud_fraction_definition')}; cirrus: "
        f"{attrs.get('cirrus_fraction_definition')}; shadow: {attrs.get('shadow_fraction_definition')}.",
    ])
    out: list[tuple[str, Any]] = [("Counts", counts)]
    if len(skipped):
        out.append(("Skipped products", skipped[["product", "skip_reason"]]))
    out += [("Variables", variables), ("Sentinel-2 bands (store order)", band_table),
            ("Label order and counts", labels)]
    return out

def cloud_statistics(index: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD, min, max of per-patch cloud, shadow and cirrus cover in percent (Table II)."""
    rows = []
    for name in ("cloud", "shadow", "cirrus"):
        v = index[f"{name}_percent"].astype(float)
        rows.append(dict(cover=name, mean=v.mean(), sd=v.std(ddof=1), min=v.min(), max=v.max(), n=len(v)))
    return pd.DataFrame(rows)


def time_differences(index: pd.DataFrame) -> pd.DataFrame:
    """|dt| in days between S2 reference, cloudy S2 and S1 (Table III)."""
    t_ref = pd.to_datetime(index["s2_reference_datetime"])
    t_cloud = pd.to_datetime(index["s2_datetime"])
    t_s1 = pd.to_datetime(index["s1_datetime"])
    pairs = {"S2ref -> S1": (t_ref, t_s1), "S2cloud -> S1": (t_cloud, t_s1), "S2cloud -> S2ref": (t_cloud, t_ref)}
    rows = []
    for name, (a, b) in pairs.items():
        d = ((b - a).dt.total_seconds() / 86400).abs()
        rows.append(dict(pair=name, mean=d.mean(), sd=d.std(ddof=1), min=d.min(), max=d.max(), n=len(d)))
    return pd.DataFrame(rows)
