"""Fine-tuning node: linear probe vs full, best epoch by validation AP, inputs, resumption."""

from __future__ import annotations

import csv

import pytest
import torch

from cloudyeo.config import validate_config
from cloudyeo.models.registry import build_backbone
from cloudyeo.training import experiments as ex
from cloudyeo.training.data import FUSED_BANDS, CBENFused, flips, ssl4eo_normalization
from cloudyeo.training.runtime import load_checkpoint, save_checkpoint
from cloudyeo.training.synthetic import write_cben_store, write_ssl4eo_store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("stores")
    write_cben_store(base / "cben.zarr", n=8, px=16)
    write_ssl4eo_store(base / "ssl4eo.zarr", n=2, px=16)
    return base


def make_cfg(results, stores, **finetune_common):
    torch.set_num_threads(1)
    common = {"epochs": 3, "batch_size": 4, "input_size": None, "warmup_epochs": 0, "lr": 0.01,
              **finetune_common}
    return validate_config({"archive": "demo", "results_dir": str(results), "cben_experiments": {
        "stores": {"ssl4eo": str(stores / "ssl4eo.zarr"), "cben": str(stores / "cben.zarr")},
        "finetune": {"common": common}}})


def fake_pretrained(cfg, stores, method="moco2"):
    """A pretrain output as the pretrain node writes it (backbone + spec + normalisation)."""
    torch.manual_seed(0)
    backbone = build_backbone("resnet_small", 14, width=0.125)
    spec = ssl4eo_normalization(stores / "ssl4eo.zarr", (-50, 10), (0, 1))
    path = ex.pretrain_outputs(ex.paths(cfg), method)["model"]
    save_checkpoint(path, backbone, normalization=spec, extra={"fingerprint": "x"})
    return backbone


def test_fused_inputs_follow_the_pretraining_band_order(stores):
    ben = CBENFused(stores / "cben.zarr", "train", "ben")
    cben = CBENFused(stores / "cben.zarr", "train", "cben")
    a, b = ben[0], cben[0]
    assert a["image"].shape == (14, 16, 16) and len(FUSED_BANDS) == 14
    torch.testing.assert_close(a["image"][:2], b["image"][:2])  # same S1
    assert not torch.equal(a["image"][2:], b["image"][2:])  # clear vs cloudy S2
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    y = flips(x, torch.Generator().manual_seed(1))
    for i in range(2):  # a dihedral transform per sample, the same for every channel
        assert sorted(y[i, 0].flatten().tolist()) == sorted(x[i, 0].flatten().tolist())
        torch.testing.assert_close(y[i, 1] - y[i, 0], torch.full((4, 4), 16.0))


def test_linear_probe_keeps_the_backbone_and_picks_the_best_epoch(tmp_path, stores):
    from cloudyeo.training.finetune import finetune

    cfg = make_cfg(tmp_path, stores, mode="linear")
    backbone = fake_pretrained(cfg, stores)
    summary = finetune(cfg, "moco2", "cben", progress=False)
    out = ex.finetune_outputs(ex.paths(cfg), "moco2", "cben")
    state = load_checkpoint(out["model"])
    for k, v in backbone.state_dict().items():  # weights and BatchNorm statistics untouched
        assert torch.equal(state["model"][f"backbone.{k}"], v), k
    rows = list(csv.DictReader(out["metrics"].open()))
    assert len(rows) == 3
    best = max(rows, key=lambda r: (float(r["val_ap_micro"]), -int(r["epoch"])))
    assert summary["best_epoch"] == int(best["epoch"]) == state["extra"]["best_epoch"]
    assert summary["validation"]["ap_micro"] == pytest.approx(float(best["val_ap_micro"]))
    assert summary["n_train"] == 4 and summary["n_validation"] == 2
    assert state["normalization"]["bands"] == list(FUSED_BANDS)


def test_full_finetuning_moves_the_backbone_and_resumes(tmp_path, stores):
    from cloudyeo.training.finetune import finetune

    cfg = make_cfg(tmp_path, stores, mode="full", epochs=2, input_size=8)
    backbone = fake_pretrained(cfg, stores)
    assert finetune(cfg, "moco2", "ben", progress=False, max_epochs=1) == {"interrupted_after_epoch": 0}
    summary = finetune(cfg, "moco2", "ben", progress=False)
    out = ex.finetune_outputs(ex.paths(cfg), "moco2", "ben")
    assert len(list(csv.DictReader(out["metrics"].open()))) == 2 and summary["epochs"] == 2
    state = load_checkpoint(out["model"])
    moved = [k for k, v in backbone.state_dict().items() if not torch.equal(state["model"][f"backbone.{k}"], v)]
    assert moved
    assert state["extra"]["input_size"] == 8 and state["model_spec"]["frozen"] is False
