"""The one raster-reading layer: every pixel a dataset stores comes through here.

Entry points (float32 in the archive's native units, nodata as NaN):

* ``read_band(archive, record, band, epsg=, transform=, shape=, resampling=)`` -- one band of a
  scene on a target grid;
* ``read_windows(archive, record, band, epsg=, transforms=, shape=, exact=)`` -- many windows of
  one band (e.g. all patches of a CBEN product), decoding the raster once;
* ``read_asset_on_grid(archive, record, band, ...)`` and ``read_raster(href, ...)`` -- multi-band or
  non-scene rasters (land cover, Planet assets) on a grid;
* ``open_raster(archive, href)`` -- the only ``rasterio.open`` of the package's datasets, inside the
  one ``rasterio.Env`` built by :func:`cloudyeo.archives.gdal_env.gdal_read_options` (GDAL HTTP
  retries, timeouts and auth headers of an archive).

The pixel protocol: adapters that download pixels themselves (Earth Engine via
``computePixels``, Sentinel Hub via the Process API) implement
``read_window(record, bands, epsg=, transform=, shape=, resampling=)`` and are asked directly;
every other archive (local STAC, STAC APIs) is read here with rasterio/GDAL windows.

Resampling of the rasterio path: when the raster shares the target CRS and its pixels tile the
target grid exactly (same origin lattice, pixel size an integer multiple of the target's), the
covering window is read and upsampled **bilinearly on pixel centres**
(:func:`cloudyeo.grids.upsample_bilinear`; the same resampling as CBEN). Anything else is warped
onto the target grid with GDAL (``resampling``: bilinear for reflectance/backscatter, nearest for
classes), stated in the dataset attributes by the callers.

A target pixel outside the raster reads as NaN, so partial coverage is visible to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from cloudyeo.archives.base import SceneRecord
from cloudyeo.archives.gdal_env import gdal_read_options
from cloudyeo.grids import GridMismatch, union_window, upsample_bilinear, window_for
from cloudyeo.http import AuthError, HttpError, redact

_TOL = 1e-6
# A read_window adapter is asked for the union box of many windows when that box holds at most
# this many times the pixels of the windows themselves (else: one request per window).
UNION_MAX_RATIO = 2.0


class ReadError(RuntimeError):
    """A band could not be read; the message names the scene, the band and the (redacted) file."""


# ------------------------------------------------------------------------- opening rasters


@contextmanager
def open_raster(archive: Any, href: str, *, what: str = "raster") -> Iterator[Any]:
    """``rasterio.open(href)`` inside the archive's GDAL environment
    (:func:`cloudyeo.archives.gdal_env.gdal_read_options`: retries and timeouts from the archive's
    config, no directory listing, merged ranges, credentials for the archive's own origin only;
    nothing for local files).

    ``href`` may be signed: errors (also those raised while reading the open dataset inside the
    ``with`` block) become :class:`ReadError` naming ``what`` and the redacted href, never
    chained to GDAL's raw message.
    """
    try:
        with rasterio.Env(**gdal_read_options(archive, href)), rasterio.open(href) as src:
            yield src
    except rasterio.errors.RasterioError as exc:
        raise ReadError(f"cannot read {what} from {redact(href)}: {redact(str(exc))}") from None


def _href(archive: Any, record: SceneRecord, band: str) -> str:
    from cloudyeo.archives import readable_href

    return readable_href(archive, record, band)


def _affine(t: Any) -> Affine:
    return t if isinstance(t, Affine) else Affine(*tuple(t)[:6])


def reads_pixels_itself(archive: Any) -> bool:
    """True for adapters that serve pixels through ``read_window`` (their records list no
    files to open)."""
    return hasattr(archive, "read_window")


class WindowReader(Protocol):
    """An adapter that downloads pixels itself (Earth Engine, Sentinel Hub)."""

    def read_window(self, record: SceneRecord, bands: Sequence[str], *, epsg: int, transform: tuple[float, ...],
                    shape: tuple[int, int], resampling: str = "bilinear") -> np.ndarray:
        """Pixels of ``bands`` on the target grid, shape (len(bands), rows, cols).

        float32 in the record's units, NaN = no data. Sentinel-2: DN, reflectance =
        (DN + record.radiometric_offset) / record.quantification. Sentinel-1: ``record.sar_units``.
        """
        ...


def window_request(bands: Sequence[str], shape: tuple[int, int]) -> tuple[list[str], int, int]:
    """A ``read_window`` call's bands (at least one) and (rows, cols)."""
    bands = list(bands)
    if not bands:
        raise ValueError("read_window needs at least one band")
    return bands, int(shape[0]), int(shape[1])


def grid_blocks(shape: tuple[int, int], max_rows: int, max_cols: int) -> Iterator[tuple[int, int, int, int]]:
    """(row0, col0, rows, cols) blocks that tile ``shape`` with at most max_rows x max_cols."""
    rows, cols = shape
    for r0 in range(0, rows, max_rows):
        for c0 in range(0, cols, max_cols):
            yield r0, c0, min(max_rows, rows - r0), min(max_cols, cols - c0)


def block_transform(transform: Sequence[float], row0: int, col0: int) -> tuple[float, ...]:
    """The affine (a, b, c, d, e, f) of the block whose top-left pixel is (row0, col0)."""
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    return (a, b, c + a * col0 + b * row0, d, e, f + d * col0 + e * row0)


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


# ------------------------------------------------------------------------- scene bands

# Statuses with which a service refuses one window (this scene/band cannot be served), as
# opposed to an outage or refused credentials, which stop the job.
REFUSED_WINDOW = (400, 404)


def _ask(archive: Any, record: SceneRecord, band: str, epsg: int, transform: Affine,
         shape: tuple[int, int], resampling: str) -> np.ndarray:
    """``archive.read_window`` for one band; a refused window becomes :class:`ReadError`."""
    try:
        arr = archive.read_window(record, [band], epsg=epsg, transform=tuple(transform)[:6],
                                  shape=tuple(shape), resampling=resampling)
    except HttpError as exc:
        if isinstance(exc, AuthError) or exc.status not in REFUSED_WINDOW:
            raise
        raise ReadError(f"{getattr(archive, 'name', 'archive')} cannot serve {band} of scene "
                        f"{record.id}: {exc}") from None
    return np.asarray(arr, dtype=np.float32)[0]



def read_band(archive: Any, record: SceneRecord, band: str, *, epsg: int, transform: Affine,
              shape: tuple[int, int], resampling: str = "bilinear") -> np.ndarray:
    """One band of ``record`` on the target grid (float32, native units, NaN = nodata)."""
    transform = _affine(transform)
    if reads_pixels_itself(archive):
        return _ask(archive, record, band, epsg, transform, shape, resampling)
    if band not in record.assets:
        raise ReadError(f"scene {record.id} has no asset for band {band}")
    return read_raster(_href(archive, record, band), epsg=epsg, transform=transform, shape=shape,
                       resampling=resampling, what=f"{band} of scene {record.id}", archive=archive)


def read_windows(archive: Any, record: SceneRecord, band: str, *, epsg: int,
                 transforms: Sequence[Any], shape: tuple[int, int], resampling: str = "nearest",
                 exact: bool = True, what: str | None = None) -> list[np.ndarray]:
    """Many windows (same ``shape``, one per transform) of one band of ``record``.

    float32 in native units, NaN = nodata. Rasterio archives open the file once and decode
    the union of the windows once. With ``exact`` every window must sit on the raster's own
    grid (same CRS, pixel size, corners on pixel corners) and inside it, else
    :class:`ReadError`; without, off-grid windows are resampled like :func:`read_band`.
    ``read_window`` adapters are asked for the union box when the windows share a lattice and
    the box is compact (:data:`UNION_MAX_RATIO`), else once per window (``resampling``; with
    windows on the service's native grid ``nearest`` returns the stored pixels).
    """
    transforms = [_affine(t) for t in transforms]
    what = what or f"{band} of scene {record.id}"
    if not transforms:
        return []
    if reads_pixels_itself(archive):
        return _adapter_windows(archive, record, band, epsg, transforms, cast(tuple[int, int], tuple(shape)), resampling)
    if band not in record.assets:
        raise ReadError(f"scene {record.id} has no asset for band {band}")
    href = _href(archive, record, band)
    name = redact(href)
    with open_raster(archive, href, what=what) as src:
        try:
            if src.crs is None or src.crs.to_epsg() != epsg:
                raise GridMismatch(f"CRS {src.crs} differs from the target EPSG:{epsg}")
            windows = [window_for(src.transform, t, shape) for t in transforms]
        except GridMismatch as exc:
            if exact:
                raise ReadError(f"{name}: {what} not on the raster's grid: {exc}") from None
            return [_read_src(src, epsg, t, shape, resampling) for t in transforms]
        whole = union_window(windows)
        inside = (whole.col_off >= 0 and whole.row_off >= 0 and whole.col_off + whole.width <= src.width
                  and whole.row_off + whole.height <= src.height)
        if exact and not inside:
            raise ReadError(f"{name}: windows of {what} fall outside the raster")
        nodata = src.nodata
        block = src.read(1, window=whole, boundless=not inside,
                         fill_value=nodata if nodata is not None else 0).astype(np.float32)
        invalid = _outside(src, whole) if not inside else np.zeros(block.shape, dtype=bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        invalid |= block == np.float32(nodata)
    block[invalid] = np.nan
    return _cut(block, whole, windows, shape)


def _cut(block: np.ndarray, whole: Window, windows: Sequence[Window], shape: tuple[int, int]) -> list[np.ndarray]:
    """The ``windows`` (each of ``shape``) out of ``block``, which holds the union window ``whole``."""
    return [block[w.row_off - whole.row_off: w.row_off - whole.row_off + shape[0],
                  w.col_off - whole.col_off: w.col_off - whole.col_off + shape[1]].copy()
            for w in windows]


def _adapter_windows(archive: Any, record: SceneRecord, band: str, epsg: int,
                     transforms: list[Affine], shape: tuple[int, int], resampling: str) -> list[np.ndarray]:
    def ask(t: Affine, shp: tuple[int, int]) -> np.ndarray:
        return _ask(archive, record, band, epsg, t, shp, resampling)

    t0 = transforms[0]
    try:
        offsets = [window_for(t0, t, shape) for t in transforms]
    except GridMismatch:
        offsets = None
    if offsets is not None:
        whole = union_window(offsets)
        if whole.width * whole.height <= UNION_MAX_RATIO * len(offsets) * shape[0] * shape[1]:
            block = ask(t0 @ Affine.translation(whole.col_off, whole.row_off), (whole.height, whole.width))
            return _cut(block, whole, offsets, shape)
    return [ask(t, shape) for t in transforms]


# ------------------------------------------------------------------------- any raster


def read_raster(href: str, *, epsg: int, transform: Affine, shape: tuple[int, int],
                resampling: str = "bilinear", what: str = "raster", archive: Any = None) -> np.ndarray:
    """Band 1 of any raster (path or URL) on the target grid; see the module docstring.

    ``archive``: the archive the raster belongs to (its GDAL options), None for others.
    """
    transform = _affine(transform)
    with open_raster(archive, href, what=what) as src:
        return _read_src(src, epsg, transform, shape, resampling)


def _read_src(src, epsg: int, transform: Affine, shape: tuple[int, int], resampling: str) -> np.ndarray:
    nodata = src.nodata
    k = _aligned_factor(src.transform, transform) if src.crs and src.crs.to_epsg() == epsg else None
    if k is not None and (k == 1 or resampling == "bilinear"):
        return _read_aligned(src, transform, shape, k, nodata)
    return _read_warped(src, epsg, transform, shape, resampling, nodata)


def read_on_grid(archive: Any, href: str, *, epsg: int, transform: Any, shape: tuple[int, int],
                 bands: list[int] | None = None, resampling: str = "nearest", fill: float = 0,
                 what: str = "raster") -> np.ndarray:
    """Bands of a raster on a target grid, in the raster's values (nodata kept as stored): a
    window read when the raster lies on the grid's lattice (same CRS and pixel size, corner on
    a pixel corner), else a GDAL warp (``resampling``). Returns (bands, rows, cols); pixels
    outside the raster are ``fill``.
    """
    transform = _affine(transform)
    with open_raster(archive, href, what=what) as src:
        idx = bands or list(range(1, src.count + 1))
        src_epsg = src.crs.to_epsg() if src.crs else None
        try:
            if src_epsg != epsg:
                raise GridMismatch("CRS differs")
            win = window_for(src.transform, transform, shape)
        except GridMismatch:
            with WarpedVRT(src, crs=f"EPSG:{epsg}", transform=transform, width=shape[1],
                           height=shape[0], resampling=Resampling[resampling], src_nodata=src.nodata,
                           nodata=fill) as vrt:
                return vrt.read(idx)
        return src.read(idx, window=win, boundless=True, fill_value=fill)


def read_exact_window(archive: Any, href: str, *, epsg: int, transform: Any, shape: tuple[int, int],
                      bands: list[int], fill: float = 0, what: str = "raster") -> np.ndarray:
    """An exact window (no resampling) of ``bands``: its transform must be on the raster's
    lattice in the same CRS and overlap the raster; the part past the raster's edge is ``fill``.
    """
    transform = _affine(transform)
    with open_raster(archive, href, what=what) as f:
        name = redact(href)
        if (f.crs.to_epsg() if f.crs else None) != epsg:
            raise ReadError(f"{name}: CRS {f.crs} differs from the sample's EPSG:{epsg} ({what})")
        try:
            win = window_for(f.transform, transform, shape)
        except GridMismatch as exc:
            raise ReadError(f"{name}: {what} window not on the raster's grid: {exc}") from None
        if (win.col_off + shape[1] <= 0 or win.row_off + shape[0] <= 0 or win.col_off >= f.width
                or win.row_off >= f.height):
            raise ReadError(f"{name}: {what} window falls outside the raster")
        return f.read(bands, window=win, boundless=True, fill_value=fill)


def read_asset_on_grid(archive: Any, record: SceneRecord, band: str, *, epsg: int, transform: Any,
                       shape: tuple[int, int], resampling: str = "nearest", fill: float = 0) -> np.ndarray:
    """Band 1 of a scene asset on a grid as :func:`read_on_grid` gives it (stored values,
    ``fill`` outside); ``read_window`` adapters answer instead, their no-data as ``fill``."""
    if reads_pixels_itself(archive):
        v = read_band(archive, record, band, epsg=epsg, transform=transform, shape=shape,
                      resampling=resampling)
        return np.where(np.isfinite(v), v, np.float32(fill)).astype(np.float32)
    if band not in record.assets:
        raise ReadError(f"scene {record.id} has no asset for band {band}")
    return read_on_grid(archive, _href(archive, record, band), epsg=epsg, transform=transform,
                        shape=shape, bands=[1], resampling=resampling, fill=fill,
                        what=f"{band} of scene {record.id}")[0]


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
