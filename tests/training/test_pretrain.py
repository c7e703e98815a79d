"""Pretraining node: per-node params, views, identical spatial augmentation, resumption."""

from __future__ import annotations

import json

import pytest
import torch

from cloudyeo.config import ConfigError, validate_config
from cloudyeo.training import experiments as ex
from cloudyeo.training.data import FUSED_BANDS, SSL4EOViews, ssl4eo_normalization
from cloudyeo.training.runtime import list_epoch_checkpoints, load_checkpoint
from cloudyeo.training.synthetic import write_ssl4eo_store

TINY_PRETRAIN = {"epochs": 2, "samples_per_epoch": 4, "batch_size": 2, "input_size": 16}


@pytest.fixture(scope="module")
def ssl_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("ssl4eo") / "ssl4eo.zarr"
    write_ssl4eo_store(path, n=4, px=24)
    return path


def tiny_cfg(results, ssl_store, **pretrain_methods):
    torch.set_num_threads(1)
    return validate_config({"archive": "demo", "results_dir": str(results), "cben_experiments": {
        "stores": {"ssl4eo": str(ssl_store), "cben": None},
        "pretrain": {"common": dict(TINY_PRETRAIN),
                     "moco2": {"backbone": "resnet_small", "backbone_kwargs": {"width": 0.125},
                               "hparams": {"dim": 16, "hidden_dim": 32, "queue_size": 16, "bn_splits": 1}},
                     "moco3": {"backbone": "vit_tiny", "backbone_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                               "hparams": {"dim": 16, "hidden_dim": 32}},
                     "mae": {"backbone": "vit_tiny", "backbone_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                             "hparams": {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}},
                     **pretrain_methods}}})


def test_params_hold_exactly_what_a_node_reads():
    base = validate_config({"archive": "demo"})
    p = {s: {m: ex.experiment_params(base, s, m) for m in ex.METHODS} for s in ex.STAGES}

    def changed(edit):
        cfg = json.loads(json.dumps(base))
        edit(cfg["cben_experiments"])
        cfg = validate_config(cfg)
        return {(s, m) for s in ex.STAGES for m in ex.METHODS if ex.experiment_params(cfg, s, m) != p[s][m]}

    every = lambda stages, methods=ex.METHODS: {(s, m) for s in stages for m in methods}
    assert changed(lambda e: e["finetune"]["common"].update(lr=0.5)) == every(("finetune", "evaluate"))
    assert changed(lambda e: e["finetune"]["moco2"].update(epochs=3)) == every(("finetune", "evaluate"), ["moco2"])
    assert changed(lambda e: e["pretrain"]["mae"].update(epochs=9)) == every(ex.STAGES, ["mae"])
    assert changed(lambda e: e["evaluate"].update(batch_size=7)) == every(("evaluate",))
    assert changed(lambda e: e["runtime"].update(device="cpu", num_workers=3)) == set()
    assert changed(lambda e: e["resources"].update(gpu=0)) == set()
    assert changed(lambda e: e["methods"].remove("moco3")) == set()
    # the params are a valid config: the job reads exactly what its params say
    cfg = ex.load_pruned(p["finetune"]["moco3"])
    assert ex.settings(cfg, "finetune", "moco3") == ex.settings(base, "finetune", "moco3")
    assert ex.settings(cfg, "pretrain", "moco3") == ex.settings(base, "pretrain", "moco3")


def test_method_blocks_override_common_key_by_key():
    cfg = validate_config({"archive": "demo", "cben_experiments": {"pretrain": {
        "common": {"augment": {"p_gray": 0.3}}, "mae": {"augment": {"p_blur": 0.1}, "lr": 0.002}}}})
    s = ex.settings(cfg, "pretrain", "mae")
    assert s["augment"]["p_blur"] == 0.1 and s["augment"]["p_gray"] == 0.3 and s["lr"] == 0.002
    assert s["backbone"] == "vit_tiny" and s["views"] == "single"
    assert ex.settings(cfg, "pretrain", "moco2")["views"] == "seasons"
    bad = validate_config({"archive": "demo", "cben_experiments": {"pretrain": {"moco3": {"epochs": "many"}}}})
    with pytest.raises(ConfigError, match=r"cben_experiments\.pretrain\.moco3\.epochs"):
        ex.settings(bad, "pretrain", "moco3")
    with pytest.raises(ConfigError, match="cben_experiments.pretrain.moco2: 'speed' is not one of"):
        validate_config({"archive": "demo", "cben_experiments": {"pretrain": {"moco2": {"speed": 1}}}})


def test_views_from_two_valid_seasons_and_one_spec(ssl_store):
    views = SSL4EOViews(ssl_store, "seasons", seed=3)
    item = views[0]
    assert item["image"].shape == (2, 14, 24, 24)
    assert not torch.equal(item["image"][0], item["image"][1])  # two different seasons
    assert not torch.isnan(item["image"]).any()  # season 3 of location 0 is invalid: never drawn
    assert SSL4EOViews(ssl_store, "single")[0]["image"].shape == (1, 14, 24, 24)
    spec = ssl4eo_normalization(ssl_store, s1_clip=(-50, 10), s2_clip=(0, 1))
    assert spec.bands == FUSED_BANDS and spec.clip[0] == (-50.0, 10.0) and spec.clip[5] == (0.0, 1.0)


def test_spatial_augmentation_is_identical_on_s1_and_s2():
    from cloudyeo.training.pretrain import make_augment

    cfg = validate_config({"archive": "demo"})
    s = {**ex.settings(cfg, "pretrain", "moco2"), "input_size": 16}
    img = torch.rand(3, 1, 40, 40).expand(3, 14, 40, 40).contiguous()  # every band the same image
    full = make_augment(s)(img, torch.Generator().manual_seed(0))
    spatial = make_augment({**s, "augment": {**s["augment"], "p_jitter": 0.0, "p_gray": 0.0}})(
        img, torch.Generator().manual_seed(0))
    for c in range(1, 14):  # crop, flip and blur: one transform for all 14 channels
        torch.testing.assert_close(spatial[:, c], spatial[:, 0])
    torch.testing.assert_close(full[:, :2], spatial[:, :2])  # photometric ops leave S1 alone


def test_killed_pretraining_resumes_to_the_same_weights(tmp_path, ssl_store):
    from cloudyeo.training.pretrain import pretrain

    cfg = tiny_cfg(tmp_path / "a", ssl_store)
    out = ex.pretrain_outputs(ex.paths(cfg), "moco2")
    assert pretrain(cfg, "moco2", progress=False, max_epochs=1) == {"interrupted_after_epoch": 0}
    ep_dir = ex.epochs_dir(out["model"].parent)
    assert [p.name for p in list_epoch_checkpoints(ep_dir)] == ["epoch-0000.pt"]
    assert not out["model"].exists()
    summary = pretrain(cfg, "moco2", progress=False)  # the restarted job
    assert summary["steps"] == 4 and not ep_dir.exists()
    rows = out["metrics"].read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")
    resumed = load_checkpoint(out["model"])
    assert resumed["normalization"]["bands"] == list(FUSED_BANDS)
    assert resumed["model_spec"]["name"] == "resnet_small"

    straight_cfg = tiny_cfg(tmp_path / "b", ssl_store)
    pretrain(straight_cfg, "moco2", progress=False)
    straight = load_checkpoint(ex.pretrain_outputs(ex.paths(straight_cfg), "moco2")["model"])
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_changed_params_never_resume_stale_checkpoints(tmp_path, ssl_store):
    from cloudyeo.training.pretrain import pretrain

    cfg = tiny_cfg(tmp_path, ssl_store)
    pretrain(cfg, "mae", progress=False, max_epochs=1)
    cfg2 = tiny_cfg(tmp_path, ssl_store, mae={"backbone": "vit_tiny", "lr": 0.001,
                                              "backbone_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                                              "hparams": {"decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2}})
    summary = pretrain(cfg2, "mae", progress=False, max_epochs=1)
    assert summary == {"interrupted_after_epoch": 0}  # started afresh: epoch 0 again, not epoch 1


@pytest.mark.parametrize("method", ["moco3", "mae"])
def test_vit_methods_write_a_backbone_with_its_spec(tmp_path, ssl_store, method):
    from cloudyeo.training.pretrain import pretrain

    cfg = tiny_cfg(tmp_path, ssl_store)
    summary = pretrain(cfg, method, progress=False)
    state = load_checkpoint(ex.pretrain_outputs(ex.paths(cfg), method)["model"])
    assert state["model_spec"]["name"] == "vit_tiny" and state["model_spec"]["img_size"] == 16
    assert state["extra"]["ssl_spec"]["method"] == method
    assert summary["views"] == ("single" if method == "mae" else "seasons")


def test_paper_config_resolves_to_the_papers_settings():
    from pathlib import Path

    import yaml

    from cloudyeo.config import deep_merge
    from cloudyeo.models.registry import list_backbones

    root = Path(__file__).resolve().parents[2] / "config"
    base = yaml.safe_load((root / "config.yaml").read_text())
    cfg = validate_config(deep_merge(base, yaml.safe_load((root / "paper.yaml").read_text())))
    moco2, moco3, mae = (ex.settings(cfg, "pretrain", m) for m in ex.METHODS)
    assert (moco2["backbone"], moco2["lr"], moco2["batch_size"]) == ("resnet50", 0.03, 256)
    assert moco2["hparams"]["queue_size"] == 65536 and moco2["hparams"]["momentum"] == 0.999
    assert moco2["hparams"]["temperature"] == 0.2 and moco2["optimizer"] == "sgd"
    assert moco3["optimizer"] == "adamw" and "queue_size" not in moco3["hparams"]
    assert mae["hparams"]["mask_ratio"] == 0.7 and mae["hparams"]["norm_pix_loss"] is True
    assert {moco2["backbone"], moco3["backbone"], mae["backbone"]} <= set(list_backbones())
    aug = moco2["augment"]
    assert (aug["p_jitter"], aug["p_gray"], aug["p_blur"], aug["p_hflip"]) == (0.8, 0.2, 0.5, 0.5)


def test_sparse_epoch_checkpoints_restart_from_the_last_saved_epoch(tmp_path, ssl_store):
    from cloudyeo.training.pretrain import pretrain

    cfg = tiny_cfg(tmp_path, ssl_store)
    out = ex.pretrain_outputs(ex.paths(cfg), "moco2")
    # epoch 0 ends long before the interval: no checkpoint, so a killed job starts afresh
    pretrain(cfg, "moco2", progress=False, max_epochs=1, checkpoint_every_s=1e9)
    assert list_epoch_checkpoints(ex.epochs_dir(out["model"].parent)) == []
    pretrain(cfg, "moco2", progress=False, checkpoint_every_s=1e9)
    assert len(out["metrics"].read_text().splitlines()) == 3  # header + epochs 0 and 1, once each
