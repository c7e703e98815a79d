"""Cloud-removal networks at the configured sizes: training-step and full-image inference cost.

    python benchmarks/bench_cloud_removal.py [--config config/config.yaml] [--threads 1] [--steps 5]

For every trained method of ``cloud_removal.methods`` it builds the network with the method's
settings, times ``--steps`` optimiser steps on a random batch of the configured crop size and one
full-image sliding-window prediction (256 x 256 time-series patch, 300 x 300 Planet-CR window),
and prints CPU seconds (process time) next to wall seconds, so figures taken on a busy machine
can still be compared. Random inputs: no store is needed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from cloudyeo.config import load_config
from cloudyeo.training.cloud_removal import TS_CLASSES, _build, method_config, model_spec
from cloudyeo.training.cloud_removal_eval import sliding_window


def _inputs(kind: str, hp: dict, dataset: str, size: int, batch: int, n_inputs: int = 3):
    b, c = batch, size
    if kind == "seq2point":
        return (torch.rand(b, n_inputs, 13, c, c), torch.rand(b, n_inputs, 2, c, c), torch.rand(b, n_inputs, c, c) > 0.5)
    if kind == "seq2seq":
        return (torch.rand(b, 2, int(hp.get("max_len", 20)), c, c),)
    if kind == "segmentation":
        return (torch.rand(b, 4 if dataset == "planetcr" else 13, c, c),)
    bands = 4 if dataset == "planetcr" else 13
    sar = c * 3 // 10 if kind == "aligncr" else c
    return (torch.rand(b, bands, c, c), torch.rand(b, 2, sar, sar))


def _scalar(out):
    if isinstance(out, dict):
        return sum(v.float().mean() for v in out.values())
    return out.float().mean()


def bench(cfg: dict, method: str, steps: int) -> dict:
    hp = method_config(cfg, method)
    kind = hp["kind"]
    dataset = hp["datasets"][0]
    spec = model_spec("hcrlc" if kind == "hcr_then_lc" else kind, hp, dataset,
                      n_classes=TS_CLASSES if dataset == "timeseries" else 6)
    model = _build(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    crop = int(hp["crop"]) - int(hp["crop"]) % (10 if dataset == "planetcr" else 4)
    x = _inputs(kind, hp, dataset, crop, int(hp["batch_size"]))
    _scalar(model(*x)).backward()  # warm-up
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        _scalar(model(*x)).backward()
        opt.step()
    step_cpu, step_wall = (time.process_time() - c0) / steps, (time.perf_counter() - w0) / steps
    size = 300 if dataset == "planetcr" else 256
    window = int(cfg["cloud_removal"]["eval"]["window"])
    window -= window % (10 if dataset == "planetcr" else 4)
    full = _inputs(kind, hp, dataset, size, 1)
    model.eval()

    def predict(win):
        y0, x0, h, w = win
        parts = []
        for t in full:
            if t.ndim >= 4 and t.shape[-1] == size:
                parts.append(t[..., y0:y0 + h, x0:x0 + w])
            elif kind == "aligncr":
                parts.append(F.interpolate(t, size=(size, size))[..., y0:y0 + h, x0:x0 + w])
            else:
                parts.append(t)
        with torch.inference_mode():
            out = model(*parts)
        out = out["cr"] if isinstance(out, dict) and "cr" in out else (
            next(iter(out.values())) if isinstance(out, dict) else out)
        return out[0].reshape(-1, h, w).numpy()

    c0, w0 = time.process_time(), time.perf_counter()
    pred = sliding_window(predict, (size, size), window, int(cfg["cloud_removal"]["eval"]["overlap"]))
    infer_cpu, infer_wall = time.process_time() - c0, time.perf_counter() - w0
    assert np.isfinite(pred).all()
    return {"method": method, "kind": kind, "params": sum(p.numel() for p in model.parameters()),
            "crop": crop, "batch": int(hp["batch_size"]),
            "steps": int(hp["epochs"]) * int(hp["steps_per_epoch"]),
            "step_cpu_s": step_cpu, "step_wall_s": step_wall,
            "train_cpu_s_est": step_cpu * int(hp["epochs"]) * int(hp["steps_per_epoch"]),
            "image_cpu_s": infer_cpu, "image_wall_s": infer_wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--methods", nargs="*", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    methods = args.methods or [m for m in cfg["cloud_removal"]["methods"]
                               if method_config(cfg, m)["kind"] != "baseline"]
    print(f"torch {torch.__version__}, {args.threads} thread(s); CPU s = process time")
    print(f"{'method':24s} {'params':>8s} {'crop':>4s} {'bs':>3s} {'steps':>5s} {'step cpu':>9s} "
          f"{'step wall':>9s} {'train cpu (est)':>15s} {'image cpu':>9s} {'image wall':>10s}")
    for m in methods:
        r = bench(cfg, m, args.steps)
        print(f"{m:24s} {r['params']:8d} {r['crop']:4d} {r['batch']:3d} {r['steps']:5d} {r['step_cpu_s']:9.3f} "
              f"{r['step_wall_s']:9.3f} {r['train_cpu_s_est']:15.1f} {r['image_cpu_s']:9.3f} {r['image_wall_s']:10.3f}")


if __name__ == "__main__":
    main()
