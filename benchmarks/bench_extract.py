"""Extraction time per product vs the time to only decode the same source windows.

Usage: python benchmarks/bench_extract.py [--config config/config.yaml] [--repeat 3]

Needs the demo world (or a real archive) and writes a plan and store into a temporary results
folder, so it never touches results/. Decode-only reads exactly the windows extraction reads
(scene bands and SCL, reference GeoTIFFs, Sentinel-1) and nothing else; the overhead is what
extraction adds on top: offsets, upsampling, cloud fractions, Zarr and part writes.
Target: overhead <= 30 %.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from affine import Affine

from cloudyeo import drivers
from cloudyeo.archives import open_archive
from cloudyeo.archives.reading import read_windows
from cloudyeo.config import load_config, paths
from cloudyeo.datasets import cben
from cloudyeo.datasets.builder import get_builder
from cloudyeo.grids import scaled_transform
from cloudyeo.reben import ReBEN
from cloudyeo.sentinel import S2_BAND_GSD, S2_L2A_BANDS


def decode_only(cfg: dict, product: str) -> None:
    p = paths(cfg)
    bp = get_builder("cben", cfg).paths
    row = cben.read_manifest(bp.manifest).set_index("product").loc[product]
    patches = pd.read_parquet(bp.plan["patches"])
    patches = patches[patches["product"] == product]
    archive = open_archive(cfg)
    scene = cben._find_scene(archive, cben.L2A, row["scene_id"],
                             pd.Timestamp(row["scene_datetime"]).to_pydatetime(), row["tile"])
    epsg = int(patches["epsg"].iloc[0])
    t10 = [Affine(*t) for t in patches["transform"]]
    for band in (*S2_L2A_BANDS, "SCL"):
        factor = 2 if band == "SCL" else S2_BAND_GSD[band] // 10
        read_windows(archive, scene, band, epsg=epsg, transforms=[scaled_transform(t, factor) for t in t10],
                     shape=(120 // factor,) * 2, resampling="nearest", exact=True, what=band)
    reference = ReBEN(p.reference)
    for pid, s1_name in zip(patches["patch_id"], patches["s1_name"]):
        reference.read_s2(pid)
        reference.read_s1(s1_name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.config, {"results_dir": str(Path(tmp) / "results")})
        if not (paths(cfg).demo / "world.json").exists() and cfg["archive"] == "demo":
            raise SystemExit(f"no demo world under {paths(cfg).demo}: run `snakemake --cores 2 demo_world` first")
        builder = get_builder("cben", cfg)
        drivers.run_plan(builder)
        drivers.run_init(builder)
        manifest = cben.read_manifest(builder.paths.manifest)
        products = list(manifest.loc[manifest["skip_reason"].isna(), "product"])
        n_patches = int(manifest.loc[manifest["skip_reason"].isna(), "n_patches"].sum())
        for product in products:  # warm the page cache for both sides
            decode_only(cfg, product)
        t_extract, t_decode = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for product in products:
                decode_only(cfg, product)
            t_decode.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for product in products:
                drivers.run_extract(builder, product)
            t_extract.append(time.perf_counter() - t0)
    dec, ext = statistics.median(t_decode), statistics.median(t_extract)
    print(f"products: {len(products)}, patches: {n_patches}, repeats: {args.repeat} (median)")
    print(f"{'decode only':<14}{dec:8.3f} s  {dec / n_patches * 1e3:8.2f} ms/patch")
    print(f"{'extract':<14}{ext:8.3f} s  {ext / n_patches * 1e3:8.2f} ms/patch")
    print(f"overhead: {100 * (ext - dec) / dec:.1f} %  (target <= 30 %)")


if __name__ == "__main__":
    main()
