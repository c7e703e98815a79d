"""SSL augmentations: co-registered channels, SAR untouched by photometric ops, determinism."""

from __future__ import annotations

import pytest
import torch

from cloudyeo.training import MultibandAugment, optical_channels_from_bands, two_views

BANDS = ["VV", "VH", "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
OPTICAL = optical_channels_from_bands(BANDS)
NO_PHOTO = {"p_jitter": 0.0, "p_gray": 0.0}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def pattern_batch(n=6, size=32):
    """Random bands with the same structured pattern in channel 0 (VV) and 13 (B12)."""
    x = torch.randn(n, 14, size, size, generator=gen(42))
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pat = torch.sin(xx / 3.0) + (yy > size // 3).float() * 2 + (xx * yy % 7 == 0).float()
    x[:, 0] = pat
    x[:, 13] = pat
    return x


def test_optical_channels_from_bands():
    assert OPTICAL == tuple(range(2, 14))
    assert optical_channels_from_bands(["B02", "HH", "vh"]) == (0,)


def test_spatial_ops_identical_on_all_channels():
    aug = MultibandAugment(size=24, p_blur=1.0, p_hflip=0.5, optical_channels=OPTICAL, **NO_PHOTO)
    out = aug(pattern_batch(), gen())
    assert out.shape == (6, 14, 24, 24)
    assert torch.equal(out[:, 0], out[:, 13])


def test_full_pipeline_keeps_sar_and_optical_aligned():
    x = pattern_batch(n=16)
    x[:, 1:13] = x[:, :1]  # the pattern in every band: photometric ops become per-band affine maps
    full = MultibandAugment(size=24, p_jitter=1.0, p_blur=1.0, optical_channels=OPTICAL)
    out = full(x, gen(5))
    a, b = out[:, 0].flatten(1), out[:, 13].flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert (corr > 0.999).all(), corr


def test_photometric_ops_touch_optical_channels_only():
    x = pattern_batch(n=8)
    full = MultibandAugment(size=24, p_jitter=1.0, p_gray=0.5, optical_channels=OPTICAL)
    spatial = MultibandAugment(size=24, optical_channels=OPTICAL, **NO_PHOTO)
    a, b = full(x, gen(3)), spatial(x, gen(3))  # same draws: same crops, flips, blurs
    assert torch.equal(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2:], b[:, 2:])


def test_grayscale_replaces_optical_by_mean():
    x = torch.randn(2, 14, 16, 16, generator=gen(1))
    aug = MultibandAugment(crop=False, p_gray=1.0, p_jitter=0.0, p_blur=0.0, p_hflip=0.0, optical_channels=OPTICAL)
    out = aug(x, gen())
    assert torch.allclose(out[:, 2:], x[:, 2:].mean(1, keepdim=True).expand(-1, 12, -1, -1), atol=1e-5)
    assert torch.allclose(out[:, :2], x[:, :2], atol=1e-5)


def test_identity_and_exact_flip_without_crop():
    x = torch.randn(3, 14, 12, 20, generator=gen(2))
    off = {"crop": False, "p_jitter": 0.0, "p_gray": 0.0, "p_blur": 0.0}
    assert torch.allclose(MultibandAugment(p_hflip=0.0, **off)(x, gen()), x, atol=1e-5)
    assert torch.allclose(MultibandAugment(p_hflip=1.0, **off)(x, gen()), x.flip(-1), atol=1e-5)


def test_deterministic_with_generator_and_single_sample():
    x = pattern_batch(n=4)
    aug = MultibandAugment(size=16, optical_channels=OPTICAL)
    assert torch.equal(aug(x, gen(7)), aug(x, gen(7)))
    assert not torch.equal(aug(x, gen(7)), aug(x, gen(8)))
    one = aug(x[0], gen(7))
    assert one.shape == (14, 16, 16)
    assert torch.allclose(one, aug(x[:1], gen(7))[0])
    assert torch.isfinite(aug(x, gen(9))).all()


def test_two_views():
    summer, winter = pattern_batch(n=2), pattern_batch(n=2) + 1.0
    aug = MultibandAugment(size=(16, 24), optical_channels=OPTICAL)
    v1, v2 = two_views(summer, winter, gen(0), aug)
    assert v1.shape == v2.shape == (2, 14, 16, 24)
    w1, w2 = two_views(summer[0], None, gen(0), aug)
    assert w1.shape == (14, 16, 24) and not torch.equal(w1, w2)
    v1b, v2b = two_views(summer, winter, gen(0), aug)
    assert torch.equal(v1, v1b) and torch.equal(v2, v2b)
    with pytest.raises(ValueError, match="differ"):
        two_views(summer, winter[:, :13], gen(0), aug)


def test_invalid_settings():
    with pytest.raises(ValueError, match="scale"):
        MultibandAugment(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="p_blur"):
        MultibandAugment(p_blur=2.0)
