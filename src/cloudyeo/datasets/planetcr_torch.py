"""PyTorch reader for the Planet-CR-style Zarr store (``results/datasets/planetcr.zarr``).

Store layout (written by :mod:`cloudyeo.datasets.planetcr` through :mod:`cloudyeo.store`): dims
``sample``, ``band`` (B, G, R, NIR), ``y``/``x`` (300 at 3 m), ``polarization`` (VV, VH),
``y_10m``/``x_10m`` (90 at 10 m); variables ``optical_cloudy``/``optical_clear`` uint16 with
``scale_factor`` 1e-4 and ``_FillValue`` 0, ``cloud_mask`` uint8 (0 clear, 1 cloud, 2 shadow,
255 nodata), ``s1`` float32 dB (NaN fill), ``landcover`` uint8 (6 classes, 255 ignore).

Each item reads one chunk file per variable (:class:`cloudyeo.store.SampleChunkReader`); the
small per-sample coordinates (split, cloud percent, time differences) are loaded once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cloudyeo.datasets.reader import StoreDataset, split_indices
from cloudyeo.store import SampleChunkReader

VARIABLES = ("optical_cloudy", "optical_clear", "cloud_mask", "s1", "landcover")
RGB = (2, 1, 0)  # R, G, B of the B, G, R, NIR order


def _coord(path: Path, name: str) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_array(str(path / name), mode="r", zarr_format=3)[...])


def _strings(values: np.ndarray) -> np.ndarray:
    out = np.empty(np.shape(values), dtype=object)
    out.ravel()[:] = [str(v) for v in np.asarray(values).ravel()]
    return out


class PlanetCRDataset(StoreDataset):
    """Planet-CR-style quartets as dicts of tensors.

    Args:
        store_path: the complete store (``results/datasets/planetcr.zarr``).
        split: ``"train"``, ``"test"`` (``"validation"`` when configured) or None for all.
        bands: subset/order of the optical bands (default all four, B, G, R, NIR).
        nodata: value of optical pixels equal to the fill value 0 (default NaN, like xarray).
        fast: read chunk files directly (False: through zarr-python; same values).
        transforms: a callable applied to each sample dict.

    Items: ``optical_cloudy``, ``optical_clear`` float32 [C, 300, 300] reflectance;
    ``cloud_mask`` uint8 [300, 300] (0 clear, 1 cloud, 2 shadow, 255 nodata); ``s1`` float32
    [2, 90, 90] dB; ``landcover`` int64 [90, 90] (class index, 255 = ignore, ready for
    ``CrossEntropyLoss(ignore_index=255)``); ``index`` int64 (position in the whole store);
    ``cloud_percent``, ``dt_clear_days``, ``dt_s1_days`` float32.
    """

    title = "Planet-CR"
    variables = VARIABLES
    build_rule = "planetcr_finalize"
    plot_bands = {"optical_cloudy": RGB, "optical_clear": RGB}

    def __init__(self, store_path: str | os.PathLike, *, split: str | None = None,
                 bands: list[str] | tuple[str, ...] | None = None, nodata: float = float("nan"),
                 fast: bool = True, transforms=None) -> None:
        super().__init__(store_path, variables=(*VARIABLES, "band", "split"), transforms=transforms)
        names = _strings(_coord(self.path, "band")).tolist()
        if bands is None:
            self.bands = tuple(names)
            self._band_index = None
        else:
            missing = [b for b in bands if b not in names]
            if missing or not len(bands):
                raise ValueError(f"unknown or no optical bands {list(bands)}; the store has {names}")
            self.bands = tuple(bands)
            self._band_index = np.array([names.index(b) for b in bands])
        self.optical_encoding = self.encoding("optical_cloudy")
        self.scale = self.optical_encoding.scale
        self.nodata = np.float32(nodata)
        splits = _strings(_coord(self.path, "split"))
        self.indices = split_indices(splits, split)
        self.split = split
        self.sample_ids = _strings(_coord(self.path, "sample_id"))
        self.cloud_percent = _coord(self.path, "cloud_percent").astype(np.float32)
        self.dt_clear_days = _coord(self.path, "dt_clear_days").astype(np.float32)
        self.dt_s1_days = _coord(self.path, "dt_s1_days").astype(np.float32)
        self.fast = fast
        self._readers: dict[str, SampleChunkReader] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = None
        return state

    def _get_readers(self) -> dict[str, SampleChunkReader]:
        if self._readers is None:
            self._readers = {v: SampleChunkReader(self.path, v, fast=self.fast) for v in VARIABLES}
        return self._readers

    def __len__(self) -> int:
        return len(self.indices)

    def _optical(self, raw: np.ndarray) -> torch.Tensor:
        if self._band_index is not None:
            raw = raw[self._band_index]
        out = raw.astype(np.float32)
        out *= self.scale
        fill = self.optical_encoding.fill
        if fill is not None and raw.min() <= fill:
            out[raw == fill] = self.nodata
        return torch.from_numpy(out)

    def load(self, idx: int) -> dict[str, torch.Tensor]:
        i = int(self.indices[idx])
        r = self._get_readers()
        s1 = r["s1"].read(i).astype(np.float32, copy=False)
        return {
            "optical_cloudy": self._optical(r["optical_cloudy"].read(i)),
            "optical_clear": self._optical(r["optical_clear"].read(i)),
            "cloud_mask": torch.from_numpy(r["cloud_mask"].read(i)),
            "s1": torch.from_numpy(s1),
            "landcover": torch.from_numpy(r["landcover"].read(i).astype(np.int64)),
            "index": torch.tensor(i, dtype=torch.int64),
            "cloud_percent": torch.tensor(self.cloud_percent[i]),
            "dt_clear_days": torch.tensor(self.dt_clear_days[i]),
            "dt_s1_days": torch.tensor(self.dt_s1_days[i]),
        }

    def __repr__(self) -> str:
        return (f"PlanetCRDataset({str(self.path)!r}, split={self.split!r}, {len(self)} samples, "
                f"bands {list(self.bands)})")
