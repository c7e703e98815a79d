"""StoreDataset, the base of every store reader: checks naming the path, encodings from the store
attributes, transforms on the sample dict, plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cloudyeo import store
from cloudyeo.datasets.reader import StoreDataset


class Toy(StoreDataset):
    title = "toy"
    build_rule = "toy_finalize"

    def __init__(self, path, **kwargs):
        super().__init__(path, variables=("image",), **kwargs)
        self.image_encoding = self.encoding("image", required=("scale_factor",))

    def __len__(self) -> int:
        return 2

    def load(self, index: int) -> dict:
        import zarr

        raw = np.asarray(zarr.open_array(str(self.path / "image"), mode="r")[index])
        return {"image": torch.from_numpy(raw.astype(np.float32) * self.image_encoding.scale),
                "index": torch.tensor(index)}


def _write(path, *, complete=True, attrs=None):
    import zarr

    g = zarr.open_group(str(path), mode="w")
    arr = g.create_array("image", shape=(2, 3, 4, 4), dtype="int16", chunks=(1, 3, 4, 4), fill_value=-32768,
                         attributes=attrs if attrs is not None else {"scale_factor": 1e-4, "_FillValue": -32768,
                                                                     "units": "1"})
    arr[...] = np.arange(2 * 3 * 16, dtype=np.int16).reshape(2, 3, 4, 4)
    if complete:
        store.mark_complete(path)
    return path


def test_missing_store_names_the_path_and_the_rule(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no toy Zarr store at .*nowhere.zarr.*toy_finalize"):
        Toy(tmp_path / "nowhere.zarr")


def test_incomplete_store_names_the_path(tmp_path):
    path = _write(tmp_path / "half.zarr", complete=False)
    with pytest.raises(store.IncompleteStoreError, match=r"half\.zarr is incomplete"):
        Toy(path)


def test_missing_variable_names_the_path(tmp_path):
    path = _write(tmp_path / "toy.zarr")

    class NeedsLabels(Toy):
        def __init__(self, p):
            StoreDataset.__init__(self, p, variables=("image", "labels"))

    with pytest.raises(KeyError, match=r"toy store .*toy\.zarr has no 'labels' array"):
        NeedsLabels(path)


def test_missing_encoding_attribute_names_the_path(tmp_path):
    path = _write(tmp_path / "toy.zarr", attrs={"units": "1"})
    with pytest.raises(KeyError, match=r"toy\.zarr: variable 'image' has no attribute\(s\) \['scale_factor'\]"):
        Toy(path)


def test_encoding_is_read_from_the_store_attributes(tmp_path):
    toy = Toy(_write(tmp_path / "toy.zarr"))
    enc = toy.encoding("image")
    assert enc.scale == np.float32(1e-4) and enc.offset == 0 and enc.fill == -32768 and enc.units == "1"
    assert toy[1]["image"][0, 0, 0].item() == pytest.approx(48 * 1e-4)


def test_transforms_are_applied_to_the_sample_dict(tmp_path):
    path = _write(tmp_path / "toy.zarr")
    seen = []

    def double(sample):
        seen.append(sorted(sample))
        return {**sample, "image": sample["image"] * 2}

    plain, doubled = Toy(path), Toy(path, transforms=double)
    torch.testing.assert_close(doubled[0]["image"], plain[0]["image"] * 2)
    assert seen == [["image", "index"]]


def test_plot_returns_a_figure(tmp_path):
    from matplotlib.figure import Figure

    toy = Toy(_write(tmp_path / "toy.zarr"))
    fig = toy.plot(toy[0], suptitle="toy 0")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_four_readers_share_the_base():
    from cloudyeo.datasets.cben_torch import CBENDataset
    from cloudyeo.datasets.planetcr_torch import PlanetCRDataset
    from cloudyeo.datasets.ssl4eo_torch import SSL4EODataset
    from cloudyeo.datasets.timeseries_torch import TimeSeriesDataset
    from cloudyeo.training.cloud_removal_data import PlanetCRSource, TimeSeriesSource

    for cls in (CBENDataset, PlanetCRDataset, SSL4EODataset, TimeSeriesDataset, TimeSeriesSource, PlanetCRSource):
        assert issubclass(cls, StoreDataset)
