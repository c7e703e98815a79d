"""Sequence-to-point cloud removal (SEN12MS-CR-TS style): n cloudy time points -> one clear image.

Each time point (its S2 bands, optionally its S1 bands and its cloud mask) goes through the same
ResNet branch (shared weights: a Siamese encoder); the per-time feature maps are stacked along a
time axis and mixed by 3-D convolutions (kernel 3 x 3 x 3); the mixed features are averaged over
time, so one network serves any n (3-5), and a 3x3 convolution predicts the clear image.

The loss is ``l1_weight * L1 + perceptual_weight * perceptual`` (the paper: L1 x 100 plus a VGG16
perceptual loss, Adam 2e-4). No pretrained VGG is available offline in plain torch, so the
perceptual term here is ``1 - SSIM`` (:func:`cloudyeo.metrics.losses.ssim_torch`), a structural
surrogate; the substitution is recorded in every checkpoint's spec.
"""

from __future__ import annotations

import torch
from torch import nn

from cloudyeo.models.cloud_removal.layers import Conv3x3x3, ResBlock


class Seq2Point(nn.Module):
    def __init__(self, optical_bands: int = 13, sar_bands: int = 2, use_sar: bool = True,
                 use_mask: bool = True, width: int = 32, blocks: int = 4, temporal_layers: int = 2):
        super().__init__()
        self.use_sar = bool(use_sar)
        self.use_mask = bool(use_mask)
        self.optical_bands = optical_bands
        cin = optical_bands + (sar_bands if use_sar else 0) + (1 if use_mask else 0)
        self.branch = nn.Sequential(
            nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True),
            *[ResBlock(width, 1.0) for _ in range(blocks)],
        )
        layers: list[nn.Module] = []
        for _ in range(temporal_layers):
            layers += [Conv3x3x3(width, width), nn.ReLU(inplace=True)]
        self.temporal = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, optical_bands, 3, padding=1),
        )

    def forward(self, s2: torch.Tensor, s1: torch.Tensor | None = None,
                cloud_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``s2`` (N, T, C, H, W), ``s1`` (N, T, 2, H, W), ``cloud_mask`` (N, T, H, W) -> (N, C, H, W)."""
        n, t, _, h, w = s2.shape
        parts = [s2]
        if self.use_sar:
            if s1 is None:
                raise ValueError("this seq2point was built with use_sar=True: pass s1")
            parts.append(s1)
        if self.use_mask:
            if cloud_mask is None:
                raise ValueError("this seq2point was built with use_mask=True: pass cloud_mask")
            parts.append(cloud_mask.to(s2.dtype).unsqueeze(2))
        x = torch.cat(parts, dim=2).reshape(n * t, -1, h, w)
        f = self.branch(x).reshape(n, t, -1, h, w).permute(0, 2, 1, 3, 4)  # (N, F, T, H, W)
        f = f + self.temporal(f)
        pooled = torch.cat([f.mean(dim=2), f.amax(dim=2)], dim=1)
        return self.head(pooled)


def seq2point_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                   l1_weight: float = 100.0, perceptual_weight: float = 1.0) -> torch.Tensor:
    """``l1_weight * L1 + perceptual_weight * (1 - SSIM)`` over valid target pixels."""
    from cloudyeo.metrics.losses import masked_l1, ssim_torch

    loss = l1_weight * masked_l1(pred, target, valid)
    if perceptual_weight:
        s = ssim_torch(pred, target, valid)
        loss = loss + perceptual_weight * (1.0 - torch.nan_to_num(s, nan=1.0)).mean()
    return loss

