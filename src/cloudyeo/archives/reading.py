"""Read one band of a scene on a target 10 m grid, whatever the archive.

``read_band(archive, record, band, epsg=..., transform=..., shape=...)`` returns float32 in the
archive's native units (Sentinel-2 DN, Sentinel-1 as ``record.sar_units``) with nodata as NaN:

* adapters that download pixels themselves (Earth Engine, Sentinel Hub) implement
  ``read_window(record, bands, epsg=, transform=, shape=, resampling=)`` and are asked directly;
* otherwise the asset is opened with rasterio. When the raster shares the target CRS and its
  pixels tile the target grid exactly (same origin lattice, pixel size an integer multiple of
  the target's), the covering window is read and upsampled **bilinearly on pixel centres**
  (:func:`cloudyeo.grids.upsample_bilinear`; the same resampling as CBEN). Anything else is
  warped onto the target grid with GDAL (``resampling``: bilinear for reflectance/backscatter,
  nearest for classes), stated in the dataset attributes by the callers.

A target pixel outside the raster reads as NaN, so partial coverage is visible to the caller.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from cloudyeo.archives.base import SceneRecord
from cloudyeo.grids import upsample_bilinear
from cloudyeo.http import redact

_TOL = 1e-6


class ReadError(RuntimeError):
    """A band could not be read; the message names the scene, the band and the (redacted) file."""


def _href(archive: Any, record: SceneRecord, band: str) -> str:
    from cloudyeo.archives import readable_href

    return readable_href(archive, record, band)


def _aligned_factor(src_t: Affine, dst_t: Affine) -> int | None:
    """Integer k when source pixels are k x k target pixels on the same lattice, else None."""
    if abs(src_t.b) > _TOL or abs(src_t.d) > _TOL or abs(dst_t.b) > _TOL or abs(dst_t.d) > _TOL:
        return None
    k = src_t.a / dst_t.a
    if abs(k - round(k)) > _TOL or round(k) < 1 or abs(src_t.e / dst_t.e - k) > _TOL:
        return None
    col, row = ~src_t @ (dst_t.c, dst_t.f)
    # The target corner must sit on a target-pixel boundary inside the source lattice.
    sub_c, sub_r = col * round(k), row * round(k)
    if abs(sub_c - round(sub_c)) > _TOL * k or abs(sub_r - round(sub_r)) > _TOL * k:
        return None
    return int(round(k))


def read_band(archive: Any, record: SceneRecord, band: str, *, epsg: int, transform: Affine,
              shape: tuple[int, int], resampling: str = "bilinear") -> np.ndarray:
    """One band of ``record`` on the target grid (float32, native units, NaN = nodata)."""
    transform = Affine(*transform[:6]) if not isinstance(transform, Affine) else transform
    if hasattr(archive, "read_window"):
        arr = archive.read_window(record, [band], epsg=epsg, transform=tuple(transform)[:6],
                                  shape=tuple(shape), resampling=resampling)
        return np.asarray(arr, dtype=np.float32)[0]
    if band not in record.assets:
        raise ReadError(f"scene {record.id} has no asset for band {band}")
    return read_raster(_href(archive, record, band), epsg=epsg, transform=transform, shape=shape,
                       resampling=resampling, what=f"{band} of scene {record.id}")


def read_raster(href: str, *, epsg: int, transform: Affine, shape: tuple[int, int],
                resampling: str = "bilinear", what: str = "raster") -> np.ndarray:
    """Band 1 of any raster (path or URL) on the target grid; see the module docstring."""
    transform = Affine(*transform[:6]) if not isinstance(transform, Affine) else transform
    try:
        with rasterio.open(href) as src:
            nodata = src.nodata
            k = _aligned_factor(src.transform, transform) if src.crs and src.crs.to_epsg() == epsg else None
            if k is not None and (k == 1 or resampling == "bilinear"):
                return _read_aligned(src, transform, shape, k, nodata)
            return _read_warped(src, epsg, transform, shape, resampling, nodata)
    except rasterio.errors.RasterioError as exc:
        raise ReadError(f"cannot read {what} from {redact(href)}: {redact(str(exc))}") from exc


def _read_aligned(src, transform: Affine, shape: tuple[int, int], k: int, nodata) -> np.ndarray:
    rows, cols = shape
    col, row = ~src.transform @ (transform.c, transform.f)
    c0, r0 = math.floor(col + _TOL), math.floor(row + _TOL)
    sub_c, sub_r = int(round((col - c0) * k)), int(round((row - r0) * k))
    n_c = math.ceil((sub_c + cols) / k)
    n_r = math.ceil((sub_r + rows) / k)
    win = Window(c0, r0, n_c, n_r)
    block = src.read(1, window=win, boundless=True, fill_value=nodata if nodata is not None else 0,
                     masked=False).astype(np.float32)
    invalid = _outside(src, win)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid |= block == nodata
    block[invalid] = np.nan
    up = upsample_bilinear(block, k) if k > 1 else block
    return np.ascontiguousarray(up[sub_r:sub_r + rows, sub_c:sub_c + cols], dtype=np.float32)


def _outside(src, win: Window) -> np.ndarray:
    rr = np.arange(win.row_off, win.row_off + win.height)[:, None]
    cc = np.arange(win.col_off, win.col_off + win.width)[None, :]
    return (rr < 0) | (rr >= src.height) | (cc < 0) | (cc >= src.width)


def _read_warped(src, epsg: int, transform: Affine, shape: tuple[int, int], resampling: str,
                 nodata) -> np.ndarray:
    fill = nodata if nodata is not None else 0
    with WarpedVRT(src, crs=f"EPSG:{epsg}", transform=transform, width=shape[1], height=shape[0],
                   resampling=Resampling[resampling], src_nodata=nodata, nodata=fill) as vrt:
        arr = vrt.read(1).astype(np.float32)
        valid = vrt.read_masks(1) > 0
    arr[~valid] = np.nan
    return arr
