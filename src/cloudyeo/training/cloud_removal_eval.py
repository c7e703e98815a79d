"""Evaluation of one (method, dataset) node on the test split, on full images.

``evaluate(cfg, method, dataset)`` writes, under ``results/eval/cloud_removal/<dataset>/<method>/``:

* ``records.csv`` — one row per test sample (columns ``method``, ``dataset``, ids, cloud
  fractions, then the metrics): ``nrmse_all``, ``nrmse_cloudy``, ``nrmse_clear``, ``psnr``,
  ``ssim``, ``sam_deg``, ``mae`` and the same per region (``psnr_cloudy``, ``mae_clear``, ...);
  land-cover methods add ``lc_oa`` and ``lc_f1``. Metric definitions: :mod:`cloudyeo.metrics`.
  Regions (:func:`cloudyeo.metrics.cloud_region_masks`): *cloudy* = cloudy in every input,
  *clear* = visible in at least one input; pixels where the target has no data are never scored.
  Every region is scored a second time without the pixels cloudy or shadowed in the
  *target* (AllClear's rule; keys ``*_targetclear``, e.g. ``nrmse_cloudy_targetclear``), with the
  target's flagged fraction in ``target_cloud_fraction``.
* ``records_per_class.csv`` (Planet-CR) — the same metrics per (sample, land-cover class);
* ``lc_confusion.npz`` (land-cover methods) — per-sample confusion matrices, so F1 can be pooled
  per cloud bin; ``predictions.npz`` (Planet-CR) — every test prediction, for semantic recovery;
* ``panels.npz`` — RGB of the inputs, prediction and target of a few samples (the evaluate
  command draws them as ``panel.png`` with :func:`cloudyeo.report.cloud_removal.method_panel`);
* ``summary.json`` — means over the test set and the run time.

Inference runs on the whole image with a sliding window (``cloud_removal.eval.window`` /
``overlap``), the overlapping predictions blended with a cosine ramp, never on a centre crop.

Time series: the test manifest (``manifest_test.parquet``); multi-temporal methods (baselines,
seq2point) are also scored with manifests of every ``eval.n_inputs`` (Table II), drawn from
``index.parquet`` with the store's manifest settings. One-image methods (DSen2-CR, HCR&LC) take
the least cloudy of the sample's inputs with its S1. Planet-CR: ``split == test``.
The semantic-recovery node (``kind: segmentation``) scores the segmentation model on the clear
images, the cloudy images and every Planet-CR method's predictions (mIoU, PA, by cloud bin).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cloudyeo.atomic import write_csv
from cloudyeo.config import paths
from cloudyeo.metrics import (
    cloud_region_masks,
    confusion_matrix,
    f1_scores,
    region_image_metrics,
    segmentation_scores,
)
from cloudyeo.models import baselines
from cloudyeo.training.cloud_removal import (
    TS_CLASSES,
    CloudRemovalError,
    load_trained,
    method_config,
    methods_for,
    model_dir,
    open_source,
    seq2seq_inputs,
    set_threads,
)
from cloudyeo.training.cloud_removal_data import LC_IGNORE, finite_inputs

log = logging.getLogger(__name__)

METRICS = ("nrmse", "psnr", "ssim", "sam", "mae")
REGIONS = ("all", "cloudy", "clear")


def eval_dir(cfg: dict[str, Any], method: str, dataset: str) -> Path:
    return paths(cfg).cloud_removal_eval / dataset / method


# ----------------------------------------------------------------------------- sliding window
def window_starts(size: int, window: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of the fewest windows of ``window`` px that cover ``[0, size)`` with
    neighbours overlapping by at least ``overlap`` px, spread evenly from 0 to ``size - window``;
    starts are rounded to multiples of ``align`` (the last one is ``size - window``, itself a
    multiple when ``size`` and ``window`` are)."""
    if size <= window:
        return [0]
    if overlap >= window:
        raise ValueError(f"overlap ({overlap}) must be smaller than the window ({window})")
    n = max(2, math.ceil((size - overlap) / (window - overlap)))
    last = size - window
    starts = sorted({min(last, round(k * last / (n - 1) / align) * align) for k in range(n)})
    starts[-1] = last
    return starts


def blend_weights(h: int, w: int) -> np.ndarray:
    """(h, w) cosine ramp, highest in the centre, > 0 everywhere."""
    def ramp(n):
        return 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 0.5) / n) + 1e-3
    return np.outer(ramp(h), ramp(w)).astype(np.float64)


def sliding_window(predict: Callable[[tuple[int, int, int, int]], np.ndarray], shape: tuple[int, int],
                   window: int, overlap: int, align: int = 1) -> np.ndarray:
    """Blend ``predict((y0, x0, h, w)) -> (C, h, w)`` over windows covering an image of ``shape``."""
    h, w = shape
    wy, wx = min(window, h), min(window, w)
    acc = None
    weight = np.zeros((h, w))
    ramp = blend_weights(wy, wx)
    for y0 in window_starts(h, wy, overlap, align):
        for x0 in window_starts(w, wx, overlap, align):
            out = np.asarray(predict((y0, x0, wy, wx)), dtype=np.float64)
            if acc is None:
                acc = np.zeros((out.shape[0], h, w))
            acc[:, y0:y0 + wy, x0:x0 + wx] += out * ramp
            weight[y0:y0 + wy, x0:x0 + wx] += ramp
    if acc is None:
        raise ValueError(f"no window covers an image of shape {shape}")
    return acc / weight


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


# ----------------------------------------------------------------------------------- metrics
TARGET_CLEAR = "_targetclear"


def with_target_clear(regions: dict[str, np.ndarray], target_flagged: np.ndarray) -> dict[str, np.ndarray]:
    """The regions, plus each without the target's cloudy/shadowed pixels (``<region>_targetclear``)."""
    return {**regions, **{f"{r}{TARGET_CLEAR}": m & ~target_flagged for r, m in regions.items()}}


def region_metrics(pred: np.ndarray, target: np.ndarray, valid: np.ndarray,
                   regions: dict[str, np.ndarray]) -> dict[str, float]:
    """All metrics on every region (intersected with ``valid``); keys ``nrmse_all``,
    ``nrmse_cloudy``, ``psnr``, ``psnr_cloudy``, ``sam_deg``, ``sam_deg_clear``, ...
    (each per-pixel map is computed once for all regions)."""
    per_region = region_image_metrics(pred, target, {r: m & valid for r, m in regions.items()}, metrics=METRICS)
    out: dict[str, float] = {}
    for region, vals in per_region.items():
        for name in METRICS:
            col = "sam_deg" if name == "sam" else name
            key = f"{col}_{region}" if (region != "all" or name == "nrmse") else col
            out[key] = vals[name]
    return out


def train_classes(src) -> np.ndarray:
    """Land-cover classes that occur in the training split's patches (ignore value excluded)."""
    found: set[int] = set()
    for patch in src.patches("train"):
        found.update(int(c) for c in np.unique(src.landcover(patch)) if c != LC_IGNORE)
    return np.array(sorted(found), dtype=np.int64)


# ------------------------------------------------------------------------------ time series
class _TSPredictor:
    """Prediction for one time-series sample: ``(pred (13, H, W) | None, lc (H, W) | None, used_t)``."""

    def __init__(self, cfg, method, hp, src):
        self.kind, self.hp, self.src = hp["kind"], hp, src
        ev = cfg["cloud_removal"]["eval"]
        self.window, self.overlap = int(ev["window"]), int(ev["overlap"])
        self.fallback = cfg["cloud_removal"]["mosaic_fallback"]
        self.seed = int(cfg["cloud_removal"]["seed"])
        mdir = model_dir(cfg, method, "timeseries")
        self.model = self.classifier = None
        self.series: dict[int, Any] = {}
        if self.kind == "seq2seq":
            self.mdir = mdir
        elif self.kind != "baseline":
            self.model, _ = load_trained(mdir / "model.pt")
            if self.kind == "hcr_then_lc":
                self.classifier, _ = load_trained(mdir / "classifier.pt")

    def _seq2seq_prediction(self, patch: int, target: int) -> np.ndarray:
        if patch not in self.series:
            path = self.mdir / "patches" / f"patch-{patch:04d}.pt"
            if not path.exists():
                raise CloudRemovalError(f"no internal-learning model for test patch {patch}: {path}")
            model, state = load_trained(path)
            times = [int(t) for t in state["extra"]["times"]]
            x = seq2seq_inputs(self.src, patch, times, self.hp, self.seed)
            depth = int(state["model_spec"].get("depth", 2))
            align = 2**depth

            def predict(win):
                y0, x0, h, w = win
                with torch.inference_mode():
                    return _np(model(_t(x[None, :, :, y0:y0 + h, x0:x0 + w]))[0])
            # window sides must be divisible by 2**depth
            window = max(align, (self.window // align) * align)
            flat = sliding_window(lambda win: predict(win).reshape(-1, win[2], win[3]),
                                  self.src.shape, window, self.overlap, align)
            self.series[patch] = (times, flat.reshape(-1, len(times), *self.src.shape))
        times, seq = self.series[patch]
        if target not in times:
            raise CloudRemovalError(f"patch {patch}: target {target} not in the fitted series {times}")
        return seq[:, times.index(target)]

    def __call__(self, patch: int, inputs: list[int], target: int, x: np.ndarray, masks: np.ndarray):
        src, kind = self.src, self.kind
        if kind == "baseline":
            which = self.hp["baseline"]
            if which == "least_cloudy":
                t = inputs[baselines.least_cloudy_index(masks)]
                return baselines.least_cloudy(x, masks), None, t
            if which == "mosaicing":
                return baselines.mosaicing(x, masks, self.fallback), None, None
            t = inputs[baselines.least_cloudy_index(masks)]  # identity: the least cloudy input as is
            return baselines.identity(x[inputs.index(t)]), None, t
        if kind == "seq2seq":
            return self._seq2seq_prediction(patch, target), None, None
        if kind == "seq2point":
            s1 = np.stack([src.s1(patch, t) for t in inputs])

            def predict_series(win):
                y0, x0, h, w = win
                sl = (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
                with torch.inference_mode():
                    out = self.model(_t(x[sl])[None], _t(s1[sl])[None],
                                     torch.from_numpy(masks[:, y0:y0 + h, x0:x0 + w])[None])
                return _np(out[0])
            return sliding_window(predict_series, src.shape, self.window, self.overlap), None, None
        # one-image methods: the least cloudy input and its S1
        i = baselines.least_cloudy_index(masks)
        t = inputs[i]
        opt, sar = x[i], src.s1(patch, t)
        n_cls = TS_CLASSES

        def predict(win):
            y0, x0, h, w = win
            o = _t(opt[:, y0:y0 + h, x0:x0 + w])[None]
            s = _t(sar[:, y0:y0 + h, x0:x0 + w])[None]
            with torch.inference_mode():
                if kind == "dsen2cr":
                    return _np(self.model(o, s)[0])
                out = self.model(o, s)
                parts = []
                if "cr" in out:
                    parts.append(out["cr"][0])
                if "lc" in out:
                    parts.append(torch.softmax(out["lc"][0], 0))
                elif self.classifier is not None:
                    parts.append(torch.softmax(self.classifier(out["cr"])[0], 0))
                return _np(torch.cat(parts, 0))
        full = sliding_window(predict, src.shape, self.window, self.overlap)
        if kind == "dsen2cr":
            return full, None, t
        has_cr = "cr" in self.model.tasks
        pred = full[:13] if has_cr else None
        probs = full[13:] if has_cr else full
        lc = probs.argmax(0) if probs.shape[0] == n_cls else None
        return pred, lc, t


def _ts_records(cfg, method, hp, src, out_dir) -> tuple[list[dict], dict, dict, np.ndarray | None]:
    kind = hp["kind"]
    store_n = len(src.manifest("test")["inputs"].iloc[0])
    multi = kind == "seq2point" or (kind == "baseline" and hp["baseline"] in ("least_cloudy", "mosaicing"))
    ns = sorted({store_n, *cfg["cloud_removal"]["eval"]["n_inputs"]}) if multi else [store_n]
    predictor = _TSPredictor(cfg, method, hp, src)
    n_panels = int(cfg["cloud_removal"]["eval"]["panels"])
    records: list[dict] = []
    cms: dict[tuple[int, str], np.ndarray] = {}
    panels: dict[str, dict[str, np.ndarray]] = {}
    seen = train_classes(src) if kind in ("hcrlc", "hcr_then_lc") else None
    for n in ns:
        rows = src.manifest("test", n)
        for _, row in rows.iterrows():
            patch, inputs, target = int(row["patch"]), [int(t) for t in row["inputs"]], int(row["target"])
            xs, ms = [], []
            for t in inputs:
                a, bad = finite_inputs(src.s2(patch, t))
                xs.append(a)
                ms.append(src.mask(patch, t) | bad)
            x, masks = np.stack(xs), np.stack(ms)
            y = src.s2(patch, target)
            valid = np.isfinite(y).all(axis=0)
            y = np.nan_to_num(y)
            cloudy, clear = cloud_region_masks(masks)
            target_flagged = src.mask(patch, target)
            pred, lc, used_t = predictor(patch, inputs, target, x, masks)
            rec: dict[str, Any] = {
                "method": method, "dataset": "timeseries", "sample_id": row["sample_id"], "patch": patch,
                "patch_id": row.get("patch_id", str(patch)), "n_inputs": n,
                "inputs": " ".join(map(str, inputs)), "target": target,
                "cloud_fraction": float(masks.mean()), "cloudy_fraction": float(cloudy.mean()),
                "target_cloud_fraction": float(target_flagged.mean()), "input_time": used_t,
                "input_cloud_fraction": float(masks[inputs.index(used_t)].mean()) if used_t is not None
                else float(masks.mean()),
            }
            if pred is not None:
                regions = {"all": np.ones_like(valid), "cloudy": cloudy, "clear": clear}
                rec.update(region_metrics(pred, y, valid, with_target_clear(regions, target_flagged)))
            if lc is not None:
                cm = confusion_matrix(src.landcover(patch), lc, TS_CLASSES, ignore_index=LC_IGNORE)
                cms[(n, row["sample_id"])] = cm
                rec.update(f1_scores(cm, seen))
            records.append(rec)
            if n == store_n and len(panels) < n_panels:
                rgb = list(src.rgb)
                panels[row["sample_id"]] = {
                    "inputs": x[:, rgb].astype(np.float16), "input_masks": masks,
                    "target": y[rgb].astype(np.float16),
                    "prediction": (pred[rgb] if pred is not None else np.full_like(y[rgb], np.nan)).astype(np.float16),
                    **({"lc": lc.astype(np.uint8), "lc_truth": src.landcover(patch).astype(np.uint8)}
                       if lc is not None else {}),
                }
    return records, cms, panels, seen


# -------------------------------------------------------------------------------- Planet-CR
def _planet_predict(kind: str, model, src, i: int, window: int, overlap: int) -> np.ndarray:
    cloudy, _ = finite_inputs(src.cloudy(i))
    if kind == "baseline":
        return cloudy.astype(np.float64)
    sar = src.s1(i)
    h, w = src.shape
    ry, rx = h / src.sar_shape[0], w / src.sar_shape[1]
    align = 10 if abs(ry - 10 / 3) < 1e-6 and abs(rx - 10 / 3) < 1e-6 else 1
    window = max(align, (window // align) * align)

    def predict(win):
        y0, x0, hh, ww = win
        o = _t(cloudy[:, y0:y0 + hh, x0:x0 + ww])[None]
        sy, sx = round(y0 / ry), round(x0 / rx)
        s = _t(sar[:, sy:sy + round(hh / ry), sx:sx + round(ww / rx)])[None]
        with torch.inference_mode():
            if kind == "dsen2cr":
                s = F.interpolate(s, size=(hh, ww), mode="bilinear", align_corners=False)
            return _np(model(o, s)[0])
    return sliding_window(predict, src.shape, window, overlap, align)


def _planet_records(cfg, method, hp, src, out_dir) -> tuple[list[dict], list[dict], dict, np.ndarray]:
    ev = cfg["cloud_removal"]["eval"]
    model = None if hp["kind"] == "baseline" else load_trained(model_dir(cfg, method, "planetcr") / "model.pt")[0]
    records: list[dict] = []
    per_class: list[dict] = []
    panels: dict[str, dict[str, np.ndarray]] = {}
    preds: list[np.ndarray] = []
    for i in src.samples("test"):
        pred = _planet_predict(hp["kind"], model, src, i, int(ev["window"]), int(ev["overlap"]))
        y = src.clear(i)
        valid = np.isfinite(y).all(axis=0)
        y = np.nan_to_num(y)
        mask = src.mask(i)
        target_flagged = src.target_mask(i)
        regions = {"all": np.ones_like(valid), "cloudy": mask, "clear": ~mask}
        rec = {"method": method, "dataset": "planetcr", "sample": i, "sample_id": src.sample_id(i),
               "cloud_fraction": src.cloud_fraction(i), "masked_fraction": float(mask.mean()),
               "target_cloud_fraction": float(target_flagged.mean()),
               **region_metrics(pred, y, valid, with_target_clear(regions, target_flagged))}
        records.append(rec)
        lc = src.landcover(i)
        lc_hi = np.asarray(F.interpolate(torch.from_numpy(lc.astype(np.float32))[None, None],
                                         size=src.shape, mode="nearest")[0, 0]).astype(np.int64)
        classes = [int(k) for k in np.unique(lc_hi) if k != LC_IGNORE]
        per_mask = region_image_metrics(pred, y, {str(k): (lc_hi == k) & valid for k in classes}, metrics=METRICS)
        for k in classes:
            vals = per_mask[str(k)]
            per_class.append({"method": method, "dataset": "planetcr", "sample": i, "class": k,
                              "class_name": src.class_names[k] if k < len(src.class_names) else str(k),
                              "pixel_fraction": float((lc_hi == k).mean()),
                              **{("sam_deg" if m == "sam" else m): vals[m] for m in METRICS}})
        preds.append(pred.astype(np.float16))
        if len(panels) < int(ev["panels"]):
            rgb = list(src.rgb)
            panels[str(i)] = {"inputs": np.nan_to_num(src.cloudy(i))[rgb][None].astype(np.float16),
                              "input_masks": mask[None], "target": y[rgb].astype(np.float16),
                              "prediction": pred[rgb].astype(np.float16)}
    return records, per_class, panels, np.stack(preds) if preds else np.zeros((0,))


def _semantic_recovery(cfg, method, src, out_dir) -> list[dict]:
    """Segmentation model on clear, cloudy and each method's predictions: one row per (source, sample)."""
    model, state = load_trained(model_dir(cfg, method, "planetcr") / "model.pt")
    ev = cfg["cloud_removal"]["eval"]
    samples = src.samples("test")
    sources: dict[str, Callable[[int, int], np.ndarray]] = {
        "clear": lambda j, i: np.nan_to_num(src.clear(i)),
        "cloudy": lambda j, i: np.nan_to_num(src.cloudy(i)),
    }
    for m in methods_for(cfg, "planetcr"):
        # the identity baseline's images are the cloudy ones, scored above as "cloudy"
        if method_config(cfg, m)["kind"] in ("segmentation", "baseline") or m in sources:
            continue
        path = eval_dir(cfg, m, "planetcr") / "predictions.npz"
        if not path.exists():
            raise CloudRemovalError(f"predictions of {m} missing: {path} (run its evaluate node first)")
        data = np.load(path)
        order = {int(s): k for k, s in enumerate(data["samples"])}
        preds = data["predictions"]
        def stored_prediction(j: int, i: int, preds: np.ndarray = preds, order: dict[int, int] = order) -> np.ndarray:
            return preds[order[i]].astype(np.float32)

        sources[m] = stored_prediction
    n_cls = src.n_classes
    records, cms = [], {}
    for name, get in sources.items():
        for j, i in enumerate(samples):
            img = get(j, i)
            lc = src.landcover(i)
            depth = int(state["model_spec"].get("depth", 3))

            def predict(win, img=img):
                y0, x0, h, w = win
                with torch.inference_mode():
                    return _np(torch.softmax(model(_t(img[:, y0:y0 + h, x0:x0 + w])[None])[0], 0))
            window = max(2**depth, int(ev["window"]))
            probs = sliding_window(predict, img.shape[-2:], window, int(ev["overlap"]))
            probs = F.interpolate(torch.from_numpy(probs)[None], size=lc.shape, mode="area")[0].numpy()
            cm = confusion_matrix(lc, probs.argmax(0), n_cls, ignore_index=LC_IGNORE)
            cms[f"{name}/{i}"] = cm
            sc = segmentation_scores(cm)
            records.append({"method": method, "dataset": "planetcr", "source": name, "sample": i,
                            "cloud_fraction": src.cloud_fraction(i), "miou": sc["miou"],
                            "pa": sc["pixel_accuracy"]})
    np.savez_compressed(out_dir / "seg_confusion.npz", keys=np.array(list(cms)),
                        cms=np.stack(list(cms.values())), class_names=np.array(src.class_names))
    return records


# ------------------------------------------------------------------------------------- main
def evaluate(cfg: dict[str, Any], method: str, dataset: str, *, out_dir: str | Path | None = None) -> Path:
    """Score one (method, dataset) node; returns the path of ``records.csv`` (module doc)."""
    hp = method_config(cfg, method)
    if dataset not in hp["datasets"]:
        raise CloudRemovalError(f"method {method!r} is not configured for dataset {dataset!r}")
    set_threads(cfg)
    out = Path(out_dir) if out_dir is not None else eval_dir(cfg, method, dataset)
    out.mkdir(parents=True, exist_ok=True)
    src = open_source(cfg, dataset)
    t0 = time.perf_counter()
    panels: dict = {}
    if dataset == "timeseries":
        records, cms, panels, seen = _ts_records(cfg, method, hp, src, out)
        if cms:
            if seen is None:
                raise CloudRemovalError(f"{method}: land-cover scores without the training split's classes")
            keys = list(cms)
            np.savez_compressed(out / "lc_confusion.npz", n_inputs=np.array([k[0] for k in keys]),
                                sample_ids=np.array([k[1] for k in keys]), cms=np.stack(list(cms.values())),
                                train_classes=seen)
    elif hp["kind"] == "segmentation":
        records = _semantic_recovery(cfg, method, src, out)
    else:
        records, per_class, panels, preds = _planet_records(cfg, method, hp, src, out)
        write_csv(pd.DataFrame(per_class), out / "records_per_class.csv")
        np.savez_compressed(out / "predictions.npz", samples=np.array(src.samples("test")), predictions=preds)
    df = pd.DataFrame(records)
    if panels:
        np.savez_compressed(out / "panels.npz", **{f"{sid}/{k}": v for sid, d in panels.items() for k, v in d.items()})
    summary = {"method": method, "dataset": dataset, "kind": hp["kind"], "n_records": len(df),
               "seconds": round(time.perf_counter() - t0, 2)}
    if len(df):
        num = df.select_dtypes("number").drop(columns=[c for c in ("patch", "target", "sample", "input_time")
                                                       if c in df], errors="ignore")
        summary["mean"] = {k: (None if pd.isna(v) else float(v)) for k, v in num.mean().items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    path = out / "records.csv"
    write_csv(df, path)  # last: its presence means "evaluated"
    log.info("%s on %s: %d records in %.1f s", method, dataset, len(df), summary["seconds"])
    return path
