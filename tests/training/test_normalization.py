"""Normalisation spec: apply/invert, dict/JSON round trip, subsets, streaming statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cloudyeo.training import NormalizationSpec, compute_normalization

BANDS = ("VV", "VH", "B02")


def spec(clip=None):
    return NormalizationSpec.from_stats(BANDS, [-12.0, -19.0, 900.0], [4.0, 5.0, 300.0], clip)


def test_apply_invert_torch_and_numpy():
    s = spec()
    x = torch.tensor([-12.0, -24.0, 1500.0]).view(3, 1, 1).expand(3, 2, 2)
    z = s.apply(x)
    assert torch.allclose(z[:, 0, 0], torch.tensor([0.0, -1.0, 2.0]))
    assert torch.allclose(s.invert(z), x)
    batch = np.stack([x.numpy()] * 2)  # (N, C, H, W)
    zn = s(batch)
    assert isinstance(zn, np.ndarray) and zn.dtype == np.float32
    assert np.allclose(zn[1, :, 1, 1], [0.0, -1.0, 2.0])
    with pytest.raises(ValueError, match="3 bands"):
        s.apply(torch.zeros(4, 2, 2))


def test_clip_before_standardising():
    s = spec(clip=[(-30, 5), (None, None), (0, 1200)])
    z = s.apply(torch.tensor([[[10.0]], [[100.0]], [[5000.0]]]))
    assert torch.allclose(z.flatten(), torch.tensor([(5 + 12) / 4, (100 + 19) / 5, (1200 - 900) / 300]))


def test_round_trips_and_select(tmp_path):
    s = spec(clip=[(-30, 5), (None, None), (0, 1200)])
    assert NormalizationSpec.from_dict(s.to_dict()) == s
    s.to_json(tmp_path / "norm.json")
    assert NormalizationSpec.from_json(tmp_path / "norm.json") == s
    sub = s.select(["B02", "VV"])
    assert sub.bands == ("B02", "VV") and sub.mean == (900.0, -12.0) and sub.clip[0] == (0.0, 1200.0)
    with pytest.raises(ValueError, match="not in the spec"):
        s.select(["B08"])


def test_invalid_specs():
    with pytest.raises(ValueError, match="std"):
        NormalizationSpec.from_stats(["a"], [0.0], [0.0])
    with pytest.raises(ValueError, match="duplicate"):
        NormalizationSpec.from_stats(["a", "a"], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="2 bands but 1"):
        NormalizationSpec.from_stats(["a", "b"], [0.0], [1.0, 1.0])


def test_compute_normalization_streaming_matches_numpy():
    rng = np.random.default_rng(0)
    samples = [rng.normal([[[1.0]], [[50.0]], [[-3.0]]], [[[2.0]], [[10.0]], [[0.5]]], (3, 8, 8)) for _ in range(7)]
    samples[2][1, 0, :3] = np.nan  # NaNs are ignored
    s = compute_normalization(iter(samples), BANDS, channel_axis=0)
    stacked = np.concatenate([a.reshape(3, -1) for a in samples], axis=1)
    assert np.allclose(s.mean, np.nanmean(stacked, axis=1))
    assert np.allclose(s.std, np.nanstd(stacked, axis=1, ddof=1))
    # Batches (N, C, H, W) and torch tensors give the same answer.
    batched = compute_normalization([torch.from_numpy(np.stack(samples[:4])), np.stack(samples[4:])], BANDS, channel_axis=1)
    assert np.allclose(batched.mean, s.mean) and np.allclose(batched.std, s.std)
    clipped = compute_normalization(samples, BANDS, clip=[(None, None), (None, 40.0), (None, None)])
    assert clipped.mean[1] <= 40.0 and clipped.clip[1] == (None, 40.0)
    with pytest.raises(ValueError, match="expected 3"):
        compute_normalization([np.zeros((2, 4, 4))], BANDS)
