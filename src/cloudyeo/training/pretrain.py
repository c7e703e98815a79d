"""Self-supervised pretraining on the SSL4EO store: MoCo v2, MoCo v3, MAE (node pretrain[method]).

Inputs: 14 early-fused bands (S1 VV, VH + 12 S2 L2A; :mod:`cloudyeo.training.data`) normalised
by the spec computed from the SSL4EO store's band statistics. Two views per location come from
two seasons (``views: seasons``, as SSL4EO-S12) or from one (``single``); each view is a
:class:`~cloudyeo.training.augment.MultibandAugment` of the fused stack (random resized crop,
brightness/contrast, grayscale, Gaussian blur, horizontal flip): the spatial part acts on all
14 channels at once, so S1 and S2 stay co-registered; photometric parts touch S2 only.

Outputs (:func:`cloudyeo.training.experiments.pretrain_outputs`): ``model.pt`` - the pretrained
*backbone* (its registry spec, weights) with the normalisation spec, the SSL method's spec and the
settings; ``model.json`` - a summary (loss, throughput, device); ``model.metrics.csv`` - one row
per epoch. While the job runs, ``epochs/`` holds the last epoch checkpoint (full SSL state,
optimiser, schedule, RNG): a killed job restarted with the same params resumes after its last
completed epoch; different params start afresh.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from cloudyeo import atomic
from cloudyeo.config import paths
from cloudyeo.models.ssl import build_ssl
from cloudyeo.training.augment import MultibandAugment, optical_channels_from_bands
from cloudyeo.training.data import (
    FUSED_BANDS,
    N_CHANNELS,
    SSL4EOViews,
    normalize_batch,
    ssl4eo_normalization,
)
from cloudyeo.training.experiments import (
    epochs_dir,
    fingerprint,
    pretrain_outputs,
    settings,
    ssl4eo_store,
)
from cloudyeo.training.runtime import (
    FINGERPRINT_KEY,
    EpochLoop,
    RunOptions,
    autocast,
    prepare_model,
    progress_bar,
    save_checkpoint,
    seed_everything,
    select_device,
    to_device,
    uses_channels_last,
)
from cloudyeo.training.schedule import (
    WarmupCosine,
    build_optimizer,
    effective_lr,
    param_groups,
)

log = logging.getLogger(__name__)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (epoch-wise generators: identical after a resume)."""
    import hashlib

    h = hashlib.sha256(",".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def write_json(path: Path, data: dict) -> None:
    """Metrics/summary JSON (sorted keys; numpy scalars as floats), written atomically."""
    atomic.write_json(path, data, indent=2, sort_keys=True, default=float)


def build_method(s: dict, method: str):
    kwargs = dict(s["backbone_kwargs"])
    if s["backbone"].startswith("vit") and "img_size" not in kwargs:
        kwargs["img_size"] = int(s["input_size"])
    return build_ssl(method, s["backbone"], N_CHANNELS, kwargs, **s["hparams"])


def make_augment(s: dict) -> MultibandAugment:
    a = dict(s["augment"])
    for key in ("scale", "ratio", "sigma"):
        if key in a:
            a[key] = tuple(a[key])
    return MultibandAugment(size=int(s["input_size"]), optical_channels=optical_channels_from_bands(FUSED_BANDS), **a)


def pretrain(
    cfg: dict[str, Any],
    method: str,
    **options: Any,
) -> dict:
    """Run node pretrain[``method``]; returns the summary written to ``model.json``.

    ``max_epochs`` stops after that many epochs *in this call* (tests of resumption); the
    outputs are written only when the configured number of epochs is complete.
    """
    run = RunOptions(**options)
    s = settings(cfg, "pretrain", method)
    exp = cfg["cben_experiments"]
    seed = int(exp["seed"])
    outs = pretrain_outputs(paths(cfg), method)
    out_dir = outs["model"].parent
    ep_dir = epochs_dir(out_dir)
    fp = fingerprint(cfg, "pretrain", method)

    dev = select_device(run.device)
    seed_everything(seed)
    store = ssl4eo_store(cfg)
    spec = ssl4eo_normalization(store, s["s1_clip"], s["s2_clip"])
    data = SSL4EOViews(store, s["views"], seed=seed)
    batch = int(s["batch_size"])
    per_epoch = int(s["samples_per_epoch"] or len(data))
    steps_per_epoch = max(per_epoch // batch, 1)
    epochs = int(s["epochs"])
    total_steps = epochs * steps_per_epoch

    model = prepare_model(build_method(s, method), dev)
    channels_last = uses_channels_last(model, dev)
    lr = effective_lr(float(s["lr"]), batch, s["lr_scaling"])
    optimizer = build_optimizer(param_groups(model.named_parameters(), float(s["weight_decay"]), lr),
                                s["optimizer"], sgd_momentum=float(s["sgd_momentum"]), betas=s["betas"])
    scheduler = WarmupCosine(optimizer, total_steps, round(float(s["warmup_epochs"]) * steps_per_epoch),
                             float(s["min_lr"]))
    augment = make_augment(s)
    two_views = method != "mae"

    loop = EpochLoop(ep_dir, fp, model, optimizer, scheduler, epochs=epochs, normalization=spec, keep=1,
                     checkpoint_every_s=run.checkpoint_every_s)
    step = loop.step
    elapsed = float(loop.extra["elapsed_s"]) if loop.state is not None else 0.0
    if loop.state is not None:
        log.info("resuming %s pretraining after epoch %d (%s)", method, loop.start, loop.state["path"])
    logger = loop.logger
    log.info("pretrain %s: %s on %s, %d locations, %d epochs x %d steps x batch %d, lr %.3g",
             method, s["backbone"], dev, len(data), epochs, steps_per_epoch, batch, lr)

    pin = dev.type == "cuda"
    last_row: dict = {}
    for done_this_call, epoch in enumerate(loop.epochs()):
        if run.max_epochs is not None and done_this_call >= run.max_epochs:
            return {"interrupted_after_epoch": epoch - 1}
        data.set_epoch(epoch)
        sampler = RandomSampler(data, replacement=per_epoch != len(data) or len(data) < batch,
                                num_samples=steps_per_epoch * batch,
                                generator=torch.Generator().manual_seed(derived_seed(seed, epoch, 1)))
        loader = DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True,
                            num_workers=run.num_workers, pin_memory=pin)
        aug_gen = torch.Generator().manual_seed(derived_seed(seed, epoch, 2))
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, float] = defaultdict(float)
        n_steps = 0
        bar = progress_bar(steps_per_epoch, f"pretrain {method} {epoch + 1}/{epochs}", run.progress)
        for item in loader:
            x = normalize_batch(to_device(item["image"], dev), spec, inplace=True)  # (B, T, C, H, W)
            v1 = to_device(augment(x[:, 0], aug_gen), dev, channels_last)
            v2 = to_device(augment(x[:, -1], aug_gen), dev, channels_last) if two_views else None
            with autocast(dev):
                loss, logs = model.loss(v1, v2)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"{method}: loss is {float(loss)} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), float(s["grad_clip"]))
            optimizer.step()
            m = model.momentum_update(step=step, total_steps=total_steps)
            scheduler.step()
            step += 1
            n_steps += 1
            for k, v in logs.items():
                sums[k] += float(v)
            if m is not None:
                sums["momentum"] += float(m)
            bar.set_postfix(loss=f"{float(logs['loss']):.4f}")
            bar.update(1)
        bar.close()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"]}
        row.update({k: v / max(n_steps, 1) for k, v in sums.items()})
        row.update({"seconds": round(seconds, 3), "samples_per_s": round(n_steps * batch / max(seconds, 1e-9), 2)})
        last_row = row
        log.info("pretrain %s epoch %d/%d: %s", method, epoch + 1, epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        loop.end_epoch(epoch, row, step=step, extra={"method": method, "elapsed_s": elapsed})

    if not last_row:  # resumed after the last epoch: read it back
        rows = logger.read()
        last_row = {k: float(v) if k not in ("epoch", "step") else int(float(v)) for k, v in rows[-1].items() if v != ""}

    backbone = model.backbone
    save_checkpoint(outs["model"], backbone, epoch=epochs - 1, step=step, normalization=spec, extra={
        "method": method, "ssl_spec": model.spec, "settings": s, FINGERPRINT_KEY: fp,
        "input_size": int(s["input_size"]), "bands": list(FUSED_BANDS),
    })
    atomic.copy_file(logger.path, outs["metrics"])
    summary = {
        "method": method,
        "backbone": s["backbone"],
        "backbone_spec": backbone.spec,
        "ssl_spec": model.spec,
        "device": str(dev),
        "store": str(store),
        "n_locations": len(data),
        "views": s["views"],
        "epochs": epochs,
        "steps": step,
        "batch_size": batch,
        "lr": lr,
        "final": last_row,
        "elapsed_s": round(elapsed, 2),
        "samples_per_s": round(step * batch / max(elapsed, 1e-9), 2),
        "normalization": spec.to_dict(),
        FINGERPRINT_KEY: fp,
        "torch": torch.__version__,
    }
    write_json(outs["summary"], summary)
    if not run.keep_epoch_checkpoints:
        shutil.rmtree(ep_dir, ignore_errors=True)
    return summary
