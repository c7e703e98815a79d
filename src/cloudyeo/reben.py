"""Reader for a BigEarthNet v2.0 (reBEN) folder: ours (demo) or the real download.

Layout::

    <root>/metadata.parquet      patch_id, labels, split, country, s1_name, s2v1_name, ...
    <root>/BigEarthNet-S2/<product>/<patch_id>/<patch_id>_<Bxx>.tif
    <root>/BigEarthNet-S1/<s1 product>/<s1_name>/<s1_name>_<VV|VH>.tif

The S2 product is the patch id without its two trailing grid indices; the S1 product folder
is located the same way from ``s1_name`` (with a one-time directory scan as fallback).
Patch georeferencing is read from the GeoTIFFs themselves, never derived from names.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from affine import Affine

from .sentinel import BEN19_CLASSES, S1_POLARIZATIONS, S2_L2A_BANDS

_PRODUCT_RE = re.compile(
    r"^(?P<platform>S2[ABCD])_MSIL2A_(?P<datetime>\d{8}T\d{6})_N(?P<baseline>\d{4})"
    r"_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})$"
)


class ReferenceDataError(ValueError):
    """The reference folder is missing something; the message names the path."""


@dataclass(frozen=True)
class ProductName:
    name: str
    platform: str
    datetime: dt.datetime
    baseline: str
    relative_orbit: int
    tile: str


def parse_product(name: str) -> ProductName:
    m = _PRODUCT_RE.match(name)
    if not m:
        raise ReferenceDataError(
            f"not a BigEarthNet S2 product name: {name!r} "
            "(expected e.g. S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP)"
        )
    when = dt.datetime.strptime(m["datetime"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    return ProductName(
        name=name, platform=m["platform"], datetime=when,
        baseline=f"{m['baseline'][:2]}.{m['baseline'][2:]}",
        relative_orbit=int(m["orbit"]), tile=m["tile"],
    )


def product_of(patch_id: str) -> str:
    return patch_id.rsplit("_", 2)[0]


@dataclass(frozen=True)
class PatchGrid:
    epsg: int
    transform: Affine  # 10 m grid
    shape: tuple[int, int]


class ReBEN:
    """A reBEN folder. ``root`` may be any folder in the reBEN layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.metadata_path = self.root / "metadata.parquet"
        for needed in (self.metadata_path, self.root / "BigEarthNet-S2", self.root / "BigEarthNet-S1"):
            if not needed.exists():
                raise ReferenceDataError(f"reBEN reference incomplete: {needed} does not exist")

    @cached_property
    def metadata(self) -> pd.DataFrame:
        df = pd.read_parquet(self.metadata_path)
        missing = [c for c in ("patch_id", "labels", "split", "s1_name") if c not in df.columns]
        if missing:
            raise ReferenceDataError(f"{self.metadata_path}: missing columns {missing}")
        unknown = sorted({lab for labs in df["labels"] for lab in labs} - set(BEN19_CLASSES))
        if unknown:
            raise ReferenceDataError(f"{self.metadata_path}: labels outside the 19-class nomenclature: {unknown}")
        df = df.copy()
        df["product"] = df["patch_id"].map(product_of)
        df.index = pd.Index(df["patch_id"].to_numpy(), name=None)
        return df

    @cached_property
    def _rows_by_product(self) -> dict[str, np.ndarray]:
        # One grouping instead of a scan of all ~550k rows per product.
        return self.metadata.groupby("product").indices

    def products(self) -> list[str]:
        return sorted(self._rows_by_product)

    def patches(self, product: str) -> pd.DataFrame:
        rows = self._rows_by_product.get(product)
        if rows is None:
            raise ReferenceDataError(f"{self.metadata_path}: no patches of product {product}")
        return self.metadata.iloc[rows].sort_values("patch_id")

    def s2_path(self, patch_id: str, band: str) -> Path:
        return self.root / "BigEarthNet-S2" / product_of(patch_id) / patch_id / f"{patch_id}_{band}.tif"

    def s1_path(self, s1_name: str, polarization: str) -> Path:
        return self._s1_dir(s1_name) / f"{s1_name}_{polarization}.tif"

    def _s1_dir(self, s1_name: str) -> Path:
        guess = self.root / "BigEarthNet-S1" / product_of(s1_name) / s1_name
        if guess.exists():
            return guess
        found = self._s1_dirs.get(s1_name)
        if found is None:
            raise ReferenceDataError(f"S1 patch folder for {s1_name} not found under {self.root / 'BigEarthNet-S1'}")
        return found

    @cached_property
    def _s1_dirs(self) -> dict[str, Path]:
        return {p.name: p for p in (self.root / "BigEarthNet-S1").glob("*/*") if p.is_dir()}

    def grid(self, patch_id: str) -> PatchGrid:
        """CRS and 10 m transform of a patch, read from its B02 GeoTIFF header."""
        path = self.s2_path(patch_id, "B02")
        try:
            with rasterio.open(path) as src:
                return PatchGrid(epsg=src.crs.to_epsg(), transform=src.transform, shape=src.shape)
        except rasterio.errors.RasterioIOError as exc:
            raise ReferenceDataError(f"cannot read reference patch {path}: {exc}") from exc

    def read_s2(self, patch_id: str, bands=S2_L2A_BANDS) -> dict[str, np.ndarray]:
        """Raw DNs per band at native resolution."""
        out = {}
        for band in bands:
            path = self.s2_path(patch_id, band)
            try:
                with rasterio.open(path) as src:
                    out[band] = src.read(1)
            except rasterio.errors.RasterioIOError as exc:
                raise ReferenceDataError(f"cannot read reference band {path}: {exc}") from exc
        return out

    def read_s1(self, s1_name: str) -> np.ndarray:
        """(2, 120, 120) float32 backscatter in dB (reBEN stores dB), order VV, VH."""
        layers = []
        for pol in S1_POLARIZATIONS:
            path = self.s1_path(s1_name, pol)
            try:
                with rasterio.open(path) as src:
                    layers.append(src.read(1).astype(np.float32))
            except rasterio.errors.RasterioIOError as exc:
                raise ReferenceDataError(f"cannot read reference S1 {path}: {exc}") from exc
        return np.stack(layers)


def s1_datetime(s1_name: str) -> dt.datetime:
    """Acquisition start of an S1 patch name such as S1A_IW_GRDH_1SDV_20170613T165043_33UUP_26_57."""
    m = re.search(r"_(\d{8}T\d{6})", s1_name)
    if not m:
        raise ReferenceDataError(f"no acquisition time in S1 name {s1_name!r}")
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
