"""Reader for a BigEarthNet v2.0 (reBEN) folder: ours (demo) or the real download.

Layout (the real release, which the demo world writes too)::

    <root>/metadata.parquet      patch_id, labels, split, country, s1_name, s2v1_name, ...
    <root>/BigEarthNet-S2/<S2 product>/<patch_id>/<patch_id>_<Bxx>.tif
    <root>/BigEarthNet-S1/<S1 product>/<s1_name>/<s1_name>_<VV|VH>.tif

* ``patch_id`` = ``<S2 product>_<row>_<col>``, e.g.
  ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57`` in the folder
  ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP``: the product is the patch id without its
  last **two** underscore fields (the grid indices).
* ``s1_name`` = ``<S1 product>_<tile>_<row>_<col>``, e.g.
  ``S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39`` in the folder
  ``S1A_IW_GRDH_1SDV_20170613T165043``: the S1 product folder is the name without its last
  **three** fields (S2 tile and grid indices), so one S1 folder holds the patches of every
  tile that S1 scene covers.

Found in public material (December 2026, via a search of public code and pages): a reBEN
reorganisation script documents "Child: S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39 /
Parent: S1A_IW_GRDH_1SDV_20170613T165043" next to the S2 rule "Child:
S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_27_55 / Parent:
S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"; another project's test of its reBEN reader
expects the S1 folder ``BigEarthNet-S1/S1A_IW_GRDH_1SDV_20170928T161150/<s1_name>``; an
exploration report of the real ``BigEarthNet-S1`` download counts 312 sub-group (S1 product)
folders holding 549,488 patch folders (the number of reBEN pairs in the reBEN paper), each with
``<s1_name>_VV.tif`` and ``<s1_name>_VH.tif``, 120 x 120 float32 (dB). S2 bands are 120 x 120
(10 m), 60 x 60 (20 m) and 20 x 20 (60 m) pixels per 1200 m patch.

Every path is derived from the names; a folder that is not where the layout puts it is an
error naming the folder expected (no directory scan: the real S1 tree has ~550,000 folders).
Band rasters whose shape is not the band's patch shape are refused with the file named.
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

from .sentinel import BEN19_CLASSES, S1_POLARIZATIONS, S2_BAND_GSD, S2_L2A_BANDS

#: side of a reBEN patch in metres; a band of ground sampling distance g has (1200/g)^2 pixels
PATCH_SIZE_M = 1200

_S1_NAME_RE = re.compile(
    r"^(?P<product>S1[A-D]_\w+?_\d{8}T\d{6})_(?P<tile>\d{2}[A-Z]{3})_\d+_\d+$"
)
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
    when = dt.datetime.strptime(m["datetime"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return ProductName(
        name=name, platform=m["platform"], datetime=when,
        baseline=f"{m['baseline'][:2]}.{m['baseline'][2:]}",
        relative_orbit=int(m["orbit"]), tile=m["tile"],
    )


def product_of(patch_id: str) -> str:
    """The S2 product folder of a patch: the patch id without its two grid indices."""
    return patch_id.rsplit("_", 2)[0]


def s1_product_of(s1_name: str) -> str:
    """The S1 product folder of an S1 patch: the name without its tile and grid indices.

    ``S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39`` -> ``S1A_IW_GRDH_1SDV_20170613T165043``.
    """
    m = _S1_NAME_RE.match(s1_name)
    if not m:
        raise ReferenceDataError(
            f"not a BigEarthNet S1 patch name: {s1_name!r} "
            "(expected e.g. S1A_IW_GRDH_1SDV_20170613T165043_33UUP_61_39)"
        )
    return m["product"]


def band_shape(band: str) -> tuple[int, int]:
    """Pixels of a reBEN patch band: 120 x 120 at 10 m, 60 x 60 at 20 m, 20 x 20 at 60 m."""
    n = PATCH_SIZE_M // S2_BAND_GSD[band]
    return (n, n)


S1_SHAPE = (PATCH_SIZE_M // 10, PATCH_SIZE_M // 10)


def _check_shape(path: Path, got: tuple[int, int], expected: tuple[int, int]) -> None:
    if tuple(got) != tuple(expected):
        raise ReferenceDataError(
            f"reference band {path} is {got[0]}x{got[1]} pixels; a reBEN patch band at this "
            f"resolution is {expected[0]}x{expected[1]} ({PATCH_SIZE_M} m / {PATCH_SIZE_M // expected[0]} m)"
        )


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

    def s2_dir(self, patch_id: str) -> Path:
        return self.root / "BigEarthNet-S2" / product_of(patch_id) / patch_id

    def s2_path(self, patch_id: str, band: str) -> Path:
        return self.s2_dir(patch_id) / f"{patch_id}_{band}.tif"

    def s1_dir(self, s1_name: str) -> Path:
        return self.root / "BigEarthNet-S1" / s1_product_of(s1_name) / s1_name

    def s1_path(self, s1_name: str, polarization: str) -> Path:
        return self.s1_dir(s1_name) / f"{s1_name}_{polarization}.tif"

    def _require_dir(self, folder: Path, sensor: str) -> None:
        if not folder.is_dir():
            raise ReferenceDataError(
                f"reBEN layout mismatch: expected the {sensor} patch folder {folder} "
                f"(<root>/BigEarthNet-{sensor}/<{sensor} product>/<patch>/, as in the reBEN release); "
                "it does not exist"
            )

    def _read_band(self, path: Path, shape: tuple[int, int], sensor: str) -> np.ndarray:
        """Band 1 of ``path``, refused unless it is ``shape`` pixels."""
        try:
            with rasterio.open(path) as src:
                _check_shape(path, src.shape, shape)
                return src.read(1)
        except rasterio.errors.RasterioIOError as exc:
            raise ReferenceDataError(f"cannot read reference {sensor} band {path}: {exc}") from exc

    def grid(self, patch_id: str) -> PatchGrid:
        """CRS and 10 m transform of a patch, read from its B02 GeoTIFF header (shape checked)."""
        self._require_dir(self.s2_dir(patch_id), "S2")
        path = self.s2_path(patch_id, "B02")
        try:
            with rasterio.open(path) as src:
                _check_shape(path, src.shape, band_shape("B02"))
                return PatchGrid(epsg=src.crs.to_epsg(), transform=src.transform, shape=src.shape)
        except rasterio.errors.RasterioIOError as exc:
            raise ReferenceDataError(f"cannot read reference patch {path}: {exc}") from exc

    def read_s2(self, patch_id: str, bands=S2_L2A_BANDS) -> dict[str, np.ndarray]:
        """Raw DNs per band at native resolution (shapes checked: 120, 60 or 20 pixels square)."""
        self._require_dir(self.s2_dir(patch_id), "S2")
        return {band: self._read_band(self.s2_path(patch_id, band), band_shape(band), "S2") for band in bands}

    def read_s1(self, s1_name: str) -> np.ndarray:
        """(2, 120, 120) float32 backscatter in dB (reBEN stores dB), order VV, VH."""
        self._require_dir(self.s1_dir(s1_name), "S1")
        return np.stack([self._read_band(self.s1_path(s1_name, pol), S1_SHAPE, "S1").astype(np.float32)
                         for pol in S1_POLARIZATIONS])


def s1_datetime(s1_name: str) -> dt.datetime:
    """Acquisition start of an S1 patch name such as S1A_IW_GRDH_1SDV_20170613T165043_33UUP_26_57."""
    m = re.search(r"_(\d{8}T\d{6})", s1_name)
    if not m:
        raise ReferenceDataError(f"no acquisition time in S1 name {s1_name!r}")
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
