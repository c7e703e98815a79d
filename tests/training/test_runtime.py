"""Seeds, devices, atomic checkpoints with resume, and the per-epoch metrics CSV."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from cloudyeo.models import build_backbone
from cloudyeo.training import (
    MetricsLogger,
    NormalizationSpec,
    autocast,
    latest_checkpoint,
    load_checkpoint,
    prepare_model,
    resume_state,
    save_checkpoint,
    save_epoch_checkpoint,
    seed_everything,
    select_device,
)
from cloudyeo.training.runtime import uses_channels_last

NORM = NormalizationSpec.from_stats(["VV", "VH"], [-12.0, -19.0], [4.0, 5.0])


def tiny_setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    model(torch.zeros(1, 2, 5, 5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return model, opt, sched


def train_step(model, opt, sched):
    loss = model(torch.randn(3, 2, 5, 5)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_seed_everything_reproduces():
    g = seed_everything(123)
    a = (torch.rand(3), torch.rand(2, generator=g))
    g = seed_everything(123)
    assert torch.equal(a[0], torch.rand(3)) and torch.equal(a[1], torch.rand(2, generator=g))


def test_device_precision_memory_format_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("CPU-only expectations")
    assert select_device("cpu").type == "cpu"
    assert select_device().type == "cpu"
    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    resnet = build_backbone("resnet_small", 2, width=0.125)
    vit = build_backbone("vit_tiny", 2, img_size=16, embed_dim=32, depth=1, num_heads=2)
    assert uses_channels_last(resnet, "cuda") and not uses_channels_last(vit, "cuda")
    assert not uses_channels_last(resnet, "cpu")
    assert prepare_model(resnet, "cpu").stem[0].weight.is_contiguous()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")


def test_checkpoint_resume_round_trip(tmp_path):
    model, opt, sched = tiny_setup()
    for epoch in (1, 2):
        train_step(model, opt, sched)
        save_epoch_checkpoint(tmp_path, model, opt, sched, epoch=epoch, step=10 * epoch,
                              normalization=NORM, extra={"loss": 0.5, "config": {"lr": 0.01}})
    rng_at_save = torch.get_rng_state()
    torch.rand(100)  # the killed job went on drawing numbers
    # Debris of a job killed mid-write must never be picked up.
    (tmp_path / ".epoch-0003.pt.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "epoch-0003.pt.tmp").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "epoch-0002.pt"

    fresh, fresh_opt, fresh_sched = tiny_setup(seed=99)
    state = resume_state(tmp_path, fresh, fresh_opt, fresh_sched)
    assert state["epoch"] == 2 and state["step"] == 20 and state["extra"]["config"] == {"lr": 0.01}
    assert NormalizationSpec.from_dict(state["normalization"]) == NORM
    assert torch.equal(torch.get_rng_state(), rng_at_save)  # RNG restored
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    o1, o2 = opt.state_dict(), fresh_opt.state_dict()
    assert o1["param_groups"] == o2["param_groups"]
    for k in o1["state"]:
        assert torch.equal(o1["state"][k]["exp_avg"], o2["state"][k]["exp_avg"])
        assert torch.equal(o1["state"][k]["exp_avg_sq"], o2["state"][k]["exp_avg_sq"])
    assert fresh_sched.state_dict() == sched.state_dict()
    # Training continues identically from the restored state.
    train_step(fresh, fresh_opt, fresh_sched)
    torch.set_rng_state(rng_at_save)
    train_step(model, opt, sched)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    model, opt, _ = tiny_setup()
    path = save_checkpoint(tmp_path / "epoch-0001.pt", model, opt, epoch=1)
    original = path.read_bytes()

    def broken_save(obj, fh, *a, **k):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, opt, epoch=2)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.pt"]


def test_resume_skips_unreadable_newest(tmp_path):
    model, opt, sched = tiny_setup()
    save_epoch_checkpoint(tmp_path, model, opt, sched, epoch=1)
    (tmp_path / "epoch-0002.pt").write_bytes(b"not a checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = resume_state(tmp_path, model, opt, sched)
    assert state["epoch"] == 1 and any("epoch-0002.pt" in str(w.message) for w in caught)
    assert resume_state(tmp_path / "missing") is None


def test_keep_prunes_old_epochs_and_load_checks(tmp_path):
    model, opt, _ = tiny_setup()
    for epoch in range(1, 5):
        save_epoch_checkpoint(tmp_path, model, epoch=epoch, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.pt", "epoch-0004.pt"]
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "epoch-0004.pt", model, opt)


def test_model_spec_saved(tmp_path):
    net = build_backbone("resnet_small", 2, width=0.125)
    state = load_checkpoint(save_checkpoint(tmp_path / "c.pt", net, epoch=3))
    assert state["model_spec"] == {"name": "resnet_small", "in_chans": 2, "width": 0.125}
    rebuilt = build_backbone(**{k: v for k, v in state["model_spec"].items()})
    rebuilt.load_state_dict(state["model"])


def test_metrics_logger(tmp_path):
    path = tmp_path / "logs" / "metrics.csv"
    log = MetricsLogger(path)
    log.log({"epoch": 1, "loss": torch.tensor(0.5), "lr": 0.1})
    log.log({"epoch": 2, "loss": 0.4})  # missing column left empty
    with pytest.raises(ValueError, match="not in the CSV header"):
        log.log({"epoch": 3, "acc": 1.0})
    MetricsLogger(path).log({"epoch": 3, "loss": 0.3, "lr": 0.05})  # reopened: no second header
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,lr" and len(lines) == 4 and lines[2] == "2,0.4,"
    resumed = MetricsLogger(path, resume_epoch=2)  # epoch 3 was logged but never checkpointed
    assert [r["epoch"] for r in resumed.read()] == ["1", "2"]


# -- node params and checkpoint fingerprints ---------------------------------------------------
def _config():
    from pathlib import Path

    from cloudyeo.config import load_config

    return load_config(Path(__file__).resolve().parents[2] / "config" / "config.yaml")


def test_node_params_refuse_run_time_settings():
    from cloudyeo.training.runtime import node_params

    assert node_params({"b": 1, "a": {"lr": 0.1}}) == '{"a": {"lr": 0.1}, "b": 1}'
    with pytest.raises(ValueError, match=r"a\.device"):
        node_params({"a": {"device": "cuda"}})


def test_fingerprint_changes_with_code_and_params(monkeypatch):
    from cloudyeo import provenance
    from cloudyeo.training.runtime import checkpoint_fingerprint

    a = checkpoint_fingerprint('{"lr": 0.1}', "pretrain")
    assert a == checkpoint_fingerprint('{"lr": 0.1}', "pretrain")
    assert a != checkpoint_fingerprint('{"lr": 0.2}', "pretrain")
    monkeypatch.setattr(provenance, "code_version", lambda stage: f"changed-{stage}")
    assert a != checkpoint_fingerprint('{"lr": 0.1}', "pretrain")


def test_node_fingerprints_ignore_device_threads_and_resources():
    from cloudyeo.config import deep_merge
    from cloudyeo.training import cloud_removal, experiments

    cfg = _config()
    moved = deep_merge(cfg, {"cben_experiments": {"runtime": {"device": "cpu", "num_workers": 4},
                                                  "resources": {"threads": 8, "gpu": 0}},
                             "cloud_removal": {"device": "cpu", "threads": 8}})
    changed = deep_merge(cfg, {"cben_experiments": {"pretrain": {"common": {"lr": 0.123}}}})
    for stage in ("pretrain", "finetune"):
        assert experiments.fingerprint(cfg, stage, "moco2") == experiments.fingerprint(moved, stage, "moco2")
        assert experiments.fingerprint(cfg, stage, "moco2") != experiments.fingerprint(changed, stage, "moco2")
    for dataset in ("timeseries", "planetcr"):
        method = cloud_removal.methods_for(cfg, dataset, trained_only=True)[0]
        assert cloud_removal.node_config(cfg, method, dataset) == cloud_removal.node_config(moved, method, dataset)
        assert cloud_removal.fingerprint(cfg, method, dataset) == cloud_removal.fingerprint(moved, method, dataset)


def test_resume_with_another_fingerprint_starts_fresh(tmp_path):
    from cloudyeo.training.runtime import FINGERPRINT_KEY, resume_or_reset, save_epoch_checkpoint

    model = torch.nn.Linear(2, 2)
    for epoch in (0, 1):
        save_epoch_checkpoint(tmp_path / "epochs", model, epoch=epoch, extra={FINGERPRINT_KEY: "old"})
    state = resume_or_reset(tmp_path / "epochs", "old", model)
    assert state is not None and state["epoch"] == 1
    assert resume_or_reset(tmp_path / "epochs", "new", model) is None
    assert not (tmp_path / "epochs").exists()  # the other fingerprint's checkpoints are gone


def test_epoch_loop_resumes_after_the_last_checkpoint(tmp_path):
    from cloudyeo.training.runtime import EpochLoop

    def make():
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        return model, torch.optim.SGD(model.parameters(), lr=0.1)

    def train(stop_after=None, fingerprint="a"):
        model, opt = make()
        loop = EpochLoop(tmp_path / "ck", fingerprint, model, opt, epochs=3, first_epoch=1)
        for epoch in loop.epochs():
            opt.zero_grad()
            model(torch.ones(4, 2)).sum().backward()
            opt.step()
            loop.end_epoch(epoch, {"epoch": epoch, "w": float(model.weight.detach().sum())}, step=epoch)
            if epoch == stop_after:
                return loop, model
        return loop, model

    train(stop_after=2)
    loop, resumed = train()
    assert loop.start == 3 and [int(r["epoch"]) for r in loop.logger.read()] == [1, 2, 3]
    fresh, _ = train(fingerprint="b")  # other params or code: from epoch 1 again
    assert fresh.start == 1 and [int(r["epoch"]) for r in fresh.logger.read()] == [1, 2, 3]
    (tmp_path / "ck").rename(tmp_path / "old")
    _, straight = train()
    torch.testing.assert_close(resumed.weight, straight.weight)
