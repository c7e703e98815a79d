"""The one base of every torch reader of a dataset store (CBEN, SSL4EO, time series, Planet-CR).

:class:`StoreDataset` does, once for all stores:

* checks with helpful errors naming the path: no store (:class:`FileNotFoundError`), a store whose
  finalize has not run (:class:`cloudyeo.store.IncompleteStoreError`), a missing variable
  (:class:`KeyError`);
* encoding constants (scale factor, offset, fill value, units) read from the store's attributes
  (:meth:`StoreDataset.encoding`), never declared by a reader;
* dict samples: a subclass implements :meth:`StoreDataset.load`; ``__getitem__`` applies the
  optional ``transforms`` callable to the sample dict;
* :meth:`StoreDataset.plot`: a quick look at one sample (matplotlib figure).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from cloudyeo.datasets.common import SPLITS
from cloudyeo.store import IncompleteStoreError, decode_fill_value, is_complete

Sample = dict[str, Any]


def split_indices(splits: np.ndarray, split: str | None) -> np.ndarray:
    """Store positions of the samples in ``split`` (every sample for ``None``)."""
    if split is None:
        return np.arange(len(splits), dtype=np.int64)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    return np.flatnonzero(splits == split).astype(np.int64)


@dataclass(frozen=True)
class Encoding:
    """How one stored variable decodes: ``value = stored * scale + offset``; ``fill`` = missing
    (None when there is none or it is NaN, which float arithmetic keeps anyway)."""

    scale: np.float32
    offset: np.float32
    fill: Any
    units: str | None


def zarr_metadata(path: str | os.PathLike, name: str | None = None) -> dict:
    """The ``zarr.json`` of the store (``name`` None) or of one of its arrays."""
    base = Path(path) if name is None else Path(path) / name
    return json.loads((base / "zarr.json").read_text())


def store_attributes(path: str | os.PathLike, name: str | None = None) -> dict:
    """The attributes of the store (``name`` None) or of one of its arrays."""
    return zarr_metadata(path, name).get("attributes", {})


def decode_reflectance(raw: np.ndarray, enc: Encoding, *, nodata: float = float("nan"),
                       clip: float | None = None) -> np.ndarray:
    """float32 ``raw * scale`` (+ offset), fill -> ``nodata``, then clipped to [0, clip] if asked."""
    out = raw.astype(np.float32)
    out *= enc.scale
    if enc.offset:
        out += enc.offset
    if enc.fill is not None:
        out[raw == enc.fill] = nodata
    if clip is not None:
        out = np.clip(out, 0.0, clip)
    return out


class StoreDataset(Dataset):
    """Base of the store readers: verification, encodings, transforms, plot.

    Subclasses set :attr:`title` (for messages), :attr:`build_rule` (the rule that finalizes the
    store, named in errors) and implement :meth:`load` (one sample as a dict) and ``__len__``.
    """

    title = "dataset"
    build_rule = "finalize"

    def __init__(self, store_path: str | os.PathLike, *, variables: tuple[str, ...] = (),
                 transforms: Callable[[Sample], Sample] | None = None, require_complete: bool = True) -> None:
        self.path = Path(store_path)
        self.transforms = transforms
        self._verify(variables, require_complete)

    # -- checks -------------------------------------------------------------------------------
    def _verify(self, variables: tuple[str, ...], require_complete: bool) -> None:
        if not (self.path / "zarr.json").is_file():
            raise FileNotFoundError(f"no {self.title} Zarr store at {self.path}; build it first "
                                    f"(snakemake ... {self.build_rule})")
        if require_complete and not is_complete(self.path):
            raise IncompleteStoreError(f"{self.title} store {self.path} is incomplete: {self.build_rule} has not "
                                       "run or a job died (rerun the workflow)")
        missing = [v for v in variables if not self.has(v)]
        if missing:
            raise KeyError(f"{self.title} store {self.path} has no {', '.join(map(repr, missing))} "
                           f"array{'s' if len(missing) > 1 else ''}; rebuild it with this version")

    def has(self, name: str) -> bool:
        return (self.path / name / "zarr.json").is_file()

    # -- attributes ---------------------------------------------------------------------------
    @property
    def store_attrs(self) -> dict:
        """The store's (root) attributes."""
        return store_attributes(self.path)

    def encoding(self, name: str, *, required: tuple[str, ...] = ()) -> Encoding:
        """The CF encoding of variable ``name`` from its attributes (identity when it has none);
        a KeyError naming the path when one of the ``required`` attributes is absent."""
        meta = zarr_metadata(self.path, name)
        attrs = meta.get("attributes", {})
        missing = [k for k in required if k not in attrs]
        if missing:
            raise KeyError(f"{self.title} store {self.path}: variable {name!r} has no attribute(s) {missing}; "
                           "rebuild it with this version")
        from cloudyeo.store import _v3_dtype

        dtype = np.dtype(_v3_dtype(meta["data_type"]))
        fill = decode_fill_value(attrs.get("_FillValue"), dtype)
        if fill is not None and isinstance(fill, float) and math.isnan(fill):
            fill = None
        return Encoding(scale=np.float32(attrs.get("scale_factor", 1.0)), offset=np.float32(attrs.get("add_offset", 0.0)),
                        fill=fill, units=attrs.get("units"))

    # -- samples ------------------------------------------------------------------------------
    def load(self, index: int) -> Sample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        sample = self.load(index)
        return self.transforms(sample) if self.transforms is not None else sample

    def __len__(self) -> int:
        raise NotImplementedError

    # -- quick look ---------------------------------------------------------------------------
    plot_bands: dict[str, tuple[int, int, int]] = {}  # image key -> band indices shown as RGB

    def plot(self, sample: Sample, *, suptitle: str | None = None):
        """One panel per image of ``sample`` (2-D or more; leading axes beyond the bands take
        their first element); returns the matplotlib figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        images = {k: np.asarray(v) for k, v in sample.items() if hasattr(v, "ndim") and v.ndim >= 2}
        if not images:
            raise ValueError(f"sample has no image to plot (keys {sorted(sample)})")
        fig, axes = plt.subplots(1, len(images), figsize=(3 * len(images), 3), squeeze=False)
        for ax, (key, img) in zip(axes[0], images.items()):
            while img.ndim > 3:
                img = img[0]
            if img.ndim == 3:
                bands = self.plot_bands.get(key, (0, 1, 2))
                if max(bands) >= img.shape[0]:  # e.g. a transform kept fewer bands
                    bands = (0, 1, 2) if img.shape[0] >= 3 else (0, 0, 0)
                img = np.moveaxis(img[list(bands)].astype(np.float32), 0, -1)
                finite = img[np.isfinite(img)]
                lo, hi = (np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0))
                img = np.clip((np.nan_to_num(img, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
                ax.imshow(img)
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_title(key)
            ax.axis("off")
        if suptitle:
            fig.suptitle(suptitle)
        fig.tight_layout()
        return fig
