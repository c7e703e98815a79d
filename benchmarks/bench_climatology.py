"""Lookups per second of cloudyeo.climatology (single and batched). Prints figures only.

Usage::

    python benchmarks/bench_climatology.py                 # resources/demo/climatology, or a
                                                           # global 0.25 deg raster in a temp dir
    python benchmarks/bench_climatology.py --dir PATH      # any folder with the 13 MODCF files
    python benchmarks/bench_climatology.py --europe-30s    # also a synthetic 30 arc-second
                                                           # Europe extent (EarthEnv resolution)

Points: uniformly random over Europe (lon -10..30, lat 36..70), random months. "cold" opens a
fresh Climatology (files opened lazily inside the timing); "warm" repeats the same points.
GDAL's block cache persists within the process, so later figures may profit from earlier runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cloudyeo.climatology import NODATA, Climatology, climatology_filenames


def write_synthetic(directory: Path, res_deg: float, bounds: tuple[float, float, float, float],
                    seed: int = 0) -> Path:
    """13 EarthEnv-like layers (UInt16, nodata 65535 'sea' stripes, tiled + deflate)."""
    import rasterio
    from rasterio.transform import Affine

    west, south, east, north = bounds
    width, height = round((east - west) / res_deg), round((north - south) / res_deg)
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 10001, size=(height, width), dtype=np.uint16)
    base[:, : max(1, width // 20)] = NODATA
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint16",
                   crs="EPSG:4326", transform=Affine(res_deg, 0.0, west, 0.0, -res_deg, north),
                   nodata=NODATA, compress="deflate", tiled=True, blockxsize=256, blockysize=256)
    for i, name in enumerate(climatology_filenames()):
        data = base if i == 0 else np.where(base == NODATA, NODATA, (base + 37 * i) % 10001).astype(np.uint16)
        with rasterio.open(directory / name, "w", **profile) as ds:
            ds.write(data, 1)
    return directory


def bench(directory: Path, n_single: int = 3000, n_many: int = 10_000, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    lons = rng.uniform(-10, 30, n_many)
    lats = rng.uniform(36, 70, n_many)
    months = rng.integers(1, 13, n_many)
    print(f"climatology: {directory}")

    clim = Climatology(directory)
    t = time.perf_counter()
    for lo, la, m in zip(lons[:n_single], lats[:n_single], months[:n_single]):
        clim.lookup(lo, la, int(m))
    dt_cold = time.perf_counter() - t
    t = time.perf_counter()
    for lo, la, m in zip(lons[:n_single], lats[:n_single], months[:n_single]):
        clim.lookup(lo, la, int(m))
    dt_warm = time.perf_counter() - t
    print(f"  lookup       x{n_single}: {n_single / dt_cold:12,.0f} lookups/s cold, "
          f"{n_single / dt_warm:12,.0f} warm")

    clim = Climatology(directory)
    t = time.perf_counter()
    clim.lookup_many(lons, lats, months)
    dt_cold = time.perf_counter() - t
    reads_cold = clim.reads
    t = time.perf_counter()
    clim.lookup_many(lons, lats, months)
    dt_warm = time.perf_counter() - t
    print(f"  lookup_many  x{n_many} (12 months): {n_many / dt_cold:12,.0f} lookups/s cold "
          f"({reads_cold} reads), {n_many / dt_warm:12,.0f} warm")

    clim = Climatology(directory)
    t = time.perf_counter()
    clim.lookup_many(lons, lats, 7)
    dt = time.perf_counter() - t
    print(f"  lookup_many  x{n_many} (one month): {n_many / dt:12,.0f} lookups/s ({clim.reads} reads)")

    # Clustered: 100 sites x 100 points within 0.2 deg (how planning queries look).
    cx, cy = rng.uniform(-10, 30, 100), rng.uniform(36, 70, 100)
    clons = np.repeat(cx, 100) + rng.uniform(0, 0.2, n_many)
    clats = np.repeat(cy, 100) + rng.uniform(0, 0.2, n_many)
    cmonths = np.repeat(rng.integers(1, 13, 100), 100)
    clim = Climatology(directory)
    t = time.perf_counter()
    clim.lookup_many(clons, clats, cmonths)
    dt = time.perf_counter() - t
    print(f"  lookup_many  x{n_many} (100 clustered sites): {n_many / dt:12,.0f} lookups/s "
          f"({clim.reads} reads)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--europe-30s", action="store_true",
                    help="also benchmark a synthetic 30 arc-second Europe-extent raster")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.dir
        if directory is None:
            demo = Path("resources/demo/climatology")
            try:
                Climatology(demo)
                directory = demo
            except FileNotFoundError:
                directory = write_synthetic(Path(tmp) / "global025", 0.25, (-180, -90, 180, 90))
                print("(no resources/demo/climatology: wrote a global 0.25 deg raster)")
        bench(directory)
        if args.europe_30s:
            d = write_synthetic(Path(tmp) / "europe30s", 1 / 120, (-20, 30, 40, 72))
            print("(synthetic 30 arc-second Europe extent, 7200 x 5040 px, 256 x 256 deflate tiles)")
            bench(d)


if __name__ == "__main__":
    main()
