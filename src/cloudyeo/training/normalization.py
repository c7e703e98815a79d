"""The band normalisation spec shared by pretraining, fine-tuning and every checkpoint.

``x_norm = (clip(x, lo, hi) - mean) / std`` per band, with the band order written down, so a
checkpoint knows which input it was trained on and a fine-tuning run can reuse (or subset) the
pretraining statistics. :func:`compute_normalization` derives a spec from a stream of arrays
with a numerically stable running mean/variance (Chan et al.'s parallel update, float64).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class NormalizationSpec:
    """Per-band mean/std (and optional clip range) for a fixed band order.

    ``clip`` is None or one (low, high) pair per band (either side may be None); clipping is
    applied to raw values before standardising.
    """

    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    clip: tuple[tuple[float | None, float | None], ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        n = len(self.bands)
        if len(set(self.bands)) != n:
            raise ValueError(f"duplicate band names in {self.bands}")
        if len(self.mean) != n or len(self.std) != n:
            raise ValueError(f"{n} bands but {len(self.mean)} means and {len(self.std)} stds")
        bad = [b for b, s in zip(self.bands, self.std) if not (s > 0 and np.isfinite(s))]
        if bad or not all(np.isfinite(self.mean)):
            raise ValueError(f"std must be finite and > 0 and mean finite (bad bands: {bad})")
        if self.clip is not None:
            clip = tuple(
                (None if lo is None else float(lo), None if hi is None else float(hi))
                for lo, hi in self.clip
            )
            if len(clip) != n:
                raise ValueError(f"{n} bands but {len(clip)} clip ranges")
            object.__setattr__(self, "clip", clip)

    @classmethod
    def from_stats(cls, bands: Sequence[str], mean: Sequence[float], std: Sequence[float],
                   clip: Sequence[tuple[float | None, float | None]] | None = None) -> NormalizationSpec:
        return cls(tuple(bands), tuple(mean), tuple(std), None if clip is None else tuple(clip))

    def __len__(self) -> int:
        return len(self.bands)

    def select(self, bands: Sequence[str]) -> NormalizationSpec:
        """The spec for a subset/reordering of the bands (e.g. S2 only for fine-tuning)."""
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ValueError(f"bands {missing} are not in the spec {self.bands}")
        idx = [self.bands.index(b) for b in bands]
        clip = None if self.clip is None else tuple(self.clip[i] for i in idx)
        return NormalizationSpec(
            tuple(bands), tuple(self.mean[i] for i in idx), tuple(self.std[i] for i in idx), clip
        )

    def _broadcast_shape(self, like, channel_dim: int):
        ndim = like.ndim
        dim = channel_dim % ndim
        if like.shape[dim] != len(self):
            raise ValueError(
                f"tensor has {like.shape[dim]} channels on dim {channel_dim}, spec has {len(self)} bands"
            )
        shape = [1] * ndim
        shape[dim] = len(self)
        return shape

    def apply(self, x, channel_dim: int = -3):
        """Normalise a torch tensor or numpy array; channels on ``channel_dim`` ((C,H,W) or
        (N,C,H,W) by default). Returns the same kind (float)."""
        shape = self._broadcast_shape(x, channel_dim)
        if isinstance(x, torch.Tensor):
            x = x if x.is_floating_point() else x.float()
            kw: dict[str, Any] = {"dtype": x.dtype, "device": x.device}
            if self.clip is not None:
                lo = torch.tensor([-np.inf if a is None else a for a, _ in self.clip], **kw)
                hi = torch.tensor([np.inf if b is None else b for _, b in self.clip], **kw)
                x = torch.minimum(torch.maximum(x, lo.view(shape)), hi.view(shape))
            mean = torch.tensor(self.mean, **kw).view(shape)
            std = torch.tensor(self.std, **kw).view(shape)
            return (x - mean) / std
        x = np.asarray(x)
        x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
        if self.clip is not None:
            lo_arr = np.array([-np.inf if a is None else a for a, _ in self.clip]).reshape(shape)
            hi_arr = np.array([np.inf if b is None else b for _, b in self.clip]).reshape(shape)
            x = np.clip(x, lo_arr, hi_arr)
        mean_arr = np.array(self.mean).reshape(shape)
        std_arr = np.array(self.std).reshape(shape)
        return ((x - mean_arr) / std_arr).astype(x.dtype, copy=False)

    __call__ = apply

    def invert(self, x, channel_dim: int = -3):
        """Back to raw units (clipping is not undone)."""
        shape = self._broadcast_shape(x, channel_dim)
        if isinstance(x, torch.Tensor):
            kw: dict[str, Any] = {"dtype": x.dtype, "device": x.device}
            return x * torch.tensor(self.std, **kw).view(shape) + torch.tensor(self.mean, **kw).view(shape)
        x = np.asarray(x)
        return (x * np.array(self.std).reshape(shape) + np.array(self.mean).reshape(shape)).astype(x.dtype, copy=False)

    def to_dict(self) -> dict:
        d = {"bands": list(self.bands), "mean": list(self.mean), "std": list(self.std)}
        d["clip"] = None if self.clip is None else [list(c) for c in self.clip]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NormalizationSpec:
        clip = d.get("clip")
        return cls(tuple(d["bands"]), tuple(d["mean"]), tuple(d["std"]),
                   None if clip is None else tuple(tuple(c) for c in clip))

    def to_json(self, path=None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        return text

    @classmethod
    def from_json(cls, path) -> NormalizationSpec:
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


class RunningBandStats:
    """Streaming per-band count, mean and variance (float64), NaNs ignored."""

    def __init__(self, n_bands: int):
        self.count = np.zeros(n_bands)
        self.mean = np.zeros(n_bands)
        self.m2 = np.zeros(n_bands)  # sum of squared deviations from the mean

    def update(self, values: np.ndarray) -> None:
        """Add (n_bands, n_values) observations."""
        v = np.asarray(values, dtype=np.float64)
        valid = ~np.isnan(v)
        n_b = valid.sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = np.where(n_b > 0, np.nansum(v, axis=1) / np.maximum(n_b, 1), 0.0)
            m2_b = np.nansum((v - mean_b[:, None]) ** 2 * valid, axis=1)
        total = self.count + n_b
        delta = mean_b - self.mean
        safe = np.maximum(total, 1)
        self.mean = self.mean + delta * n_b / safe
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / safe
        self.count = total

    @property
    def var(self) -> np.ndarray:
        return np.where(self.count > 1, self.m2 / np.maximum(self.count - 1, 1), np.nan)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)


def compute_normalization(
    arrays: Iterable,
    bands: Sequence[str],
    channel_axis: int = 0,
    clip: Sequence[tuple[float | None, float | None]] | None = None,
    min_std: float = 1e-6,
) -> NormalizationSpec:
    """A spec from a stream of arrays (numpy or torch) holding the bands on ``channel_axis``.

    Each array may be one sample (C, H, W) with ``channel_axis=0`` or a batch (N, C, H, W) with
    ``channel_axis=1``. Values are clipped first when ``clip`` is given (the spec then carries
    it). NaNs are ignored; stds are floored at ``min_std`` so constant bands stay usable.
    """
    n = len(bands)
    stats = RunningBandStats(n)
    for arr in arrays:
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        a = np.moveaxis(np.asarray(arr, dtype=np.float64), channel_axis, 0)
        if a.shape[0] != n:
            raise ValueError(f"array has {a.shape[0]} channels on axis {channel_axis}, expected {n}")
        a = a.reshape(n, -1)
        if clip is not None:
            lo = np.array([-np.inf if c[0] is None else c[0] for c in clip])[:, None]
            hi = np.array([np.inf if c[1] is None else c[1] for c in clip])[:, None]
            a = np.clip(a, lo, hi)
        stats.update(a)
    if (stats.count < 2).any():
        empty = [b for b, c in zip(bands, stats.count) if c < 2]
        raise ValueError(f"not enough valid values to estimate statistics for bands {empty}")
    std = np.maximum(stats.std, min_std)
    return NormalizationSpec.from_stats(bands, stats.mean.tolist(), std.tolist(), clip)
