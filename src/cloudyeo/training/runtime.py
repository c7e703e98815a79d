"""Run-time plumbing shared by every training job: seeds, device, precision, checkpoints, logs.

* :func:`seed_everything` fixes Python, NumPy and torch (CPU and CUDA) seeds.
* :func:`select_device` returns CUDA when present -- claiming one GPU slot through
  :func:`cloudyeo.devices.claim_gpu` so concurrent local jobs never share a GPU -- else CPU.
* :func:`autocast` is bf16 autocast on CUDA and a no-op on CPU; :func:`prepare_model` moves a
  model to its device and, for conv nets on CUDA, to channels_last memory format.
* Checkpoints are written atomically (temporary file in the same folder, fsync,
  ``os.replace``): a killed job leaves either the previous file or the new one, never half of
  one. Epoch checkpoints are named ``epoch-0007.pt``; :func:`resume_state` loads the latest
  readable one so a restarted job continues after its last completed epoch.
* :class:`EpochLoop` is the loop skeleton of every trainer (pretrain, finetune, cloud removal):
  resume from the newest checkpoint of the same fingerprint, then per epoch one CSV row and an
  atomic epoch checkpoint (each epoch, or every ``checkpoint_every_s`` and after the last).
* :class:`MetricsLogger` appends one CSV row per epoch (header once, flushed and fsynced);
  :func:`progress_bar` is the tqdm bar of every loop.
* :func:`node_params` is the one canonical form of what a node reads (a rule's ``params:`` and the
  job's ``--config-json``): device, threads, workers and resources never enter it
  (:data:`RUNTIME_KEYS`), so changing them reruns nothing.
* :func:`checkpoint_fingerprint` (node params + code version) is stored with every epoch
  checkpoint; :func:`resume_or_reset` resumes only checkpoints with the same fingerprint and
  starts afresh otherwise (changed settings or changed code).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import pickle
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn

CHECKPOINT_FORMAT = 1
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.pt$")
# How a job runs, not what it computes: never part of a node's params or fingerprint.
RUNTIME_KEYS = frozenset({"device", "threads", "workers", "num_workers", "resources", "runtime", "mem_mb", "gpu",
                          "checkpoint_every_s", "keep_epoch_checkpoints"})
FINGERPRINT_KEY = "fingerprint"  # where epoch checkpoints keep theirs (``extra``)

log = logging.getLogger(__name__)


# -- node params and fingerprints --------------------------------------------------------------
def _runtime_paths(node: Any, path: str = "") -> list[str]:
    if not isinstance(node, dict):
        return []
    found = []
    for k, v in node.items():
        where = f"{path}.{k}" if path else str(k)
        if k in RUNTIME_KEYS:
            found.append(where)
        found += _runtime_paths(v, where)
    return found


@dataclass(frozen=True)
class RunOptions:
    """How a training node runs this time: never part of its params or fingerprint.

    ``max_epochs`` stops after that many epochs *in this call* (tests of resumption); outputs
    are written only when the configured number of epochs is complete.
    """

    device: str = "auto"
    num_workers: int = 0
    keep_epoch_checkpoints: bool = False
    checkpoint_every_s: float = 0.0
    progress: bool = True
    max_epochs: int | None = None


def node_params(pruned: dict[str, Any]) -> str:
    """Canonical JSON (sorted keys) of the settings one node reads: its ``params:`` value.

    Raises ValueError when a run-time setting (:data:`RUNTIME_KEYS`) is among them: those change
    how a node runs, not what it computes, and must not rerun it.
    """
    leaked = _runtime_paths(pruned)
    if leaked:
        raise ValueError(f"run-time settings are not node params: {', '.join(leaked)}")
    return json.dumps(pruned, sort_keys=True)


def checkpoint_fingerprint(params: str, *stages: str) -> str:
    """Short hash of a node's params and the code version of ``stages``
    (:func:`cloudyeo.provenance.code_version`): checkpoints resume only when it matches."""
    from cloudyeo.provenance import code_version

    text = json.dumps({"params": params, "code": [code_version(s) for s in stages]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def progress_bar(total: int, desc: str, enabled: bool = True):
    """tqdm on stderr: redrawn on a terminal, a line every 10 s in a log file."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=tty,
                mininterval=0.5 if tty else 10.0, dynamic_ncols=tty)


# -- seeds and devices ---------------------------------------------------------------------
def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and torch; with ``deterministic`` also ask torch for deterministic
    kernels (slower; errors where none exists). Returns a CPU generator seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU; or the named device.

    On CUDA one GPU slot is claimed first (:func:`cloudyeo.devices.claim_gpu`; nothing is
    claimed when ``CUDA_VISIBLE_DEVICES`` is already set, e.g. by Slurm). GPUs are counted
    with ``torch.cuda.device_count()``, which asks NVML and does not initialise the CUDA
    driver: ``CUDA_VISIBLE_DEVICES`` only takes effect if it is set before the driver starts,
    so call this before anything else touches CUDA (``torch.cuda.is_available()`` does).
    """
    from cloudyeo.devices import claim_gpu

    if device is None or str(device) == "auto":
        n_gpus = torch.cuda.device_count()
        claim_gpu(n_gpus)
        return torch.device("cuda" if n_gpus and torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        n_gpus = torch.cuda.device_count()
        if device.index is None and n_gpus:
            claim_gpu(n_gpus)
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
    return device


DEVICE_ENV = "CLOUDYEO_DEVICE"


def job_device(configured: str) -> str:
    """The device a job runs on: ``$CLOUDYEO_DEVICE`` (set by the workflow from the config at
    parse time, so a device change reruns nothing) or the configured one."""
    return os.environ.get(DEVICE_ENV) or configured


def autocast(device: torch.device | str, enabled: bool = True):
    """bf16 autocast on CUDA; a null context on CPU (or when ``enabled`` is False)."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.kernel_size != m.stride for m in model.modules())


def uses_channels_last(model: nn.Module, device: torch.device | str) -> bool:
    """Channels-last pays off for conv nets on CUDA (ViT patch embeddings do not count)."""
    return torch.device(device).type == "cuda" and _has_conv(model)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def prepare_model(model: ModuleT, device: torch.device | str) -> ModuleT:
    """Move ``model`` to ``device``; channels_last for conv nets on CUDA."""
    model = model.to(device)
    if uses_channels_last(model, device):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks memory_format
    return model


def to_device(x: torch.Tensor, device: torch.device | str, channels_last: bool = False) -> torch.Tensor:
    """Move an input batch; channels_last for 4-D tensors when the model uses it."""
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# -- checkpoints ---------------------------------------------------------------------------
def _rng_state() -> dict:
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())  # legacy tuple (stub: dict)
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(tuple(state["python"]) if not isinstance(state["python"], tuple) else state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _normalization_dict(normalization) -> dict | None:
    if normalization is None:
        return None
    return normalization if isinstance(normalization, dict) else normalization.to_dict()


def epoch_checkpoint_path(directory: str | Path, epoch: int) -> Path:
    return Path(directory) / f"epoch-{epoch:04d}.pt"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    epoch: int = 0,
    step: int = 0,
    normalization=None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    Stored: model/optimizer/scheduler state dicts, epoch (the last *completed* epoch), global
    step, the normalisation spec (as a dict), RNG states, ``model.spec`` when the model has one,
    and ``extra`` (plain values only: numbers, strings, lists, dicts, tensors).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": int(epoch),
        "step": int(step),
        "normalization": _normalization_dict(normalization),
        "model_spec": getattr(model, "spec", None),
        "rng": _rng_state(),
        "torch_version": str(torch.__version__),
        "extra": extra or {},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def save_epoch_checkpoint(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                          scheduler=None, *, epoch: int, keep: int | None = None, **kwargs) -> Path:
    """:func:`save_checkpoint` to ``directory/epoch-NNNN.pt``; keep only the newest ``keep``."""
    path = save_checkpoint(epoch_checkpoint_path(directory, epoch), model, optimizer, scheduler, epoch=epoch, **kwargs)
    if keep is not None:
        for old in list_epoch_checkpoints(directory)[:-keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    map_location="cpu",
    strict: bool = True,
    restore_rng: bool = False,
) -> dict:
    """Load a checkpoint, restoring into the objects given; returns the whole state dict
    (with ``path`` added). Loads with ``weights_only=True`` (no arbitrary code)."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a cloudyeo checkpoint (format {CHECKPOINT_FORMAT})")
    if model is not None:
        model.load_state_dict(state["model"], strict=strict)
    if optimizer is not None:
        if state["optimizer"] is None:
            raise ValueError(f"{path} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"{path} holds no scheduler state")
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        _set_rng_state(state["rng"])
    state["path"] = Path(path)
    return state


def list_epoch_checkpoints(directory: str | Path) -> list[Path]:
    """Complete epoch checkpoints in ``directory``, oldest first (temporary files never match)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _EPOCH_FILE.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_epoch_checkpoints(directory)
    return found[-1] if found else None


def resume_state(
    directory: str | Path,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    map_location="cpu",
    restore_rng: bool = True,
) -> dict | None:
    """Load the newest readable epoch checkpoint of ``directory`` (into the objects given);
    None when there is none. Training continues at ``state["epoch"] + 1``.

    An unreadable newest file (e.g. a disk that filled up) is skipped with a warning in favour
    of the one before it.
    """
    for path in reversed(list_epoch_checkpoints(directory)):
        try:
            return load_checkpoint(path, model, optimizer, scheduler, map_location, restore_rng=restore_rng)
        except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
            warnings.warn(f"skipping unreadable checkpoint {path}: {exc}", stacklevel=2)
    return None


def resume_or_reset(directory: str | Path, fingerprint: str, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    map_location="cpu") -> dict | None:
    """The newest readable epoch checkpoint of ``directory`` made with ``fingerprint``, loaded into
    the objects (RNG states restored); or None after removing ``directory``: checkpoints of other
    params or other code are never resumed. Unreadable files (a torn write) are skipped."""
    directory = Path(directory)
    if not directory.exists():
        return None
    for path in reversed(list_epoch_checkpoints(directory)):
        try:
            probe = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a torn or corrupt file: try the one before
            log.warning("skipping unreadable checkpoint %s: %s", path, exc)
            continue
        if not isinstance(probe, dict) or (probe.get("extra") or {}).get(FINGERPRINT_KEY) != fingerprint:
            log.info("%s: checkpoints of other params or code: starting afresh", directory)
            break
        return load_checkpoint(path, model, optimizer, scheduler, map_location, restore_rng=True)
    shutil.rmtree(directory)
    return None


class EpochLoop:
    """The loop skeleton of every trainer.

    Made after the model, optimizer and scheduler exist: it resumes them (and the RNG states)
    from the newest epoch checkpoint of ``directory`` written with ``fingerprint``, or starts
    afresh. The trainer runs ``for epoch in loop.epochs(): ...`` and ends each epoch with
    :meth:`end_epoch` (CSV row, then the checkpoint). Epochs are numbered from ``first_epoch``.
    """

    def __init__(self, directory: str | Path, fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler=None, *, epochs: int, first_epoch: int = 0, metrics_csv: str | Path | None = None,
                 normalization=None, keep: int = 1, checkpoint_every_s: float = 0.0) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.first, self.last = int(first_epoch), int(first_epoch) + int(epochs) - 1
        self.normalization, self.keep, self.checkpoint_every_s = normalization, keep, float(checkpoint_every_s)
        self.state = resume_or_reset(self.directory, fingerprint, model, optimizer, scheduler)
        self.start = self.first if self.state is None else int(self.state["epoch"]) + 1
        self.step = 0 if self.state is None else int(self.state["step"])
        self.logger = MetricsLogger(self.directory / "metrics.csv" if metrics_csv is None else metrics_csv,
                                    resume_epoch=self.start - 1)
        self._last_save = time.perf_counter()

    @property
    def extra(self) -> dict:
        """What the resumed checkpoint's trainer stored (empty on a fresh start)."""
        return {} if self.state is None else dict(self.state["extra"])

    def epochs(self) -> range:
        """The epochs left; the checkpoint clock starts now (the loop begins)."""
        self._last_save = time.perf_counter()
        return range(self.start, self.last + 1)

    def end_epoch(self, epoch: int, row: dict, *, step: int, extra: dict | None = None) -> Path | None:
        """Log ``row``; write the epoch checkpoint (with the fingerprint and ``extra``) when due."""
        self.logger.log(row)
        self.step = int(step)
        now = time.perf_counter()
        if self.checkpoint_every_s > 0 and epoch != self.last and now - self._last_save < self.checkpoint_every_s:
            return None
        self._last_save = now
        return save_epoch_checkpoint(self.directory, self.model, self.optimizer, self.scheduler, epoch=epoch,
                                     step=step, normalization=self.normalization, keep=self.keep,
                                     extra={FINGERPRINT_KEY: self.fingerprint, **(extra or {})})


# -- metrics -------------------------------------------------------------------------------
class MetricsLogger:
    """Append one row per epoch to a CSV file.

    The header is written once, from the first row's keys (or read back from an existing file);
    later rows may omit columns (left empty) but may not add new ones. Each row is flushed and
    fsynced. With ``resume_epoch``, rows of later epochs (logged by a job killed before its
    checkpoint landed) are dropped so the file matches the checkpoint being resumed.
    """

    def __init__(self, path: str | Path, resume_epoch: int | None = None, epoch_key: str = "epoch"):
        self.path = Path(path)
        self.epoch_key = epoch_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fieldnames: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                fieldnames = list(reader.fieldnames or [])
                rows = list(reader)
            self.fieldnames = fieldnames
            if resume_epoch is not None:
                kept = [r for r in rows if r.get(epoch_key) in (None, "") or int(float(r[epoch_key])) <= resume_epoch]
                if len(kept) != len(rows):
                    self._rewrite(fieldnames, kept)
        elif resume_epoch is not None and self.path.exists():
            self.path.unlink()

    def _rewrite(self, fieldnames: list[str], rows: list[dict]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def log(self, row: dict) -> None:
        row = {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in row.items()}
        if self.fieldnames is None:
            self.fieldnames = list(row)
        unknown = [k for k in row if k not in self.fieldnames]
        if unknown:
            raise ValueError(f"columns {unknown} are not in the CSV header {self.fieldnames}")
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fieldnames)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))
