#!/usr/bin/env python
"""Random-access read throughput of S1+S2 BigEarthNet-style samples in several on-disk layouts.

Side by side in one run, each returning identical dicts of tensors (``s2`` float32
[12, 120, 120] reflectance, ``s1`` float32 [2, 120, 120] dB, ``label`` float32 [19], ``index``,
``cloud_fraction``):

(a) ``CBENDataset`` over the Zarr v3 store (one chunk per sample, in memory-mapped shards of
    samples, :mod:`cloudyeo.store`);
(b) the reBEN per-band GeoTIFF layout
    (``BigEarthNet-S2/<product>/<patch_id>/<patch_id>_<Bxx>.tif``, 20 m bands 60x60 and 60 m
    bands 20x20; ``BigEarthNet-S1/<product>/<s1_name>/<s1_name>_VV.tif``/``_VH.tif``), one
    ``rasterio.open`` per band file as torchgeo's BigEarthNet reader does, upsampled by GDAL;
(c) LMDB + safetensors as the BigEarthNet authors' rico-hdl encodes it (one record per S2 patch
    and one per S1 patch, each a safetensors blob of per-band arrays at native resolution),
    decoded and upsampled per sample;
(d) an uncompressed numpy memmap (N, 14, 120, 120) float32 + in-memory labels;
(d') uncompressed memmaps in the store's own encoding (int16 S2, float32 S1), decoded like (a):
    the same bytes and arithmetic as (a), without Zarr's shard indexes.

Upsampling is nearest neighbour (pixel repeat by 2 for 20 m, 6 for 60 m bands) everywhere;
GDAL's nearest ``out_shape`` read is identical to the repeat.  Reflectance is
``float32(DN) * float32(1e-4)`` everywhere.  Labels and cloud fractions of (b)-(d) come from
memory (as they would from a metadata parquet).

With ``--zarr results/datasets/cben.zarr --reben resources/demo/reben`` it uses the real store
and the real reBEN folders ((c) and (d) are then encoded from the GeoTIFFs, as rico-hdl does);
otherwise it synthesises ``-n`` samples with realistic value ranges (spatially smooth land-cover
spectra, ~40 DN sensor noise, clouds; S1 with gamma speckle) into a temporary folder.

It also compares Zarr codecs (in-memory ratio/encode/decode per chunk, and end-to-end size
and random reads per store).  Targets are printed, not asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cloudyeo import store
from cloudyeo.config import load_schema
from cloudyeo.datasets.cben_torch import CBENDataset
from cloudyeo.sentinel import BEN19_CLASSES, S1_POLARIZATIONS, S2_BAND_GSD, S2_L2A_BANDS
from cloudyeo.store import SampleChunkReader, VariableSpec

BANDS = S2_L2A_BANDS
FACTOR = {b: S2_BAND_GSD[b] // 10 for b in BANDS}  # 1, 2 or 6
PX = 120
SCALE = np.float32(1e-4)
S2_ATTRS = {"scale_factor": 1e-4, "_FillValue": -32768, "units": "1",
            "long_name": "surface reflectance"}  # fmt: skip
TARGETS = {"geotiff": 20.0, "lmdb": 1.5, "memmap": 0.5}
# the CBEN store's defaults (config schema: cben.store_codec, cben.store_shard_samples)
_CBEN = load_schema()["properties"]["cben"]["properties"]
CODEC, SHARD = _CBEN["store_codec"]["default"], _CBEN["store_shard_samples"]["default"]
S2_FILL = -32768  # the CBEN store's int16 fill


# --------------------------------------------------------------------------- decoding (shared)


def put_scaled(dst: np.ndarray, native: np.ndarray, factor: int) -> None:
    """dst[120, 120] = nearest-upsampled ``native`` * 1e-4 in float32, in one pass."""
    if factor == 1:
        np.multiply(native, SCALE, out=dst, dtype=np.float32)
    else:
        h, w = native.shape
        np.multiply(
            native[:, None, :, None], SCALE, out=dst.reshape(h, factor, w, factor),
            dtype=np.float32,
        )  # fmt: skip


def upsample_dn(native: np.ndarray, factor: int) -> np.ndarray:
    return native.repeat(factor, 0).repeat(factor, 1) if factor > 1 else native


@dataclass
class Sample:
    s2: dict[str, np.ndarray]  # band -> uint16 DN at native resolution
    s1: np.ndarray  # (2, 120, 120) float32 dB


def item(s2: np.ndarray, s1: np.ndarray, label: np.ndarray, index: int, cf: float) -> dict:
    return {
        "s2": torch.from_numpy(s2),
        "s1": torch.from_numpy(s1),
        "label": torch.from_numpy(label.copy()),
        "index": torch.from_numpy(np.array(index, dtype=np.int64)),
        "cloud_fraction": torch.from_numpy(np.array(cf, dtype=np.float32)),
    }


# --------------------------------------------------------------------------- synthetic world

# reflectance spectra (12 L2A bands) of water, vegetation, bare soil, built-up
SPECTRA = np.array([
    [0.06, 0.05, 0.04, 0.03, 0.02, 0.015, 0.012, 0.010, 0.009, 0.005, 0.004, 0.003],
    [0.03, 0.04, 0.07, 0.04, 0.10, 0.25, 0.32, 0.36, 0.38, 0.38, 0.20, 0.10],
    [0.08, 0.10, 0.14, 0.18, 0.21, 0.23, 0.25, 0.27, 0.28, 0.28, 0.33, 0.28],
    [0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.19, 0.19, 0.20, 0.18],
], np.float32)  # fmt: skip


def synth_sample(rng: np.random.Generator) -> tuple[Sample, float]:
    from scipy.ndimage import gaussian_filter

    ab = np.stack(
        [gaussian_filter(rng.normal(size=(PX, PX)), rng.uniform(2, 10)) for _ in range(4)]
    )
    ab = np.exp(3 * ab / ab.std(axis=(1, 2), keepdims=True))
    ab /= ab.sum(0, keepdims=True)
    refl = np.einsum("kyx,kb->byx", ab, SPECTRA)
    cloud = 0.0
    if rng.random() < 0.6:
        c = gaussian_filter(rng.normal(size=(PX, PX)), 12)
        c = np.clip((c - c.mean()) / c.std() * 0.5 + rng.uniform(-1, 0.5), 0, 1)
        refl = refl * (1 - c) + c * rng.uniform(0.3, 0.7)
        cloud = float((c > 0.3).mean())
    s2 = {}
    for k, b in enumerate(BANDS):
        f = FACTOR[b]
        nat = refl[k].reshape(PX // f, f, PX // f, f).mean((1, 3)) if f > 1 else refl[k]
        s2[b] = np.clip(np.round(nat * 10000 + rng.normal(0, 40, nat.shape)), 1, 20000).astype(
            np.uint16
        )
    base = gaussian_filter(rng.normal(size=(PX, PX)), 5) * 3
    speckle = 10 * np.log10(rng.gamma(4.4, 1 / 4.4, size=(2, PX, PX)))
    s1 = (np.stack([-9 + base, -16 + base]) + speckle).astype(np.float32)
    return Sample(s2, s1), cloud


@dataclass
class World:
    """Everything the four layouts are written from (and the in-memory side tables)."""

    samples: list[Sample]
    patch_ids: list[str]
    s1_names: list[str]
    s2_products: list[str]
    s1_products: list[str]
    labels: np.ndarray  # (M, 19) float32
    cloud: np.ndarray  # (M,) float32
    store_index: np.ndarray  # (M,) int64 position in the Zarr store


def synth_world(n: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    samples, clouds, pids, s1n, s2p, s1p = [], [], [], [], [], []
    for i in range(n):
        s, c = synth_sample(rng)
        samples.append(s)
        clouds.append(c)
        day = 1 + (i // 64)
        prod2 = f"S2A_MSIL2A_201706{day:02d}T101031_N9999_R022_T33UUP"
        prod1 = f"S1A_IW_GRDH_1SDV_201706{day:02d}T165043"
        r, c_ = divmod(i % 64, 8)
        s2p.append(prod2)
        s1p.append(prod1)
        pids.append(f"{prod2}_{r:02d}_{c_:02d}")
        s1n.append(f"{prod1}_33UUP_{r:02d}_{c_:02d}")
    labels = np.zeros((n, len(BEN19_CLASSES)), np.float32)
    for i in range(n):
        labels[i, rng.choice(len(BEN19_CLASSES), rng.integers(1, 4), replace=False)] = 1
    return World(samples, pids, s1n, s2p, s1p, labels, np.asarray(clouds, np.float32),
                 np.arange(n, dtype=np.int64))  # fmt: skip


# --------------------------------------------------------------------------- writers


def write_reben(root: Path, w: World) -> tuple[list[Path], list[Path]]:
    import rasterio
    from rasterio.transform import from_origin

    s2_dirs, s1_dirs = [], []
    for k, s in enumerate(w.samples):
        x0, y0 = 300000 + 1200 * (k % 8), 5600000 - 1200 * (k // 8)
        d2 = root / "BigEarthNet-S2" / w.s2_products[k] / w.patch_ids[k]
        d1 = root / "BigEarthNet-S1" / w.s1_products[k] / w.s1_names[k]
        d2.mkdir(parents=True, exist_ok=True)
        d1.mkdir(parents=True, exist_ok=True)
        for b, a in s.s2.items():
            gsd = S2_BAND_GSD[b]
            with rasterio.open(
                d2 / f"{w.patch_ids[k]}_{b}.tif", "w", driver="GTiff", width=a.shape[1],
                height=a.shape[0], count=1, dtype="uint16", crs="EPSG:32633",
                transform=from_origin(x0, y0, gsd, gsd),
            ) as f:  # fmt: skip
                f.write(a, 1)
        for p, pol in enumerate(S1_POLARIZATIONS):
            with rasterio.open(
                d1 / f"{w.s1_names[k]}_{pol}.tif", "w", driver="GTiff", width=PX, height=PX,
                count=1, dtype="float32", crs="EPSG:32633", transform=from_origin(x0, y0, 10, 10),
            ) as f:  # fmt: skip
                f.write(s.s1[p], 1)
        s2_dirs.append(d2)
        s1_dirs.append(d1)
    return s2_dirs, s1_dirs


def write_lmdb(path: Path, w: World) -> None:
    import lmdb
    from safetensors.numpy import save

    env = lmdb.open(str(path), map_size=1 << 36, subdir=True)
    with env.begin(write=True) as txn:
        for k, s in enumerate(w.samples):
            s2 = {b: np.ascontiguousarray(a) for b, a in s.s2.items()}
            s1 = {pol: np.ascontiguousarray(s.s1[p]) for p, pol in enumerate(S1_POLARIZATIONS)}
            txn.put(w.patch_ids[k].encode(), save(s2))
            txn.put(w.s1_names[k].encode(), save(s1))
    env.close()


def decoded_s2(s: Sample) -> np.ndarray:
    out = np.empty((len(BANDS), PX, PX), np.float32)
    for k, b in enumerate(BANDS):
        put_scaled(out[k], s.s2[b], FACTOR[b])
    return out


def write_memmap(path: Path, w: World) -> None:
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                   shape=(len(w.samples), 14, PX, PX))  # fmt: skip
    for k, s in enumerate(w.samples):
        mm[k, :12] = decoded_s2(s)
        mm[k, 12:] = s.s1
    mm.flush()
    del mm


def encoded_arrays(w: World) -> tuple[np.ndarray, np.ndarray]:
    s2 = np.stack([
        np.stack([upsample_dn(s.s2[b], FACTOR[b]) for b in BANDS]) for s in w.samples
    ]).astype(np.int16)  # fmt: skip
    s1 = np.stack([s.s1 for s in w.samples])
    return s2, s1


def write_cben_zarr(path: Path, w: World, s2: np.ndarray, s1: np.ndarray, codec: str,
                    *, shard: int | None = SHARD, batch: int = 64) -> float:  # fmt: skip
    """The CBEN layout via cloudyeo.store (``shard`` samples per shard file, None: a file per
    sample), written batch by batch like the pipeline's extract jobs, then packed; seconds."""
    n = len(s2)
    variables = {
        "s2": VariableSpec(("band", "y", "x"), (12, PX, PX), "int16", S2_ATTRS,
                           samples_per_shard=shard),
        "s1": VariableSpec(("polarization", "y", "x"), (2, PX, PX), "float32",
                           {"_FillValue": float("nan"), "units": "dB"}, samples_per_shard=shard),
        "labels": VariableSpec(("label",), (19,), "uint8", {}),
    }  # fmt: skip
    coords = {
        "patch_id": (("sample",), np.asarray(w.patch_ids)),
        "split": (("sample",), np.asarray(["train"] * n)),
        "cloud_fraction": (("sample",), w.cloud),
        "band": (("band",), np.asarray(BANDS)),
        "polarization": (("polarization",), np.asarray(S1_POLARIZATIONS)),
        "label": (("label",), np.asarray(BEN19_CLASSES)),
    }
    t0 = time.perf_counter()
    store.create_store(path, n, variables, coords, {"benchmark": True}, codec=codec)
    labels = w.labels.astype(np.uint8)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        store.write_samples(path, lo, {"s2": s2[lo:hi], "s1": s1[lo:hi], "labels": labels[lo:hi]})
    store.mark_complete(path)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- readers


class ZarrLoader:
    def __init__(self, path: Path, w: World, variant: str, fast: bool = True):
        self.ds = CBENDataset(path, variant=variant, fast=fast)
        self.index = w.store_index

    def __len__(self):
        return len(self.index)

    def __getitem__(self, k):
        return self.ds[int(self.index[k])]


class GeoTiffLoader:
    """torchgeo-style: one rasterio.open per band file, GDAL nearest resampling to 120x120."""

    def __init__(self, s2_dirs: list[Path], s1_dirs: list[Path], w: World):
        self.s2_dirs, self.s1_dirs, self.w = s2_dirs, s1_dirs, w

    def __len__(self):
        return len(self.s2_dirs)

    def __getitem__(self, k):
        import rasterio
        from rasterio.enums import Resampling

        d2, d1 = self.s2_dirs[k], self.s1_dirs[k]
        s2 = np.empty((12, PX, PX), np.float32)
        for j, b in enumerate(BANDS):
            with rasterio.open(d2 / f"{d2.name}_{b}.tif") as f:
                a = f.read(1, out_shape=(PX, PX), resampling=Resampling.nearest)
            np.multiply(a, SCALE, out=s2[j], dtype=np.float32)
        s1 = np.empty((2, PX, PX), np.float32)
        for j, pol in enumerate(S1_POLARIZATIONS):
            with rasterio.open(d1 / f"{d1.name}_{pol}.tif") as f:
                s1[j] = f.read(1)
        w = self.w
        return item(s2, s1, w.labels[k], int(w.store_index[k]), float(w.cloud[k]))


class LmdbLoader:
    """rico-hdl style: per patch one safetensors blob at native resolution, upsampled here.

    Opened read-only with ``lock=False, readahead=True``: with ``readahead=False`` (often
    advised for random access) cold reads were 10x slower here, so this is the fair setting.
    """

    def __init__(self, path: Path, w: World):
        self.path, self.w, self._env = path, w, None

    def __len__(self):
        return len(self.w.patch_ids)

    def __getitem__(self, k):
        import lmdb
        from safetensors.numpy import load

        if self._env is None:
            self._env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=True)
        with self._env.begin() as txn:
            t2 = load(txn.get(self.w.patch_ids[k].encode()))
            t1 = load(txn.get(self.w.s1_names[k].encode()))
        s2 = np.empty((12, PX, PX), np.float32)
        for j, b in enumerate(BANDS):
            put_scaled(s2[j], t2[b], FACTOR[b])
        s1 = np.stack([t1[p] for p in S1_POLARIZATIONS])
        w = self.w
        return item(s2, s1, w.labels[k], int(w.store_index[k]), float(w.cloud[k]))


class MemmapEncodedLoader:
    """(d') the store's own encoding (int16 S2 x 1e-4, float32 S1 dB) in two plain memmaps,
    decoded exactly like CBENDataset: isolates the container cost from the encoding cost."""

    def __init__(self, path: Path, w: World):
        self.s2 = np.load(path.with_suffix(".s2.npy"), mmap_mode="r")
        self.s1 = np.load(path.with_suffix(".s1.npy"), mmap_mode="r")
        self.w = w

    def __len__(self):
        return len(self.s2)

    def __getitem__(self, k):
        raw = self.s2[k]
        s2 = raw.astype(np.float32)
        s2 *= np.float32(1e-4)
        if raw.min() == S2_FILL:
            s2[raw == S2_FILL] = np.nan
        w = self.w
        return item(s2, np.array(self.s1[k]), w.labels[k], int(w.store_index[k]), float(w.cloud[k]))


def write_memmap_encoded(path: Path, s2: np.ndarray, s1: np.ndarray) -> None:
    np.save(path.with_suffix(".s2.npy"), np.ascontiguousarray(s2))
    np.save(path.with_suffix(".s1.npy"), np.ascontiguousarray(s1.astype(np.float32)))


class MemmapLoader:
    def __init__(self, path: Path, w: World):
        self.mm = np.load(path, mmap_mode="r")
        self.w = w

    def __len__(self):
        return len(self.mm)

    def __getitem__(self, k):
        x = np.array(self.mm[k])
        w = self.w
        return item(x[:12], x[12:], w.labels[k], int(w.store_index[k]), float(w.cloud[k]))


# --------------------------------------------------------------------------- real data


def real_world(zarr_path: Path, reben: Path, variant: str, max_samples: int, seed: int):
    """Samples of the real store that also exist in the reBEN folders, read from the GeoTIFFs."""
    import rasterio

    s2_index = {p.name: p for p in reben.glob("BigEarthNet-S2/*/*") if p.is_dir()}
    s1_index = {p.name: p for p in reben.glob("BigEarthNet-S1/*/*") if p.is_dir()}
    ds = store.open_store(zarr_path)
    pids = [str(p) for p in ds.patch_id.values]
    s1_names = None
    for cand in ("s1_name", "s1_patch_id"):
        if cand in ds.variables:
            s1_names = [str(v) for v in ds[cand].values]
    if s1_names is None:
        meta = sorted(reben.glob("**/*metadata*.parquet"))
        if not meta:
            sys.exit(f"{reben}: no metadata parquet mapping patch_id -> s1_name, and the store "
                     "has no s1_name coordinate")  # fmt: skip
        import pandas as pd

        m = pd.read_parquet(meta[0], columns=["patch_id", "s1_name"]).set_index("patch_id")
        s1_names = [m.s1_name.get(p) for p in pids]
    ok = [i for i, p in enumerate(pids) if p in s2_index and s1_names[i] in s1_index]
    if not ok:
        sys.exit(f"no sample of {zarr_path} found under {reben}")
    rng = np.random.default_rng(seed)
    sel = np.sort(rng.choice(ok, min(max_samples, len(ok)), replace=False))
    labels = ds.labels.values[sel].astype(np.float32)
    cloud = (ds.cloud_fraction.values[sel] if "cloud_fraction" in ds.variables
             else np.full(len(sel), np.nan)).astype(np.float32)  # fmt: skip
    samples, s2_dirs, s1_dirs = [], [], []
    for i in sel:
        d2, d1 = s2_index[pids[i]], s1_index[s1_names[i]]
        nat = {}
        for b in BANDS:
            with rasterio.open(d2 / f"{d2.name}_{b}.tif") as f:
                nat[b] = f.read(1)
        s1 = []
        for pol in S1_POLARIZATIONS:
            with rasterio.open(d1 / f"{d1.name}_{pol}.tif") as f:
                s1.append(f.read(1).astype(np.float32))
        samples.append(Sample(nat, np.stack(s1)))
        s2_dirs.append(d2)
        s1_dirs.append(d1)
    w = World(samples, [pids[i] for i in sel], [s1_names[i] for i in sel],
              [d.parent.name for d in s2_dirs], [d.parent.name for d in s1_dirs],
              labels, cloud, sel.astype(np.int64))  # fmt: skip
    return w, s2_dirs, s1_dirs


# --------------------------------------------------------------------------- measuring


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, number of files)."""
    paths = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    st = [p.stat() for p in paths]
    return sum(s.st_size for s in st), sum(s.st_blocks * 512 for s in st), len(st)


def time_loader(loader, order: np.ndarray, warmup: int, max_seconds: float) -> tuple[float, int]:
    """samples/s over ``order`` (stopping after ``max_seconds``), after ``warmup`` reads."""
    rng = np.random.default_rng(1)
    for k in rng.integers(0, len(loader), warmup):
        loader[int(k)]
    n, t0 = 0, time.perf_counter()
    for k in order:
        loader[int(k)]
        n += 1
        if n % 20 == 0 and time.perf_counter() - t0 > max_seconds:
            break
    return n / (time.perf_counter() - t0), n


def evict(path: Path) -> None:
    """Drop this layout's files from the page cache (posix_fadvise DONTNEED; no root needed)."""
    os.sync()
    for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_rates(factories: dict, order, warmup: int, max_seconds: float, rounds: int) -> dict:
    """Best of ``rounds`` interleaved runs per layout (the machine may be shared and noisy)."""
    loaders = {name: make() for name, make in factories.items()}
    best: dict[str, tuple[float, int]] = {}
    for r in range(rounds):
        for name, ld in loaders.items():
            rate, n = time_loader(ld, order, warmup if r == 0 else 0, max_seconds / rounds)
            if rate > best.get(name, (0, 0))[0]:
                best[name] = (rate, n)
    return best


def cold_rate(make, paths: list[Path], m: int, seed: int, max_seconds: float) -> tuple[float, int]:
    """Each sample once in random order, after evicting the layout's files from the cache."""
    gc.collect()  # unmap shards of dropped readers: mapped pages cannot be evicted
    for p in paths:
        evict(p)
    loader = make()  # fresh: no mapping or handle keeps pages alive
    order = np.random.default_rng(seed).permutation(m)
    return time_loader(loader, order, 0, max_seconds)


def compare(a: dict, b: dict, what: str, strict: bool, s2_rows: list[int] | None = None) -> bool:
    """Equal tensors per key; ``s2_rows`` limits the S2 comparison to those bands."""
    for key in ("s2", "s1", "label", "index", "cloud_fraction"):
        x, y = a[key], b[key]
        if key == "s2" and s2_rows is not None:
            x, y = x[s2_rows], y[s2_rows]
        same = x.shape == y.shape and x.dtype == y.dtype and bool(
            torch.equal(torch.nan_to_num(x, nan=-999.0), torch.nan_to_num(y, nan=-999.0))
        )
        if not same:
            diff = None
            if x.shape == y.shape:
                diff = (x.double() - y.double()).abs().nan_to_num().max().item()
            msg = (f"{what}: '{key}' differs (shape {tuple(x.shape)} vs {tuple(y.shape)}, "
                   f"max |diff| {diff})")  # fmt: skip
            if strict:
                raise AssertionError(msg)
            print("  WARNING", msg)
            return False
    return True


def codec_memory_table(s2: np.ndarray, s1: np.ndarray) -> list[tuple]:
    import numcodecs

    rows = []
    for name, cfg in store.CODECS.items():
        if cfg is None:
            continue
        cname, clevel, shuffle = cfg
        sh = {"shuffle": numcodecs.Blosc.SHUFFLE, "bitshuffle": numcodecs.Blosc.BITSHUFFLE}[shuffle]
        codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=sh)
        for label, arr in (("s2 int16", s2), ("s1 float32", s1)):
            chunks = [np.ascontiguousarray(a) for a in arr[:64]]
            t0 = time.perf_counter()
            enc = [codec.encode(c) for c in chunks]
            te = (time.perf_counter() - t0) / len(chunks)
            t0 = time.perf_counter()
            for _ in range(3):
                for e in enc:
                    codec.decode(e)
            td = (time.perf_counter() - t0) / (3 * len(chunks))
            ratio = sum(c.nbytes for c in chunks) / sum(len(e) for e in enc)
            rows.append((name, label, ratio, te * 1e3, td * 1e3))
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zarr", type=Path, help="real CBEN store (results/datasets/cben.zarr)")
    ap.add_argument("--reben", type=Path, help="real reBEN root (resources/demo/reben)")
    ap.add_argument("-n", "--samples", type=int, default=512, help="samples to synthesise/use")
    ap.add_argument("--reads", type=int, default=2000, help="shuffled reads per layout and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best is reported")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--max-seconds", type=float, default=15.0,
                    help="time cap per layout (all rounds together)")
    ap.add_argument("--variant", choices=["cben", "ben"],
                    help="store variable compared with the GeoTIFFs (default: ben with real data)")
    ap.add_argument("--workdir", type=Path, help="where to write the layouts (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache measurement")
    ap.add_argument("--no-codecs", action="store_true", help="skip the codec comparison")
    ap.add_argument("--blosc-threads", type=int, default=1,
                    help="blosc threads (1 = same single core as the other layouts)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import numcodecs

    numcodecs.blosc.set_nthreads(args.blosc_threads)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    real = args.zarr is not None and args.reben is not None
    if (args.zarr is None) != (args.reben is None):
        ap.error("--zarr and --reben go together")
    if real and not (args.zarr.exists() and args.reben.exists()):
        print(f"({args.zarr} or {args.reben} missing: falling back to synthetic data)")
        real = False
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cloudyeo-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    try:
        print(f"workdir {workdir}; torch {torch.__version__}; {os.cpu_count()} CPUs; "
              f"blosc threads {args.blosc_threads}")  # fmt: skip
        if real:
            variant = args.variant or "ben"
            w, s2_dirs, s1_dirs = real_world(
                args.zarr, args.reben, variant, args.samples, args.seed
            )
            zarr_path = args.zarr
            raw2 = SampleChunkReader(zarr_path, "s2" if variant == "cben" else "s2_reference")
            raw1 = SampleChunkReader(zarr_path, "s1")
            s2_enc = np.stack([raw2.read(int(i)) for i in w.store_index])
            s1_enc = np.stack([raw1.read(int(i)) for i in w.store_index])
            del raw2, raw1  # their mapped shards would keep the pages in the cache
            print(f"real data: {len(w.samples)} samples of {zarr_path} (variant {variant}) "
                  f"matched under {args.reben}")  # fmt: skip
        else:
            variant = args.variant or "cben"
            print(f"synthesising {args.samples} samples ...", flush=True)
            w = synth_world(args.samples, args.seed)
            s2_dirs, s1_dirs = write_reben(workdir / "reben", w)
            s2_enc, s1_enc = encoded_arrays(w)
            zarr_path = workdir / "cben.zarr"
            secs = write_cben_zarr(zarr_path, w, s2_enc, s1_enc, CODEC)
            print(f"  zarr ({CODEC}, {SHARD} samples per shard) written in {secs:.1f} s")
        write_lmdb(workdir / "ben.lmdb", w)
        write_memmap(workdir / "ben.npy", w)
        write_memmap_encoded(workdir / "enc", s2_enc, s1_enc)
        m = len(w.samples)
        A, B, C, D = ("(a) zarr CBENDataset", "(b) GeoTIFF per band", "(c) LMDB+safetensors",
                      "(d) numpy memmap f32")  # fmt: skip
        A2 = "(a') zarr via zarr-python"
        D2 = "(d') memmap int16 S2 + f32 S1"
        factories = {
            A: lambda: ZarrLoader(zarr_path, w, variant),
            A2: lambda: ZarrLoader(zarr_path, w, variant, fast=False),
            B: lambda: GeoTiffLoader(s2_dirs, s1_dirs, w),
            C: lambda: LmdbLoader(workdir / "ben.lmdb", w),
            D: lambda: MemmapLoader(workdir / "ben.npy", w),
            D2: lambda: MemmapEncodedLoader(workdir / "enc", w),
        }
        s2_var = "s2" if variant == "cben" else "s2_reference"
        files = {
            A: [zarr_path / s2_var, zarr_path / "s1"], A2: [zarr_path / s2_var, zarr_path / "s1"],
            B: [*s2_dirs, *s1_dirs], C: [workdir / "ben.lmdb"], D: [workdir / "ben.npy"],
            D2: [workdir / "enc.s2.npy", workdir / "enc.s1.npy"],
        }  # fmt: skip

        # The real store upsampled the 20/60 m bands bilinearly when it was built; the other
        # layouts repeat pixels (nearest), so only the 10 m bands can be identical there.
        rows = [j for j, b in enumerate(BANDS) if FACTOR[b] == 1] if real else None
        what = "s2 10 m bands, " if real else "s2, "
        print(f"\nequality check on 8 samples (every layout against a; {what}s1, label, index, "
              "cloud_fraction):")
        if real:
            print("  the store holds 20/60 m bands upsampled bilinearly; the GeoTIFF, LMDB and "
                  "memmap readers repeat pixels (cheaper), so those bands are not compared")
        loaders = {name: make() for name, make in factories.items()}
        rng = np.random.default_rng(args.seed)
        all_equal = True
        for k in rng.choice(m, min(8, m), replace=False):
            x = loaders[A][int(k)]
            for name, ld in loaders.items():
                if name != A:
                    all_equal &= compare(x, ld[int(k)], f"{name} sample {k}", strict=not real,
                                         s2_rows=rows if name not in (A, A2) else None)
        print("  all identical" if all_equal else "  NOT identical (see warnings above)")
        del loaders

        order = np.random.default_rng(args.seed + 1).integers(0, m, args.reads)
        rates = warm_rates(factories, order, args.warmup, args.max_seconds, args.rounds)
        cold = {}
        if not args.no_cold:
            for name, make in factories.items():
                cold[name] = cold_rate(make, files[name], m, args.seed + 2, args.max_seconds)
        print(f"\nrandom access, single process, {m} samples; warm: best of {args.rounds} "
              f"interleaved rounds of up to {args.reads} shuffled reads (page cache hot); "
              f"cold: every sample once after evicting the files (posix_fadvise):")  # fmt: skip
        a, a_cold = rates[A][0], cold.get(A, (np.nan,))[0]
        print(f"  {'layout':28s} {'warm/s':>8s} {'reads':>6s} {'a is':>7s}"
              f"{'cold/s':>9s} {'reads':>6s} {'a is':>7s}")  # fmt: skip
        for name, (rate, n) in rates.items():
            cr, cn = cold.get(name, (np.nan, 0))
            cold_txt = f"{cr:9.0f} {cn:6d} {a_cold / cr:6.2f}x" if cn else f"{'-':>9s}"
            print(f"  {name:28s} {rate:8.0f} {n:6d} {a / rate:6.2f}x{cold_txt}")
        print("\ntargets (warm / cold):" if cold else "\ntargets (warm):")
        for key, name in (("geotiff", B), ("lmdb", C), ("memmap", D), ("memmap", D2)):
            got = a / rates[name][0]
            label = key if name != D2 else "memmap'"
            line = (f"  zarr / {label:8s} >= {TARGETS[key]:5.2f}x : warm {got:6.2f}x "
                    f"{'met' if got >= TARGETS[key] else 'NOT met':8s}")  # fmt: skip
            if name in cold:
                gotc = a_cold / cold[name][0]
                line += f"  cold {gotc:6.2f}x {'met' if gotc >= TARGETS[key] else 'NOT met'}"
            print(line)
        sizes = {
            "(a) zarr": zarr_path, "(b) GeoTIFF": files[B], "(c) LMDB": files[C],
            "(d) memmap": files[D], "(d') memmap": files[D2],
        }  # fmt: skip
        print(f"\nsize on disk ({m} samples; raw float32 would be "
              f"{m * 14 * PX * PX * 4 / 1e6:.0f} MB):")  # fmt: skip
        print(f"  {'layout':12s} {'apparent MB':>12s} {'allocated MB':>13s} {'files':>7s} "
              f"{'kB/sample':>10s}")  # fmt: skip
        for name, ps in sizes.items():
            app = alloc = nf = 0
            for p in ps if isinstance(ps, list) else [ps]:
                x, y, z = disk_usage(p)
                app, alloc, nf = app + x, alloc + y, nf + z
            per, note = m, ""
            if real and name == "(a) zarr":  # the whole store, every variable
                per = SampleChunkReader(zarr_path, "s1").shape[0]
                note = f" (whole store: {per} samples, all variables)"
            print(f"  {name:12s} {app / 1e6:12.1f} {alloc / 1e6:13.1f} {nf:7d} "
                  f"{alloc / 1e3 / per:10.1f}{note}")  # fmt: skip

        if not args.no_codecs:
            print("\ncodec comparison, in memory, per sample chunk (first 64 samples, 1 thread):")
            print(f"  {'codec':24s} {'variable':11s} {'ratio':>6s} {'encode ms':>10s} "
                  f"{'decode ms':>10s}")  # fmt: skip
            for row in codec_memory_table(s2_enc, s1_enc):
                print(f"  {row[0]:24s} {row[1]:11s} {row[2]:6.2f} {row[3]:10.2f} {row[4]:10.3f}")
            print("\ncodec comparison, end to end (CBEN store of these samples, CBENDataset reads;"
                  " best of rounds warm, one pass cold):")  # fmt: skip
            print(f"  {'codec (sharded unless noted)':30s} {'MB alloc':>9s} {'kB/sample':>10s} "
                  f"{'write s':>8s} {'warm/s':>8s} {'vs memmap':>10s} {'cold/s':>8s} "
                  f"{'vs memmap':>10s}")  # fmt: skip
            paths = {}
            layouts = [(codec, SHARD) for codec in store.CODECS]
            layouts += [("none", None), (store.DEFAULT_CODEC, None)]
            for codec, shard in layouts:
                label = codec if shard else f"{codec}, file/sample"
                p = workdir / f"codec-{codec}-{shard}.zarr"
                secs = write_cben_zarr(p, w, s2_enc, s1_enc, codec, shard=shard)
                paths[label] = (p, secs)
            lw = _local(w)
            fac = {c: (lambda p=p: ZarrLoader(p, lw, "cben")) for c, (p, _) in paths.items()}
            fac[D] = factories[D]
            wr = warm_rates(fac, order, args.warmup, args.max_seconds, args.rounds)
            for codec, (p, secs) in paths.items():
                cr = np.nan
                if not args.no_cold:
                    cr = cold_rate(fac[codec], [p / "s2", p / "s1"], m, args.seed + 2,
                                   args.max_seconds)[0]  # fmt: skip
                _, alloc, _ = disk_usage(p)
                mark = "  <- CBEN default" if codec == CODEC else ""
                cold_txt = (f"{cr:8.0f} {cr / cold[D][0]:9.0%}" if D in cold
                            else f"{'-':>8s} {'-':>9s}")  # fmt: skip
                print(f"  {codec:30s} {alloc / 1e6:9.1f} {alloc / 1e3 / m:10.1f} {secs:8.2f} "
                      f"{wr[codec][0]:8.0f} {wr[codec][0] / wr[D][0]:9.0%} {cold_txt}{mark}")
                shutil.rmtree(p)
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _local(w: World) -> World:
    """The same samples with store indices 0..M-1 (codec stores hold only these samples)."""
    return World(w.samples, w.patch_ids, w.s1_names, w.s2_products, w.s1_products, w.labels,
                 w.cloud, np.arange(len(w.samples), dtype=np.int64))  # fmt: skip


if __name__ == "__main__":
    main()
