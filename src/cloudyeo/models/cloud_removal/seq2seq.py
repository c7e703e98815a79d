"""Sequence-to-sequence internal learning: a 3-D U-Net maps the S1 sequence to the S2 sequence.

Internal learning (Ebel et al., deep-image-prior style): there is no training set. For one test
series, the network is fitted from scratch on that series alone, with an L1 loss on the S2 pixels
that are clear (not cloudy, not nodata); the time points or pixels without a clear observation
(the held-out target among them) are filled by what the network predicts there from the S1 input
and the structure it learned from the clear pixels. The ablation feeds fixed Gaussian noise of
the same shape instead of S1 (:func:`noise_input`).

The U-Net downsamples space only (pooling 1 x 2 x 2), so a sequence of any length works; its
3 x 3 x 3 convolutions mix neighbouring time points at every level. The output is reflectance in
(0, 1) through a sigmoid, the range the sources scale S2 to: the loss constrains only clear
pixels, and an unbounded head left the withheld target free to leave the physical range. The
sigmoid is centred on a per-band prior (:meth:`UNet3D.set_output_prior`: the series' mean clear
reflectance) and the last convolution starts at zero, so the fit begins from the series' mean
spectrum rather than from 0.5 everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.cloud_removal.layers import Conv3x3x3, norm_groups, zero_init_


class _Double3d(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            Conv3x3x3(cin, cout, bias=False), nn.GroupNorm(norm_groups(cout), cout),
            nn.LeakyReLU(0.1, inplace=True),
            Conv3x3x3(cout, cout, bias=False), nn.GroupNorm(norm_groups(cout), cout),
            nn.LeakyReLU(0.1, inplace=True),
        )


class UNet3D(nn.Module):
    prior_logit: torch.Tensor  # buffer

    def __init__(self, in_chans: int = 2, out_chans: int = 13, width: int = 16, depth: int = 2):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.inc = _Double3d(in_chans, widths[0])
        self.downs = nn.ModuleList(_Double3d(widths[i], widths[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            _Double3d(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))
        )
        self.out = nn.Conv3d(widths[0], out_chans, 1)
        zero_init_(self.out)
        self.register_buffer("prior_logit", torch.zeros(out_chans))  # saved with the weights

    def set_output_prior(self, reflectance: torch.Tensor) -> None:
        """Centre the output on a per-band reflectance (C_out,) in (0, 1)."""
        r = torch.as_tensor(reflectance, dtype=self.prior_logit.dtype).clamp(1e-3, 1 - 1e-3)
        self.prior_logit.copy_(torch.log(r / (1 - r)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, T, H, W) -> (N, C_out, T, H, W) in (0, 1); H and W divisible by ``2**depth``."""
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(F.max_pool3d(feats[-1], (1, 2, 2))))
        y = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-3:], mode="trilinear", align_corners=False)
            y = up(torch.cat([y, skip], dim=1))
        return torch.sigmoid(self.out(y) + self.prior_logit.view(1, -1, 1, 1, 1))


def noise_input(shape: tuple[int, ...], seed: int, std: float = 1.0) -> torch.Tensor:
    """Fixed Gaussian noise (the deep-image-prior input of the ablation), reproducible by seed."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=gen) * std


def clear_pixel_l1(pred: torch.Tensor, target: torch.Tensor, clear: torch.Tensor) -> torch.Tensor:
    """L1 over the clear pixels: ``pred``/``target`` (N, C, T, H, W), ``clear`` (N, T, H, W)."""
    w = clear.to(pred.dtype).unsqueeze(1).expand_as(pred)
    return ((pred - target).abs() * w).sum() / w.sum().clamp_min(1.0)
