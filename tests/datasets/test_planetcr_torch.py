"""PlanetCRDataset: dicts of tensors equal to the store's decoded values, split filtering."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from support.datasets import build_dataset
from torch.utils.data import DataLoader

from cloudyeo import drivers, store
from cloudyeo.config import paths, validate_config
from cloudyeo.datasets.planetcr_torch import PlanetCRDataset
from cloudyeo.demo.planet import generate_planet_world


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("planetcr_torch")
    cfg = validate_config({
        "archive": "demo", "resources_dir": str(base / "resources"), "results_dir": str(base / "results"),
        "demo_planet": {"seed": 5, "aois": ["kenya-nakuru", "australia-riverina"], "aoi_size_px": 90,
                        "days": 7, "daily_probability": 1.0, "s1_revisit_days": 3},
        "planetcr": {"window_3m": 150, "window_10m": 45, "stride_10m": 45, "samples_per_bin": 2,
                     "max_s1_days": 4, "aois_per_batch": 2, "store_codec": "none",
                     "max_nodata_percent": 100.0},
    })
    generate_planet_world(cfg["demo_planet"], paths(cfg).demo_planet, progress=False, workers=2)
    builder = build_dataset("planetcr", cfg, units=["batch-000"], finalize=False)
    path = paths(cfg).planetcr_store
    with pytest.raises(store.IncompleteStoreError):
        PlanetCRDataset(path)  # not finalized yet
    drivers.run_finalize(builder)
    return path


def test_items_match_the_store(store_path):
    ds = xr.open_zarr(store_path)
    data = PlanetCRDataset(store_path)
    assert len(data) == ds.sizes["sample"] > 0
    for i in (0, len(data) - 1):
        item = data[i]
        assert item["optical_cloudy"].shape == (4, 150, 150) and item["optical_cloudy"].dtype == torch.float32
        assert item["s1"].shape == (2, 45, 45) and item["landcover"].dtype == torch.int64
        assert item["cloud_mask"].dtype == torch.uint8 and item["cloud_mask"].shape == (150, 150)
        for var in ("optical_cloudy", "optical_clear", "s1"):
            np.testing.assert_allclose(item[var].numpy(), ds[var].values[i].astype(np.float32),
                                       rtol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(item["landcover"].numpy(), ds["landcover"].values[i])
        assert item["cloud_percent"].item() == pytest.approx(float(ds["cloud_percent"].values[i]))
        assert item["dt_clear_days"].item() == pytest.approx(float(ds["dt_clear_days"].values[i]))
    # Nodata pixels (0) of a partly imaged cloudy window decode to NaN, like xarray.
    nan = [i for i in range(len(data)) if torch.isnan(data[i]["optical_cloudy"]).any()]
    for i in nan:
        assert (data[i]["cloud_mask"] == 255).any()


def test_splits_bands_and_loader(store_path):
    split = np.array([str(v) for v in xr.open_zarr(store_path)["split"].values])
    train, test = PlanetCRDataset(store_path, split="train"), PlanetCRDataset(store_path, split="test")
    assert len(train) + len(test) == len(split) and len(train) and len(test)
    assert set(split[train.indices]) == {"train"}
    rgb = PlanetCRDataset(store_path, bands=["R", "G", "B"])
    full = PlanetCRDataset(store_path)
    np.testing.assert_array_equal(rgb[0]["optical_clear"].numpy(), full[0]["optical_clear"].numpy()[[2, 1, 0]])
    batch = next(iter(DataLoader(train, batch_size=2, shuffle=True, num_workers=0)))
    assert batch["optical_clear"].shape[1:] == (4, 150, 150) and batch["landcover"].shape[1:] == (45, 45)
    with pytest.raises(ValueError, match="split"):
        PlanetCRDataset(store_path, split="val")
    with pytest.raises(ValueError, match="bands"):
        PlanetCRDataset(store_path, bands=["SWIR"])
