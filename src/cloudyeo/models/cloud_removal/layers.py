"""Small building blocks shared by the cloud-removal networks (plain ``torch.nn``).

* :class:`ResBlock` — conv3x3, ReLU, conv3x3 with a scaled identity shortcut (EDSR / DSen2-CR style,
  no normalisation: batch statistics of 2-8 crops are useless).
* :class:`ConvNormAct` / :class:`DoubleConv` — conv3x3 + GroupNorm + ReLU, the U-Net unit.
* :class:`UNetEncoder` / :class:`UNetDecoder` — a 2-D U-Net split in two, so multi-task heads and
  pretext heads can share the encoder.
* :func:`deform_sample` and :class:`DeformConv2d` — modulated deformable convolution (DCNv2) built on
  ``grid_sample``: every kernel tap reads the input at its regular position plus a learned offset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def norm_groups(channels: int) -> int:
    """GroupNorm group count for ``channels``: 8, 4 or 2 groups of at least 2 channels, else 1."""
    for g in (8, 4, 2):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


def zero_init_(conv: nn.Conv2d | nn.Conv3d) -> None:
    """Zero weights and bias: the layer outputs 0 (a residual head starts as the identity)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ResBlock(nn.Module):
    """``x + scale * conv(relu(conv(x)))``."""

    def __init__(self, channels: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class ConvNormAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(norm_groups(cout), cout),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(ConvNormAct(cin, cout), ConvNormAct(cout, cout))


def unet_widths(width: int, depth: int) -> list[int]:
    """Channels per level: ``width, 2 width, 4 width, ...`` (``depth + 1`` levels)."""
    return [width * 2**i for i in range(depth + 1)]


class UNetEncoder(nn.Module):
    """``depth`` downsamplings (max pool 2); returns the feature map of every level."""

    def __init__(self, in_chans: int, width: int = 32, depth: int = 3):
        super().__init__()
        self.widths = unet_widths(width, depth)
        self.inc = DoubleConv(in_chans, self.widths[0])
        self.downs = nn.ModuleList(
            DoubleConv(self.widths[i], self.widths[i + 1]) for i in range(depth)
        )
        self.out_dim = self.widths[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(F.max_pool2d(feats[-1], 2)))
        return feats


class UNetDecoder(nn.Module):
    """Upsample (bilinear), concatenate the skip, DoubleConv; ends at ``widths[0]`` channels."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.ups = nn.ModuleList(
            DoubleConv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1))
        )
        self.out_dim = widths[0]

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], dim=1))
        return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the last two dims up to a multiple (U-Nets need H, W divisible by 2**depth)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        shape = x.shape
        flat = x.reshape(-1, *shape[-3:]) if x.ndim > 4 else x
        flat = F.pad(flat, (0, pw, 0, ph), mode=mode)
        x = flat.reshape(*shape[:-2], h + ph, w + pw) if x.ndim > 4 else flat
    return x, (h, w)


# ---------------------------------------------------------------------------------- deformable
def base_grid(h: int, w: int, device, dtype) -> torch.Tensor:
    """(1, H, W, 2) pixel coordinates (x, y) of every output position."""
    ys = torch.arange(h, device=device, dtype=dtype)
    xs = torch.arange(w, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)[None]


def deform_sample(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Bilinearly read ``x`` (N, C, H, W) at ``position + offset``; ``offset`` (N, 2, H, W) in
    pixels as (dx, dy). Zero outside the image. Differentiable in ``x`` and ``offset``."""
    h, w = x.shape[-2:]
    pos = base_grid(h, w, x.device, x.dtype) + offset.permute(0, 2, 3, 1)
    gx = 2.0 * pos[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * pos[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="zeros",
                         align_corners=True)


class DeformConv2d(nn.Module):
    """Modulated deformable 3x3 convolution (DCNv2) in plain torch.

    ``offset_mask`` (N, 3 K, H, W) holds, for each of the ``K = k*k`` taps, an offset (dx, dy) in
    pixels and a modulation logit. Every tap is read with :func:`deform_sample` (K ``grid_sample``
    calls), weighted by ``sigmoid(modulation)``, and the K reads are mixed by one dense conv.
    With zero offsets and modulation 1 this equals an ordinary 3x3 convolution (zero padding).
    """

    taps: torch.Tensor  # buffer

    def __init__(self, cin: int, cout: int, kernel_size: int = 3):
        super().__init__()
        self.k = kernel_size
        self.cin = cin
        self.weight = nn.Parameter(torch.empty(cout, cin * kernel_size**2))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        r = kernel_size // 2
        taps = [(dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        self.register_buffer("taps", torch.tensor(taps, dtype=torch.float32), persistent=False)

    @property
    def n_taps(self) -> int:
        return self.k * self.k

    def forward(self, x: torch.Tensor, offset_mask: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        kk = self.n_taps
        off = offset_mask[:, : 2 * kk].reshape(n, kk, 2, h, w)
        mod = torch.sigmoid(offset_mask[:, 2 * kk : 3 * kk]).reshape(n, kk, 1, h, w)
        reads = []
        for i in range(kk):
            tap = self.taps[i].to(x.dtype).view(1, 2, 1, 1)
            reads.append(deform_sample(x, off[:, i] + tap) * mod[:, i])
        cols = torch.stack(reads, dim=2).reshape(n, c * kk, h, w)  # (N, C*K, H, W), channel-major
        return torch.einsum("ok,nkhw->nohw", self.weight, cols) + self.bias.view(1, -1, 1, 1)


class Conv3x3x3(nn.Module):
    """A 3 x 3 x 3 convolution over (N, C, T, H, W) with padding 1 — ``nn.Conv3d`` semantics and
    weight layout — computed as one 2-D convolution on the stacked neighbouring time points.

    ``out[t] = sum_dt conv2d(x[t + dt], W[:, :, dt])`` (zero padding in time): the three frames
    around t are concatenated along the channels and convolved once. The same numbers as
    ``F.conv3d``; on CPU about 3x faster, because PyTorch's CPU conv3d has no optimised kernel.
    """

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        ref = nn.Conv3d(cin, cout, 3, padding=1, bias=bias)  # its initialisation, then its tensors
        self.weight = ref.weight
        self.bias = ref.bias
        self.cin, self.cout = cin, cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        xp = F.pad(x, (0, 0, 0, 0, 1, 1))
        stack = torch.cat([xp[:, :, k:k + t] for k in range(3)], dim=1)  # (N, 3C, T, H, W), dt-major
        stack = stack.transpose(1, 2).reshape(n * t, 3 * c, h, w)
        weight = self.weight.transpose(1, 2).reshape(self.cout, 3 * c, 3, 3)
        out = F.conv2d(stack, weight, self.bias, padding=1)
        return out.reshape(n, t, self.cout, h, w).transpose(1, 2)
