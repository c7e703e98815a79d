"""EarthEnv MODIS cloud climatology: monthly mean cloud frequency and its interannual SD.

Files (Wilson & Jetz 2016, https://www.earthenv.org/cloud), one folder::

    MODCF_monthlymean_01.tif ... MODCF_monthlymean_12.tif   mean cloud frequency per month
    MODCF_interannualSD.tif                                 interannual standard deviation

GeoTIFF, EPSG:4326, 30 arc-second (43200 x 21600), UInt16, nodata 65535 (sea), value =
percent x 100. The demo world writes the same names at a coarse resolution.

:class:`Climatology` opens each file once, lazily, and only ever reads windows: a single
lookup reads a 1x1 window (GDAL's block cache keeps recently decompressed blocks);
:meth:`Climatology.lookup_many` groups points by month and reads the bounding window of the
points, the distinct internal blocks they fall in, or 1x1 windows per point, whichever a simple
cost model says is cheapest. A whole 43200 x 21600 layer is never read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MONTHLY_TEMPLATE = "MODCF_monthlymean_{month:02d}.tif"
SD_FILE = "MODCF_interannualSD.tif"
NODATA = 65535
VALUE_SCALE = 0.01  # stored value = percent x 100
EARTHENV_URL = "https://data.earthenv.org/cloud"
LICENCE_FILE = "LICENCE.md"

LICENCE_TEXT = """\
# EarthEnv cloud cover climatology

The files in this folder (`MODCF_monthlymean_01.tif` ... `MODCF_monthlymean_12.tif`,
`MODCF_interannualSD.tif`) are the EarthEnv MODIS cloud frequency layers, downloaded from
{url}.

Please cite:

> Wilson, A. M. & Jetz, W. (2016). Remotely Sensed High-Resolution Global Cloud Dynamics for
> Predicting Ecosystem and Biodiversity Distributions. *PLoS Biology* 14(3): e1002415.
> https://doi.org/10.1371/journal.pbio.1002415

Licence: Creative Commons Attribution-NonCommercial 4.0 International (CC BY-NC 4.0),
https://creativecommons.org/licenses/by-nc/4.0/ — attribution required, no commercial use.
Datasets built with these layers inherit the non-commercial restriction for the
climatology-derived fields.

Values: cloud frequency in percent x 100 (UInt16), nodata 65535 over the sea; EPSG:4326.
Provenance of each file (URL, size, sha256, date) is in `<file>.provenance.json`; the sizes
and sha256 pinned at the first download (every later download must match them) are in
`earthenv-sha256.json`.
"""


def climatology_filenames() -> list[str]:
    """The 13 file names, monthly means first (January..December), then the SD layer."""
    return [MONTHLY_TEMPLATE.format(month=m) for m in range(1, 13)] + [SD_FILE]


@dataclass(frozen=True)
class ClimatologyFiles:
    directory: Path
    monthly: Mapping[int, Path]  # month 1..12 -> path
    sd: Path


def find_climatology_files(directory: str | os.PathLike[str]) -> ClimatologyFiles:
    """Locate the 13 files in ``directory``; a clear error names every missing file."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(
            f"climatology folder {d} does not exist; expected the EarthEnv files "
            f"{MONTHLY_TEMPLATE.format(month=1)} .. {MONTHLY_TEMPLATE.format(month=12)} and "
            f"{SD_FILE} (download them with cloudyeo.climatology.download_earthenv, config key "
            f"climatology.dir)"
        )
    missing = [name for name in climatology_filenames() if not (d / name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise FileNotFoundError(
            f"climatology file {missing[0]} is missing in {d}{more}; download the EarthEnv "
            f"layers with cloudyeo.climatology.download_earthenv (config key climatology.url)"
        )
    return ClimatologyFiles(
        directory=d,
        monthly={m: d / MONTHLY_TEMPLATE.format(month=m) for m in range(1, 13)},
        sd=d / SD_FILE,
    )


class ClimatologyValue(NamedTuple):
    """One lookup: percentages (NaN when unknown) and why a point has no value."""

    mean_percent: float
    sd_percent: float
    skip_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.skip_reason is None


@dataclass(frozen=True)
class ClimatologyBatch:
    """Results of :meth:`Climatology.lookup_many` as arrays (index it for single values)."""

    mean_percent: np.ndarray  # float64, NaN where skipped
    sd_percent: np.ndarray  # float64, NaN where unknown
    skip_reason: np.ndarray  # object: None or a reason string

    def __len__(self) -> int:
        return int(self.mean_percent.shape[0])

    def __getitem__(self, i: int) -> ClimatologyValue:
        return ClimatologyValue(float(self.mean_percent[i]), float(self.sd_percent[i]),
                                self.skip_reason[i])

    def __iter__(self) -> Iterator[ClimatologyValue]:
        for i in range(len(self)):
            yield self[i]

    @property
    def ok(self) -> np.ndarray:
        return np.array([r is None for r in self.skip_reason], dtype=bool)


def _fmt_point(lon: float, lat: float) -> str:
    return f"lon={lon:.5f}, lat={lat:.5f}"


# Rough costs (seconds) of GDAL reads, measured on deflate GeoTIFFs: one read call, one pixel
# decompressed, one pixel copied out. Only their ratios matter for choosing a read strategy.
_COST_CALL = 60e-6
_COST_DECOMPRESS = 15e-9
_COST_COPY = 2e-9


class _Layer:
    """One GeoTIFF, opened lazily, read through windows only.

    GDAL keeps decompressed blocks in its block cache, so a 1x1 window read of a pixel in a
    recently used block is cheap; a batch picks the cheapest of: one bounding window, one
    read per distinct internal block, or one 1x1 window per point.
    """

    def __init__(self, path: Path, *, max_window_pixels: int = 32_000_000,
                 max_block_pixels: int = 4_000_000):
        self.path = path
        self.max_window_pixels = max_window_pixels
        self.max_block_pixels = max_block_pixels
        self._ds: Any = None
        self.reads = 0  # windowed reads issued (for tests / benchmarks)

    def open(self) -> Any:
        if self._ds is None:
            import rasterio

            ds = rasterio.open(self.path)
            a, b, c, d, e, f = tuple(ds.transform)[:6]
            if b != 0 or d != 0:
                ds.close()
                raise ValueError(f"{self.path}: rotated grids are not supported")
            self.a, self.c, self.e, self.f = a, c, e, f
            self.width, self.height = ds.width, ds.height
            self.nodata = ds.nodata if ds.nodata is not None else NODATA
            bh, bw = ds.block_shapes[0]
            self.bh, self.bw = int(bh), int(bw)
            self.global_lon = abs(abs(a) * self.width - 360.0) < 1e-6
            self.west = c if a > 0 else c + a * self.width
            self._ds = ds
        return self._ds

    def close(self) -> None:
        if self._ds is not None:
            self._ds.close()
            self._ds = None

    # geometry ------------------------------------------------------------------------

    def _wrap(self, lon: np.ndarray) -> np.ndarray:
        if self.global_lon:
            return (lon - self.west) % 360.0 + self.west
        return lon

    def pixel_scalar(self, lon: float, lat: float) -> tuple[int, int] | None:
        self.open()
        if self.global_lon and not (self.west <= lon < self.west + 360.0):
            lon = (lon - self.west) % 360.0 + self.west
        fc = (lon - self.c) / self.a
        fr = (lat - self.f) / self.e
        col, row = math.floor(fc), math.floor(fr)
        # Points exactly on the far (east / south) edge belong to the last pixel.
        if col == self.width and abs(fc - self.width) < 1e-9:
            col -= 1
        if row == self.height and abs(fr - self.height) < 1e-9:
            row -= 1
        if 0 <= col < self.width and 0 <= row < self.height:
            return row, col
        return None

    def pixels(self, lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.open()
        fc = (self._wrap(lons) - self.c) / self.a
        fr = (lats - self.f) / self.e
        with np.errstate(invalid="ignore"):
            col = np.floor(fc)
            row = np.floor(fr)
            col = np.where((col == self.width) & (np.abs(fc - self.width) < 1e-9), col - 1, col)
            row = np.where((row == self.height) & (np.abs(fr - self.height) < 1e-9), row - 1, row)
            inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        rows = np.where(inside, row, 0).astype(np.int64)
        cols = np.where(inside, col, 0).astype(np.int64)
        return rows, cols, inside

    # reads -----------------------------------------------------------------------------

    def _read(self, row0: int, col0: int, nrows: int, ncols: int) -> np.ndarray:
        from rasterio.windows import Window

        ds = self.open()
        self.reads += 1
        return ds.read(1, window=Window(col0, row0, ncols, nrows))

    def value_scalar(self, row: int, col: int) -> int:
        return int(self._read(row, col, 1, 1)[0, 0])

    def plan(self, rows: np.ndarray, cols: np.ndarray) -> str:
        """'window', 'blocks' or 'points': the cheapest way to read these pixels."""
        n = rows.shape[0]
        if n <= 1:
            return "points"
        r0, r1 = int(rows.min()), int(rows.max())
        c0, c1 = int(cols.min()), int(cols.max())
        window_px = (r1 - r0 + 1) * (c1 - c0 + 1)
        block_px = self.bh * self.bw
        brs, bcs = rows // self.bh, cols // self.bw
        n_blocks = int(np.unique(brs * (self.width // self.bw + 1) + bcs).shape[0])
        bbox_blocks = (int(brs.max() - brs.min()) + 1) * (int(bcs.max() - bcs.min()) + 1)
        costs = {
            "points": n * _COST_CALL + n_blocks * block_px * _COST_DECOMPRESS,
        }
        if window_px <= self.max_window_pixels:
            costs["window"] = (_COST_CALL + bbox_blocks * block_px * _COST_DECOMPRESS
                               + window_px * _COST_COPY)
        if block_px <= self.max_block_pixels:
            costs["blocks"] = n_blocks * (_COST_CALL + block_px * (_COST_DECOMPRESS + _COST_COPY))
        return min(costs, key=costs.__getitem__)

    def values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Raw values at (rows, cols), read the cheapest way (see :meth:`plan`)."""
        self.open()
        n = rows.shape[0]
        out = np.empty(n, dtype=np.float64)
        if n == 0:
            return out
        how = self.plan(rows, cols)
        if how == "points":
            for i in range(n):
                out[i] = self._read(int(rows[i]), int(cols[i]), 1, 1)[0, 0]
        elif how == "window":
            r0, c0 = int(rows.min()), int(cols.min())
            arr = self._read(r0, c0, int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1)
            out[:] = arr[rows - r0, cols - c0]
        else:
            brs, bcs = rows // self.bh, cols // self.bw
            stride = self.width // self.bw + 1
            keys = brs * stride + bcs
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            ends = np.r_[starts[1:], n]
            for s, e in zip(starts.tolist(), ends.tolist()):
                idx = order[s:e]
                br, bc = divmod(int(sorted_keys[s]), stride)
                row0, col0 = br * self.bh, bc * self.bw
                arr = self._read(row0, col0, min(self.bh, self.height - row0),
                                 min(self.bw, self.width - col0))
                out[idx] = arr[rows[idx] - row0, cols[idx] - col0]
        return out


class Climatology:
    """Look up EarthEnv cloud climatology values by (lon, lat, month).

    ``Climatology(directory)`` checks that the 13 files exist but opens each only when first
    needed (and keeps it open). Instances are not thread-safe; they pickle without their
    open files (for multiprocessing).
    """

    def __init__(self, directory: str | os.PathLike[str], *, scale: float = VALUE_SCALE):
        self.files = find_climatology_files(directory)
        self.directory = self.files.directory
        self.scale = scale
        self._divisor = 1.0 / scale  # dividing by 100 keeps 4423 -> 44.23 exact in decimal
        self._layers: dict[int | str, _Layer] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Climatology:
        from .config import paths

        return cls(paths(dict(config)).climatology)

    def __repr__(self) -> str:
        return f"Climatology({str(self.directory)!r})"

    def __enter__(self) -> Climatology:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for layer in self._layers.values():
            layer.close()
        self._layers.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_layers"] = {}
        return state

    def _layer(self, key: int | str) -> _Layer:
        layer = self._layers.get(key)
        if layer is None:
            path = self.files.sd if key == "sd" else self.files.monthly[int(key)]
            layer = _Layer(path)
            self._layers[key] = layer
        return layer

    @property
    def reads(self) -> int:
        """Number of windowed reads issued so far (all layers)."""
        return sum(layer.reads for layer in self._layers.values())

    @staticmethod
    def _check_month(month: Any) -> int:
        try:
            m = int(month)
        except (TypeError, ValueError):
            raise ValueError(f"month must be an integer 1..12, got {month!r}") from None
        if m != month or not 1 <= m <= 12:
            raise ValueError(f"month must be an integer 1..12, got {month!r}")
        return m

    def _to_percent(self, raw: float, nodata: float) -> float:
        return math.nan if raw == nodata else raw / self._divisor

    def lookup(self, lon: float, lat: float, month: int) -> ClimatologyValue:
        """Mean and interannual SD of cloud frequency (percent) at a point for a month."""
        m = self._check_month(month)
        lon, lat = float(lon), float(lat)
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return ClimatologyValue(math.nan, math.nan, f"invalid coordinates {_fmt_point(lon, lat)}")
        layer = self._layer(m)
        px = layer.pixel_scalar(lon, lat)
        if px is None:
            return ClimatologyValue(math.nan, math.nan,
                                    f"outside climatology extent at {_fmt_point(lon, lat)}")
        mean = self._to_percent(layer.value_scalar(*px), layer.nodata)
        if math.isnan(mean):
            return ClimatologyValue(math.nan, math.nan,
                                    f"climatology nodata (sea) at {_fmt_point(lon, lat)} month {m}")
        sd_layer = self._layer("sd")
        sd_px = sd_layer.pixel_scalar(lon, lat)
        sd = math.nan if sd_px is None else self._to_percent(sd_layer.value_scalar(*sd_px),
                                                              sd_layer.nodata)
        return ClimatologyValue(mean, sd, None)

    def lookup_many(self, lons: Sequence[float] | np.ndarray, lats: Sequence[float] | np.ndarray,
                    months: int | Sequence[int] | np.ndarray) -> ClimatologyBatch:
        """Vectorised :meth:`lookup`; ``months`` may be one month for all points."""
        lons = np.asarray(lons, dtype=np.float64).ravel()
        lats = np.asarray(lats, dtype=np.float64).ravel()
        if lons.shape != lats.shape:
            raise ValueError(f"lons and lats differ in length ({lons.size} vs {lats.size})")
        n = lons.shape[0]
        months_arr = np.asarray(months)
        if months_arr.ndim == 0:
            months_arr = np.full(n, months_arr)
        months_arr = months_arr.ravel()
        if months_arr.shape[0] != n:
            raise ValueError(f"months has {months_arr.size} values for {n} points")
        if n and (not np.all(np.equal(np.mod(months_arr, 1), 0))
                  or months_arr.min() < 1 or months_arr.max() > 12):
            bad = months_arr[(np.mod(months_arr, 1) != 0) | (months_arr < 1) | (months_arr > 12)][0]
            raise ValueError(f"month must be an integer 1..12, got {bad!r}")
        months_arr = months_arr.astype(np.int64)

        mean = np.full(n, np.nan)
        sd = np.full(n, np.nan)
        reasons = np.full(n, None, dtype=object)
        finite = np.isfinite(lons) & np.isfinite(lats)
        for i in np.flatnonzero(~finite).tolist():
            reasons[i] = f"invalid coordinates {_fmt_point(lons[i], lats[i])}"

        have_mean = np.zeros(n, dtype=bool)
        for m in np.unique(months_arr[finite]).tolist():
            idx = np.flatnonzero(finite & (months_arr == m))
            layer = self._layer(int(m))
            rows, cols, inside = layer.pixels(lons[idx], lats[idx])
            for i in idx[~inside].tolist():
                reasons[i] = f"outside climatology extent at {_fmt_point(lons[i], lats[i])}"
            ins = idx[inside]
            raw = layer.values(rows[inside], cols[inside])
            nod = raw == layer.nodata
            mean[ins[~nod]] = raw[~nod] / self._divisor
            have_mean[ins[~nod]] = True
            for i in ins[nod].tolist():
                reasons[i] = f"climatology nodata (sea) at {_fmt_point(lons[i], lats[i])} month {m}"

        sel = np.flatnonzero(have_mean)
        if sel.size:
            sd_layer = self._layer("sd")
            rows, cols, inside = sd_layer.pixels(lons[sel], lats[sel])
            raw = sd_layer.values(rows[inside], cols[inside])
            vals = np.where(raw == sd_layer.nodata, np.nan, raw / self._divisor)
            sd[sel[inside]] = vals
        return ClimatologyBatch(mean, sd, reasons)


CHECKSUM_MANIFEST = "earthenv-sha256.json"

# TIFF tags that locate the pixel data: (offsets, byte counts) for strips and for tiles.
_TIFF_DATA_TAGS = ((273, 279), (324, 325))
_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8), 13: ("I", 4), 18: ("Q", 8)}


def check_geotiff_complete(path: str | os.PathLike[str]) -> None:
    """Raise :class:`cloudyeo.http.IntegrityError` unless ``path`` is a whole TIFF/BigTIFF.

    Every image directory (IFD) and every strip/tile it points to must lie inside the file: a
    body cut short -- even one that matched its ``Content-Length`` -- leaves blocks past the
    end. (Reads the directories only, not the pixels.)
    """
    import struct

    from cloudyeo.http import IntegrityError

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise IntegrityError(f"not a TIFF file ({size} bytes)")
        bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(bo + "H", head[2:4])[0]
        if magic == 42:
            big, first = False, struct.unpack(bo + "I", head[4:8])[0]
        elif magic == 43 and len(head) >= 16:
            big, first = True, struct.unpack(bo + "Q", head[8:16])[0]
        else:
            raise IntegrityError(f"not a TIFF file (magic {magic})")
        count_fmt, entry_size, next_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        offset, seen, n_ifd = first, set(), 0
        while offset:
            if offset in seen or offset + 8 > size:
                raise IntegrityError(f"image directory {n_ifd} at byte {offset} lies past the end "
                                     f"of the file ({size} bytes): the file is cut short")
            seen.add(offset)
            fh.seek(offset)
            n_raw = fh.read(struct.calcsize(count_fmt))
            n_entries = struct.unpack(bo + count_fmt, n_raw)[0]
            table = fh.read(n_entries * entry_size)
            nxt = fh.read(struct.calcsize(next_fmt))
            if len(table) < n_entries * entry_size or len(nxt) < struct.calcsize(next_fmt):
                raise IntegrityError(f"image directory {n_ifd} is cut short ({size} bytes)")
            tags: dict[int, tuple[int, int, bytes]] = {}
            for i in range(n_entries):
                e = table[i * entry_size:(i + 1) * entry_size]
                tag, typ = struct.unpack(bo + "HH", e[:4])
                cnt = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
                tags[tag] = (typ, cnt, e[12:] if big else e[8:])
            for off_tag, cnt_tag in _TIFF_DATA_TAGS:
                if off_tag not in tags:
                    continue
                offs = _tiff_values(fh, bo, tags[off_tag], big, size)
                cnts = _tiff_values(fh, bo, tags.get(cnt_tag, (4, 0, b"")), big, size)
                if len(cnts) != len(offs):
                    raise IntegrityError(f"image directory {n_ifd}: {len(offs)} block offsets but "
                                         f"{len(cnts)} block sizes")
                end = max((o + c for o, c in zip(offs, cnts) if c), default=0)
                if end > size:
                    raise IntegrityError(f"pixel blocks reach byte {end}, the file has {size}: "
                                         f"the file is cut short")
            offset = struct.unpack(bo + next_fmt, nxt)[0]
            n_ifd += 1
    if not n_ifd:
        raise IntegrityError("TIFF without an image directory")


def _tiff_values(fh: Any, bo: str, entry: tuple[int, int, bytes], big: bool,
                 size: int) -> list[int]:
    import struct

    from cloudyeo.http import IntegrityError

    typ, cnt, raw = entry
    if cnt == 0:
        return []
    if typ not in _TIFF_TYPES:
        raise IntegrityError(f"unexpected TIFF field type {typ} for block offsets/sizes")
    code, width = _TIFF_TYPES[typ]
    nbytes = cnt * width
    if nbytes <= len(raw):
        data = raw[:nbytes]
    else:
        where = struct.unpack(bo + ("Q" if big else "I"), raw)[0]
        if where + nbytes > size:
            raise IntegrityError(f"the block table at byte {where} lies past the end of the file "
                                 f"({size} bytes): the file is cut short")
        fh.seek(where)
        data = fh.read(nbytes)
    return list(struct.unpack(f"{bo}{cnt}{code}", data))


def check_layer(path: str | os.PathLike[str]) -> None:
    """The format check of a downloaded EarthEnv layer (see the module docstring): a complete
    GeoTIFF with one UInt16 band in EPSG:4326. Raises :class:`cloudyeo.http.IntegrityError`."""
    import rasterio

    from cloudyeo.http import IntegrityError

    check_geotiff_complete(path)
    try:
        with rasterio.open(path) as src:
            found = (src.count, src.dtypes[0], src.crs.to_epsg() if src.crs else None)
    except rasterio.errors.RasterioError as exc:
        raise IntegrityError(f"GDAL cannot open it: {exc}") from None
    if found != (1, "uint16", 4326):
        raise IntegrityError(f"expected 1 band, uint16, EPSG:4326; found {found[0]} band(s), "
                             f"{found[1]}, EPSG:{found[2]}")


def download_earthenv(
    base_url: str = EARTHENV_URL,
    directory: str | os.PathLike[str] = "resources/climatology",
    session: Any = None,
    *,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Fetch the 13 EarthEnv files into ``directory`` (resumable, verified, with provenance).

    Every file is checked before it is kept, and fetched again (from scratch, under the retry
    policy) when a check fails:

    * its body reaches the size the server declared for the whole file (a resumed transfer
      answered with another size is refused);
    * it is a complete GeoTIFF -- every strip/tile inside the file -- with one UInt16 band in
      EPSG:4326 (:func:`check_layer`), which catches a body cut short even when it matched its
      ``Content-Length``;
    * its size and sha256 match ``expected`` (file name -> ``{"size": int, "sha256": str}``)
      when given, else the values pinned in ``<directory>/earthenv-sha256.json`` when the file
      was first fetched. EarthEnv publishes no checksums, so the first fetch is trusted on the
      format check alone and pins what it got; every later fetch or reuse must match it.

    Sizes and sha256 are recorded in ``<file>.provenance.json``. Writes ``LICENCE.md``
    (CC BY-NC 4.0, Wilson & Jetz 2016). Returns the provenance records in file order.
    """
    import datetime as dt
    import json

    from cloudyeo.atomic import write_json
    from cloudyeo.http import HttpClient, IntegrityError, download

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    manifest_path = d / CHECKSUM_MANIFEST
    pinned: dict[str, Any] = {}
    if manifest_path.exists():
        try:
            pinned = dict(json.loads(manifest_path.read_text()))
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"{manifest_path}: unreadable checksum manifest ({exc}); fix or "
                                 f"delete it to pin the files again") from None
    client = session if isinstance(session, HttpClient) else HttpClient(session=session)
    records = []
    for name in climatology_filenames():
        given = dict((expected or {}).get(name) or {})
        exp = given or dict(pinned.get(name) or {})
        try:
            rec = download(f"{base_url.rstrip('/')}/{name}", d / name, session=client,
                           expected_size=exp.get("size"), sha256=exp.get("sha256"),
                           validate=check_layer)
        except IntegrityError as exc:
            if given or name not in pinned:
                raise
            raise IntegrityError(
                f"{exc}; the expected values were pinned in {manifest_path} when {name} was "
                f"first fetched -- if EarthEnv published a new version, delete that entry",
                url=exc.url) from None
        records.append(rec)
        if name not in pinned or given:
            pinned[name] = {"size": rec["size"], "sha256": rec["sha256"], "url": rec["url"],
                            "pinned_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            write_json(manifest_path, pinned, indent=2, sort_keys=True)
    (d / LICENCE_FILE).write_text(LICENCE_TEXT.format(url=base_url.rstrip("/")))
    return records


__all__ = [
    "CHECKSUM_MANIFEST",
    "Climatology",
    "ClimatologyBatch",
    "ClimatologyFiles",
    "ClimatologyValue",
    "EARTHENV_URL",
    "LICENCE_FILE",
    "MONTHLY_TEMPLATE",
    "NODATA",
    "SD_FILE",
    "VALUE_SCALE",
    "check_geotiff_complete",
    "check_layer",
    "climatology_filenames",
    "download_earthenv",
    "find_climatology_files",
]
