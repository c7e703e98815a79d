"""Training of the cloud-removal methods, one (method, dataset) node at a time.

``train(cfg, method, dataset)`` reads the method's block of ``cloud_removal.methods`` (with the
``paper`` overrides merged in when ``cloud_removal.preset: paper``), trains on the store's train
split and writes, under ``results/models/cloud_removal/<dataset>/<method>/``:

* ``model.pt`` — the final checkpoint (written last: its presence means "trained"); the model spec,
  the normalisation spec and the effective hyperparameters are inside;
* ``train_log_<stage>.csv`` — one row per epoch (loss, steps, seconds; stages ``main``, or
  ``pretext``, ``cr``/``lc``, ``patch-NNNN``); ``train_summary.json``; ``checkpoints/<stage>/`` —
  epoch checkpoints (the newest two), from which a killed job resumes at its next epoch. Batches
  are drawn from a generator seeded by (seed, stage, epoch), and the RNG states are restored, so a
  resumed run ends with the same weights as an uninterrupted one. Checkpoints carry the node's
  fingerprint (:func:`cloudyeo.training.runtime.checkpoint_fingerprint`: params + code); those made
  with other params or code are discarded, not resumed.

Training is CPU-sized on the demo (a few hundred steps on 48-128 px random crops); the paper's
settings are in ``cloud_removal.paper``. Method kinds:

| kind | data | what is trained |
|---|---|---|
| ``baseline`` | - | nothing (least cloudy, mosaicing, identity) |
| ``dsen2cr`` | time series, Planet-CR | DSen2-CR on one cloudy image + S1, CARL |
| ``seq2point`` | time series | Siamese ResNet + 3-D conv over n inputs, 100 x L1 + (1 - SSIM) |
| ``seq2seq`` | time series (test split!) | one 3-D U-Net per test patch, S1 (or noise) -> S2, clear pixels |
| ``hcrlc`` | time series | U-Net, shared encoder + one decoder per task (CR: CARL, LC: CE), 1:1 or
  uncertainty weighting; LC-only; few labels (``label_fraction``) with optional pretext pretraining |
| ``hcr_then_lc`` | time series | CR-only U-Net, then a land-cover U-Net trained on clear images |
| ``aligncr`` | Planet-CR | Align-CR (+ w/o SAR, w/o alignment), weighted Charbonnier |
| ``segmentation`` | Planet-CR | land-cover U-Net on clear optical images (semantic recovery) |
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.config import paths
from cloudyeo.training.cloud_removal_data import (
    LC_IGNORE,
    PlanetCRSource,
    TimeSeriesSource,
    augment_arrays,
    finite_inputs,
    random_window,
    stack_batch,
)
from cloudyeo.training.runtime import (
    FINGERPRINT_KEY,
    EpochLoop,
    autocast,
    checkpoint_fingerprint,
    job_device,
    load_checkpoint,
    node_params,
    progress_bar,
    save_checkpoint,
    seed_everything,
    select_device,
)

log = logging.getLogger(__name__)

DATASETS = ("timeseries", "planetcr")
RESOURCE_KEYS = ("mem_mb", "runtime", "gpu")
TS_CLASSES = 19  # BEN19 class indices in timeseries.zarr's land cover
NORMALIZATION = {
    "optical": {"scale": 1e-4, "clip": [0.0, 1.0], "nodata": "NaN -> 0 in inputs, unscored in targets"},
    "s1": {"units": "dB", "db_range": [-25.0, 0.0], "scaled_to": [0.0, 1.0]},
}


class CloudRemovalError(RuntimeError):
    """A cloud-removal method cannot run with this configuration or data."""


# ------------------------------------------------------------------------------------- config
def method_config(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    """The effective hyperparameters of ``method``: ``cloud_removal.common`` overridden key by key
    by ``cloud_removal.methods.<method>`` (then, for preset 'paper', by ``cloud_removal.paper.<method>``)."""
    cr = cfg["cloud_removal"]
    if method not in cr["methods"]:
        raise CloudRemovalError(
            f"unknown cloud-removal method {method!r}; configured: {', '.join(sorted(cr['methods']))}")
    m = {**copy.deepcopy(cr["common"]), **copy.deepcopy(cr["methods"][method])}
    where = f"cloud_removal.methods.{method}"
    if cr["preset"] == "paper" and method in cr["paper"]:
        m.update(copy.deepcopy(cr["paper"][method]))
        where = f"cloud_removal.paper.{method}"
    _check_method(m, where)
    return m


def _check_method(m: dict[str, Any], where: str) -> None:
    """Validate a merged method block: the keys of ``cloud_removal.common`` plus kind, datasets and
    baseline (``cloud_removal.methods.*``), nothing else."""
    import jsonschema

    from cloudyeo.config import ConfigError, load_schema

    props = load_schema()["properties"]["cloud_removal"]["properties"]
    method = props["methods"]["additionalProperties"]
    schema = {"type": "object", "additionalProperties": False, "required": method["required"],
              "properties": {**props["common"]["properties"], **method["properties"]}}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(m))
    if errors:
        raise ConfigError("invalid configuration:\n" + "\n".join(
            f"  {where}{''.join('.' + str(p) for p in e.absolute_path)}: {e.message}" for e in errors))


def methods_for(cfg: dict[str, Any], dataset: str, *, trained_only: bool = False) -> list[str]:
    """Enabled methods evaluated on ``dataset`` (config order)."""
    cr = cfg["cloud_removal"]
    if dataset not in cr["datasets"]:
        return []
    out = []
    for name in cr["methods"]:
        m = method_config(cfg, name)
        if dataset in m["datasets"] and (not trained_only or m["kind"] != "baseline"):
            out.append(name)
    return out


def dataset_identity(cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The config a node needs to find a dataset: result folders and, for the time series, the
    manifest settings (evaluation draws manifests for other n with them)."""
    if dataset not in DATASETS:
        raise CloudRemovalError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    out: dict[str, Any] = {k: cfg[k] for k in ("archive", "resources_dir", "results_dir") if k in cfg}
    if dataset == "timeseries":
        out["timeseries"] = {"manifest": copy.deepcopy(cfg["timeseries"]["manifest"])}
    return out


def node_config(cfg: dict[str, Any], method: str, dataset: str, stage: str = "train") -> str:
    """Canonical JSON of the (valid) config one train/evaluate node runs with, and nothing more.

    Rules pass it as ``params`` *and* hand it to the CLI (``--config-json``), so it holds exactly
    what the node depends on: the dataset identity, the seed and the *effective*
    hyperparameters of this one method (paper overrides already merged); evaluation nodes also the
    evaluation settings (and the segmentation node the names of the methods it scores). Changing
    another method's hyperparameter leaves it unchanged, so Snakemake reruns only the affected nodes.
    """
    if stage not in ("train", "evaluate"):
        raise ValueError(f"stage must be 'train' or 'evaluate', got {stage!r}")
    cr = cfg["cloud_removal"]
    # resources (mem_mb, runtime, gpu) route a job; they do not change what it computes
    hp = {k: v for k, v in method_config(cfg, method).items() if k not in RESOURCE_KEYS}
    hp["datasets"] = [dataset]  # enabling the method on the other dataset changes nothing here
    node_cr: dict[str, Any] = {"seed": cr["seed"], "preset": "demo", "datasets": [dataset], "methods": {method: hp}}
    if stage == "evaluate":
        for key in ("eval", "mosaic_fallback", "cloud_bin_edges"):
            node_cr[key] = copy.deepcopy(cr[key])
        if hp["kind"] == "segmentation":
            for m in methods_for(cfg, dataset):
                mk = method_config(cfg, m)
                if m != method and mk["kind"] not in ("baseline", "segmentation"):
                    node_cr["methods"][m] = {"kind": mk["kind"], "datasets": [dataset]}
    return node_params({**dataset_identity(cfg, dataset), "cloud_removal": node_cr})


def model_dir(cfg: dict[str, Any], method: str, dataset: str) -> Path:
    return paths(cfg).cloud_removal_models / dataset / method


def open_source(cfg: dict[str, Any], dataset: str):
    p = paths(cfg)
    if dataset == "timeseries":
        return TimeSeriesSource(p.timeseries_store, p.timeseries, cfg["timeseries"]["manifest"])
    if dataset == "planetcr":
        return PlanetCRSource(p.planetcr_store)
    raise CloudRemovalError(f"unknown dataset {dataset!r}")


def set_threads(cfg: dict[str, Any]) -> None:
    torch.set_num_threads(int(os.environ.get("CLOUDYEO_THREADS") or cfg["cloud_removal"]["threads"]))


# ----------------------------------------------------------------------------- generic stage
class Stopped(RuntimeError):
    """Raised by ``stop_after_epoch`` (tests simulate a killed job with it)."""


@dataclass(frozen=True)
class NodeRun:
    """What every stage of one train node shares: its checkpoint fingerprint and the test hook
    ``stop_after_epoch``."""

    fingerprint: str
    stop_after_epoch: int | None = None


def run_stage(name: str, module: nn.Module, loss_fn: Callable[[dict, torch.device], tuple[torch.Tensor, dict]],
              batch_fn: Callable[[np.random.Generator], dict], hp: dict[str, Any], out_dir: Path,
              seed: int, device: torch.device, *, epochs: int | None = None,
              steps_per_epoch: int | None = None, lr: float | None = None, run: NodeRun) -> dict[str, Any]:
    """Train ``module`` (all its parameters) with Adam; resumable from ``out_dir/checkpoints/<name>``
    (epoch checkpoints of the node's fingerprint only: :func:`cloudyeo.training.runtime.resume_or_reset`).

    ``batch_fn(rng)`` draws one batch (a dict of CPU tensors) from a numpy generator seeded by
    (seed, stage, epoch); ``loss_fn(batch, device)`` returns (loss, {name: float}).
    """
    epochs = int(epochs if epochs is not None else hp["epochs"])
    steps = int(steps_per_epoch if steps_per_epoch is not None else hp["steps_per_epoch"])
    lr = float(lr if lr is not None else hp["lr"])
    ckpt_dir = out_dir / "checkpoints" / name
    module.to(device)
    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr,
                           weight_decay=float(hp["weight_decay"]))
    loop = EpochLoop(ckpt_dir, run.fingerprint, module, opt, epochs=epochs, first_epoch=1,
                     metrics_csv=out_dir / f"train_log_{name}.csv", normalization=NORMALIZATION, keep=2)
    if loop.state is not None:
        log.info("%s: resuming after epoch %d (%s)", name, loop.state["epoch"], loop.state["path"].name)
    stage_tag = sum(name.encode())
    for epoch in loop.epochs():
        module.train()
        rng = np.random.default_rng([int(seed), stage_tag, epoch])
        t0 = time.perf_counter()
        totals: dict[str, float] = defaultdict(float)
        bar = progress_bar(steps, f"{name} {epoch}/{epochs}", log.isEnabledFor(logging.INFO))
        for _ in range(steps):
            batch = batch_fn(rng)
            with autocast(device):
                loss, parts = loss_fn(batch, device)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                totals[k] += v
            bar.update(1)
        bar.close()
        row = {"epoch": epoch, "steps": steps, **{k: v / steps for k, v in totals.items()},
               "seconds": round(time.perf_counter() - t0, 3)}
        log.info("%s epoch %d/%d: %s", name, epoch, epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "steps")))
        loop.end_epoch(epoch, row, step=epoch * steps)
        if run.stop_after_epoch is not None and epoch >= run.stop_after_epoch and epoch < epochs:
            raise Stopped(f"{name}: stopped after epoch {epoch} (as asked)")
    rows = loop.logger.read()
    return {"epochs": epochs, "steps_per_epoch": steps,
            "final_loss": float(rows[-1]["loss"]) if rows else float("nan"),
            "seconds": float(sum(float(r["seconds"]) for r in rows))}


def _dev(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def batches(batch_size: int, item):
    """``draw(rng)``: a stacked batch of ``batch_size`` items, each ``item(rng)`` (in order, so a
    seeded generator gives the same batches)."""
    def draw(rng):
        return stack_batch([item(rng) for _ in range(batch_size)])
    return draw


# ------------------------------------------------------------------------ time-series batches
def _pick_row(rng, rows):
    """A random manifest row: (row, patch, target time)."""
    row = rows.iloc[int(rng.integers(len(rows)))]
    return row, int(row["patch"]), int(row["target"])


def _ts_rows(src: TimeSeriesSource, split: str = "train"):
    rows = src.manifest(split)
    if not len(rows):
        raise CloudRemovalError(f"the time-series manifest of split {split!r} is empty")
    return rows


def ts_single_batch(src: TimeSeriesSource, rows, hp: dict, *, with_lc: bool = False,
                    labelled: set[int] | None = None, clear_input: bool = False):
    """Batches for one-image methods: a random input of a random manifest row (+ its S1) ->
    the row's target. ``clear_input``: the input *is* the target image (classifier on clear)."""
    crop, bs = int(hp["crop"]), int(hp["batch_size"])

    def item(rng):
        row, p, tgt = _pick_row(rng, rows)
        t_in = tgt if clear_input else int(rng.choice(list(row["inputs"])))
        win = random_window(rng, src.shape, crop)
        opt, bad = finite_inputs(src.s2(p, t_in, win))
        target = src.s2(p, tgt, win)
        valid = np.isfinite(target).all(axis=0)
        a = {"optical": opt, "sar": src.s1(p, t_in, win), "mask": src.mask(p, t_in, win) | bad,
             "target": np.nan_to_num(target), "valid": valid}
        if with_lc:
            lc = src.landcover(p, win)
            if labelled is not None and p not in labelled:
                lc = np.full_like(lc, LC_IGNORE)
            a["lc"] = lc
        return augment_arrays(a, rng)
    return batches(bs, item)


def ts_sequence_batch(src: TimeSeriesSource, rows, hp: dict):
    crop, bs = int(hp["crop"]), int(hp["batch_size"])

    def item(rng):
        row, p, tgt = _pick_row(rng, rows)
        win = random_window(rng, src.shape, crop)
        s2s, masks = [], []
        for t in row["inputs"]:
            x, bad = finite_inputs(src.s2(p, int(t), win))
            s2s.append(x)
            masks.append(src.mask(p, int(t), win) | bad)
        target = src.s2(p, tgt, win)
        a = {"s2": np.stack(s2s), "s1": np.stack([src.s1(p, int(t), win) for t in row["inputs"]]),
             "mask": np.stack(masks), "target": np.nan_to_num(target),
             "valid": np.isfinite(target).all(axis=0)}
        return augment_arrays(a, rng)
    return batches(bs, item)


def ts_pretext_batch(src: TimeSeriesSource, hp: dict, patches: list[int]):
    """S2 at a centre window and S1 of one neighbour shifted by half a window (N, W, S, E)."""
    from cloudyeo.models.cloud_removal import PRETEXT_DIRECTIONS, PRETEXT_SHIFTS

    crop, bs = int(hp["crop"]), int(hp["batch_size"])
    half = crop // 2
    h, w = src.shape
    if h < 2 * crop or w < 2 * crop:
        raise CloudRemovalError(f"pretext crops of {crop} px need patches of at least {2 * crop} px")
    times = {p: [t for t in src.valid_times(p) if src.coverage(p, t) < 0.5] or src.valid_times(p)
             for p in patches}

    def item(rng):
        p = int(rng.choice(patches))
        t = int(rng.choice(times[p]))
        y0 = int(rng.integers(half, h - crop - half + 1))
        x0 = int(rng.integers(half, w - crop - half + 1))
        label = int(rng.integers(len(PRETEXT_DIRECTIONS)))
        dy, dx = PRETEXT_SHIFTS[PRETEXT_DIRECTIONS[label]]
        opt, _ = finite_inputs(src.s2(p, t, (y0, x0, crop, crop)))
        sar = src.s1(p, t, (y0 + dy * half, x0 + dx * half, crop, crop))
        # no rotation/flip here: it would change which direction the neighbour lies in
        return {"optical": opt, "sar": sar, "label": np.int64(label)}
    return batches(bs, item)


# ------------------------------------------------------------------------- Planet-CR batches
def planet_window(rng: np.random.Generator, src: PlanetCRSource, crop: int):
    """An optical window whose corners fall on whole SAR pixels (10 m = 10/3 optical pixels)."""
    h, w = src.shape
    sh, sw = src.sar_shape
    ry, rx = h / sh, w / sw  # 10/3 on Planet-CR
    unit = 10 if abs(ry - 10 / 3) < 1e-6 and abs(rx - 10 / 3) < 1e-6 else 1
    crop = max(unit, (min(crop, h, w) // unit) * unit)
    y0 = int(rng.integers(0, (h - crop) // unit + 1)) * unit
    x0 = int(rng.integers(0, (w - crop) // unit + 1)) * unit
    sar_win = (round(y0 / ry), round(x0 / rx), round(crop / ry), round(crop / rx))
    return (y0, x0, crop, crop), sar_win


def planet_batch(src: PlanetCRSource, samples: list[int], hp: dict, *, clear_input: bool = False):
    crop, bs = int(hp["crop"]), int(hp["batch_size"])

    def item(rng):
        i = int(rng.choice(samples))
        win, swin = planet_window(rng, src, crop)
        target = src.clear(i, win)
        opt, bad = finite_inputs(target if clear_input else src.cloudy(i, win))
        a = {"optical": opt, "mask": src.mask(i, win) | bad, "target": np.nan_to_num(target),
             "valid": np.isfinite(target).all(axis=0)}
        b = {"sar": src.s1(i, swin), "lc": src.landcover(i, swin)}
        # rotate/flip the optical and the 10 m arrays alike (square windows on both grids)
        k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        out = {}
        for name, arr in {**a, **b}.items():
            arr = np.rot90(arr, k, axes=(-2, -1))
            out[name] = np.ascontiguousarray(arr[..., ::-1] if flip else arr)
        return out
    return batches(bs, item)


# ------------------------------------------------------------------------------------ methods
def _build(spec: dict):
    from cloudyeo.models.cloud_removal import build_cr_model

    return build_cr_model(spec)


def model_spec(kind: str, hp: dict, dataset: str, *, n_classes: int | None = None) -> dict:
    """The constructor spec of a method's main network."""
    bands, sar = (13, 2) if dataset == "timeseries" else (4, 2)
    if kind == "dsen2cr":
        return {"arch": "dsen2cr", "optical_bands": bands, "sar_bands": sar, "width": hp["width"],
                "blocks": hp["blocks"], "res_scale": hp["res_scale"], "use_sar": hp["use_sar"]}
    if kind == "seq2point":
        return {"arch": "seq2point", "optical_bands": bands, "sar_bands": sar, "use_sar": hp["use_sar"],
                "use_mask": hp["use_mask"], "width": hp["width"], "blocks": hp["blocks"],
                "temporal_layers": hp["temporal_layers"]}
    if kind == "seq2seq":
        return {"arch": "unet3d", "in_chans": sar, "out_chans": bands, "width": hp["width"],
                "depth": hp["depth"]}
    if kind == "hcrlc":
        return {"arch": "hcrlc", "optical_bands": bands, "sar_bands": sar, "n_classes": n_classes or TS_CLASSES,
                "width": hp["width"], "depth": hp["depth"], "tasks": list(hp["tasks"]),
                "use_sar": hp["use_sar"], "shared_decoder": hp["shared_decoder"]}
    if kind == "hcr_then_lc":
        return {"arch": "hcrlc", "optical_bands": bands, "sar_bands": sar, "n_classes": n_classes or TS_CLASSES,
                "width": hp["width"], "depth": hp["depth"], "tasks": ["cr"], "use_sar": hp["use_sar"]}
    if kind == "aligncr":
        return {"arch": "aligncr", "optical_bands": bands, "sar_bands": sar, "width": hp["width"],
                "blocks": hp["blocks"], "use_sar": hp["use_sar"], "align": hp["align"]}
    if kind == "segmentation":
        return {"arch": "segunet", "in_chans": bands, "n_classes": n_classes or 6, "width": hp["width"],
                "depth": hp["depth"]}
    raise CloudRemovalError(f"no network for method kind {kind!r}")


def _finish(out_dir: Path, model: nn.Module, info: dict, name: str = "model.pt", fingerprint: str | None = None) -> Path:
    extra = {k: v for k, v in info.items() if isinstance(v, (int, float, str, list, dict))}
    if fingerprint is not None:
        extra[FINGERPRINT_KEY] = fingerprint
    return save_checkpoint(out_dir / name, model, epoch=info["epochs"], normalization=NORMALIZATION, extra=extra)


def _train_dsen2cr(src, dataset, hp, out_dir, seed, device, run):
    from cloudyeo.models.cloud_removal import carl_loss

    model = _build(model_spec("dsen2cr", hp, dataset))
    if dataset == "timeseries":
        batch = ts_single_batch(src, _ts_rows(src), hp)
    else:
        batch = planet_batch(src, src.samples("train"), hp)
    lam = float(hp["carl_lambda"])

    def loss_fn(b, dev):
        b = _dev(b, dev)
        sar = b["sar"]
        if sar.shape[-2:] != b["optical"].shape[-2:]:
            sar = F.interpolate(sar, size=b["optical"].shape[-2:], mode="bilinear", align_corners=False)
        pred = model(b["optical"], sar)
        loss = carl_loss(pred, b["optical"], b["target"], b["mask"], lam, b["valid"])
        return loss, {}

    info = run_stage("main", model, loss_fn, batch, hp, out_dir, seed, device, run=run)
    return model, info


def _train_seq2point(src, dataset, hp, out_dir, seed, device, run):
    from cloudyeo.models.cloud_removal import seq2point_loss

    if dataset != "timeseries":
        raise CloudRemovalError("seq2point needs a time series (dataset 'timeseries')")
    model = _build(model_spec("seq2point", hp, dataset))
    batch = ts_sequence_batch(src, _ts_rows(src), hp)
    l1w, pw = float(hp["l1_weight"]), float(hp["perceptual_weight"])

    def loss_fn(b, dev):
        b = _dev(b, dev)
        pred = model(b["s2"], b["s1"], b["mask"])
        return seq2point_loss(pred, b["target"], b["valid"], l1w, pw), {}

    info = run_stage("main", model, loss_fn, batch, hp, out_dir, seed, device, run=run)
    return model, info


def _pretext_stage(src, dataset, hp, out_dir, seed, device, run):
    from cloudyeo.models.cloud_removal import build_cr_model

    spec = model_spec("hcrlc", hp, dataset)
    net = build_cr_model({"arch": "pretext", "optical_bands": spec["optical_bands"],
                          "sar_bands": spec["sar_bands"], "width": spec["width"], "depth": spec["depth"]})
    unit = 2 ** (spec["depth"] + 1)
    if int(hp["crop"]) % unit:
        raise CloudRemovalError(f"pretext crops must be multiples of {unit} px (crop {hp['crop']})")
    batch = ts_pretext_batch(src, {**hp, "batch_size": hp["pretext_batch_size"] or hp["batch_size"]},
                             src.patches("train"))

    def loss_fn(b, dev):
        b = _dev(b, dev)
        logits = net(b["optical"], b["sar"])
        loss = F.cross_entropy(logits, b["label"])
        return loss, {"accuracy": float((logits.argmax(1) == b["label"]).float().mean())}

    info = run_stage("pretext", net, loss_fn, batch, hp, out_dir, seed, device,
                     epochs=int(hp["pretext_epochs"]), run=run)
    return net, info


def _train_hcrlc(src, dataset, hp, out_dir, seed, device, run):
    from cloudyeo.models.cloud_removal import UncertaintyWeighting, carl_loss

    if dataset != "timeseries":
        raise CloudRemovalError("HCR&LC is set up on the time series (its land cover is BEN19)")
    model = _build(model_spec("hcrlc", hp, dataset))
    info: dict[str, Any] = {}
    if int(hp["pretext_epochs"]) > 0:
        if not getattr(model, "use_sar", True):
            raise CloudRemovalError("pretext pretraining pairs S2 with S1: it needs use_sar")
        net, pinfo = _pretext_stage(src, dataset, hp, out_dir, seed, device, run)
        model.encoder.load_state_dict(net.encoder.state_dict())
        info["pretext"] = pinfo
    labelled = None
    frac = float(hp["label_fraction"])
    if frac < 1.0:
        train_patches = src.patches("train")
        k = max(1, round(frac * len(train_patches)))
        labelled = {int(p) for p in np.random.default_rng(seed).choice(train_patches, k, replace=False)}
        info["labelled_patches"] = sorted(labelled)
    tasks = tuple(model.tasks)
    batch = ts_single_batch(src, _ts_rows(src), hp, with_lc="lc" in tasks, labelled=labelled)
    weighting = hp["weighting"]
    container = nn.ModuleDict({"net": model})
    if weighting == "uncertainty" and len(tasks) > 1:
        container["weighting"] = UncertaintyWeighting(len(tasks))
    weights = [float(w) for w in hp["task_weights"] or [1.0] * len(tasks)]
    lam = float(hp["carl_lambda"])

    def loss_fn(b, dev):
        b = _dev(b, dev)
        out = model(b["optical"], b["sar"])
        losses, parts = [], {}
        if "cr" in tasks:
            lcr = carl_loss(out["cr"], b["optical"], b["target"], b["mask"], lam, b["valid"])
            losses.append(lcr)
            parts["loss_cr"] = float(lcr.detach())
        if "lc" in tasks:
            if bool((b["lc"] != LC_IGNORE).any()):
                llc = F.cross_entropy(out["lc"], b["lc"], ignore_index=LC_IGNORE)
            else:  # a batch without any label: no LC signal (keeps the graph connected)
                llc = out["lc"].sum() * 0.0
            losses.append(llc)
            parts["loss_lc"] = float(llc.detach())
        if "weighting" in container:
            total = container["weighting"](losses)
        else:
            total = sum(w * loss for w, loss in zip(weights, losses))
        return total, parts

    main = run_stage("main", container, loss_fn, batch, hp, out_dir, seed, device, run=run)
    info.update(main)
    if "weighting" in container:
        info["log_vars"] = [float(v) for v in container["weighting"].log_vars.detach()]
    return model, info


def _train_hcr_then_lc(src, dataset, hp, out_dir, seed, device, run):
    """Stage 1: CR-only U-Net (CARL). Stage 2: land-cover U-Net on clear images."""
    from cloudyeo.models.cloud_removal import carl_loss

    if dataset != "timeseries":
        raise CloudRemovalError("HCR-then-classify is set up on the time series")
    cr = _build(model_spec("hcr_then_lc", hp, dataset))
    rows = _ts_rows(src)
    lam = float(hp["carl_lambda"])

    def cr_loss(b, dev):
        b = _dev(b, dev)
        pred = cr(b["optical"], b["sar"])["cr"]
        return carl_loss(pred, b["optical"], b["target"], b["mask"], lam, b["valid"]), {}

    info = {"cr": run_stage("cr", cr, cr_loss, ts_single_batch(src, rows, hp), hp, out_dir, seed, device,
                            run=run)}
    clf = _build(model_spec("segmentation", hp, dataset, n_classes=TS_CLASSES))

    def lc_loss(b, dev):
        b = _dev(b, dev)
        return F.cross_entropy(clf(b["target"]), b["lc"], ignore_index=LC_IGNORE), {}

    info["lc"] = run_stage("lc", clf, lc_loss, ts_single_batch(src, rows, hp, with_lc=True, clear_input=True),
                           hp, out_dir, seed, device, run=run)
    _finish(out_dir, clf, info["lc"], name="classifier.pt")
    info["epochs"] = info["cr"]["epochs"]
    info["seconds"] = info["cr"]["seconds"] + info["lc"]["seconds"]
    return cr, info


def _train_aligncr(src, dataset, hp, out_dir, seed, device, run):
    from cloudyeo.models.cloud_removal import weighted_charbonnier

    if dataset != "planetcr":
        raise CloudRemovalError("Align-CR is set up on Planet-CR (3 m optical + 10 m SAR)")
    model = _build(model_spec("aligncr", hp, dataset))
    batch = planet_batch(src, src.samples("train"), hp)
    w, eps, alpha = (float(hp[k]) for k in ("charbonnier_w", "charbonnier_eps", "charbonnier_alpha"))

    def loss_fn(b, dev):
        b = _dev(b, dev)
        pred = model(b["optical"], b["sar"])
        return weighted_charbonnier(pred, b["target"], b["mask"], w, eps, alpha, b["valid"]), {}

    info = run_stage("main", model, loss_fn, batch, hp, out_dir, seed, device, run=run)
    return model, info


def _train_segmentation(src, dataset, hp, out_dir, seed, device, run):
    if dataset != "planetcr":
        raise CloudRemovalError("the semantic-recovery segmentation model is set up on Planet-CR")
    model = _build(model_spec("segmentation", hp, dataset, n_classes=src.n_classes))
    batch = planet_batch(src, src.samples("train"), hp, clear_input=True)

    def loss_fn(b, dev):
        b = _dev(b, dev)
        logits = model.logits_at(b["optical"], tuple(b["lc"].shape[-2:]))
        if not bool((b["lc"] != LC_IGNORE).any()):
            return logits.sum() * 0.0, {}
        return F.cross_entropy(logits, b["lc"], ignore_index=LC_IGNORE), {}

    info = run_stage("main", model, loss_fn, batch, hp, out_dir, seed, device, run=run)
    return model, info


# ---------------------------------------------------------------- seq2seq internal learning
def seq2seq_series(src: TimeSeriesSource, patch: int, split: str = "test",
                   max_len: int | None = None) -> tuple[list[int], int]:
    """The sequence fitted for one test patch: the union of its manifest inputs plus the target
    time point (whose S2 is withheld), sorted in time; with ``max_len``, only the target and the
    ``max_len - 1`` union time points closest to it."""
    rows = src.manifest(split)
    rows = rows[rows["patch"] == patch]
    if not len(rows):
        raise CloudRemovalError(f"patch {patch} has no {split} manifest row")
    target = int(rows["target"].iloc[0])
    others = sorted({int(t) for ins in rows["inputs"] for t in ins} - {target})
    if max_len is not None and len(others) > max_len - 1:
        others = sorted(sorted(others, key=lambda t: (abs(t - target), t))[: max_len - 1])
    return sorted([*others, target]), target


def seq2seq_inputs(src: TimeSeriesSource, patch: int, times: list[int], hp: dict, seed: int) -> np.ndarray:
    """(2, T, H, W): the S1 sequence, or fixed Gaussian noise for ``input: noise``."""
    from cloudyeo.models.cloud_removal import noise_input

    h, w = src.shape
    if hp["input"] == "noise":
        return noise_input((2, len(times), h, w), seed * 1000 + patch, float(hp["noise_std"])).numpy()
    return np.stack([src.s1(patch, t) for t in times], axis=1)


def _train_seq2seq(src, dataset, hp, out_dir, seed, device, run):
    if dataset != "timeseries":
        raise CloudRemovalError("seq2seq internal learning needs a time series")
    split = hp["split"]
    patches = sorted({int(p) for p in src.manifest(split)["patch"]})
    crop, bs = int(hp["crop"]), int(hp["batch_size"])
    info: dict[str, Any] = {"patches": {}, "split": split}
    last = None
    for patch in patches:
        final = out_dir / "patches" / f"patch-{patch:04d}.pt"
        times, target = seq2seq_series(src, patch, split, hp["max_len"])
        done = load_checkpoint(final)["extra"] if final.exists() else {}
        if FINGERPRINT_KEY in done and done.pop(FINGERPRINT_KEY) == run.fingerprint:  # this patch is trained (same params and code)
            info["patches"][str(patch)] = done
            continue
        model = _build(model_spec("seq2seq", hp, dataset))
        x = seq2seq_inputs(src, patch, times, hp, seed)
        y = np.stack([src.s2(patch, t) for t in times], axis=1)  # (13, T, H, W), NaN nodata
        clear = np.stack([~src.mask(patch, t) for t in times])  # (T, H, W)
        clear &= np.isfinite(y).all(axis=0)
        clear[times.index(target)] = False  # the target's S2 is never seen
        y = np.nan_to_num(y)
        if clear.any():  # start from the series' mean clear spectrum
            model.set_output_prior(torch.from_numpy(y[:, clear].mean(axis=1)))

        def item(rng, x=x, y=y, clear=clear):
            y0, x0, ch, cw = random_window(rng, src.shape, crop)
            sl = (slice(None), slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
            return augment_arrays({"x": x[sl], "y": y[sl], "clear": clear[sl[1:]]}, rng)

        draw = batches(bs, item)

        from cloudyeo.models.cloud_removal import clear_pixel_l1

        def loss_fn(b, dev, model=model):
            b = _dev(b, dev)
            return clear_pixel_l1(model(b["x"]), b["y"], b["clear"]), {}

        pinfo = run_stage(f"patch-{patch:04d}", model, loss_fn, draw, hp, out_dir, seed + patch, device,
                          run=run)
        pinfo.update(times=times, target=target)
        _finish(out_dir / "patches", model, pinfo, name=final.name, fingerprint=run.fingerprint)
        info["patches"][str(patch)] = pinfo
        last = model
    if last is None:  # every patch was done before: rebuild one for model.pt's spec
        last = _build(model_spec("seq2seq", hp, dataset))
    info["epochs"] = int(hp["epochs"])
    info["seconds"] = float(sum(v["seconds"] for v in info["patches"].values()))
    return last, info


def fingerprint(cfg: dict[str, Any], method: str, dataset: str) -> str:
    """The checkpoint fingerprint of a train node: its params and the code version of its kind."""
    kind = method_config(cfg, method)["kind"]
    return checkpoint_fingerprint(node_config(cfg, method, dataset), f"cloud_removal_{kind}")


_TRAINERS = {
    "dsen2cr": _train_dsen2cr,
    "seq2point": _train_seq2point,
    "seq2seq": _train_seq2seq,
    "hcrlc": _train_hcrlc,
    "hcr_then_lc": _train_hcr_then_lc,
    "aligncr": _train_aligncr,
    "segmentation": _train_segmentation,
}


def train(cfg: dict[str, Any], method: str, dataset: str, *, out_dir: str | Path | None = None,
          stop_after_epoch: int | None = None) -> Path:
    """Train one (method, dataset) node; returns the path of ``model.pt`` (see the module doc)."""
    hp = method_config(cfg, method)
    kind = hp["kind"]
    if dataset not in hp["datasets"]:
        raise CloudRemovalError(f"method {method!r} is not configured for dataset {dataset!r} "
                                f"(cloud_removal.methods.{method}.datasets: {hp['datasets']})")
    if kind == "baseline":
        raise CloudRemovalError(f"{method!r} is a baseline: nothing to train")
    out = Path(out_dir) if out_dir is not None else model_dir(cfg, method, dataset)
    run = NodeRun(fingerprint(cfg, method, dataset), stop_after_epoch)
    set_threads(cfg)
    seed = int(cfg["cloud_removal"]["seed"])
    seed_everything(seed)
    device = select_device(job_device(cfg["cloud_removal"]["device"]))
    src = open_source(cfg, dataset)
    t0 = time.perf_counter()
    model, info = _TRAINERS[kind](src, dataset, hp, out, seed, device, run)
    info.update(method=method, dataset=dataset, kind=kind, hparams=hp,
                wall_seconds=round(time.perf_counter() - t0, 2), device=str(device),
                threads=torch.get_num_threads())
    model.to("cpu")
    path = _finish(out, model, info)
    (out / "train_summary.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
    log.info("%s on %s trained in %.1f s -> %s", method, dataset, info["wall_seconds"], path)
    return path


def load_trained(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a trained network from its ``model.pt`` (spec inside); returns (model, state)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = _build(state["model_spec"])
    load_checkpoint(path, model)
    model.eval()
    return model, state
