"""Optimisers and learning-rate schedules shared by pretraining and fine-tuning.

* :func:`build_optimizer` - SGD (momentum) or AdamW over parameter groups; biases and
  normalisation weights (1-D parameters) get no weight decay (the MoCo v3 / MAE recipes).
* :func:`effective_lr` - ``lr``, or ``lr x batch / 256`` with ``lr_scaling: linear`` (MoCo v3
  and MAE quote a base learning rate for batch 256).
* :class:`WarmupCosine` - linear warm-up over ``warmup_steps`` then half-cosine decay to
  ``min_lr``, per step; a ``LambdaLR``-style object with ``state_dict`` for resumable jobs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def effective_lr(lr: float, batch_size: int, scaling: str = "none") -> float:
    if scaling == "linear":
        return lr * batch_size / 256
    if scaling != "none":
        raise ValueError(f"lr_scaling must be 'none' or 'linear', got {scaling!r}")
    return lr


def param_groups(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float, lr: float,
                 **extra) -> list[dict]:
    """Two groups: decayed weights, and 1-D parameters (biases, norms, tokens) without decay."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in named:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(("cls_token", "pos_embed", "mask_token")) else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "lr": lr, "base_lr": lr, **extra})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr": lr, "base_lr": lr, **extra})
    return groups


def build_optimizer(groups: list[dict], name: str, *, sgd_momentum: float = 0.9,
                    betas=(0.9, 0.999)) -> torch.optim.Optimizer:
    if not groups:
        raise ValueError("no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=sgd_momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=groups[0]["lr"], betas=tuple(betas))
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


class WarmupCosine:
    """Per-step schedule: each group's lr = ``base_lr x factor(step)``.

    ``factor`` rises linearly from ``1 / warmup_steps`` to 1 over the warm-up, then falls on a
    half cosine to ``min_lr / base_lr`` at ``total_steps``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                 min_lr: float = 0.0):
        self.optimizer = optimizer
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = max(int(warmup_steps), 0)
        self.min_lr = float(min_lr)
        self.step_count = 0
        self._apply()

    def factor(self, step: int, base_lr: float) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        floor = self.min_lr / base_lr if base_lr > 0 else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * self.factor(self.step_count, g["base_lr"])

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "min_lr": self.min_lr}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step_count"])
        self._apply()
