"""Which device a job computes on.

On SLURM, a rule with ``resources: gpu=1`` is submitted with ``--gpus`` and Slurm sets
``CUDA_VISIBLE_DEVICES``. Locally, Snakemake limits how many GPU jobs run at once
(``--resources gpu=N``) but assigns no device ids, so two jobs would share GPU 0.
:func:`claim_gpu` fills that gap: each job takes an exclusive lock on one GPU slot
(``fcntl.flock`` on a file per GPU) and sees only that GPU; the lock is released when the
process exits, however it exits.

``CUDA_VISIBLE_DEVICES`` only takes effect if it is set before the CUDA driver starts in the
process, so GPUs are counted without starting it (:func:`count_gpus`: NVML, else
``nvidia-smi -L``); ``torch.cuda.is_available()`` and ``torch.cuda.device_count()`` may start it
(the latter when NVML is unavailable) and are never called before a claim.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

LOCK_DIR = Path(os.environ.get("CLOUDYEO_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "cloudyeo-gpu-locks"))
_held: list = []  # open lock files, kept for the life of the process


def claim_gpu(n_gpus: int | None = None, lock_dir: Path = LOCK_DIR) -> int | None:
    """Claim a free local GPU and restrict this process to it; None when there is nothing to do.

    Nothing is claimed when ``CUDA_VISIBLE_DEVICES`` is already set (Slurm, or the user) or
    when there is no GPU. Raises RuntimeError when every GPU is taken (Snakemake's
    ``--resources gpu=N`` should prevent that).
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return None
    if n_gpus is None:
        n_gpus = count_gpus()
    if n_gpus == 0:
        return None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        warnings.warn("CUDA was initialised before a GPU was claimed: CUDA_VISIBLE_DEVICES set now "
                      "has no effect in this process", RuntimeWarning, stacklevel=2)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for gpu in range(n_gpus):
        fh = open(lock_dir / f"gpu{gpu}.lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        fh.write(str(os.getpid()))
        fh.flush()
        _held.append(fh)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        return gpu
    raise RuntimeError(f"all {n_gpus} GPUs are claimed by other jobs (locks in {lock_dir})")


def _nvml_device_count() -> int | None:
    """Physical NVIDIA GPUs as NVML counts them (no CUDA context, no driver start); None when
    NVML is unavailable."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    init = getattr(nvml, "nvmlInit_v2", None) or nvml.nvmlInit
    if init() != 0:
        return None
    try:
        count = ctypes.c_uint(0)
        if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        return int(count.value)
    finally:
        nvml.nvmlShutdown()


def _smi_device_count() -> int | None:
    """GPUs listed by ``nvidia-smi -L`` (another process), None when it is unavailable."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def count_gpus() -> int:
    """Local GPUs, counted without initialising CUDA in this process.

    0 when the installed torch has no CUDA support (a CPU build never uses a GPU, so it claims
    none) or when neither NVML nor ``nvidia-smi`` answers.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    if torch.version.cuda is None and torch.version.hip is None:
        return 0
    for counter in (_nvml_device_count, _smi_device_count):
        n = counter()
        if n is not None:
            return n
    return 0


def torch_device():
    """``cuda`` when available (after :func:`claim_gpu`), else ``cpu``."""
    import torch

    claim_gpu()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
