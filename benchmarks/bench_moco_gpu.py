"""MoCo v2 with a ResNet-50 on 14 x 128 x 128 early-fused S1 + S2 views: throughput and memory.

The training step of ``cloudyeo ssl pretrain`` (the paper's MoCo v2 settings: 2-layer MLP head
2048 -> 128, queue 65536, momentum 0.999, temperature 0.2, SGD lr 0.03 momentum 0.9 wd 1e-4),
with its runtime choices (CUDA: bf16 autocast + channels_last; one GPU claimed through
``cloudyeo.devices``) and its augmentation run on the device (random resized crop of a 264 px
location to 128 px, jitter, grayscale, blur, flip). Inputs are synthetic (random raw values
normalised by a fixed spec): this measures the model and the step, not the disk.

    python benchmarks/bench_moco_gpu.py --steps 300 --batch-size 256          # a GPU
    python benchmarks/bench_moco_gpu.py --steps 3 --batch-size 8 --width 0.25  # CPU smoke run

Prints samples/s (after ``--warmup`` steps), peak GPU memory (torch allocator) and GPU
utilisation sampled by NVML every 0.2 s during the timed steps (``nvidia-smi`` when the Python
NVML binding is missing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import threading
import time

import torch


def _utilisation_sampler(stop: threading.Event, out: list, index: int = 0, every: float = 0.2) -> None:
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)

        def read() -> float:
            return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:  # noqa: BLE001 - no binding: ask nvidia-smi
        exe = shutil.which("nvidia-smi")
        if exe is None:
            return

        def read() -> float:
            q = subprocess.run([exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                f"--id={index}"], capture_output=True, text=True, timeout=10, check=False)
            return float(q.stdout.strip().splitlines()[0])
    while not stop.is_set():
        try:
            out.append(read())
        except Exception:  # noqa: BLE001
            return
        stop.wait(every)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first (cudnn autotune, allocator)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--size", type=int, default=128, help="view side (px)")
    ap.add_argument("--source-size", type=int, default=264, help="side of the raw location patch")
    ap.add_argument("--width", type=float, default=1.0, help="ResNet-50 width multiplier (1 = the paper)")
    ap.add_argument("--queue", type=int, default=65536)
    ap.add_argument("--bn-splits", type=int, default=8, help="shuffled-BN sub-batches (1 disables)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-augment", action="store_true", help="feed fixed views (model step only)")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)

    from cloudyeo.models.ssl import build_ssl
    from cloudyeo.training.augment import MultibandAugment, optical_channels_from_bands
    from cloudyeo.training.data import FUSED_BANDS, N_CHANNELS
    from cloudyeo.training.runtime import (
        autocast,
        prepare_model,
        select_device,
        to_device,
        uses_channels_last,
    )

    dev = select_device(args.device)  # claims a free GPU before CUDA starts
    torch.manual_seed(0)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = build_ssl("moco2", "resnet50", N_CHANNELS, {"width": args.width}, dim=128, hidden_dim=2048,
                      queue_size=args.queue, momentum=0.999, temperature=0.2, bn_splits=args.bn_splits)
    model = prepare_model(model, dev)
    cl = uses_channels_last(model, dev)
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    aug = MultibandAugment(size=args.size, optical_channels=optical_channels_from_bands(FUSED_BANDS))
    gen = torch.Generator().manual_seed(0)
    # two seasons of B locations, already normalised (z-scores)
    raw = torch.randn(args.batch_size, 2, N_CHANNELS, args.source_size, args.source_size, device=dev)
    fixed = (to_device(aug(raw[:, 0], gen), dev, cl), to_device(aug(raw[:, 1], gen), dev, cl))

    def step() -> float:
        if args.no_augment:
            v1, v2 = fixed
        else:
            v1 = to_device(aug(raw[:, 0], gen), dev, cl)
            v2 = to_device(aug(raw[:, 1], gen), dev, cl)
        with autocast(dev):
            loss, _ = model.loss(v1, v2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.momentum_update()
        return loss

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    samples, stop = [], threading.Event()
    sampler = None
    if dev.type == "cuda":
        sampler = threading.Thread(target=_utilisation_sampler, args=(stop, samples, 0), daemon=True)
        sampler.start()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    float(loss.detach())  # waits for the device
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    stop.set()
    if sampler is not None:
        sampler.join(timeout=5)
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "model": f"MoCo v2, ResNet-50 (width {args.width}), {N_CHANNELS} x {args.size} x {args.size}",
        "precision": "bf16 autocast, channels_last" if dev.type == "cuda" else "fp32",
        "augment_on_device": not args.no_augment,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "seconds": round(seconds, 3),
        "samples_per_s": round(args.steps * args.batch_size / seconds, 1),
        "step_ms": round(1000 * seconds / args.steps, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None,
        "gpu_utilisation_pct_mean": round(statistics.mean(samples), 1) if samples else None,
        "gpu_utilisation_pct_median": round(statistics.median(samples), 1) if samples else None,
        "final_loss": round(float(loss.detach()), 4),
    }
    for k, v in result.items():
        print(f"{k:28s} {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
