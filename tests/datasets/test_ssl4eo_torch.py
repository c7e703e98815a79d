"""SSL4EODataset on the tiny SSL4EO store: all seasons, random season pairs, early fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cloudyeo import store
from cloudyeo.config import paths
from cloudyeo.datasets.ssl4eo_torch import SSL4EODataset
from cloudyeo.sentinel import S2_L2A_BANDS


@pytest.fixture(scope="module")
def built(ssl4eo_built):
    p = paths(ssl4eo_built).ssl4eo_store
    return p, store.open_store(p)


def test_all_seasons_match_xarray(built):
    path, ds = built
    data = SSL4EODataset(path, modalities=("s2_l1c", "s2_l2a", "s1"))
    assert len(data) == int((ds["valid"].values.sum(axis=1) >= 1).sum())
    for n in range(len(data)):
        item = data[n]
        i = int(item["index"])
        assert item["s2_l2a"].shape == (4, 12, 84, 84) and item["s2_l1c"].shape == (4, 13, 84, 84)
        assert item["s1"].shape == (4, 2, 84, 84) and item["season"].tolist() == [0, 1, 2, 3]
        assert item["valid"].tolist() == ds["valid"].values[i].tolist()
        assert item["s1_valid"].tolist() == ds["s1_valid"].values[i].tolist()
        for var in ("s2_l1c", "s2_l2a", "s1"):
            np.testing.assert_allclose(item[var].numpy(), ds[var][i].values, rtol=0, atol=1e-6, equal_nan=True)
        assert torch.isnan(item["s2_l2a"][~item["valid"]]).all()
        assert torch.isfinite(item["s2_l2a"][item["valid"]]).all()


def test_random_pairs_of_valid_seasons(built):
    path, ds = built
    valid = ds["valid"].values
    data = SSL4EODataset(path, seasons="pair")
    assert list(data.indices) == list(np.flatnonzero(valid.sum(axis=1) >= 2))
    seen = set()
    for _ in range(10):
        for n in range(len(data)):
            item = data[n]
            i, (a, b) = int(item["index"]), item["season"].tolist()
            assert a != b and valid[i, a] and valid[i, b] and item["valid"].all()
            assert item["s2_l2a"].shape == (2, 12, 84, 84)
            np.testing.assert_allclose(item["s2_l2a"][1].numpy(), ds["s2_l2a"][i, b].values, atol=1e-6)
            seen.add((i, a, b))
    assert len(seen) > len(data), "pairs should vary between draws"
    # A fixed seed gives the same pairs per epoch, others in another epoch.
    fixed = SSL4EODataset(path, seasons="pair", seed=7)
    first = [fixed[n]["season"].tolist() for n in range(len(fixed))]
    assert first == [fixed[n]["season"].tolist() for n in range(len(fixed))]
    draws = set()
    for epoch in range(8):
        fixed.set_epoch(epoch)
        draws.add(tuple(tuple(fixed[n]["season"].tolist()) for n in range(len(fixed))))
    assert len(draws) > 1


def test_fused_normalised_views_batch_in_a_dataloader(built):
    path, ds = built
    data = SSL4EODataset(path, seasons="pair", fuse=True, normalize=True, nodata=0.0, seed=0)
    assert data.fused_channels == ["VV", "VH", *S2_L2A_BANDS]
    assert data.usable_seasons.sum() == (ds["valid"].values & ds["s1_valid"].values).sum()
    batch = next(iter(DataLoader(data, batch_size=2, num_workers=0)))
    assert batch["image"].shape == (2, 2, 14, 84, 84)
    assert torch.isfinite(batch["image"]).all()
    assert batch["s1_valid"].all()
    # Normalised with the store's statistics: roughly zero mean, unit scale overall.
    assert abs(float(batch["image"].mean())) < 1.5 and 0.05 < float(batch["image"].std()) < 5
    one = SSL4EODataset(path, seasons="one", modalities=("s2_l2a",))
    assert one[0]["s2_l2a"].shape == (1, 12, 84, 84)


def test_bad_arguments_and_incomplete_store(built, tmp_path):
    path, _ = built
    with pytest.raises(ValueError, match="modalities"):
        SSL4EODataset(path, modalities=("rgb",))
    with pytest.raises(ValueError, match="fuse"):
        SSL4EODataset(path, modalities=("s2_l2a",), fuse=True)
    with pytest.raises(ValueError, match="seasons"):
        SSL4EODataset(path, seasons="three")
    with pytest.raises(FileNotFoundError):
        SSL4EODataset(tmp_path / "nothing.zarr")
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    store.mark_incomplete(copy)
    with pytest.raises(store.IncompleteStoreError):
        SSL4EODataset(copy)
