"""The Zarr v3 layout shared by every cloudyeo dataset: create, write a shard, finalize, open.

A dataset store is one Zarr v3 group that ``xarray.open_zarr`` opens directly:

* a leading ``sample`` dimension on every data variable; other dimensions (``band``, ``y``,
  ``x``, ``label`` ...) follow.  Dimension names are Zarr v3 ``dimension_names``.
* **one chunk per sample**: a data variable of shape ``(N, *shape)`` has chunks
  ``(1, *shape)``, so reading one sample reads one chunk per variable, and jobs writing
  disjoint sample ranges never touch the same chunk.
* **optional shards of samples** (``VariableSpec.samples_per_shard``): the chunks of S
  consecutive samples live in one Zarr v3 ``sharding_indexed`` file, which readers map into
  memory once and then read without a system call per sample (warm random reads of the demo
  CBEN store: 9,100-11,900 instead of 6,800-8,300 samples/s, ``benchmarks/bench_loader.py``).  A shard shared by two
  jobs would be a write race, so :func:`write_samples` never writes shards: it stages one
  chunk file per sample under ``_staging/<variable>`` (exactly the unsharded layout), and
  :func:`pack_shards` (run by :func:`mark_complete`, i.e. by the single finalize job) rebuilds
  only the shards that have staged samples, each written whole to a temporary file and renamed
  into place, then deletes the staged files.  A killed pack leaves the staged files and no
  marker, so the next finalize finishes it.
* chunk keys use the ``"."`` separator (``s2/c.17.0.0.0``): one file per chunk in one folder,
  instead of three nested folders per chunk with ``"/"`` - a quarter of the inodes, which matters
  on HPC file systems holding ~10^6 samples.
* coordinates (``patch_id``, ``split``, dates, cloud fractions, ``band`` names ...) are small,
  written whole, one chunk each. Strings are variable-length UTF-8, datetimes are CF-encoded
  int64 (``units``/``calendar``), so xarray decodes them; non-dimension coordinates are listed
  in each data variable's ``coordinates`` attribute (what xarray itself writes).
* data variables carry CF attributes (``scale_factor``, ``add_offset``, ``_FillValue``,
  ``units``, ``long_name``) which xarray decodes to floats with NaN for fill; the Zarr
  ``fill_value`` equals ``_FillValue`` so never-written samples read as missing.
* the root attributes are the caller's ``attrs`` (band order, units, label order, build
  config, code version ...).
* completeness: :func:`mark_complete` consolidates the metadata and then writes an empty marker
  group ``_cloudyeo_complete`` last (``<store>/_cloudyeo_complete/zarr.json``, usable as a
  Snakemake output file, see :func:`marker_path`).  Anything that writes to the store first
  removes the marker, so a killed job never leaves a store that reads as complete, and
  :func:`open_store` refuses a store without it.

Compression, chosen by measurement (``python benchmarks/bench_loader.py``: 512 synthetic
BigEarthNet-like samples - smooth land-cover spectra, ~40 DN noise, clouds, 20/60 m bands
nearest-upsampled, S1 with gamma speckle; 2-core VM shared with other jobs, one thread; reads
through ``CBENDataset``; "warm" = page cache hot, best of 3 rounds; "cold" = each sample once
after evicting the files with posix_fadvise)::

    codec, byte shuffle   S2 int16 chunk          S1 f32   store    write   warm    cold
                          ratio  enc ms  dec ms   ratio    kB/smp   s/512   smp/s   smp/s
    none                  1.00   -       -        1.00     471      1.8     7735    1190
    blosc-lz4    clevel 5 2.12   0.55    0.105    1.23     263      2.6     3762     989
    blosc-lz4hc  clevel 5 2.48   5.5     0.093    1.27     240      4.0     4316    1143
    blosc-zstd   clevel 1 2.32   1.1     0.43     1.28     247      2.7     1414     718
    blosc-zstd   clevel 3 2.41   2.6     0.41     1.28     240      2.9     1634     923
    blosc-zstd 1 bitshuf  2.91   1.2     0.62     1.30     215      2.2     1207     772
    (numpy memmap f32)    -      -       -        -        806      -      ~15800   1509

Sharding (same benchmark, 512 samples, shards of 256, best of 3 warm rounds): uncompressed
11,200 samples/s (84 % of the float32 memmap) against 7,100 (54 %) with one file per sample,
and cold 1,960 against 1,000 samples/s; blosc-lz4hc 5,000 against 3,800 warm.  The kernel
copies a ``pread`` page by page (~37 us per 345 kB S2 chunk), while a mapped shard is read at
memory speed by the int16 -> float32 decode itself.  So CBEN shards its image variables
(``cben.store_shard_samples``); the other datasets, read a time step or season at a time by
small models, keep one file per chunk.

Decision: the codec is a per-dataset choice (``create_store(..., codec=...)``, config
``cben.store_codec``). On the real demo CBEN store (bilinear-upsampled S2 compresses less than
the synthetic samples above: lz4hc ratio 1.7) uncompressed chunks read 2.2x faster from a warm
page cache (7,700 vs 3,400 samples/s), which is what meets the loader targets against LMDB and
memmap, so CBEN defaults to ``none``. ``blosc-lz4hc`` (this module's default) is the pick when
disk matters: it decodes as fast as lz4 at the smallest size of the fast codecs and is no slower
cold, where per-file latency dominates; zstd saves little more but its 4x slower decode costs
60 % of random-read throughput. Re-run ``benchmarks/bench_loader.py --zarr/--reben`` on real data.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import os
import shutil
import struct
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CODECS",
    "DEFAULT_CODEC",
    "MARKER_NAME",
    "IncompleteStoreError",
    "SampleChunkReader",
    "VariableSpec",
    "aligned_empty",
    "create_store",
    "decode_fill_value",
    "is_complete",
    "map_readonly",
    "mark_complete",
    "mark_incomplete",
    "marker_path",
    "open_store",
    "pack_shards",
    "write_coords",
    "write_samples",
]

SAMPLE_DIM = "sample"
MARKER_NAME = "_cloudyeo_complete"
#: group holding the per-sample chunks of sharded variables until :func:`pack_shards`
STAGING_NAME = "_staging"
CHUNK_KEY_SEPARATOR = "."

#: codec name -> (blosc cname, clevel, shuffle) or None for no compression.
CODECS: dict[str, tuple[str, int, str] | None] = {
    "none": None,
    "blosc-lz4": ("lz4", 5, "shuffle"),
    "blosc-lz4hc": ("lz4hc", 5, "shuffle"),
    "blosc-zstd1": ("zstd", 1, "shuffle"),
    "blosc-zstd2": ("zstd", 2, "shuffle"),
    "blosc-zstd3": ("zstd", 3, "shuffle"),
    "blosc-zstd1-bitshuffle": ("zstd", 1, "bitshuffle"),
}
DEFAULT_CODEC = "blosc-lz4hc"


class IncompleteStoreError(RuntimeError):
    """The store exists but carries no completion marker (still building, or a job died)."""


@dataclass(frozen=True)
class VariableSpec:
    """One data variable of a dataset store (the leading ``sample`` dim is implied)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: dict = field(default_factory=dict)
    #: samples per chunk: 1 for variables written by parallel jobs; None = one chunk for all
    #: samples, for small variables written once at creation (e.g. labels known at plan time).
    samples_per_chunk: int | None = 1
    #: chunk shape of the non-leading dims (default: whole), e.g. ``(1, 13, 256, 256)`` for
    #: (time, band, y, x) so that each (sample, time step) is its own chunk.
    inner_chunks: tuple[int, ...] | None = None
    #: samples per shard file (None: one file per sample chunk); see the module docstring.
    samples_per_shard: int | None = None

    def __post_init__(self) -> None:
        if len(self.dims) != len(self.shape):
            raise ValueError(f"dims {self.dims} and shape {self.shape} differ in length")
        if self.inner_chunks is not None and len(self.inner_chunks) != len(self.shape):
            raise ValueError(f"inner_chunks {self.inner_chunks} do not match shape {self.shape}")
        if self.samples_per_shard is not None and (
            self.samples_per_shard < 1 or self.samples_per_chunk != 1 or self.inner_chunks
        ):
            raise ValueError(
                "samples_per_shard needs samples_per_chunk=1, no inner_chunks and a value >= 1, "
                f"got {self.samples_per_shard}"
            )


# --------------------------------------------------------------------------- helpers


def _zarr():
    import zarr

    return zarr


def _jsonable(value: Any) -> Any:
    """Plain JSON types for attributes (numpy scalars/arrays, tuples, paths, dates)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        # JSON has no NaN/inf; xarray's own convention is this string form.
        return "NaN" if np.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return value


def _encode_fill_value(value: Any, dtype: np.dtype) -> Any:
    """``_FillValue`` as xarray writes it for Zarr v3 (floats base64 of a little-endian double)."""
    if dtype.kind == "f":
        return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
    if dtype.kind in "iu":
        return int(value)
    if dtype.kind == "b":
        return bool(value)
    raise TypeError(f"_FillValue unsupported for dtype {dtype}")


def decode_fill_value(value: Any, dtype: np.dtype | str) -> Any:
    """Inverse of the xarray/Zarr v3 ``_FillValue`` attribute encoding."""
    dtype = np.dtype(dtype)
    if value is None:
        return None
    if dtype.kind == "f":
        if isinstance(value, str) and value not in ("NaN", "Infinity", "-Infinity"):
            return struct.unpack("<d", base64.standard_b64decode(value))[0]
        return float(value)
    if dtype.kind in "iu":
        return int(value)
    return value


def _compressors(codec: str, itemsize: int) -> list:
    zarr = _zarr()
    try:
        cfg = CODECS[codec]
    except KeyError:
        raise ValueError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}") from None
    if cfg is None:
        return []
    cname, clevel, shuffle = cfg
    return [zarr.codecs.BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle, typesize=itemsize)]


def _chunk_key_encoding() -> dict:
    return {"name": "default", "separator": CHUNK_KEY_SEPARATOR}


def _encode_coord(name: str, dims: tuple[str, ...], values: Any) -> tuple[np.ndarray, dict]:
    """CF-encode one coordinate with xarray's own encoder; return (stored array, attrs)."""
    import xarray as xr

    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        # object arrays of strings (e.g. from pandas); None becomes the empty string
        if all(v is None or isinstance(v, str) for v in arr.ravel()):
            arr = np.array(["" if v is None else v for v in arr.ravel()], dtype=str).reshape(
                arr.shape
            )
        else:
            raise TypeError(f"coordinate {name!r}: object array of non-strings is not supported")
    if arr.dtype.kind in "U" or arr.dtype.kind == "T":
        return arr.astype(str), {}
    if arr.dtype.kind == "S":
        return arr.astype(str), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = xr.conventions.encode_cf_variable(xr.Variable(dims, arr), name=name)
    data = np.asarray(enc.values)
    attrs = {k: _jsonable(v) for k, v in enc.attrs.items()}
    if "_FillValue" in attrs:
        attrs["_FillValue"] = _encode_fill_value(enc.attrs["_FillValue"], data.dtype)
    return data, attrs


def _write_coord(group, name: str, dims: tuple[str, ...], values: Any, dim_sizes: dict) -> None:
    if isinstance(dims, str):
        dims = (dims,)
    dims = tuple(dims)
    data, attrs = _encode_coord(name, dims, values)
    if data.ndim != len(dims):
        raise ValueError(f"coordinate {name!r}: {data.ndim}-d values for dims {dims}")
    for d, n in zip(dims, data.shape, strict=True):
        if d in dim_sizes and dim_sizes[d] != n:
            raise ValueError(
                f"coordinate {name!r}: dim {d!r} has size {dim_sizes[d]} in the store, got {n}"
            )
        dim_sizes.setdefault(d, n)
    is_str = data.dtype.kind in "UT"
    fill = "" if is_str else (np.nan if data.dtype.kind == "f" else 0)
    arr = group.create_array(
        name,
        shape=data.shape,
        chunks=data.shape if data.size else tuple(1 for _ in data.shape),
        dtype=str if is_str else data.dtype,
        fill_value=fill,
        dimension_names=dims,
        compressors=[] if is_str else _compressors(DEFAULT_CODEC, data.dtype.itemsize),
        chunk_key_encoding=_chunk_key_encoding(),
        attributes=attrs,
        overwrite=True,
    )
    if data.size:
        arr[...] = data


def _open_group(path: Path, mode: str = "r+"):
    zarr = _zarr()
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no Zarr store at {path}")
    return zarr.open_group(str(path), mode=mode, zarr_format=3, use_consolidated=False)


def _is_data_var(arr) -> bool:
    return "coordinates" in arr.attrs


def _dim_sizes(group) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for _, arr in group.arrays():
        for d, n in zip(arr.metadata.dimension_names or (), arr.shape, strict=False):
            if d is not None:
                sizes.setdefault(d, n)
    return sizes


def _update_coordinates_attr(group) -> None:
    arrays = dict(group.arrays())
    data_vars = {k: a for k, a in arrays.items() if _is_data_var(a)}
    coord_names = sorted(
        k
        for k, a in arrays.items()
        if k not in data_vars and tuple(a.metadata.dimension_names or ()) != (k,)
    )
    text = " ".join(coord_names)
    for arr in data_vars.values():
        if arr.attrs.get("coordinates") != text:
            arr.attrs["coordinates"] = text


# --------------------------------------------------------------------------- public API


def marker_path(path: str | os.PathLike) -> Path:
    """The file whose existence means "complete" (a fine Snakemake output for finalize)."""
    return Path(path) / MARKER_NAME / "zarr.json"


def create_store(
    path: str | os.PathLike,
    n_samples: int,
    variables: dict[str, VariableSpec],
    coords: dict[str, tuple[tuple[str, ...], np.ndarray]],
    attrs: dict,
    *,
    codec: str = DEFAULT_CODEC,
    sample_dim: str = SAMPLE_DIM,
) -> None:
    """(Over)write an empty dataset store: metadata of every variable, coordinates, root attrs.

    ``sample_dim`` names the leading dimension (``sample``; ``patch`` for time series).

    ``variables`` get chunks ``(1, *spec.shape)`` and ``codec`` compression (see
    :data:`CODECS`); nothing of them is written yet (unwritten samples read as ``_FillValue``).
    ``coords`` are written whole.  An existing store at ``path`` is deleted first; an existing
    non-empty folder that is not a Zarr store is refused.
    """
    zarr = _zarr()
    path = Path(path)
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if path.exists():
        if path.is_dir() and ((path / "zarr.json").exists() or not any(path.iterdir())):
            mark_incomplete(path)
            shutil.rmtree(path)
        else:
            raise FileExistsError(f"{path} exists and is not a Zarr store; refusing to overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(str(path), mode="w", zarr_format=3, attributes=_jsonable(attrs))

    dim_sizes: dict[str, int] = {sample_dim: n_samples}
    for name, spec in variables.items():
        if sample_dim in spec.dims:
            raise ValueError(f"variable {name!r}: dims {spec.dims} repeat the leading {sample_dim!r}")
        for d, n in zip(spec.dims, spec.shape, strict=True):
            if dim_sizes.setdefault(d, n) != n:
                raise ValueError(f"variable {name!r}: dim {d!r} is {n}, elsewhere {dim_sizes[d]}")
    for name, (dims, values) in coords.items():
        if name in variables:
            raise ValueError(f"{name!r} is both a variable and a coordinate")
        _write_coord(group, name, dims, values, dim_sizes)

    for name, spec in variables.items():
        dtype = np.dtype(spec.dtype)
        attrs_v = {k: _jsonable(v) for k, v in dict(spec.attrs).items()}
        fill = spec.attrs.get("_FillValue")
        if fill is not None:
            attrs_v["_FillValue"] = _encode_fill_value(fill, dtype)
            zfill = fill
        else:
            zfill = np.nan if dtype.kind == "f" else 0
        attrs_v["coordinates"] = ""
        layout = dict(
            shape=(n_samples, *spec.shape),
            chunks=(spec.samples_per_chunk or max(n_samples, 1), *(spec.inner_chunks or spec.shape)),
            dtype=dtype,
            fill_value=zfill,
            dimension_names=(sample_dim, *spec.dims),
            compressors=_compressors(codec, dtype.itemsize),
            chunk_key_encoding=_chunk_key_encoding(),
        )
        if spec.samples_per_shard:
            group.create_array(
                name, shards=(spec.samples_per_shard, *spec.shape), attributes=attrs_v, **layout
            )
            # where write_samples puts this variable's chunks until pack_shards
            staging = group.require_group(STAGING_NAME)
            staging.create_array(name, attributes={"staging_for": name}, **layout)
        else:
            group.create_array(name, attributes=attrs_v, **layout)
    _update_coordinates_attr(group)


def _as_stored(name: str, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype == dtype:
        return values
    if np.can_cast(values.dtype, dtype, "safe"):
        return values.astype(dtype)
    if values.dtype.kind == "f" and dtype.kind == "f":
        return values.astype(dtype)
    if values.dtype.kind in "iub" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(f"{name!r}: values outside the range of stored dtype {dtype}")
        return values.astype(dtype)
    raise TypeError(
        f"{name!r}: got {values.dtype}, store holds encoded {dtype}; encode first "
        "(e.g. reflectance -> round(value / scale_factor) as int16)"
    )


def write_samples(path: str | os.PathLike, start: int, data: dict[str, np.ndarray]) -> None:
    """Write encoded arrays (leading sample dim) to samples ``[start, start + n)``.

    Touches only the chunks of those samples (and removes the completion marker first), so
    processes writing disjoint ranges can run at the same time.  Sharded variables are staged
    (one chunk file per sample, written even when the sample is all fill) until
    :func:`pack_shards`; until then they read as before.  Unsharded variables drop a chunk
    that becomes all fill (zarr's default), which reads as fill too.
    """
    zarr = _zarr()
    path = Path(path)
    if not data:
        return
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no Zarr store at {path}; call create_store first")
    ns = {k: np.shape(v)[0] for k, v in data.items()}
    if len(set(ns.values())) != 1:
        raise ValueError(f"arrays disagree on the number of samples: {ns}")
    n = next(iter(ns.values()))
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    arrays = {}
    for name, values in data.items():
        target = path / STAGING_NAME / name  # exists for sharded variables: see pack_shards
        staged = (target / "zarr.json").is_file()
        if not staged:
            target = path / name
        # A staged chunk file is the record that pack_shards must (re)write the sample, so a
        # sample that is all fill (an all-nodata scene) is staged too: zarr would otherwise skip
        # it and the shard would keep the previous build's pixels.
        try:
            arr = zarr.open_array(str(target), mode="r+", zarr_format=3)
            if staged:
                arr = arr.with_config({"write_empty_chunks": True})
        except Exception as exc:  # noqa: BLE001 - report the variable, not zarr's internals
            raise KeyError(f"{path} has no variable {name!r}") from exc
        if tuple(np.shape(values)[1:]) != tuple(arr.shape[1:]):
            raise ValueError(
                f"{name!r}: sample shape {np.shape(values)[1:]} != stored {arr.shape[1:]}"
            )
        if start + n > arr.shape[0]:
            raise IndexError(f"{name!r}: samples [{start}, {start + n}) beyond {arr.shape[0]}")
        arrays[name] = (arr, _as_stored(name, values, arr.dtype))
    mark_incomplete(path)
    for arr, values in arrays.values():
        arr[start : start + n] = values


def write_coords(
    path: str | os.PathLike, coords: dict[str, tuple[tuple[str, ...], np.ndarray]]
) -> None:
    """(Re)write whole coordinate arrays, creating new ones (one process at a time: finalize).

    Removes the completion marker; call :func:`mark_complete` afterwards.
    """
    path = Path(path)
    group = _open_group(path)
    mark_incomplete(path)
    sizes = _dim_sizes(group)
    data_vars = {k for k, a in group.arrays() if _is_data_var(a)}
    for name, (dims, values) in coords.items():
        if name in data_vars:
            raise ValueError(f"{name!r} is a data variable, not a coordinate")
        _write_coord(group, name, dims, values, dict(sizes))
    _update_coordinates_attr(group)


def mark_incomplete(path: str | os.PathLike) -> None:
    """Remove the completion marker (idempotent; safe when several processes race)."""
    marker = marker_path(path)
    try:
        marker.unlink()
    except FileNotFoundError:
        pass
    try:
        marker.parent.rmdir()
    except OSError:  # already gone, or another process is re-creating it
        pass


def _sharding(meta: dict) -> dict | None:
    """The ``sharding_indexed`` codec configuration of an array's metadata, or None."""
    codecs = meta.get("codecs", [])
    if len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed":
        return codecs[0]["configuration"]
    return None


def _staged_samples(folder: Path) -> list[int]:
    """Sample indices with a chunk file in a per-sample-chunk array folder."""
    prefix = f"c{CHUNK_KEY_SEPARATOR}"
    out = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith(prefix) and not e.name.endswith(".partial"):  # zarr's temp
                out.append(int(e.name.split(CHUNK_KEY_SEPARATOR)[1]))
    return sorted(out)


def pack_shards(path: str | os.PathLike, *, progress: bool = False) -> dict[str, list[int]]:
    """Move staged samples of sharded variables into their shards; return the shards rebuilt.

    Only shards with staged samples are rebuilt: their other samples come from the existing
    shard; a staged sample replaces its old value even when it is all fill (written to the
    shard as absent, i.e. fill).  Each shard is encoded whole (by zarr, into a scratch copy of the array) and renamed
    over the old one, so a reader or a killed run never sees half a shard; the staged chunk
    files go only after that.  One process at a time (the finalize job).  Removes the marker
    when there is anything to pack.
    """
    zarr = _zarr()
    from tqdm.auto import tqdm

    path = Path(path)
    staging = path / STAGING_NAME
    rebuilt: dict[str, list[int]] = {}
    if not staging.is_dir():
        return rebuilt
    for folder in sorted(p for p in staging.iterdir() if (p / "zarr.json").is_file()):
        name = folder.name
        staged = _staged_samples(folder)
        if not staged:
            continue
        mark_incomplete(path)
        final = path / name
        meta = json.loads((final / "zarr.json").read_text())
        per_shard = meta["chunk_grid"]["configuration"]["chunk_shape"][0]
        n = meta["shape"][0]
        scratch = staging / "_pack" / name
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        (scratch / "zarr.json").write_text(json.dumps(meta))
        out = zarr.open_array(str(scratch), mode="r+", zarr_format=3)
        old, new = SampleChunkReader(path, name), SampleChunkReader(staging, name)
        prefix, suffix = _chunk_key_template(meta, len(meta["shape"]))
        by_shard: dict[int, list[int]] = {}
        for i in staged:
            by_shard.setdefault(i // per_shard, []).append(i)
        bar = tqdm(sorted(by_shard.items()), desc=f"pack {name}", unit="shard", disable=not progress)
        for k, samples in bar:
            lo, hi = k * per_shard, min((k + 1) * per_shard, n)
            block = np.empty((hi - lo, *old.sample_shape), dtype=old.dtype)
            fresh = set(samples)
            for i in range(lo, hi):
                (new if i in fresh else old).read(i, out=block[i - lo])
            out[lo:hi] = block
            key = f"{prefix}{k}{suffix}"
            if (scratch / key).exists():
                os.replace(scratch / key, final / key)
            else:  # every sample is fill: zarr wrote nothing
                (final / key).unlink(missing_ok=True)
            for i in samples:
                os.unlink(new.chunk_file(i))
            rebuilt.setdefault(name, []).append(k)
        shutil.rmtree(scratch.parent)
    return rebuilt


def mark_complete(path: str | os.PathLike, attrs: dict | None = None) -> None:
    """Pack staged samples into shards, merge ``attrs`` into the root attributes, consolidate
    metadata, then write the marker."""
    zarr = _zarr()
    path = Path(path)
    pack_shards(path)
    group = _open_group(path)
    mark_incomplete(path)
    if attrs:
        group.attrs.update(_jsonable(attrs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of the v3 spec"
        zarr.consolidate_metadata(str(path), zarr_format=3)
    from cloudyeo import __version__

    marker = marker_path(path)
    marker.parent.mkdir(exist_ok=True)
    body = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "completed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "cloudyeo_version": __version__,
        },
    }
    tmp = marker.parent / f".zarr.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body))
    os.replace(tmp, marker)


def is_complete(path: str | os.PathLike) -> bool:
    """True when the store was finalised by :func:`mark_complete` and not modified since."""
    return marker_path(path).is_file()


def open_store(path: str | os.PathLike, *, require_complete: bool = True, **kwargs):
    """Open a store lazily with ``xarray.open_zarr`` (CF-decoded, one dask chunk per sample).

    Raises :class:`IncompleteStoreError` when ``require_complete`` and the marker is missing
    (an incomplete store shows sharded variables as last packed: staged samples are not in it
    until :func:`pack_shards`).
    Extra keyword arguments go to ``xarray.open_zarr`` (e.g. ``chunks={"sample": 256}``).
    """
    import xarray as xr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"no Zarr dataset store at {path}")
    complete = is_complete(path)
    if require_complete and not complete:
        raise IncompleteStoreError(
            f"dataset store {path} is incomplete (no {MARKER_NAME} marker): it is still being "
            "built, or a build job was killed. Re-run the workflow's finalize step, or pass "
            "require_complete=False to inspect it anyway."
        )
    kwargs.setdefault("consolidated", complete)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        return xr.open_zarr(str(path), zarr_format=3, **kwargs)


# --------------------------------------------------------------------------- fast reads


def aligned_empty(shape: tuple[int, ...], dtype, align: int = 4096) -> np.ndarray:
    """``np.empty`` whose data starts on an ``align``-byte boundary.

    Reads from the page cache (``preadv``) land ~4x slower in a buffer that starts a few bytes
    past a page boundary: the kernel copies from page-aligned file pages, and a destination
    4-31 bytes ahead of the source hits the CPU's store-forwarding/4K-aliasing penalty (measured
    146 vs 37 us per 345 kB chunk).  glibc places every large numpy buffer exactly 16 bytes past
    a page boundary, so a plain ``np.empty`` is the slow case.  For buffers that are reused:
    the allocation itself costs ~10 us.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + align, dtype=np.uint8)
    start = -buf.__array_interface__["data"][0] % align
    return buf[start:start + nbytes].view(dtype).reshape(shape)


class SampleChunkReader:
    """Read sample ``i`` of a one-chunk-per-sample array straight from the file system.

    zarr-python's per-call overhead (~0.3-1 ms through its async machinery) dominates reading
    one ~100 kB chunk, so for local stores this reads the chunk itself and decodes it with the
    array's own codec chain (``bytes`` + blosc/zstd/gzip, via numcodecs):

    * unsharded arrays: one ``pread`` of the sample's chunk file;
    * sharded arrays (``sharding_indexed``, one inner chunk per sample, index checked against
      its crc32c): each shard file is mapped into memory on first use and stays mapped, so a
      sample is a slice of memory (:meth:`view` returns it without a copy).

    Any other layout or codec (transpose, other index codecs, remote stores) falls back to
    ``zarr`` indexing, so results always equal ``zarr.open_array(...)[i]``.  Picklable; opens
    and maps lazily in the process that reads (DataLoader workers included).
    """

    #: mapped shards kept per reader (each is one memory mapping; Linux allows ~65k per process)
    max_mapped_shards = 4096

    def __init__(self, path: str | os.PathLike, name: str, *, fast: bool = True) -> None:
        self.path = Path(path)
        self.name = name
        meta = json.loads((self.path / name / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(_v3_dtype(meta["data_type"]))
        self.sample_shape = self.shape[1:]
        self.fill_value = _v3_fill(meta.get("fill_value"), self.dtype)
        chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        sharding = _sharding(meta)
        self.per_shard = chunks[0] if sharding else None
        self._crc = False
        if sharding is not None:
            index_codecs = [c["name"] for c in sharding.get("index_codecs", [])]
            inner = tuple(sharding["chunk_shape"])
            ok = (
                index_codecs in (["bytes"], ["bytes", "crc32c"])
                and sharding["index_codecs"][0].get("configuration", {}).get("endian", "little")
                == "little"
                and inner == (1, *self.sample_shape)
                and chunks[1:] == self.sample_shape
            )
            self._crc = index_codecs[-1:] == ["crc32c"]
            self._index_at_end = sharding.get("index_location", "end") == "end"
            decoders, endian = _fast_decoders(sharding) if fast and ok else (None, None)
        else:
            decoders, endian = _fast_decoders(meta) if fast else (None, None)
            chunks_ok = chunks == (1, *self.sample_shape)
            decoders, endian = (decoders, endian) if chunks_ok else (None, None)
        self._decoders = decoders
        native_order = self.dtype.itemsize == 1 or endian == sys.byteorder
        self.fast = decoders is not None and native_order
        if self.fast:
            prefix, self._suffix = _chunk_key_template(meta, len(self.shape))
            self._base = os.path.join(str(self.path), name, prefix)  # str: pathlib costs ~20 us
        self._shards: dict[int, tuple[np.ndarray | None, list | None]] = {}
        self._zarr_array: Any = None  # zarr.Array, opened on first slow-path read

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zarr_array"] = None
        state["_shards"] = {}
        return state

    def __len__(self) -> int:
        return self.shape[0]

    def chunk_file(self, i: int) -> str:
        """The file holding sample ``i`` (its shard file when sharded; fast path only)."""
        key = i // self.per_shard if self.per_shard else i
        return f"{self._base}{key}{self._suffix}"

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"sample {i} outside [0, {self.shape[0]}) of {self.name!r}")

    def _check(self, i: int, out: np.ndarray | None) -> np.ndarray:
        self._check_index(i)
        if out is None:
            return np.empty(self.sample_shape, dtype=self.dtype)
        if out.shape != self.sample_shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous {self.dtype} {self.sample_shape}")
        return out

    def read(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sample ``i`` as a new writable array of the stored dtype (or decoded into ``out``)."""
        out = self._check(i, out)
        if not self.fast:
            if self._zarr_array is None:
                self._zarr_array = _zarr().open_array(
                    str(self.path / self.name), mode="r", zarr_format=3
                )
            out[...] = self._zarr_array[i]
            return out
        if self.per_shard:
            chunk = self._shard_chunk(i)
            if chunk is None:
                out[...] = self.fill_value
            elif not self._decoders:
                np.copyto(out, chunk.view(self.dtype).reshape(self.sample_shape))
            else:
                self._decode(chunk, out)
            return out
        try:
            fd = os.open(self.chunk_file(i), os.O_RDONLY)  # no file object: ~10 us less per read
        except FileNotFoundError:  # never written, or all fill (zarr skips empty chunks)
            out[...] = self.fill_value
            return out
        try:
            if not self._decoders:  # uncompressed: straight into the result
                view, n = memoryview(out).cast("B"), 0  # type: ignore[arg-type]  # ndarray is a buffer
                while n < out.nbytes and (k := os.preadv(fd, [view[n:]], n)):
                    n += k
                if n != out.nbytes:
                    raise ValueError(f"{self.chunk_file(i)}: {n} bytes, expected {out.nbytes}")
                return out
            buf = os.read(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        self._decode(buf, out)
        return out

    def view(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Sample ``i`` without a copy where possible: a read-only array over the mapped shard
        (sharded, uncompressed), else :meth:`read` into ``out``.  Do not keep it: its values
        are those of the shard file at mapping time."""
        if self.fast and self.per_shard and not self._decoders:
            self._check_index(i)
            chunk = self._shard_chunk(i)
            if chunk is not None:
                return chunk.view(self.dtype).reshape(self.sample_shape)
        return self.read(i, out)

    def _decode(self, buf, out: np.ndarray) -> None:
        decoders = self._decoders
        if decoders is None:
            raise RuntimeError(f"{self.name!r}: no fast decoder chain (zarr reads this array)")
        for dec in decoders[:-1]:
            buf = dec(buf)
        decoders[-1](buf, out)

    def _samples_per_shard(self) -> int:
        if self.per_shard is None:
            raise RuntimeError(f"{self.name!r} is not sharded")
        return self.per_shard

    def _shard_chunk(self, i: int) -> np.ndarray | None:
        """The encoded bytes of sample ``i`` inside its mapped shard (None: not stored)."""
        k, j = divmod(i, self._samples_per_shard())
        entry = self._shards.get(k)
        if entry is None:
            entry = self._open_shard(k)
        data, index = entry
        if data is None or index is None:  # index is None exactly when data is
            return None
        offset, nbytes = index[j]
        if offset == _MISSING:
            return None
        return data[offset:offset + nbytes]

    def _open_shard(self, k: int) -> tuple[np.ndarray | None, list | None]:
        path = f"{self._base}{k}{self._suffix}"
        try:
            data = map_readonly(path)
        except FileNotFoundError:  # never written, or every sample fill
            data = None
        index = None
        if data is not None:
            index = _shard_index(data, self._samples_per_shard(), self._crc, self._index_at_end, path)
            nbytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
            if not self._decoders and any(o != _MISSING and n != nbytes for o, n in index):
                raise ValueError(f"{path}: an uncompressed chunk is not {nbytes} bytes (corrupt)")
        if len(self._shards) >= self.max_mapped_shards:  # unmapped once no view is left
            self._shards.pop(next(iter(self._shards)))
        self._shards[k] = (data, index)
        return data, index

    def read_all(self) -> np.ndarray:
        """Every sample (for small per-sample variables such as labels)."""
        out = np.empty(self.shape, dtype=self.dtype)
        for i in range(self.shape[0]):
            self.read(i, out=out[i])
        return out


_MISSING = 2**64 - 1  # a shard index entry for a chunk that is not stored


def _shard_index(data: np.ndarray, n: int, crc: bool, at_end: bool, path: str) -> list:
    """The [offset, nbytes] of each of a shard's ``n`` chunks (Python ints: indexing a list is
    4x cheaper than a numpy row), checked against the file."""
    size = n * 16 + (4 if crc else 0)
    if data.size < size:
        raise ValueError(f"{path}: {data.size} bytes, shorter than its {size}-byte shard index")
    raw = data[data.size - size:] if at_end else data[:size]
    if crc:
        import google_crc32c  # zarr's own crc32c implementation

        body, stored = raw[:-4].tobytes(), int.from_bytes(raw[-4:].tobytes(), "little")
        if google_crc32c.value(body) != stored:
            raise ValueError(f"{path}: shard index checksum mismatch (corrupt or truncated file)")
    index = np.frombuffer(raw[: n * 16].tobytes(), dtype="<u8").reshape(n, 2)
    stored = index[:, 0] != np.uint64(_MISSING)
    if (index[stored, 0] + index[stored, 1] > data.size).any():
        raise ValueError(f"{path}: shard index points past the end of the file (corrupt)")
    return index.tolist()


def map_readonly(path: str | os.PathLike) -> np.ndarray:
    """The whole file as a read-only uint8 array backed by a shared memory mapping.

    Holds no file descriptor (Python's ``mmap`` keeps one per mapping, and thousands of mapped
    shards would exhaust the usual 1024-descriptor limit): libc ``mmap`` through ctypes, unmapped
    when the last array over it is gone.  Falls back to :mod:`mmap` where there is no libc.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return np.empty(0, dtype=np.uint8)
        import mmap

        libc = _libc()
        buf: mmap.mmap | memoryview
        if libc is None:
            buf = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        else:
            import ctypes
            import weakref

            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == ctypes.c_void_p(-1).value:
                err = ctypes.get_errno()
                raise OSError(err, f"mmap failed: {os.strerror(err)}", str(path))
            mem = (ctypes.c_char * size).from_address(addr)
            weakref.finalize(mem, libc.munmap, addr, size).atexit = False
            buf = memoryview(mem).toreadonly()
    finally:
        os.close(fd)
    return np.frombuffer(buf, dtype=np.uint8)


@functools.cache
def _libc():
    """libc with ``mmap``/``munmap`` typed for ctypes, or None (e.g. Windows)."""
    try:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_int64]  # fmt: skip
        lib.munmap.restype = ctypes.c_int
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    except (OSError, AttributeError, TypeError):
        return None
    return lib


_V3_DTYPES = {
    "bool": "bool", "int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8",
    "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8",
    "float16": "f2", "float32": "f4", "float64": "f8",
}  # fmt: skip


def _v3_dtype(data_type: Any) -> str:
    if isinstance(data_type, str) and data_type in _V3_DTYPES:
        return _V3_DTYPES[data_type]
    raise TypeError(f"SampleChunkReader supports numeric arrays only, not {data_type!r}")


def _v3_fill(value: Any, dtype: np.dtype) -> Any:
    if isinstance(value, str):  # "NaN", "Infinity", "-Infinity", or hex
        if value.startswith("0x"):
            return np.frombuffer(bytes.fromhex(value[2:])[::-1], dtype=dtype)[0]
        return float(value)
    return 0 if value is None else value


def _chunk_key_template(meta: dict, ndim: int) -> tuple[str, str]:
    enc = meta.get("chunk_key_encoding", {"name": "default"})
    sep = enc.get("configuration", {}).get("separator", "/" if enc["name"] == "default" else ".")
    rest = sep.join(["0"] * (ndim - 1))
    if enc["name"] == "default":
        return f"c{sep}", f"{sep}{rest}" if ndim > 1 else ""
    if enc["name"] == "v2":
        return "", f"{sep}{rest}" if ndim > 1 else ""
    raise ValueError(f"unknown chunk key encoding {enc!r}")


def _blosc_decode(buf, out=None):
    import numcodecs

    return numcodecs.blosc.decompress(buf, out)


def _fast_decoders(meta: dict):
    """numcodecs decoders (in decode order) for a bytes(+compressors) chain, else (None, None)."""
    import numcodecs

    codecs = meta.get("codecs", [])
    if not codecs or codecs[0]["name"] != "bytes":
        return None, None
    endian = codecs[0].get("configuration", {}).get("endian", "little")
    decoders = []
    for c in codecs[1:]:
        name, cfg = c["name"], c.get("configuration", {})
        if name == "blosc":  # blosc frames are self-describing: no settings needed to decode
            decoders.append(_blosc_decode)
        elif name == "zstd":
            decoders.append(numcodecs.Zstd(level=cfg.get("level", 0)).decode)
        elif name == "gzip":
            decoders.append(numcodecs.GZip(level=cfg.get("level", 1)).decode)
        else:
            return None, None
    return decoders[::-1], endian
