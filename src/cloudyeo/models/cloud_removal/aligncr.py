"""Align-CR-style SAR-guided cloud removal for high-resolution optical images (Planet-CR).

Written from the paper's description (Xu et al. 2023): two streams. The optical stream starts from
the cloudy 3 m image; the SAR stream from Sentinel-1 at 10 m, upsampled bilinearly to the optical
grid (the two grids are not pixel-aligned: a 10 m pixel covers 3.3 optical pixels and the grids
are shifted). ``blocks`` (D) AlignFuse blocks follow; each

1. predicts, from the concatenated optical and SAR features, per-pixel offsets and modulations
   for the 9 taps of a deformable 3x3 convolution (initialised to zero offsets),
2. reads the SAR features through that deformable convolution
   (:class:`cloudyeo.models.cloud_removal.layers.DeformConv2d`, built on ``grid_sample``),
   which aligns them to the optical features,
3. fuses the aligned SAR features into the optical stream (conv-ReLU-conv, residual), and
   refines the SAR stream with a residual block (except in the last block).

A final convolution predicts a correction added to the cloudy input. Ablations:
``use_sar=False`` (the blocks become plain residual blocks on the optical stream) and
``align=False`` (an ordinary 3x3 convolution replaces the deformable one).

Loss (:func:`weighted_charbonnier`): ``mean((1 + w * m) * ((P - T)^2 + eps^2)^alpha)`` with the
cloud mask ``m``, ``w = 5``, ``eps = 1e-3``, ``alpha = 0.45``.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.cloud_removal.layers import DeformConv2d, ResBlock, zero_init_


class AlignFuse(nn.Module):
    def __init__(self, width: int, use_sar: bool = True, align: bool = True, refine_sar: bool = True):
        super().__init__()
        self.use_sar = use_sar
        self.align = align and use_sar
        if use_sar:
            if self.align:
                self.offsets = nn.Sequential(
                    nn.Conv2d(2 * width, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                    nn.Conv2d(width, 3 * 9, 3, padding=1),
                )
                zero_init_(cast(nn.Conv2d, self.offsets[-1]))
                self.sar_read: nn.Module = DeformConv2d(width, width)
            else:
                self.sar_read = nn.Conv2d(width, width, 3, padding=1)
            self.sar_refine = ResBlock(width, 1.0) if refine_sar else nn.Identity()
        cin = 2 * width if use_sar else width
        self.fuse = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, fo: torch.Tensor, fs: torch.Tensor | None):
        if not self.use_sar:
            return fo + self.fuse(fo), None
        if fs is None:
            raise ValueError("this block was built with use_sar=True: pass the SAR features")
        if self.align:
            aligned = self.sar_read(fs, self.offsets(torch.cat([fo, fs], dim=1)))
        else:
            aligned = self.sar_read(fs)
        fo = fo + self.fuse(torch.cat([fo, aligned], dim=1))
        return fo, self.sar_refine(fs)


class AlignCR(nn.Module):
    def __init__(self, optical_bands: int = 4, sar_bands: int = 2, width: int = 32, blocks: int = 4,
                 use_sar: bool = True, align: bool = True):
        super().__init__()
        self.use_sar = bool(use_sar)
        self.align = bool(align)
        self.opt_head = nn.Sequential(nn.Conv2d(optical_bands, width, 3, padding=1),
                                      nn.LeakyReLU(0.1, inplace=True))
        if use_sar:
            self.sar_head = nn.Sequential(nn.Conv2d(sar_bands, width, 3, padding=1),
                                          nn.LeakyReLU(0.1, inplace=True), ResBlock(width, 1.0))
        # the last block's SAR features are not used further: it does not refine them
        self.blocks = nn.ModuleList(AlignFuse(width, use_sar, align, refine_sar=i < blocks - 1)
                                    for i in range(blocks))
        self.tail = nn.Conv2d(width, optical_bands, 3, padding=1)
        zero_init_(self.tail)

    @staticmethod
    def upsample_sar(sar: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        """SAR (N, 2, h, w) at 10 m -> the optical grid (bilinear, pixel-area aligned)."""
        if tuple(sar.shape[-2:]) == tuple(size):
            return sar
        return F.interpolate(sar, size=size, mode="bilinear", align_corners=False)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        """``optical`` (N, 4, H, W) cloudy; ``sar`` (N, 2, h, w) at any size (upsampled here)."""
        fo = self.opt_head(optical)
        fs = None
        if self.use_sar:
            if sar is None:
                raise ValueError("this Align-CR was built with use_sar=True: pass the SAR image")
            fs = self.sar_head(self.upsample_sar(sar, optical.shape[-2:]))
        for block in self.blocks:
            fo, fs = block(fo, fs)
        return optical + self.tail(fo)


def weighted_charbonnier(pred: torch.Tensor, target: torch.Tensor, cloud_mask: torch.Tensor | None = None,
                         w: float = 5.0, eps: float = 1e-3, alpha: float = 0.45,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """``mean((1 + w * mask) * ((pred - target)^2 + eps^2)^alpha)`` over bands and valid pixels."""
    rho = ((pred - target) ** 2 + eps**2) ** alpha
    weight = torch.ones_like(rho[:, :1])
    if cloud_mask is not None:
        weight = weight + w * cloud_mask.to(rho.dtype).unsqueeze(1)
    if valid is not None:
        weight = weight * valid.to(rho.dtype).unsqueeze(1)
    weight = weight.expand_as(rho)
    return (rho * weight).sum() / (valid.to(rho.dtype).sum() * rho.shape[1]).clamp_min(1.0) \
        if valid is not None else (rho * weight).mean()
