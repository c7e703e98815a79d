"""Which device a job computes on.

On SLURM, a rule with ``resources: gpu=1`` is submitted with ``--gpus`` and Slurm sets
``CUDA_VISIBLE_DEVICES``. Locally, Snakemake limits how many GPU jobs run at once
(``--resources gpu=N``) but assigns no device ids, so two jobs would share GPU 0.
:func:`claim_gpu` fills that gap: each job takes an exclusive lock on one GPU slot
(``fcntl.flock`` on a file per GPU) and sees only that GPU; the lock is released when the
process exits, however it exits.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
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
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus == 0:
        return None
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


def torch_device():
    """``cuda`` when available (after :func:`claim_gpu`), else ``cpu``."""
    import torch

    claim_gpu()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
