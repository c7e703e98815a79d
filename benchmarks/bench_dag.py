"""Large-DAG behaviour: `snakemake -n` and a no-op rerun for 1,000 reference products.

Usage: python benchmarks/bench_dag.py [--products 1000] [--patches 60]

Writes, metadata only (no rasters), into a temporary folder: a reBEN metadata.parquet of
N products, and the plan's manifest and patch table as `cben_plan` would (every product
selected). Then times
  1. `snakemake -n` when nothing is extracted yet (DAG: 1 store + N extractions + finalize),
  2. `snakemake --cores 1` when every output exists (a no-op rerun).
Targets: <= 20 s each. One job per product, never per patch; nothing scans folders at parse time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml
from shapely.geometry import box

from cloudyeo.config import load_config, paths
from cloudyeo.datasets.builder import get_builder
from cloudyeo.sentinel import BEN19_CLASSES
from cloudyeo.store import marker_path

ROOT = Path(__file__).resolve().parents[1]
TILES = ["33UUP", "32TNT", "29TNE", "35VLH", "34VFN", "33TWN", "31UFS", "29SNC", "34TDQ", "35ULA"]


def product_names(n: int) -> list[str]:
    start = dt.datetime(2017, 6, 1, 10, 10, 31)
    names = []
    for i in range(n):
        when = start + dt.timedelta(days=(i // len(TILES)) % 365, minutes=i // (len(TILES) * 365))
        names.append(f"S2A_MSIL2A_{when:%Y%m%dT%H%M%S}_N9999_R022_T{TILES[i % len(TILES)]}")
    return names


def write_metadata(cfg: dict, n_products: int, n_patches: int) -> list[str]:
    p = paths(cfg)
    rng = np.random.default_rng(0)
    products = product_names(n_products)
    rows, patches, manifest = [], [], []
    sample = 0
    for k, prod in enumerate(products):
        for j in range(n_patches):
            pid = f"{prod}_{j // 10}_{j % 10}"
            labels = sorted(rng.choice(BEN19_CLASSES, size=rng.integers(1, 4), replace=False).tolist(),
                            key=BEN19_CLASSES.index)
            rows.append(dict(patch_id=pid, labels=labels, split="train", country="Austria",
                             s1_name=f"S1A_IW_GRDH_1SDV_20170601T165043_{prod[-5:]}_{j // 10}_{j % 10}",
                             s2v1_name=pid, contains_seasonal_snow=False, contains_cloud_or_shadow=False))
            patches.append(dict(patch_id=pid, product=prod, split="train", labels=labels, s1_name=rows[-1]["s1_name"],
                                epsg=32633, transform=[10.0, 0.0, 1200.0 * j, 0.0, -10.0, 5.4e6], height=120,
                                width=120, clim_mean=50.0, clim_sd=10.0, sample=sample))
            sample += 1
        when = pd.Timestamp(prod.split("_")[2], tz="UTC")
        manifest.append(dict(product=prod, tile=prod[-5:], reference_datetime=when, clim_month=when.month,
                             clim_mean=50.0, clim_sd=10.0, window_low=40.0, window_high=60.0,
                             scene_id=f"S2B_MSIL2A_{prod[11:26]}_N0500_R022_T{prod[-5:]}_20230101T000000",
                             scene_datetime=when + pd.Timedelta(days=5), cloud_cover=50.0,
                             processing_baseline="05.00", delta_days=5.0, search_attempts=1, search_days=30,
                             n_patches=n_patches, skip_reason=None, sample_start=k * n_patches,
                             geometry=box(14, 48, 14.1, 48.1)))
    p.reference.mkdir(parents=True, exist_ok=True)
    (p.reference / "BigEarthNet-S2").mkdir(exist_ok=True)
    (p.reference / "BigEarthNet-S1").mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(p.reference / "metadata.parquet")
    (p.demo).mkdir(parents=True, exist_ok=True)
    (p.demo / "world.json").write_text(json.dumps({"note": "metadata-only benchmark world"}))
    bp = get_builder("cben", cfg).paths
    bp.root.mkdir(parents=True, exist_ok=True)
    time.sleep(0.05)
    pd.DataFrame(patches).to_parquet(bp.plan["patches"])
    gpd.GeoDataFrame(manifest, geometry="geometry", crs="EPSG:4326").to_parquet(bp.manifest)
    return products


def touch_all_outputs(cfg: dict, products: list[str]) -> None:
    """Every downstream output, oldest first, as a finished run would leave them."""
    bp = get_builder("cben", cfg).paths
    time.sleep(0.05)
    bp.created.write_text("{}")
    bp.parts.mkdir(exist_ok=True)
    time.sleep(0.05)
    for prod in products:
        bp.part(prod).write_text("")
    time.sleep(0.05)
    for path in bp.outputs.values():
        path.write_text("")
    marker = marker_path(bp.store)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}")


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--patches", type=int, default=60, help="patches per product (metadata rows)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        (wd / "bench.yaml").write_text(yaml.safe_dump({"archive": "demo"}))
        cfg = load_config(wd / "bench.yaml")
        t0 = time.perf_counter()
        products = write_metadata({**cfg, "resources_dir": str(wd / "resources"),
                                   "results_dir": str(wd / "results")}, args.products, args.patches)
        print(f"metadata for {len(products)} products x {args.patches} patches written "
              f"in {time.perf_counter() - t0:.1f} s (no rasters)")
        snakemake = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(wd),
                     "--configfile", str(wd / "bench.yaml"), "--cores", "1"]
        took, out = timed([*snakemake, "-n"], wd)
        jobs = {line.split()[0]: int(line.split()[1]) for line in out.split("Job stats:")[-1].splitlines()
                if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] != "total"}
        print(f"snakemake -n (nothing extracted):  {took:6.1f} s   jobs: {jobs}   (target <= 20 s)")
        touch_all_outputs({**cfg, "resources_dir": str(wd / "resources"), "results_dir": str(wd / "results")},
                          products)
        took, out = timed(snakemake, wd)
        verdict = "nothing to be done" if "Nothing to be done" in out else "JOBS WOULD RUN"
        print(f"no-op rerun (all outputs present): {took:6.1f} s   {verdict}   (target <= 20 s)")


if __name__ == "__main__":
    main()
