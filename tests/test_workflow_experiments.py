"""The experiment DAG (pretrain -> finetune -> evaluate -> table) through Snakemake, on tiny
synthetic stores: it runs, and a changed setting reruns exactly the nodes that read it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cloudyeo.training.synthetic import write_cben_store, write_ssl4eo_store

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def tiny_experiment(stores: Path) -> dict:
    return {"cben_experiments": {
        "methods": ["moco2"],
        "train_sets": ["cben"],  # one fine-tuning node, tested on both sets: 5 jobs in all
        "stores": {"ssl4eo": str(stores / "ssl4eo.zarr"), "cben": str(stores / "cben.zarr")},
        "resources": {"gpu": 0},
        "pretrain": {
            "common": {"epochs": 1, "samples_per_epoch": 2, "batch_size": 2, "input_size": 16},
            "moco2": {"backbone": "resnet_small", "backbone_kwargs": {"width": 0.125},
                      "hparams": {"dim": 8, "hidden_dim": 16, "queue_size": 8, "bn_splits": 1}},
        },
        "finetune": {"common": {"epochs": 2, "batch_size": 4, "input_size": 16}},
        "evaluate": {"batch_size": 4},
    }}


def snakemake(workdir: Path, config: dict, *args: str) -> str:
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", "cben_eval_table", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{out[-6000:]}")
    return out


def job_counts(output: str) -> dict[str, int]:
    counts = {}
    for line in output.split("Job stats:")[-1].splitlines() if "Job stats:" in output else []:
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    wd = tmp_path_factory.mktemp("experiments")
    write_cben_store(wd / "stores" / "cben.zarr", n=8, px=16)
    write_ssl4eo_store(wd / "stores" / "ssl4eo.zarr", n=2, px=24)
    cfg = tiny_experiment(wd / "stores")
    out = snakemake(wd, cfg)
    assert job_counts(out) == {"ssl_pretrain": 1, "cben_finetune": 1, "cben_evaluate": 2, "cben_eval_table": 1}
    return wd, cfg


def edited(cfg: dict, *path_and_value) -> dict:
    out = yaml.safe_load(yaml.safe_dump(cfg))
    *path, key, value = path_and_value
    node = out["cben_experiments"]
    for p in path:
        node = node.setdefault(p, {})
    node[key] = value
    return out


def test_dag_builds_table_vi(built):
    wd, _ = built
    df = pd.read_csv(wd / "results/eval/cben/table_vi.csv")
    assert list(df.columns) == ["method", "finetuned_on", "tested_on", "ap_micro", "ap_macro", "n_samples"]
    assert len(df) == 2 and (df["n_samples"] == 2).all()  # the synthetic test split: 2 patches
    assert (wd / "results/models/pretrain/moco2/model.metrics.csv").exists()
    assert (wd / "logs/ssl_pretrain/moco2.log").exists()
    assert list((wd / "logs/benchmarks/cben_evaluate").glob("*.tsv"))


def test_changed_finetune_setting_reruns_only_finetune_and_evaluate(built):
    wd, cfg = built
    out = snakemake(wd, edited(cfg, "finetune", "common", "lr", 0.02), "-n")
    assert job_counts(out) == {"cben_finetune": 1, "cben_evaluate": 2, "cben_eval_table": 1}
    assert "Params have changed since last execution" in out


def test_changed_evaluate_setting_reruns_only_evaluate(built):
    wd, cfg = built
    out = snakemake(wd, edited(cfg, "evaluate", "batch_size", 3), "-n")
    assert job_counts(out) == {"cben_evaluate": 2, "cben_eval_table": 1}


def test_runtime_resources_and_other_methods_rerun_nothing(built):
    wd, cfg = built
    cfg2 = edited(edited(edited(cfg, "runtime", "device", "cpu"), "resources", "gpu", 1),
                  "pretrain", "mae", "epochs", 9)
    out = snakemake(wd, cfg2, "-n")
    assert job_counts(out) == {} and "Nothing to be done" in out


def test_changed_pretrain_setting_reruns_the_method_downstream(built):
    wd, cfg = built
    out = snakemake(wd, edited(cfg, "pretrain", "common", "lr", 0.05), "-n")
    assert job_counts(out) == {"ssl_pretrain": 1, "cben_finetune": 1, "cben_evaluate": 2, "cben_eval_table": 1}
