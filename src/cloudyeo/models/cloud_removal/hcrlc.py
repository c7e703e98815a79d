"""HCR&LC-Net: one U-Net for hybrid cloud removal (HCR) and land-cover classification (LC).

* :class:`HCRLCNet` — a 2-D U-Net on the cloudy optical image concatenated with SAR: a shared
  encoder and one decoder per task (``shared_decoder=True``: one decoder for both), ending in the
  heads ``cr`` (a correction added to the cloudy input, trained with CARL,
  :func:`cloudyeo.models.cloud_removal.dsen2cr.carl_loss`) and ``lc`` (per-pixel class logits,
  cross-entropy with ignore index 255). ``tasks=("lc",)`` is the LC-only baseline, ``("cr",)`` the
  first stage of the sequential HCR-then-classify ensemble (whose classifier is a
  :class:`cloudyeo.models.cloud_removal.segmentation.SegUNet` trained on clear images).
* Task weighting: fixed weights (1:1) or :class:`UncertaintyWeighting` (Kendall et al. 2018:
  ``sum_i exp(-s_i) L_i + s_i`` with learned ``s_i = log sigma_i^2``).
* :class:`PretextNet` — the self-supervised pretext task for few-label training: given the S2
  patch and the S1 patch of one of its four neighbours (shifted half a patch, i.e. 50 % overlap,
  to the north, west, south or east), classify which neighbour it is. It takes the same
  ``[optical, SAR]`` input as HCR&LC-Net, so its encoder initialises HCR&LC-Net directly.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.cloud_removal.layers import UNetDecoder, UNetEncoder, pad_to_multiple, zero_init_

PRETEXT_DIRECTIONS = ("N", "W", "S", "E")
# (dy, dx) of the S1 neighbour relative to the S2 patch, in units of half a patch
PRETEXT_SHIFTS = {"N": (-1, 0), "W": (0, -1), "S": (1, 0), "E": (0, 1)}


class HCRLCNet(nn.Module):
    def __init__(self, optical_bands: int = 13, sar_bands: int = 2, n_classes: int = 19,
                 width: int = 32, depth: int = 3, tasks: tuple[str, ...] = ("cr", "lc"),
                 use_sar: bool = True, shared_decoder: bool = False):
        super().__init__()
        tasks = tuple(tasks)
        if not tasks or set(tasks) - {"cr", "lc"}:
            raise ValueError(f"tasks must be a non-empty subset of ('cr', 'lc'), got {tasks}")
        self.tasks = tasks
        self.use_sar = bool(use_sar)
        self.depth = depth
        self.encoder = UNetEncoder(optical_bands + (sar_bands if use_sar else 0), width, depth)
        self.shared_decoder = bool(shared_decoder) or len(tasks) == 1
        if self.shared_decoder:
            self.decoder = UNetDecoder(self.encoder.widths)
        else:  # one decoder per task on the shared encoder
            self.decoders = nn.ModuleDict({t: UNetDecoder(self.encoder.widths) for t in tasks})
        heads = {}
        if "cr" in tasks:
            heads["cr"] = nn.Conv2d(width, optical_bands, 3, padding=1)
            zero_init_(heads["cr"])
        if "lc" in tasks:
            heads["lc"] = nn.Conv2d(width, n_classes, 1)
        self.heads = nn.ModuleDict(heads)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.use_sar:
            if sar is None:
                raise ValueError("this HCR&LC-Net was built with use_sar=True: pass the SAR image")
            x = torch.cat([optical, sar], dim=1)
        else:
            x = optical
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        feats = self.encoder(x)
        shared = self.decoder(feats)[..., :h, :w] if self.shared_decoder else None
        out = {}
        for task in self.tasks:
            f = shared if shared is not None else self.decoders[task](feats)[..., :h, :w]
            out[task] = optical + self.heads["cr"](f) if task == "cr" else self.heads["lc"](f)
        return out


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty task weighting: ``sum_i exp(-s_i) L_i + s_i``."""

    def __init__(self, n_tasks: int = 2):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, losses: list[torch.Tensor]) -> torch.Tensor:
        total = losses[0].new_zeros(())
        for s, loss in zip(self.log_vars, losses):
            total = total + torch.exp(-s) * loss + s
        return total


def fixed_weighting(losses: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    return cast(torch.Tensor, sum(w * loss for w, loss in zip(weights, losses)))


class PretextNet(nn.Module):
    """Which neighbour (N, W, S, E) does this S1 patch come from? Matching, not guessing.

    The shared encoder (the one HCR&LC-Net gets) embeds the S2 patch (its SAR channels zero)
    and the S1 patch (its optical channels zero) separately; for each of the four candidate
    shifts, the overlapping halves of the two deepest feature maps are compared (mean cosine
    similarity of a 1x1 projection); the four similarities, scaled by a learned temperature, are
    the logits. The encoder is thus pushed towards features that agree between S1 and S2 at the
    same ground position. Patch sides must be multiples of ``2 ** (depth + 1)``.
    """

    def __init__(self, optical_bands: int = 13, sar_bands: int = 2, width: int = 32, depth: int = 3):
        super().__init__()
        self.depth = depth
        self.optical_bands, self.sar_bands = optical_bands, sar_bands
        self.encoder = UNetEncoder(optical_bands + sar_bands, width, depth)
        self.proj = nn.Conv2d(self.encoder.out_dim, self.encoder.out_dim, 1)
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # exp(2.3) ~ 10

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.encoder(x)[-1]), dim=1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> torch.Tensor:
        n, _, h, w = optical.shape
        unit = 2 ** (self.depth + 1)
        if h % unit or w % unit:
            raise ValueError(f"pretext patches must be multiples of {unit} px, got {h} x {w}")
        f2 = self._embed(torch.cat([optical, optical.new_zeros(n, self.sar_bands, h, w)], dim=1))
        f1 = self._embed(torch.cat([sar.new_zeros(n, self.optical_bands, h, w), sar], dim=1))
        fh, fw = f2.shape[-2:]
        ky, kx = fh // 2, fw // 2
        scores = []
        for d in PRETEXT_DIRECTIONS:
            dy, dx = PRETEXT_SHIFTS[d]
            sy, sx = dy * ky, dx * kx  # S2 cell = S1 cell + shift
            a = f2[..., max(0, sy):fh + min(0, sy), max(0, sx):fw + min(0, sx)]
            b = f1[..., max(0, -sy):fh + min(0, -sy), max(0, -sx):fw + min(0, -sx)]
            scores.append((a * b).sum(dim=1).mean(dim=(-2, -1)))
        return torch.stack(scores, dim=1) * self.log_scale.exp()
