"""Inputs of the CBEN experiment: 14 early-fused bands, one normalisation for every stage.

Channel order everywhere (pretraining on SSL4EO, fine-tuning and testing on BEN/CBEN):
:data:`FUSED_BANDS` = Sentinel-1 VV, VH (dB), then the 12 Sentinel-2 L2A bands B01...B12
(reflectance). The normalisation spec is computed once, from the SSL4EO store's band statistics,
saved with the pretrained checkpoint and reused by fine-tuning and evaluation, so one band means
the same number in every stage (the public code normalises differently in pretraining and
fine-tuning). Values outside the spec's clip range are clipped, then standardised; missing
pixels (NaN) become 0 after standardisation (the band mean).

Adapters over the dataset readers (which belong to the dataset modules):

* :class:`SSL4EOViews` - one SSL4EO location per item, ``image`` (T, 14, P, P) raw values of
  T = 2 seasons (two views from two seasons, SSL4EO-S12) or T = 1 (both views from one).
* :class:`CBENFused` - one CBEN patch per item, ``image`` (14, 120, 120) with S2 from ``s2``
  (variant ``cben``, cloudy) or ``s2_reference`` (variant ``ben``, clear).

Augmentations run on the batch, after normalisation, on the training device: a view's spatial
transform is one operation on all 14 channels, so S1 and S2 stay co-registered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cloudyeo.datasets.reader import store_attributes
from cloudyeo.sentinel import S1_POLARIZATIONS, S2_L2A_BANDS
from cloudyeo.training.normalization import NormalizationSpec

FUSED_BANDS: tuple[str, ...] = (*S1_POLARIZATIONS, *S2_L2A_BANDS)
N_CHANNELS = len(FUSED_BANDS)


def fused_clip(s1_clip, s2_clip) -> tuple | None:
    """Per-band clip ranges in :data:`FUSED_BANDS` order (None when neither is set)."""
    if s1_clip is None and s2_clip is None:
        return None
    s1 = tuple(s1_clip) if s1_clip is not None else (None, None)
    s2 = tuple(s2_clip) if s2_clip is not None else (None, None)
    return tuple([s1] * len(S1_POLARIZATIONS) + [s2] * len(S2_L2A_BANDS))


def ssl4eo_normalization(store_path: str | os.PathLike, s1_clip=None, s2_clip=None) -> NormalizationSpec:
    """The spec from the SSL4EO store's ``band_statistics`` (finalize writes them: per-band mean
    and SD over the valid seasons of the whole store), in :data:`FUSED_BANDS` order.

    With a clip range the statistics are those of unclipped values; the clip only bounds
    outliers (e.g. saturated pixels) before standardisation.
    """
    stats = store_attributes(store_path).get("band_statistics")
    if not stats:
        raise KeyError(f"{store_path} has no band_statistics attribute (the SSL4EO finalize writes it)")
    by_key = {(r["variable"], str(r["band"])): r for r in stats}
    keys = [("s1", b) for b in S1_POLARIZATIONS] + [("s2_l2a", b) for b in S2_L2A_BANDS]
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise KeyError(f"{store_path}: band_statistics lack {missing}")
    mean = [float(by_key[k]["mean"]) for k in keys]
    std = [max(float(by_key[k]["std"]), 1e-6) for k in keys]
    return NormalizationSpec.from_stats(FUSED_BANDS, mean, std, fused_clip(s1_clip, s2_clip))


def normalize_batch(x: torch.Tensor, spec: NormalizationSpec, inplace: bool = False) -> torch.Tensor:
    """(N, C, H, W) or (N, T, C, H, W) raw values -> clipped, standardised, NaN -> 0.

    ``spec.apply`` in three in-place passes (clip, scale-and-shift, NaN fill): on 264 px
    pretraining batches this step costs more than the model otherwise. ``inplace`` reuses ``x``
    (a float32 batch the caller owns); equal to ``spec.apply`` within float32 rounding.
    """
    if tuple(spec.bands) != FUSED_BANDS:
        spec = spec.select(FUSED_BANDS)
    if x.shape[-3] != len(spec):
        raise ValueError(f"{x.shape[-3]} channels on dim -3, the spec has {len(spec)} bands")
    x = x.float() if inplace else x.float().clone()
    shape = [1] * x.ndim
    shape[-3] = len(spec)
    kw: dict[str, Any] = {"dtype": x.dtype, "device": x.device}
    if spec.clip is not None:
        lo = torch.tensor([-np.inf if a is None else a for a, _ in spec.clip], **kw).view(shape)
        hi = torch.tensor([np.inf if b is None else b for _, b in spec.clip], **kw).view(shape)
        x.clamp_(min=lo, max=hi)
    std = torch.tensor(spec.std, dtype=torch.float64)
    x.mul_((1.0 / std).to(**kw).view(shape)).add_((-torch.tensor(spec.mean, dtype=torch.float64) / std).to(**kw).view(shape))
    return torch.nan_to_num_(x, nan=0.0, posinf=0.0, neginf=0.0)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize (N, C, H, W) to ``size`` x ``size`` (bilinear, antialiased when shrinking)."""
    if size is None or (x.shape[-2] == size and x.shape[-1] == size):
        return x
    shrink = size < min(x.shape[-2:])
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def flips(x: torch.Tensor, gen: torch.Generator, hflip: bool = True, vflip: bool = True,
          rot90: bool = True) -> torch.Tensor:
    """Label-preserving random flips / quarter turns of (N, C, H, W), per sample, all channels
    alike (square images for ``rot90``)."""
    n = x.shape[0]
    draws = torch.rand((n, 3), generator=gen)
    k = torch.randint(0, 4, (n,), generator=gen)
    out = x
    dev = x.device
    if hflip:
        m = (draws[:, 0] < 0.5).to(dev).view(n, 1, 1, 1)
        out = torch.where(m, out.flip(-1), out)
    if vflip:
        m = (draws[:, 1] < 0.5).to(dev).view(n, 1, 1, 1)
        out = torch.where(m, out.flip(-2), out)
    if rot90 and out.shape[-1] == out.shape[-2]:
        rotated = out
        for turn in range(1, 4):
            rotated = rotated.rot90(1, dims=(-2, -1))
            m = (k == turn).to(dev).view(n, 1, 1, 1)
            out = torch.where(m, rotated, out)
    return out


def _views(item: dict) -> dict[str, torch.Tensor]:
    """The SSL4EO reader's sample as pretraining input (a reader transform: picklable)."""
    return {"image": item["image"], "index": item["index"]}


def _fused_patch(item: dict) -> dict[str, torch.Tensor]:
    """The CBEN reader's sample as one fused stack S1 then S2 (a reader transform)."""
    return {
        "image": torch.cat([item["s1"], item["s2"]], dim=0),
        "label": item["label"],
        "index": item["index"],
        "cloud_fraction": item["cloud_fraction"],
    }


class SSL4EOViews(Dataset):
    """SSL4EO locations as raw fused stacks ``image`` (T, 14, P, P) for two-view pretraining.

    ``views="seasons"``: T = 2 distinct valid seasons of a location (SSL4EO-S12's seasonal
    positives); ``"single"``: T = 1 valid season (both views are augmentations of it). A season
    counts only with S2 L2A and S1 present. Season draws are a function of (seed, epoch,
    location): call :meth:`set_epoch` each epoch.
    """

    def __init__(self, store_path: str | os.PathLike, views: str = "seasons", seed: int = 0):
        from cloudyeo.datasets.ssl4eo_torch import SSL4EODataset

        if views not in ("seasons", "single"):
            raise ValueError(f"views must be 'seasons' or 'single', got {views!r}")
        self.views = views
        self.inner = SSL4EODataset(
            store_path, modalities=("s2_l2a", "s1"), seasons="pair" if views == "seasons" else "one",
            fuse=True, require_s1=True, normalize=False, seed=seed, transforms=_views)
        if tuple(self.inner.fused_channels) != FUSED_BANDS:
            raise ValueError(f"{store_path}: fused channels {self.inner.fused_channels} != {FUSED_BANDS}")
        if len(self.inner) == 0:
            raise ValueError(f"{store_path}: no location has enough valid seasons for views={views!r}")

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.inner[idx]


class CBENFused(Dataset):
    """CBEN patches as raw fused stacks ``image`` (14, H, W) with ``label`` (19,), ``index``
    (position in the store) and ``cloud_fraction`` (of the cloudy ``s2``, whatever the variant)."""

    def __init__(self, store_path: str | os.PathLike, split: str, variant: str):
        from cloudyeo.datasets.cben_torch import CBENDataset

        self.inner = CBENDataset(store_path, split=split, variant=variant, transforms=_fused_patch)
        self.variant = variant
        self.split = split

    @property
    def label_names(self) -> list[str]:
        import zarr

        arr = zarr.open_array(str(Path(self.inner.path) / "label"), mode="r", zarr_format=3)
        return [str(v) for v in np.asarray(arr[...]).ravel()]

    @property
    def patch_ids(self) -> np.ndarray:
        return self.inner.patch_ids[self.inner.indices]

    @property
    def cloud_fractions(self) -> np.ndarray:
        return self.inner.cloud_fraction[self.inner.indices]

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return self.inner[idx]
