#!/usr/bin/env python
"""Random-access reads of Planet-CR-style quartets: PlanetCRDataset vs xarray, and the codecs.

Reads every sample of a built ``planetcr.zarr`` in a shuffled order through
:class:`cloudyeo.datasets.planetcr_torch.PlanetCRDataset` (one chunk file per variable) and
through ``xarray.open_zarr(...).isel(sample=i).load()``, best of ``--rounds`` (warm page cache),
then re-encodes the optical chunks with each codec of :data:`cloudyeo.store.CODECS` in memory
(ratio, encode and decode ms per chunk). Prints figures; asserts nothing.

    python benchmarks/bench_planetcr_loader.py --zarr results/datasets/planetcr.zarr
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _reads(fn, order, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in order:
            fn(int(i))
        best = min(best, time.perf_counter() - t0)
    return len(order) / best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zarr", default="results/datasets/planetcr.zarr")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    import numcodecs
    import xarray as xr

    from cloudyeo.datasets.planetcr_torch import PlanetCRDataset
    from cloudyeo.store import CODECS, SampleChunkReader

    data = PlanetCRDataset(args.zarr)
    n = len(data)
    order = np.random.default_rng(0).permutation(n)
    ds = xr.open_zarr(args.zarr)
    readers = [SampleChunkReader(args.zarr, v) for v in ("optical_cloudy", "optical_clear",
                                                          "cloud_mask", "s1", "landcover")]
    per_sample_mb = sum(int(np.prod(r.sample_shape)) * r.dtype.itemsize for r in readers) / 1e6
    print(f"{args.zarr}: {n} samples, {per_sample_mb:.2f} MB per sample in the stored encoding "
          f"(stored codec {ds.attrs.get('store_codec')})")
    torch_rate = _reads(lambda i: data[i], order, args.rounds)
    xr_rate = _reads(lambda i: ds.isel(sample=i)[["optical_cloudy", "optical_clear", "cloud_mask",
                                                   "s1", "landcover"]].load(), order[: min(n, 40)], 1)
    print(f"PlanetCRDataset: {torch_rate:8.1f} samples/s ({torch_rate * per_sample_mb:.0f} MB/s)")
    print(f"xarray isel    : {xr_rate:8.1f} samples/s")

    raw = SampleChunkReader(args.zarr, "optical_cloudy").read(int(order[0]))
    buf = raw.tobytes()
    print(f"\noptical chunk {raw.shape} uint16, {len(buf) / 1e3:.0f} kB raw")
    print(f"{'codec':26s} ratio  enc ms  dec ms")
    for name, cfg in CODECS.items():
        if cfg is None:
            continue
        cname, clevel, shuffle = cfg
        codec = numcodecs.Blosc(cname=cname, clevel=clevel, typesize=2,
                                shuffle=numcodecs.Blosc.BITSHUFFLE if shuffle == "bitshuffle"
                                else numcodecs.Blosc.SHUFFLE)
        t0 = time.perf_counter()
        for _ in range(10):
            enc = codec.encode(buf)
        t1 = time.perf_counter()
        for _ in range(10):
            codec.decode(enc)
        t2 = time.perf_counter()
        print(f"{name:26s} {len(buf) / len(enc):5.2f} {100 * (t1 - t0):7.2f} {100 * (t2 - t1):7.2f}")


if __name__ == "__main__":
    main()
