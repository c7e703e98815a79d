"""The dataset-builder protocol: registry, drivers, generated rules, on a toy fifth dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support.datasets import build_dataset

from cloudyeo import drivers, store
from cloudyeo.datasets.builder import PACKAGE_BUILDERS, BuilderError, builder_class, get_builder, registry

ROOT = Path(__file__).resolve().parents[2]
TOY_DIR = Path(__file__).parent / "toy"


@pytest.fixture
def toy_cfg(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TOY_DIR))
    return {"archive": "demo", "results_dir": str(tmp_path / "results"), "dataset_builders": ["toy_dataset"]}


def test_package_builders_are_registered_and_well_formed():
    builders = registry({})
    assert set(builders) == set(PACKAGE_BUILDERS)
    for name, cls in builders.items():
        assert cls.name == name and cls.title and cls.sections
        assert set(cls.report_outputs) <= set(cls.outputs)


def test_unknown_builder_names_what_exists(toy_cfg):
    with pytest.raises(BuilderError, match="unknown dataset 'nope'.*toy_dataset"):
        get_builder("nope", toy_cfg)


def test_module_without_builder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "not_a_builder.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BuilderError, match="not_a_builder.*defines no BUILDER"):
        builder_class("not_a_builder")


def test_priority_must_be_an_int(tmp_path, monkeypatch):
    (tmp_path / "bad_priority.py").write_text(
        "from cloudyeo.datasets.builder import DatasetBuilder\n"
        "class Bad(DatasetBuilder):\n"
        "    name = 'bad'\n    title = 'Bad'\n    sections = ('bad',)\n    priority = 'high'\n"
        "BUILDER = Bad\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BuilderError, match="bad_priority.Bad: priority must be an int, got 'high'"):
        builder_class("bad_priority")


def test_plan_params_leave_out_store_only_keys():
    cfg = {"archive": "demo", "cben": {"search_days": 5, "store_codec": "zstd", "store_shard_samples": 8}}
    builder = get_builder("cben", cfg)
    plan = json.loads(builder.params("plan"))
    extract = json.loads(builder.params("extract"))
    assert plan["cben"] == {"search_days": 5}
    assert extract["cben"]["store_codec"] == "zstd"


def test_toy_dataset_through_the_drivers(toy_cfg):
    builder = build_dataset("toy_dataset", toy_cfg)
    p = builder.paths
    assert sorted(x.name for x in p.parts.iterdir()) == ["scene-a.parquet", "scene-c.parquet"]
    ds = store.open_store(p.store)  # complete
    assert ds.sizes["sample"] == 4 and list(ds["scene"].values) == ["scene-a"] * 2 + ["scene-c"] * 2
    np.testing.assert_allclose(ds["image_mean"].values, ds["image"].mean(dim=("y", "x")).values, rtol=1e-6)
    card = p.outputs["card"].read_text()
    assert "# Toy dataset" in card and "1 skipped" in card and "## Statistics" in card
    assert pd.read_csv(p.outputs["stats"])["samples"].item() == 4


def test_extract_of_unknown_unit_and_missing_part(toy_cfg):
    builder = get_builder("toy_dataset", toy_cfg)
    drivers.run_plan(builder)
    drivers.run_init(builder)
    with pytest.raises(KeyError, match="scene-b.*not a unit of the plan"):
        drivers.run_extract(builder, "scene-b")
    drivers.run_extract(builder, "scene-a")
    with pytest.raises(RuntimeError, match="no extracted part for scene scene-c|no extracted part for unit scene-c"):
        drivers.run_finalize(builder)
    assert not store.is_complete(builder.paths.store)


@pytest.mark.slow
def test_toy_dataset_workflow_target_runs(tmp_path):
    """A builder module and a config line: the generated rules build it (`snakemake toy_dataset`)."""
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump({"dataset_builders": ["toy_dataset"]}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TOY_DIR), os.environ.get("PYTHONPATH", "")]),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))  # the cloudyeo command
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "toy.yaml"), "--cores", "1", "toy_dataset"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert store.is_complete(tmp_path / "results/datasets/toy_dataset.zarr")
    for rule in ("toy_dataset_plan", "toy_dataset_init", "toy_dataset_extract", "toy_dataset_finalize"):
        assert rule in proc.stderr
    assert (tmp_path / "logs/toy_dataset_extract/scene-a.log").exists()
    assert (tmp_path / "logs/benchmarks/toy_dataset_finalize.tsv").exists()
