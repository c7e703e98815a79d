"""Fine-tuning a 19-class multi-label head on BEN or CBEN (node finetune[method, train_set]).

The pretrained backbone of pretrain[method] (weights, registry spec, normalisation spec) gets a
linear head; ``mode: full`` trains both (backbone at ``lr x backbone_lr_scale``), ``mode: linear``
freezes the backbone, BatchNorm statistics included, and trains the head only. Training data:
the ``train`` split of the CBEN store with S2 from ``s2_reference`` (``train_set: ben``, clear,
i.e. BigEarthNet) or ``s2`` (``cben``, cloudy), plus S1, early-fused in the pretraining order and
normalised with the pretraining spec. Each epoch is scored on the ``validation`` split of the
same variant (dataset-level AP, :mod:`cloudyeo.metrics.classification`); the best epoch by
``select_by`` is the output (``model.pt``), with ``metrics.json`` (summary) and ``metrics.csv``
(one row per epoch). Epoch checkpoints (``epochs/``) make a killed job resume.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from cloudyeo import atomic
from cloudyeo.config import paths
from cloudyeo.metrics.classification import AveragePrecisionAccumulator
from cloudyeo.models.backbone import Backbone
from cloudyeo.models.registry import build_backbone
from cloudyeo.training.data import CBENFused, flips, normalize_batch, resize
from cloudyeo.training.experiments import (
    cben_store,
    epochs_dir,
    finetune_outputs,
    fingerprint,
    pretrain_outputs,
    settings,
)
from cloudyeo.training.normalization import NormalizationSpec
from cloudyeo.training.pretrain import derived_seed, write_json
from cloudyeo.training.runtime import (
    FINGERPRINT_KEY,
    EpochLoop,
    RunOptions,
    autocast,
    load_checkpoint,
    prepare_model,
    progress_bar,
    save_checkpoint,
    seed_everything,
    select_device,
    to_device,
    uses_channels_last,
)
from cloudyeo.training.schedule import WarmupCosine, build_optimizer, param_groups

log = logging.getLogger(__name__)


class MultiLabelClassifier(nn.Module):
    """Backbone features -> (BatchNorm) -> (dropout) -> linear logits, one per class.

    With ``frozen`` the backbone takes no gradient and stays in eval mode (its BatchNorm
    statistics are those of pretraining), whatever ``train()`` is called with.
    """

    def __init__(self, backbone: Backbone, n_classes: int, head_norm: bool = False,
                 dropout: float = 0.0, frozen: bool = False):
        super().__init__()
        self.backbone = backbone
        self.frozen = frozen
        layers: list[nn.Module] = []
        if head_norm:
            layers.append(nn.BatchNorm1d(backbone.out_dim, affine=False))
        if dropout:
            layers.append(nn.Dropout(dropout))
        linear = nn.Linear(backbone.out_dim, n_classes)
        nn.init.trunc_normal_(linear.weight, std=0.01)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        self.head = nn.Sequential(*layers)
        if frozen:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.spec = {"backbone": dict(backbone.spec), "n_classes": n_classes, "head_norm": head_norm,
                     "dropout": dropout, "frozen": frozen}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            with torch.no_grad():
                feats = self.backbone.forward_features(x)
        else:
            feats = self.backbone.forward_features(x)
        return self.head(feats.float())


def build_classifier(spec: dict) -> MultiLabelClassifier:
    """Rebuild a classifier from its ``spec`` (a checkpoint's ``model_spec``)."""
    bspec = dict(spec["backbone"])
    backbone = build_backbone(bspec.pop("name"), **bspec)
    return MultiLabelClassifier(backbone, spec["n_classes"], spec["head_norm"], spec["dropout"], spec["frozen"])


def load_pretrained_backbone(path) -> tuple[Backbone, NormalizationSpec, dict]:
    """(backbone with weights, normalisation spec, checkpoint) from a pretrain ``model.pt``."""
    state = load_checkpoint(path)
    bspec = dict(state["model_spec"])
    backbone = build_backbone(bspec.pop("name"), **bspec)
    backbone.load_state_dict(state["model"])
    if state["normalization"] is None:
        raise ValueError(f"{path} carries no normalisation spec")
    return backbone, NormalizationSpec.from_dict(state["normalization"]), state


def prepare_inputs(image: torch.Tensor, spec: NormalizationSpec, input_size: int | None, device,
                   channels_last: bool = False) -> torch.Tensor:
    """Raw fused (N, 14, H, W) -> normalised, resized, on ``device``."""
    x = resize(normalize_batch(to_device(image, device), spec), input_size)
    return to_device(x, device, channels_last)


@torch.no_grad()
def predict(model: nn.Module, loader, spec: NormalizationSpec, input_size: int | None, device,
            channels_last: bool = False, progress: bool = False, desc: str = "predict") -> dict:
    """Sigmoid scores of every sample (float64), with labels, store indices, cloud fractions."""
    model.eval()
    scores, labels, index, cloud = [], [], [], []
    bar = progress_bar(len(loader), desc, progress)
    for item in loader:
        x = prepare_inputs(item["image"], spec, input_size, device, channels_last)
        with autocast(device):
            logits = model(x)
        scores.append(torch.sigmoid(logits.float()).double().cpu().numpy())
        labels.append(item["label"].numpy())
        index.append(item["index"].numpy())
        cloud.append(item["cloud_fraction"].numpy())
        bar.update(1)
    bar.close()
    cat = (lambda xs: np.concatenate(xs)) if scores else (lambda xs: np.zeros((0,)))
    return {"scores": cat(scores), "labels": cat(labels), "index": cat(index), "cloud_fraction": cat(cloud)}


def dihedral_transforms(hflip: bool, vflip: bool, rot90: bool) -> list[tuple[int, int, int]]:
    """The distinct (hflip, vflip, quarter turns) transforms :func:`flips` can draw; each is
    equally likely there, so drawing uniformly among these is the same augmentation."""
    seen, out = set(), []
    probe = torch.arange(4.0).reshape(1, 1, 2, 2)
    for h in (0, 1) if hflip else (0,):
        for v in (0, 1) if vflip else (0,):
            for k in range(4) if rot90 else (0,):
                key = tuple(apply_transform(probe, (h, v, k)).flatten().tolist())
                if key not in seen:
                    seen.add(key)
                    out.append((h, v, k))
    return out


def apply_transform(x: torch.Tensor, t: tuple[int, int, int]) -> torch.Tensor:
    h, v, k = t
    if h:
        x = x.flip(-1)
    if v:
        x = x.flip(-2)
    return x.rot90(k, dims=(-2, -1)) if k else x


@torch.no_grad()
def frozen_features(model: MultiLabelClassifier, dataset, spec, input_size, device, batch_size: int,
                    num_workers: int, transforms=((0, 0, 0),), channels_last: bool = False,
                    progress: bool = False, desc: str = "features") -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a frozen backbone for every sample and transform: (N, T, D) and labels (N, C).

    The linear probe then trains on these instead of running the backbone every epoch (the same
    model and the same augmentation distribution, much faster)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, labels = [], []
    bar = progress_bar(len(loader), desc, progress)
    for item in loader:
        x = prepare_inputs(item["image"], spec, input_size, device)
        per_t = []
        for t in transforms:
            with autocast(device):
                f = model.backbone.forward_features(to_device(apply_transform(x, t), device, channels_last))
            per_t.append(f.float())
        feats.append(torch.stack(per_t, dim=1))
        labels.append(item["label"].to(device))
        bar.update(1)
    bar.close()
    return torch.cat(feats), torch.cat(labels)


def validation_ap(pred: dict) -> dict:
    acc = AveragePrecisionAccumulator()
    acc.update(pred["labels"], pred["scores"])
    r = acc.compute()
    return {"ap_micro": 100 * r["micro"], "ap_macro": 100 * r["macro"], "n": r["n_samples"]}


def finetune(
    cfg: dict[str, Any],
    method: str,
    train_set: str,
    **options: Any,
) -> dict:
    """Run node finetune[``method``, ``train_set``]; returns the summary (``metrics.json``)."""
    run = RunOptions(**options)
    if train_set not in ("ben", "cben"):
        raise ValueError(f"train_set must be 'ben' or 'cben', got {train_set!r}")
    s = settings(cfg, "finetune", method)
    exp = cfg["cben_experiments"]
    seed = int(exp["seed"])
    p = paths(cfg)
    outs = finetune_outputs(p, method, train_set)
    ep_dir = epochs_dir(outs["model"].parent)
    fp = fingerprint(cfg, "finetune", method, train_set)

    dev = select_device(run.device)
    seed_everything(derived_seed(seed, 17))
    backbone, spec, pre = load_pretrained_backbone(pretrain_outputs(p, method)["model"])
    store = cben_store(cfg)
    train = CBENFused(store, "train", train_set)
    val = CBENFused(store, "validation", train_set)
    if len(train) == 0:
        raise ValueError(f"{store}: the train split is empty")
    n_classes = int(train[0]["label"].numel())
    model = MultiLabelClassifier(backbone, n_classes, s["head_norm"], float(s["dropout"]), s["mode"] == "linear")
    model = prepare_model(model, dev)
    channels_last = uses_channels_last(model, dev)

    batch = int(s["batch_size"])
    steps_per_epoch = max(math.ceil(len(train) / batch), 1)
    epochs = int(s["epochs"])
    lr = float(s["lr"])
    groups = param_groups(model.head.named_parameters(), float(s["weight_decay"]), lr)
    if s["mode"] == "full":
        groups += param_groups(model.backbone.named_parameters(), float(s["weight_decay"]),
                               lr * float(s["backbone_lr_scale"]))
    optimizer = build_optimizer(groups, s["optimizer"], sgd_momentum=float(s["sgd_momentum"]), betas=s["betas"])
    scheduler = WarmupCosine(optimizer, epochs * steps_per_epoch,
                             round(float(s["warmup_epochs"]) * steps_per_epoch), float(s["min_lr"]))
    criterion = nn.BCEWithLogitsLoss()
    aug = s["augment"]
    input_size = s["input_size"]
    select_by = s["select_by"]

    loop = EpochLoop(ep_dir, fp, model, optimizer, scheduler, epochs=epochs, normalization=spec, keep=1,
                     checkpoint_every_s=run.checkpoint_every_s)
    state, start_epoch, step, logger = loop.state, loop.start, loop.step, loop.logger
    extra = {"best_score": -math.inf, "best_epoch": -1, "elapsed_s": 0.0} if state is None else loop.extra
    best_score = float(extra["best_score"])
    best_epoch = int(extra["best_epoch"])
    elapsed = float(extra["elapsed_s"])
    best_path = ep_dir / "best.pt"
    log.info("finetune %s on %s (%s): %d train / %d validation patches, %d epochs, batch %d, lr %.3g, %s",
             method, train_set, s["mode"], len(train), len(val), epochs, batch, lr, dev)
    val_loader = DataLoader(val, batch_size=batch, shuffle=False, num_workers=run.num_workers)
    ckpt_extra = {"method": method, "train_set": train_set, "input_size": input_size,
                  "settings": s, FINGERPRINT_KEY: fp, "pretrain_fingerprint": pre["extra"][FINGERPRINT_KEY]}

    cached = s["mode"] == "linear" and s["cache_features"]
    if cached and start_epoch < epochs:
        transforms = dihedral_transforms(aug["hflip"], aug["vflip"], aug["rot90"])
        t0 = time.perf_counter()
        train_feats, train_labels = frozen_features(model, train, spec, input_size, dev, batch, run.num_workers,
                                                    transforms, channels_last, run.progress, "train features")
        val_feats, val_labels = frozen_features(model, val, spec, input_size, dev, batch, run.num_workers,
                                                channels_last=channels_last, progress=run.progress,
                                                desc="validation features") if len(val) else (None, None)
        log.info("frozen backbone: features of %d train patches x %d flips and %d validation patches "
                 "in %.1f s", len(train), len(transforms), len(val), time.perf_counter() - t0)

    def batches(epoch: int):
        """(model input, labels, forward) per step: images through the whole model, or cached
        features through the head."""
        if cached:
            gen = torch.Generator().manual_seed(derived_seed(seed, epoch, 3))
            order = torch.randperm(len(train), generator=gen)
            pick = torch.randint(0, train_feats.shape[1], (len(train),), generator=gen)
            for i in range(0, len(train), batch):
                idx = order[i:i + batch].to(dev)
                yield train_feats[idx, pick[i:i + batch].to(dev)], train_labels[idx], model.head
            return
        sampler = RandomSampler(train, generator=torch.Generator().manual_seed(derived_seed(seed, epoch, 3)))
        loader = DataLoader(train, batch_size=batch, sampler=sampler, num_workers=run.num_workers,
                            pin_memory=dev.type == "cuda")
        aug_gen = torch.Generator().manual_seed(derived_seed(seed, epoch, 4))
        for item in loader:
            x = prepare_inputs(item["image"], spec, input_size, dev)
            x = to_device(flips(x, aug_gen, aug["hflip"], aug["vflip"], aug["rot90"]), dev, channels_last)
            yield x, item["label"].to(dev, non_blocking=True), model

    def validate() -> dict:
        if cached:
            if val_feats is None or val_labels is None:
                raise RuntimeError("no cached validation features: the validation split is empty")
            model.eval()
            with torch.no_grad():
                scores = torch.sigmoid(model.head(val_feats[:, 0]).float()).double().cpu().numpy()
            return validation_ap({"scores": scores, "labels": val_labels.cpu().numpy()})
        return validation_ap(predict(model, val_loader, spec, input_size, dev, channels_last))

    for done_this_call, epoch in enumerate(loop.epochs()):
        if run.max_epochs is not None and done_this_call >= run.max_epochs:
            return {"interrupted_after_epoch": epoch - 1}
        model.train()
        t0 = time.perf_counter()
        loss_sum, n_seen = 0.0, 0
        bar = progress_bar(steps_per_epoch, f"finetune {method}/{train_set} {epoch + 1}/{epochs}", run.progress)
        for x, y, forward in batches(epoch):
            with autocast(dev):
                logits = forward(x)
            loss = criterion(logits.float(), y)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"finetune {method}/{train_set}: loss {float(loss)} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            n_seen += len(y)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            bar.update(1)
        bar.close()
        row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": loss_sum / max(n_seen, 1)}
        if len(val):
            v = validate()
            row.update({"val_ap_micro": v["ap_micro"], "val_ap_macro": v["ap_macro"]})
            score = v[select_by]
        else:  # no validation split: the last epoch is the output
            score = float(epoch)
        is_best = score > best_score
        if is_best:
            best_score, best_epoch = score, epoch
            save_checkpoint(best_path, model, epoch=epoch, step=step, normalization=spec,
                            extra={**ckpt_extra, "best_epoch": epoch, "validation": {k: row[k] for k in row if k.startswith("val_")}})
        seconds = time.perf_counter() - t0
        elapsed += seconds
        row.update({"best": int(is_best), "seconds": round(seconds, 3)})
        log.info("finetune %s/%s epoch %d/%d: %s", method, train_set, epoch + 1, epochs,
                 ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        loop.end_epoch(epoch, row, step=step,
                       extra={"best_score": best_score, "best_epoch": best_epoch, "elapsed_s": elapsed})

    atomic.copy_file(best_path, outs["model"])
    atomic.copy_file(logger.path, outs["metrics"])
    history = logger.read()
    best_row = next((r for r in history if int(float(r["epoch"])) == best_epoch), {})
    summary = {
        "method": method,
        "train_set": train_set,
        "mode": s["mode"],
        "cached_features": cached,
        "device": str(dev),
        "store": str(store),
        "n_train": len(train),
        "n_validation": len(val),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "select_by": select_by if len(val) else "last_epoch",
        "validation": {k[4:]: float(v) for k, v in best_row.items() if k.startswith("val_") and v != ""},
        "elapsed_s": round(elapsed, 2),
        "input_size": input_size,
        FINGERPRINT_KEY: fp,
        "torch": torch.__version__,
    }
    write_json(outs["summary"], summary)
    if not run.keep_epoch_checkpoints:
        shutil.rmtree(ep_dir, ignore_errors=True)
    return summary
