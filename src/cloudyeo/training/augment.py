"""Augmentations for early-fused multi-band (S1 + S2) tensors, in torch, batched.

The SSL views of the CBEN pretraining: random resized crop, brightness/contrast jitter
(p 0.8), "grayscale" (p 0.2), Gaussian blur (p 0.5) and horizontal flip (p 0.5).

* Spatial operations (crop, flip, blur) act identically on every channel of a view, so the
  SAR and optical parts stay co-registered. Crop and flip are one affine resampling
  (``grid_sample``, bilinear), vectorised over the batch.
* Photometric operations act on the *optical* channels only (``optical_channels``; SAR
  backscatter has no brightness or colour). Inputs are expected normalised (per-band z-scores,
  see :mod:`cloudyeo.training.normalization`), so brightness is an additive shift in standard
  deviations, shared by all optical bands of a sample; contrast scales each band around its
  spatial mean; grayscale replaces every optical band by the per-pixel mean of the optical
  bands.
* Every random draw comes from an explicit ``torch.Generator`` (a CPU one), in a fixed order
  and regardless of which operations end up applied, so a seed reproduces a view exactly on any
  device.

Input: (C, H, W) or (N, C, H, W) float tensors; each sample of a batch draws its own parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F

from cloudyeo.sentinel import S1_POLARIZATIONS

SAR_BANDS = frozenset(S1_POLARIZATIONS) | {"HH", "HV"}


def optical_channels_from_bands(bands: Sequence[str]) -> tuple[int, ...]:
    """Indices of the non-SAR bands in ``bands`` (everything except VV, VH, HH, HV)."""
    return tuple(i for i, b in enumerate(bands) if str(b).upper() not in SAR_BANDS)


def _uniform(gen: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with one sigma per sample, reflect padding."""
    n, c, h, w = x.shape
    radius = max(1, min(radius, h - 1, w - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(device=x.device, dtype=x.dtype)
    kernel = kernel.repeat_interleave(c, dim=0)  # (N*C, k)
    k = kernel.shape[1]
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel.view(n * c, 1, k, 1), groups=n * c)
    return y.reshape(n, c, h, w)


@dataclass
class MultibandAugment:
    """One random view of a multi-band image; call as ``aug(x, generator)``.

    Args:
        size: output (height, width) or side; None keeps the input size.
        scale: range of the crop area as a share of the image (MoCo: 0.2 to 1).
        ratio: range of the crop aspect ratio (width / height), sampled log-uniformly.
        brightness: additive shift drawn from [-brightness, brightness] (z-score units).
        contrast: contrast factor drawn from [1 - contrast, 1 + contrast].
        p_jitter, p_gray, p_blur, p_hflip: probabilities of each operation.
        sigma: range of the Gaussian blur standard deviation in output pixels.
        optical_channels: indices receiving the photometric operations; None means all
            (use :func:`optical_channels_from_bands` for S1 + S2 stacks).
        crop: False disables the random resized crop (the view keeps the full extent; it is
            still resized to ``size`` when given).
    """

    size: int | tuple[int, int] | None = None
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    brightness: float = 0.4
    contrast: float = 0.4
    p_jitter: float = 0.8
    p_gray: float = 0.2
    p_blur: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)
    p_hflip: float = 0.5
    optical_channels: Sequence[int] | None = None
    crop: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 < self.sigma[0] <= self.sigma[1]:
            raise ValueError(f"sigma must satisfy 0 < min <= max, got {self.sigma}")
        for name in ("p_jitter", "p_gray", "p_blur", "p_hflip"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    # -- parameters ---------------------------------------------------------------------
    def sample_params(self, n: int, height: int, width: int, gen: torch.Generator) -> dict:
        """All random parameters of ``n`` views, drawn in a fixed order (float64, CPU)."""
        attempts = 10
        area = _uniform(gen, (n, attempts), *self.scale) * (height * width)
        log_r = _uniform(gen, (n, attempts), math.log(self.ratio[0]), math.log(self.ratio[1]))
        pos = torch.rand((n, 2), generator=gen, dtype=torch.float64)
        flip = torch.rand(n, generator=gen, dtype=torch.float64) < self.p_hflip
        jitter = torch.rand(n, generator=gen, dtype=torch.float64) < self.p_jitter
        shift = _uniform(gen, n, -self.brightness, self.brightness)
        factor = _uniform(gen, n, 1 - self.contrast, 1 + self.contrast)
        gray = torch.rand(n, generator=gen, dtype=torch.float64) < self.p_gray
        blur = torch.rand(n, generator=gen, dtype=torch.float64) < self.p_blur
        sigma = _uniform(gen, n, *self.sigma)

        if self.crop:
            r = log_r.exp()
            cw, ch = (area * r).sqrt(), (area / r).sqrt()
            ok = (cw <= width) & (ch <= height)
            first = ok.to(torch.int8).argmax(dim=1, keepdim=True)  # first attempt that fits
            cw, ch = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
            none_fit = ~ok.any(dim=1)  # fall back to the whole image
            cw = torch.where(none_fit, torch.full_like(cw, width), cw)
            ch = torch.where(none_fit, torch.full_like(ch, height), ch)
        else:
            cw = torch.full((n,), float(width), dtype=torch.float64)
            ch = torch.full((n,), float(height), dtype=torch.float64)
        x0 = pos[:, 0] * (width - cw)
        y0 = pos[:, 1] * (height - ch)
        return {
            "box": torch.stack([x0, y0, cw, ch], dim=1),  # pixels: left, top, width, height
            "flip": flip, "jitter": jitter, "shift": shift, "factor": factor,
            "gray": gray, "blur": blur, "sigma": sigma,
        }

    # -- application ----------------------------------------------------------------------
    def _out_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is None:
            return height, width
        if isinstance(self.size, int):
            return self.size, self.size
        return cast(tuple[int, int], tuple(self.size))

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Apply drawn ``params`` to a batch (N, C, H, W)."""
        n, c, h, w = x.shape
        out_h, out_w = self._out_size(h, w)
        box = params["box"]
        sx, sy = box[:, 2] / w, box[:, 3] / h
        cx = (box[:, 0] + box[:, 2] / 2) / w * 2 - 1
        cy = (box[:, 1] + box[:, 3] / 2) / h * 2 - 1
        sign = torch.where(params["flip"], -1.0, 1.0).to(torch.float64)
        zero = torch.zeros_like(sx)
        theta = torch.stack(
            [torch.stack([sx * sign, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1
        ).to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

        dev = x.device
        idx = (
            torch.arange(c, device=dev)
            if self.optical_channels is None
            else torch.as_tensor(list(self.optical_channels), dtype=torch.long, device=dev)
        )
        if idx.numel():
            opt = out.index_select(1, idx)
            shift = params["shift"].to(device=dev, dtype=x.dtype).view(n, 1, 1, 1)
            factor = params["factor"].to(device=dev, dtype=x.dtype).view(n, 1, 1, 1)
            jittered = opt + shift
            mean = jittered.mean(dim=(2, 3), keepdim=True)
            jittered = (jittered - mean) * factor + mean
            opt = torch.where(params["jitter"].to(dev).view(n, 1, 1, 1), jittered, opt)
            gray = opt.mean(dim=1, keepdim=True).expand_as(opt)
            opt = torch.where(params["gray"].to(dev).view(n, 1, 1, 1), gray, opt)
            out = out.index_copy(1, idx, opt)

        blur = params["blur"]
        if bool(blur.any()) and min(out_h, out_w) > 1:
            radius = math.ceil(3 * self.sigma[1])
            blurred = _gaussian_blur(out, params["sigma"], radius)
            out = torch.where(blur.to(dev).view(n, 1, 1, 1), blurred, out)
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim not in (3, 4):
            raise ValueError(f"expected (C, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        if not batch.is_floating_point():
            batch = batch.float()
        params = self.sample_params(batch.shape[0], batch.shape[-2], batch.shape[-1], generator)
        out = self.apply(batch, params)
        return out[0] if single else out


def two_views(
    sample_a: torch.Tensor,
    sample_b: torch.Tensor | None,
    gen: torch.Generator,
    augment: MultibandAugment | None = None,
    augment_b: MultibandAugment | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently augmented views for contrastive pretraining.

    ``sample_b`` is the same location at another season (SSL4EO-style seasonal views) or None
    to take both views from ``sample_a``. ``augment_b`` defaults to ``augment``, which defaults
    to :class:`MultibandAugment` with its standard settings.
    """
    augment = augment or MultibandAugment()
    augment_b = augment_b or augment
    other = sample_a if sample_b is None else sample_b
    if other.shape[:-2] != sample_a.shape[:-2]:
        raise ValueError(f"views differ in bands/batch: {tuple(sample_a.shape)} vs {tuple(other.shape)}")
    return augment(sample_a, gen), augment_b(other, gen)
