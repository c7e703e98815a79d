"""CBENDataset over a tiny store with the real CBEN layout (12 bands, VV/VH, 19 labels, 120 px)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cloudyeo import store
from cloudyeo.datasets.cben_torch import CBENDataset
from cloudyeo.sentinel import BEN19_CLASSES, S1_POLARIZATIONS, S2_L2A_BANDS
from cloudyeo.store import IncompleteStoreError, VariableSpec

N = 10
PX = 120
SPLITS = ["train", "train", "train", "validation", "test", "train", "test", "validation",
          "train", "test"]  # fmt: skip
S2_ATTRS = {"scale_factor": 1e-4, "_FillValue": -32768, "units": "1"}


def make_cben_store(path, n=N, seed=0):
    """Write a CBEN-layout store the way the pipeline does (create, write shards, finalize)."""
    rng = np.random.default_rng(seed)
    variables = {
        "s2": VariableSpec(("band", "y", "x"), (12, PX, PX), "int16", S2_ATTRS),
        "s2_reference": VariableSpec(("band", "y", "x"), (12, PX, PX), "int16", S2_ATTRS),
        "s1": VariableSpec(("polarization", "y", "x"), (2, PX, PX), "float32",
                           {"_FillValue": float("nan"), "units": "dB"}),
        "labels": VariableSpec(("label",), (19,), "uint8", {}),
    }  # fmt: skip
    coords = {
        "patch_id": (("sample",), np.array([f"S2A_MSIL2A_T33UUP_{i}_{i}" for i in range(n)])),
        "split": (("sample",), np.array((SPLITS * n)[:n])),
        "band": (("band",), np.array(S2_L2A_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        "label": (("label",), np.array(BEN19_CLASSES)),
    }
    store.create_store(path, n, variables, coords, {"dataset": "CBEN"})
    data = {
        "s2": rng.integers(0, 12000, (n, 12, PX, PX)).astype(np.int16),
        "s2_reference": rng.integers(0, 6000, (n, 12, PX, PX)).astype(np.int16),
        "s1": rng.normal(-12, 4, (n, 2, PX, PX)).astype(np.float32),
        "labels": (rng.random((n, 19)) < 0.2).astype(np.uint8),
    }
    data["s2"][1, 3, 10:20, 10:20] = -32768
    data["s1"][2, 0, 0, :5] = np.nan
    half = n // 2
    for lo, hi in ((0, half), (half, n)):  # two "shards"
        store.write_samples(path, lo, {k: v[lo:hi] for k, v in data.items()})
    store.write_coords(path, {
        "cloud_fraction": (("sample",), rng.random(n).astype(np.float32)),
        "shadow_fraction": (("sample",), rng.random(n).astype(np.float32) / 10),
    })  # fmt: skip
    store.mark_complete(path, {"finalized": True})
    return data


@pytest.fixture(scope="module")
def cben(tmp_path_factory):
    path = tmp_path_factory.mktemp("cben") / "cben.zarr"
    make_cben_store(path)
    return path


@pytest.fixture(scope="module")
def ds_xr(cben):
    return store.open_store(cben).load()


def _assert_matches(item, ds_xr, i, s2_var="s2", bands=None):
    exp = ds_xr[s2_var].isel(sample=i)
    if bands is not None:
        exp = exp.sel(band=list(bands))
    exp = exp.values
    s2 = item["s2"].numpy()
    assert s2.dtype == np.float32 and s2.shape == exp.shape
    np.testing.assert_array_equal(np.isnan(s2), np.isnan(exp))
    np.testing.assert_allclose(s2, exp.astype(np.float32), rtol=2e-7, atol=0)
    np.testing.assert_array_equal(item["s1"].numpy(), ds_xr.s1.values[i])
    np.testing.assert_array_equal(item["label"].numpy(), ds_xr.labels.values[i].astype(np.float32))
    assert item["index"].dtype == torch.int64 and int(item["index"]) == i
    assert item["cloud_fraction"].dtype == torch.float32
    assert float(item["cloud_fraction"]) == pytest.approx(float(ds_xr.cloud_fraction.values[i]))


@pytest.mark.parametrize("fast", [True, False])
def test_values_equal_xarray(cben, ds_xr, fast):
    ds = CBENDataset(cben, fast=fast)
    assert len(ds) == N
    for i in range(N):
        item = ds[i]
        assert set(item) == {"s2", "s1", "label", "index", "cloud_fraction"}
        assert item["s2"].shape == (12, PX, PX) and item["s1"].shape == (2, PX, PX)
        assert item["label"].shape == (19,) and item["label"].dtype == torch.float32
        _assert_matches(item, ds_xr, i)
    assert torch.isnan(ds[1]["s2"][3, 10:20, 10:20]).all()  # fill -> NaN
    assert torch.isnan(ds[2]["s1"][0, 0, :5]).all()


def test_variant_switch(cben, ds_xr):
    ben = CBENDataset(cben, variant="ben")
    item = ben[4]
    _assert_matches(item, ds_xr, 4, s2_var="s2_reference")
    assert not torch.equal(item["s2"], CBENDataset(cben)[4]["s2"])
    with pytest.raises(ValueError, match="variant"):
        CBENDataset(cben, variant="sen12ms")


def test_split_filter(cben, ds_xr):
    for split in ("train", "validation", "test"):
        ds = CBENDataset(cben, split=split)
        expected = [i for i, s in enumerate(SPLITS) if s == split]
        assert len(ds) == len(expected)
        assert [int(ds[k]["index"]) for k in range(len(ds))] == expected
    _assert_matches(CBENDataset(cben, split="test")[1], ds_xr, 6)  # 2nd test sample
    with pytest.raises(ValueError, match="split"):
        CBENDataset(cben, split="val")


def test_band_subset_and_nodata(cben, ds_xr):
    bands = ("B04", "B03", "B02")
    ds = CBENDataset(cben, s2_bands=bands, nodata=0.0)
    assert ds[0]["s2"].shape == (3, PX, PX)
    _assert_matches(ds[0], ds_xr, 0, bands=bands)
    full = CBENDataset(cben, nodata=0.0)[1]["s2"]
    assert (full[3, 10:20, 10:20] == 0).all()
    with pytest.raises(ValueError, match="unknown S2 bands"):
        CBENDataset(cben, s2_bands=["B10"])


def test_picklable_and_dataloader_two_workers(cben, ds_xr):
    ds = CBENDataset(cben, split="train")
    _ = ds[0]  # readers opened in this process must not travel with the pickle
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._readers is None
    torch.testing.assert_close(clone[2]["s2"], ds[2]["s2"], equal_nan=True)
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    seen = []
    for batch in loader:
        assert batch["s2"].shape[1:] == (12, PX, PX) and batch["s2"].dtype == torch.float32
        assert batch["s1"].shape[1:] == (2, PX, PX) and batch["label"].shape[1:] == (19,)
        for k, i in enumerate(batch["index"].tolist()):
            np.testing.assert_array_equal(batch["s1"][k].numpy(), ds_xr.s1.values[i])
            seen.append(i)
    assert sorted(seen) == [i for i, s in enumerate(SPLITS) if s == "train"]


def test_labels_may_be_a_single_chunk_coordinate(tmp_path):
    """Labels known at plan time can be a (sample, label) coordinate: one read instead of N."""
    path = tmp_path / "cben.zarr"
    rng = np.random.default_rng(3)
    labels = (rng.random((3, 19)) < 0.3).astype(np.uint8)
    attrs = {"_FillValue": float("nan")}
    store.create_store(path, 3, {
        "s2": VariableSpec(("band", "y", "x"), (12, 4, 4), "int16", S2_ATTRS),
        "s1": VariableSpec(("polarization", "y", "x"), (2, 4, 4), "float32", attrs),
    }, {
        "labels": (("sample", "label"), labels),
        "split": (("sample",), np.array(["train", "test", "train"])),
        "patch_id": (("sample",), np.array(["a", "b", "c"])),
        "band": (("band",), np.array(S2_L2A_BANDS)),
    }, {})  # fmt: skip
    store.write_samples(path, 0, {"s2": np.ones((3, 12, 4, 4), np.int16),
                                  "s1": np.zeros((3, 2, 4, 4), np.float32)})  # fmt: skip
    store.mark_complete(path)
    ds = CBENDataset(path, split="train")
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[1]["label"].numpy(), labels[2].astype(np.float32))
    assert torch.isnan(ds[0]["cloud_fraction"])  # no cloud_fraction coordinate: NaN
    assert "labels" in store.open_store(path).coords


def test_refuses_incomplete_store(tmp_path):
    path = tmp_path / "cben.zarr"
    make_cben_store(path, n=4)
    store.mark_incomplete(path)
    with pytest.raises(IncompleteStoreError, match="incomplete"):
        CBENDataset(path)
    with pytest.raises(FileNotFoundError):
        CBENDataset(tmp_path / "nothing.zarr")


def test_transforms_and_plot(cben):
    from matplotlib.figure import Figure

    ds = CBENDataset(cben, transforms=lambda s: {**s, "s2": s["s2"][:3]})
    item = ds[0]
    assert item["s2"].shape[0] == 3
    fig = ds.plot(item)
    assert isinstance(fig, Figure)
    import matplotlib.pyplot as plt

    plt.close(fig)
