"""Patch grids, windows and resampling: how a reference patch maps onto a scene's rasters."""

from __future__ import annotations

import numpy as np
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window
from shapely.geometry import Polygon, box, mapping

# Snap tolerance when turning coordinates into pixel offsets (fraction of a pixel).
_PIXEL_TOLERANCE = 1e-6


class GridMismatch(ValueError):
    """A patch does not sit on the pixel grid of the raster it is cut from."""


def window_for(src_transform: Affine, patch_transform: Affine, shape: tuple[int, int]) -> Window:
    """The integer window of a raster (``src_transform``) covering a patch exactly.

    Both grids must share the pixel size and the patch corner must fall on a pixel corner;
    anything else would need resampling and is refused.
    """
    if not np.allclose(
        (src_transform.a, src_transform.e, src_transform.b, src_transform.d),
        (patch_transform.a, patch_transform.e, patch_transform.b, patch_transform.d),
    ):
        raise GridMismatch(
            f"pixel size differs: raster {src_transform.a, src_transform.e} "
            f"vs patch {patch_transform.a, patch_transform.e}"
        )
    col, row = ~src_transform @ (patch_transform.c, patch_transform.f)
    if abs(col - round(col)) > _PIXEL_TOLERANCE or abs(row - round(row)) > _PIXEL_TOLERANCE:
        raise GridMismatch(f"patch corner falls between pixels (col {col:.4f}, row {row:.4f})")
    return Window(int(round(col)), int(round(row)), shape[1], shape[0])


def union_window(windows: list[Window]) -> Window:
    c0 = min(w.col_off for w in windows)
    r0 = min(w.row_off for w in windows)
    c1 = max(w.col_off + w.width for w in windows)
    r1 = max(w.row_off + w.height for w in windows)
    return Window(c0, r0, c1 - c0, r1 - r0)


def scaled_transform(transform: Affine, factor: float) -> Affine:
    """Transform of the same extent with pixels ``factor`` times larger."""
    return transform @ Affine.scale(factor)


def footprint(transform: Affine, shape: tuple[int, int]) -> Polygon:
    """The patch outline in its own CRS."""
    rows, cols = shape
    x0, y0 = transform @ (0, 0)
    x1, y1 = transform @ (cols, rows)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def to_lonlat(geom: Polygon, epsg: int) -> Polygon:
    tr = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs, ys = geom.exterior.coords.xy
    lon, lat = tr.transform(np.asarray(xs), np.asarray(ys))
    return Polygon(zip(lon, lat))


def geojson(geom: Polygon) -> dict:
    return dict(mapping(geom))


def upsample_bilinear(arr: np.ndarray, factor: int) -> np.ndarray:
    """Upsample the last two axes by an integer factor, bilinear on pixel centres.

    Output pixel centre i maps to input coordinate (i + 0.5) / factor - 0.5; edges are
    clamped. NaNs propagate to the output pixels they touch.
    """
    if factor == 1:
        return arr.astype(np.float32, copy=False)
    out = _interp_axis(arr.astype(np.float32, copy=False), factor, axis=-1)
    return _interp_axis(out, factor, axis=-2)


def _interp_axis(arr: np.ndarray, factor: int, axis: int) -> np.ndarray:
    n = arr.shape[axis]
    pos = (np.arange(n * factor) + 0.5) / factor - 0.5
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32)
    a = np.take(arr, lo, axis=axis)
    b = np.take(arr, hi, axis=axis)
    shape = [1] * arr.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return a * (1 - w) + b * w


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG of the standard UTM zone (WGS 84) holding (lon, lat); no Norway/Svalbard exceptions
    (Sentinel-2's MGRS tiling does not apply them either). Longitudes wrap; +180 is zone 60."""
    lon = ((lon + 180.0) % 360.0) - 180.0 if lon != 180.0 else 180.0
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone
