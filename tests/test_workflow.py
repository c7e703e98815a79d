"""The Snakemake workflow end to end on a tiny demo config (the README's main job, scaled down)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cloudyeo import store
from cloudyeo.datasets import cben

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, check: bool = True, target: str = "cben") -> subprocess.CompletedProcess:
    """Run Snakemake on the tiny config; the target defaults to the CBEN dataset (rule cben)."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", target, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table."""
    counts = {}
    block = output.split("Job stats:")[-1]
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_demo) -> Path:
    wd = tmp_path_factory.mktemp("workflow")
    (wd / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo}))
    snakemake(wd)
    return wd


def test_build_outputs(workdir):
    assert (workdir / "resources/demo/world.json").exists()
    ds = store.open_store(workdir / "results/datasets/cben.zarr")
    assert ds.sizes["sample"] > 0
    for name in ("dataset_card.md", "cloud_cover_histogram.png", "index.parquet", "manifest.parquet"):
        assert (workdir / "results/datasets/cben" / name).exists()
    assert list((workdir / "logs/benchmarks").glob("*.tsv"))


def test_second_run_does_nothing(workdir):
    proc = snakemake(workdir)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_forcerun_one_product_reruns_only_it_and_dependants(workdir):
    manifest = cben.read_manifest(workdir / "results/datasets/cben/manifest.parquet")
    product = manifest.loc[manifest["skip_reason"].isna(), "product"].iloc[0]
    part = f"results/datasets/cben/parts/{product}.parquet"
    proc = snakemake(workdir, "-n", "--forcerun", part)
    assert job_counts(proc.stdout + proc.stderr) == {"cben": 1, "cben_extract": 1, "cben_finalize": 1}


def test_keep_going_builds_other_products_when_one_cog_is_corrupt(workdir, tmp_path):
    manifest = cben.read_manifest(workdir / "results/datasets/cben/manifest.parquet")
    chosen = manifest[manifest["skip_reason"].isna()]
    assert len(chosen) >= 2
    bad_row = chosen.iloc[0]
    band = workdir / "resources/demo/archive/sentinel-2-l2a" / bad_row["scene_id"] / "B03.tif"
    original = band.read_bytes()
    try:
        band.write_bytes(b"not a GeoTIFF")
        proc = snakemake(workdir, "--keep-going", "--forcerun", "cben_extract", check=False)
        assert proc.returncode != 0
        log = (workdir / "logs/cben_extract" / f"{bad_row['product']}.log").read_text()
        assert "B03.tif" in log and bad_row["product"] in log
        parts = workdir / "results/datasets/cben/parts"
        assert not (parts / f"{bad_row['product']}.parquet").exists()
        for product in chosen["product"].iloc[1:]:
            assert (parts / f"{product}.parquet").exists()
        assert not store.is_complete(workdir / "results/datasets/cben.zarr")
    finally:
        band.write_bytes(original)
    snakemake(workdir)  # repaired: the missing product and finalize build
    assert store.is_complete(workdir / "results/datasets/cben.zarr")


def test_config_change_rebuilds_store_with_all_products(workdir, tiny_demo):
    """A changed store setting recreates the (empty) store: every product must be extracted again."""
    before = store.open_store(workdir / "results/datasets/cben.zarr")["s2"].values
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo, "cben": {"store_codec": "blosc-lz4"}}))
    try:
        proc = snakemake(workdir)
        ran = (proc.stdout + proc.stderr).count("rule cben_extract:")
        manifest = cben.read_manifest(workdir / "results/datasets/cben/manifest.parquet")
        assert ran == int(manifest["skip_reason"].isna().sum())
        after = store.open_store(workdir / "results/datasets/cben.zarr")
        assert after.attrs["store_codec"] == "blosc-lz4"
        np.testing.assert_array_equal(before, after["s2"].values)
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo}))
        snakemake(workdir)  # back to the default codec for the tests that follow


def test_forcerun_rule_and_until(workdir):
    proc = snakemake(workdir, "-n", "--forcerun", "cben_finalize")
    assert job_counts(proc.stdout + proc.stderr) == {"cben": 1, "cben_finalize": 1}
    proc = snakemake(workdir, "-n", "--forcerun", "cben_plan", "--until", "cben_plan")
    assert job_counts(proc.stdout + proc.stderr) == {"cben_plan": 1}


def test_list_changes_and_dry_run_reasons(workdir, tiny_demo):
    # Nothing changed: no output has changed inputs or rule code.
    for kind in ("input", "code"):
        assert snakemake(workdir, "--list-changes", kind).stdout.strip() == ""
    # A changed setting: the dry run names exactly the stages that read it, with the reason.
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo, "cben": {"max_search_days": 60}}))
    try:
        proc = snakemake(workdir, "-n")
    finally:
        (workdir / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo}))
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts.get("cben_plan") == 1 and "demo_world" not in counts
    assert "Params have changed since last execution" in out


@pytest.fixture(scope="module")
def ts_workdir(tmp_path_factory, tiny_timeseries_demo) -> Path:
    wd = tmp_path_factory.mktemp("workflow_ts")
    (wd / "tiny.yaml").write_text(yaml.safe_dump({
        "demo_timeseries": tiny_timeseries_demo,
        "timeseries": {"intervals": 6, "splits": {"train": ["14SKF"], "validation": [], "test": ["44QKE"]}},
    }))
    snakemake(wd, target="timeseries")
    return wd


def test_timeseries_builds_and_one_roi_reruns_alone(ts_workdir):
    ds = store.open_store(ts_workdir / "results/datasets/timeseries.zarr")
    assert ds["s2"].dims == ("patch", "time", "band", "y", "x") and ds.sizes["time"] == 6
    proc = snakemake(ts_workdir, "-n", "--forcerun", "results/datasets/timeseries/parts/14SKF.parquet",
                     target="timeseries")
    assert job_counts(proc.stdout + proc.stderr) == {"timeseries": 1, "timeseries_extract": 1,
                                                     "timeseries_finalize": 1}


def test_default_profile_applies_with_the_snakefile_at_the_root(tmp_path):
    """Snakemake looks for profiles/default next to the Snakefile (and in the working directory),
    not under workflow/: the repository's default profile must reach a plain `snakemake` call.
    Only the profile sets printshellcmds, so a dry run shows the shell command with it, not without."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/default/config.yaml").read_text())
    assert profile["printshellcmds"] is True
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "demo_world"]
    # From another folder, so only the Snakefile's location can find the profile.
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=True)
    out = proc.stdout + proc.stderr
    assert f"workflow specific profile {ROOT / 'profiles/default'}" in out
    assert "Shell command: cloudyeo demo generate" in out
    proc = subprocess.run([*cmd, "--workflow-profile", "none"], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    assert "Shell command:" not in proc.stdout + proc.stderr


def test_snakemake_lint_is_clean(tmp_path):
    """`snakemake --lint` (also a CI step, there for every example config) finds nothing."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "Lints for" not in proc.stdout + proc.stderr
