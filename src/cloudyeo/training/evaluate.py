"""Testing a fine-tuned classifier on BEN or CBEN (node evaluate[method, train_set, test_set]).

Every sample of the ``test`` split is scored (no sample dropped, batches of any size); the labels
and scores of the whole split are then scored once, at dataset level, with
:func:`cloudyeo.metrics.classification.average_precision` (equal to scikit-learn's
``average_precision_score`` with ``average="micro"``, ``"macro"`` and ``None``). AP is also
computed per bin of the per-patch cloud fraction of the cloudy CBEN patch (``cloud_fraction``:
for ``test_set: ben`` the same patches, clear, i.e. the control).

Outputs (:func:`cloudyeo.training.experiments.evaluate_outputs`): ``<train>_on_<test>.json``
(micro/macro AP in percent, per-class AP, bins, sample count) and ``.npz`` (scores, labels,
patch ids, cloud fractions: enough to recompute every number with scikit-learn).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cloudyeo.atomic import atomic_write
from cloudyeo.config import paths
from cloudyeo.metrics.classification import average_precision
from cloudyeo.training.data import CBENFused
from cloudyeo.training.experiments import cben_store, evaluate_outputs, finetune_outputs
from cloudyeo.training.finetune import build_classifier, predict
from cloudyeo.training.normalization import NormalizationSpec
from cloudyeo.training.pretrain import write_json
from cloudyeo.training.runtime import (
    load_checkpoint,
    prepare_model,
    select_device,
    uses_channels_last,
)

log = logging.getLogger(__name__)


def _pct(v: float) -> float:
    return float("nan") if v is None or not np.isfinite(v) else 100.0 * float(v)


def ap_by_cloud_fraction(labels: np.ndarray, scores: np.ndarray, cloud: np.ndarray, edges) -> list[dict]:
    """AP per cloud-fraction bin ``[lo, hi)`` (the last bin closed); empty bins have n = 0."""
    edges = [float(e) for e in edges]
    rows = []
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        last = i == len(edges) - 2
        m = (cloud >= lo) & ((cloud <= hi) if last else (cloud < hi))
        row = {"bin_low": lo, "bin_high": hi, "n_samples": int(m.sum())}
        if m.any():
            r = average_precision(labels[m], scores[m])
            row.update(ap_micro=_pct(r["micro"]), ap_macro=_pct(r["macro"]),
                       ap_macro_defined=_pct(r["macro_defined"]),
                       mean_cloud_fraction=float(cloud[m].mean()))
        else:
            row.update(ap_micro=None, ap_macro=None, ap_macro_defined=None, mean_cloud_fraction=None)
        rows.append(row)
    return rows


def _save_npz(path, **arrays) -> None:
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")


def evaluate(
    cfg: dict[str, Any],
    method: str,
    train_set: str,
    test_set: str,
    *,
    device: str = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """Run node evaluate[``method``, ``train_set``, ``test_set``]; returns the metrics JSON."""
    if test_set not in ("ben", "cben"):
        raise ValueError(f"test_set must be 'ben' or 'cben', got {test_set!r}")
    ev = cfg["cben_experiments"]["evaluate"]
    p = paths(cfg)
    outs = evaluate_outputs(p, method, train_set, test_set)
    dev = select_device(device)
    ck_path = finetune_outputs(p, method, train_set)["model"]
    state = load_checkpoint(ck_path)
    model = build_classifier(state["model_spec"])
    model.load_state_dict(state["model"])
    model = prepare_model(model, dev)
    spec = NormalizationSpec.from_dict(state["normalization"])
    input_size = state["extra"]["input_size"]

    store = cben_store(cfg)
    test = CBENFused(store, "test", test_set)
    if len(test) == 0:
        raise ValueError(f"{store}: the test split is empty")
    loader = DataLoader(test, batch_size=int(ev["batch_size"]), shuffle=False, drop_last=False,
                        num_workers=num_workers)
    t0 = time.perf_counter()
    pred = predict(model, loader, spec, input_size, dev, uses_channels_last(model, dev), progress,
                   desc=f"evaluate {method} {train_set}->{test_set}")
    seconds = time.perf_counter() - t0
    n = len(pred["labels"])
    if n != len(test):
        raise RuntimeError(f"scored {n} samples, the test split has {len(test)}")
    r = average_precision(pred["labels"], pred["scores"])
    names = test.label_names
    result = {
        "method": method,
        "finetuned_on": train_set,
        "tested_on": test_set,
        "n_samples": int(n),
        "test_split_size": len(test),
        "ap_micro": _pct(r["micro"]),
        "ap_macro": _pct(r["macro"]),
        "ap_macro_defined": _pct(r["macro_defined"]),
        "per_class": {name: _pct(ap) for name, ap in zip(names, r["per_class"])},
        "n_positives": {name: int(k) for name, k in zip(names, r["n_positives"])},
        "undefined_classes": [names[i] for i in r["undefined_classes"]],
        "cloud_bins": ap_by_cloud_fraction(pred["labels"], pred["scores"], pred["cloud_fraction"],
                                           ev["cloud_bins"]),
        "mean_cloud_fraction": float(np.mean(pred["cloud_fraction"])),
        "checkpoint": {"path": str(ck_path), "best_epoch": state["extra"]["best_epoch"],
                       "validation": state["extra"]["validation"],
                       "fingerprint": state["extra"]["fingerprint"]},
        "metric": "dataset-level average precision (scikit-learn definition), percent",
        "device": str(dev),
        "seconds": round(seconds, 3),
        "torch": torch.__version__,
    }
    _save_npz(outs["scores"], scores=pred["scores"], labels=pred["labels"].astype(np.uint8),
              index=pred["index"].astype(np.int64), cloud_fraction=pred["cloud_fraction"].astype(np.float32),
              patch_id=np.asarray(test.patch_ids, dtype=str), label_names=np.asarray(names, dtype=str))
    write_json(outs["metrics"], result)
    log.info("evaluate %s %s->%s: %d samples, AP micro %.2f, macro %.2f", method, train_set, test_set,
             n, result["ap_micro"], result["ap_macro"])
    return result
