"""Differentiable torch counterparts of two metrics, for use as training losses.

* :func:`ssim_torch` computes the same SSIM as :func:`cloudyeo.metrics.image.ssim` (Gaussian
  11 x 11 window, sigma 1.5, symmetric-reflection borders, K1 0.01, K2 0.03, mean over the map
  without its 5-pixel border and over bands) on ``(N, C, H, W)`` tensors, one value per image.
  No clipping happens here (clipping would cut gradients); the loss is usually ``1 - ssim``.
* :func:`masked_l1` is the MAE of :mod:`cloudyeo.metrics.image` as a tensor, optionally masked.

torch is imported lazily so that the numpy metrics do not pay for it.
"""

from __future__ import annotations

import math

from cloudyeo.metrics.image import DATA_RANGE, SSIM_K1, SSIM_K2, SSIM_RADIUS, SSIM_SIGMA


def _gaussian_kernel_1d(torch, dtype, device):
    r = SSIM_RADIUS
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def _reflect_pad(torch, x, r: int):
    """Symmetric padding ``(c b a | a b c | c b a)`` of the last two dims, as scipy's "reflect"."""
    for dim in (-1, -2):
        n = x.shape[dim]
        if n < r:
            raise ValueError(f"image side {n} is smaller than the SSIM window radius {r}")
        head = x.narrow(dim, 0, r).flip(dim)
        tail = x.narrow(dim, n - r, r).flip(dim)
        x = torch.cat([head, x, tail], dim=dim)
    return x


def _blur(torch, x, kernel):
    """Separable Gaussian blur of (N, C, H, W), same size out."""
    import torch.nn.functional as F

    n, c, h, w = x.shape
    r = (kernel.numel() - 1) // 2
    xp = _reflect_pad(torch, x, r).reshape(n * c, 1, h + 2 * r, w + 2 * r)
    xp = F.conv2d(xp, kernel.view(1, 1, 1, -1))
    xp = F.conv2d(xp, kernel.view(1, 1, -1, 1))
    return xp.reshape(n, c, h, w)


def ssim_torch(pred, target, mask=None, *, data_range: float = DATA_RANGE):
    """Per-image SSIM ``(N,)`` of ``(N, C, H, W)`` tensors; ``mask`` ``(N, H, W)`` bool or None.

    Differentiable. Matches :func:`cloudyeo.metrics.image.batch_image_metrics`'s ``ssim``
    (with ``clip=False``) up to floating-point rounding.
    """
    import torch

    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors, got {pred.shape} and {target.shape}")
    dtype = pred.dtype if pred.is_floating_point() else torch.float32
    x = pred.to(dtype)
    y = target.to(dtype)
    kernel = _gaussian_kernel_1d(torch, dtype, x.device)
    ux, uy = _blur(torch, x, kernel), _blur(torch, y, kernel)
    vx = _blur(torch, x * x, kernel) - ux * ux
    vy = _blur(torch, y * y, kernel) - uy * uy
    vxy = _blur(torch, x * y, kernel) - ux * uy
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    n, c, h, w = x.shape
    r = SSIM_RADIUS
    inner = torch.zeros((h, w), dtype=torch.bool, device=x.device)
    inner[r : h - r, r : w - r] = True
    pixels = inner.expand(n, h, w) if mask is None else (mask.to(torch.bool) & inner)
    weight = pixels.unsqueeze(1).expand(n, c, h, w).to(dtype)
    count = weight.sum(dim=(1, 2, 3))
    total = (smap * weight).sum(dim=(1, 2, 3))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def masked_l1(pred, target, mask=None):
    """Mean absolute error of tensors ``(N, C, H, W)`` over all images, bands and masked pixels.

    ``mask`` ``(N, H, W)`` (truthy = scored) or None. Returns a scalar tensor (NaN if nothing is
    selected).
    """
    import torch

    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    weight = mask.to(diff.dtype).unsqueeze(1).expand_as(diff)
    count = weight.sum()
    return torch.where(
        count > 0, (diff * weight).sum() / count.clamp_min(1), torch.full_like(count, math.nan)
    )
