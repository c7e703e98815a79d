"""Data access for cloud-removal training and evaluation: in-memory readers with random crops.

Training on the demo reads a few hundred random 48-128 px crops from a few dozen (patch, time)
chunks, so the readers keep each chunk they touched in its *stored* encoding (int16 S2, float32
S1, uint8 masks: ~2 MB per time-series chunk) and convert only the crop that is asked for. Both
are readers on the one store-reader base (:class:`cloudyeo.datasets.reader.StoreDataset`: the
same checks, and the encodings read from the store attributes); the conventions are those of the
torch datasets of the stores:

* time series (:mod:`cloudyeo.datasets.timeseries_torch`): S2 reflectance = stored x scale_factor,
  clipped to [0, 1], _FillValue -> NaN; S1 dB clipped to [-25, 0] and rescaled to [0, 1]; cloud
  mask = the stored s2cloudless mask (nodata counts as cloudy); land cover: BEN19 class index,
  255 ignore.
* Planet-CR (:mod:`cloudyeo.datasets.planetcr_torch`): optical = stored x scale_factor clipped to
  [0, 1]; S1 dB rescaled the same way; cloud mask 1 = cloudy; land cover 6 classes, 255 ignore.

Every model input has NaN replaced by 0 (and the pixel flagged cloudy); a NaN target pixel is left
out of losses and metrics (``valid``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from cloudyeo.datasets.planetcr_torch import RGB as RGB_PLANET
from cloudyeo.datasets.planetcr_torch import PlanetCRDataset
from cloudyeo.datasets.reader import StoreDataset, decode_reflectance
from cloudyeo.datasets.timeseries_torch import RGB as TS_RGB
from cloudyeo.datasets.timeseries_torch import TimeSeriesDataset

if TYPE_CHECKING:
    import zarr

S1_DB_RANGE = (-25.0, 0.0)
LC_IGNORE = 255  # ignore index of land-cover losses and scores: the stores' landcover _FillValue
RGB_TS = TS_RGB


def scale_s1(db: np.ndarray, db_range: tuple[float, float] = S1_DB_RANGE) -> np.ndarray:
    lo, hi = db_range
    out = (np.clip(np.nan_to_num(db, nan=lo), lo, hi) - lo) / (hi - lo)
    return out.astype(np.float32)


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The store variable ``name`` (the reader checked it is there: an array, not a group)."""
    return cast("zarr.Array", group[name])


def _window(win):
    if win is None:
        return (slice(None), slice(None))
    y0, x0, h, w = win
    return (slice(y0, y0 + h), slice(x0, x0 + w))


class TimeSeriesSource(StoreDataset):
    """Cached reader of ``timeseries.zarr`` plus its seq2point manifests.

    ``manifest(split, n_inputs)`` returns the stored manifest when ``n_inputs`` is the store's, and
    otherwise draws one with :func:`cloudyeo.datasets.timeseries.sampling_manifest` from
    ``index.parquet`` and the same manifest settings (``manifest_cfg``: the ``timeseries.manifest``
    config section), so methods can be compared at n = 3, 4, 5.
    """

    n_bands = 13
    title = TimeSeriesDataset.title
    build_rule = TimeSeriesDataset.build_rule
    rgb = RGB_TS

    def __init__(self, store_path: str | Path, manifest_dir: str | Path,
                 manifest_cfg: dict[str, Any] | None = None, *, require_complete: bool = True):
        import zarr

        super().__init__(store_path, variables=(*TimeSeriesDataset.variables, "split", "valid"),
                         require_complete=require_complete)
        self.store_path = self.path
        self.manifest_dir = Path(manifest_dir)
        self.s2_encoding = self.encoding("s2", required=("scale_factor", "_FillValue"))
        self.group = zarr.open_group(str(self.store_path), mode="r")
        self.manifest_cfg = manifest_cfg or {}
        self._cache: dict[tuple, np.ndarray] = {}
        self.shape = tuple(_array(self.group, "s2").shape[-2:])

    # -- manifests ------------------------------------------------------------------------
    def manifest(self, split: str, n_inputs: int | None = None) -> pd.DataFrame:
        stored = pd.read_parquet(self.manifest_dir / f"manifest_{split}.parquet")
        if n_inputs is None or (len(stored) and len(stored["inputs"].iloc[0]) == n_inputs):
            return stored
        from cloudyeo.datasets.timeseries import sampling_manifest

        man = self.manifest_cfg
        if not man:
            raise ValueError("manifests for another n_inputs need the timeseries.manifest settings")
        index = pd.read_parquet(self.manifest_dir / "index.parquet")
        samples, _ = sampling_manifest(
            index, split, n_inputs=int(n_inputs), samples_per_patch=int(man["samples_per_patch"]),
            cloud_range=tuple(man["cloud_range"][split]), seed=int(man["seed"]))
        return samples

    def patches(self, split: str) -> list[int]:
        splits = [str(v) for v in np.asarray(_array(self.group, "split")[:]).tolist()]
        return [i for i, s in enumerate(splits) if s == split]

    def valid_times(self, patch: int) -> list[int]:
        valid = np.asarray(_array(self.group, "valid")[patch]).astype(bool)
        return [int(t) for t in np.flatnonzero(valid)]

    # -- arrays ---------------------------------------------------------------------------
    def _raw(self, name: str, *key) -> np.ndarray:
        k = (name, *key)
        if k not in self._cache:
            self._cache[k] = np.asarray(_array(self.group, name)[key])
        return self._cache[k]

    def s2(self, patch: int, t: int, win=None) -> np.ndarray:
        """(13, h, w) float32 reflectance in [0, 1], NaN where nodata."""
        return decode_reflectance(self._raw("s2", patch, t)[(slice(None), *_window(win))], self.s2_encoding, clip=1.0)

    def s1(self, patch: int, t: int, win=None) -> np.ndarray:
        """(2, h, w) float32, dB scaled from [-25, 0] to [0, 1]."""
        return scale_s1(self._raw("s1", patch, t)[(slice(None), *_window(win))])

    def mask(self, patch: int, t: int, win=None) -> np.ndarray:
        """(h, w) bool, True = cloudy or nodata (stored s2cloudless mask)."""
        return self._raw("cloud_mask", patch, t)[_window(win)] != 0

    def landcover(self, patch: int, win=None) -> np.ndarray:
        """(h, w) int64 class index, 255 = ignore."""
        return self._raw("landcover", patch)[_window(win)].astype(np.int64)

    def coverage(self, patch: int, t: int) -> float:
        return float(self.mask(patch, t).mean())

    def least_cloudy_of(self, patch: int, times: list[int]) -> int:
        """The input with the lowest stored-mask cloud fraction (earliest on ties)."""
        fr = [self.coverage(patch, t) for t in times]
        return int(times[int(np.argmin(fr))])


class PlanetCRSource(StoreDataset):
    """Cached reader of ``planetcr.zarr`` (sample dimension; ``split`` coordinate)."""

    n_bands = 4
    title = PlanetCRDataset.title
    build_rule = PlanetCRDataset.build_rule
    rgb = RGB_PLANET

    def __init__(self, store_path: str | Path, *, require_complete: bool = True):
        import zarr

        super().__init__(store_path, variables=(*PlanetCRDataset.variables, "split"), require_complete=require_complete)
        self.store_path = self.path
        self.optical_encoding = {v: self.encoding(v, required=("scale_factor", "_FillValue"))
                                 for v in ("optical_cloudy", "optical_clear")}
        self.group = zarr.open_group(str(self.store_path), mode="r")
        self._cache: dict[tuple, np.ndarray] = {}
        self.shape = tuple(_array(self.group, "optical_clear").shape[-2:])
        self.sar_shape = tuple(_array(self.group, "s1").shape[-2:])
        attrs = dict(self.group.attrs)
        classes = attrs.get("landcover_classes") or attrs.get("label_order")
        if isinstance(classes, str):
            classes = json.loads(classes)
        self.class_names = list(cast(list[str], classes)) if classes else [f"class_{i}" for i in range(6)]
        self.n_classes = len(self.class_names)

    def samples(self, split: str) -> list[int]:
        splits = [str(v) for v in np.asarray(_array(self.group, "split")[:]).tolist()]
        return [i for i, s in enumerate(splits) if s == split]

    def sample_id(self, i: int) -> str:
        for name in ("sample_id", "patch_id", "aoi_id", "item_id"):
            if name in self.group:
                return str(np.asarray(_array(self.group, name)[i]))
        return f"sample-{i:05d}"

    def _raw(self, name: str, i: int) -> np.ndarray:
        k = (name, i)
        if k not in self._cache:
            self._cache[k] = np.asarray(_array(self.group, name)[i])
        return self._cache[k]

    def _optical(self, name: str, i: int, win=None) -> np.ndarray:
        return decode_reflectance(self._raw(name, i)[(slice(None), *_window(win))], self.optical_encoding[name], clip=1.0)

    def cloudy(self, i: int, win=None) -> np.ndarray:
        return self._optical("optical_cloudy", i, win)

    def clear(self, i: int, win=None) -> np.ndarray:
        return self._optical("optical_clear", i, win)

    def mask(self, i: int, win=None) -> np.ndarray:
        """(h, w) bool: cloud, shadow or nodata (mask values 1, 2, 255)."""
        return self._raw("cloud_mask", i)[_window(win)] != 0

    def target_mask(self, i: int, win=None) -> np.ndarray:
        """(h, w) bool: cloud, shadow or nodata in the clear (target) window; all False for a
        store built before ``clear_mask`` existed."""
        if "clear_mask" not in self.group:
            return np.zeros(self.shape, dtype=bool)[_window(win)]
        return self._raw("clear_mask", i)[_window(win)] != 0

    def s1(self, i: int, win=None) -> np.ndarray:
        """(2, h, w) on the 10 m grid; ``win`` in SAR pixels."""
        return scale_s1(self._raw("s1", i)[(slice(None), *_window(win))])

    def landcover(self, i: int, win=None) -> np.ndarray:
        return self._raw("landcover", i)[_window(win)].astype(np.int64)

    def cloud_fraction(self, i: int) -> float:
        """The store's ``cloud_percent`` / 100 (the cloud classes only, as the dataset's bins);
        the flagged fraction of the cloud mask (cloud, shadow, nodata) when it is absent."""
        if "cloud_percent" in self.group:
            if not hasattr(self, "_cloud_percent"):
                self._cloud_percent = np.asarray(_array(self.group, "cloud_percent")[:], dtype=np.float64)
            return float(np.clip(self._cloud_percent[i] / 100.0, 0.0, 1.0))
        return float(self.mask(i).mean())


# ---------------------------------------------------------------------------------------- crops
def random_window(rng: np.random.Generator, shape: tuple[int, int], crop: int) -> tuple[int, int, int, int]:
    h, w = shape
    ch, cw = min(crop, h), min(crop, w)
    return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw


def augment_arrays(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same random flip / 90-degree rotation on the last two axes of every array."""
    k = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    out = {}
    for name, a in arrays.items():
        b = np.rot90(a, k, axes=(-2, -1))
        if flip:
            b = b[..., ::-1]
        out[name] = np.ascontiguousarray(b)
    return out


def finite_inputs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(array with NaN -> 0, (h, w) mask of pixels that had a NaN in any band)."""
    bad = ~np.isfinite(a)
    while bad.ndim > 2:
        bad = bad.any(axis=0)
    return np.nan_to_num(a, nan=0.0), bad


def stack_batch(items: list[dict[str, np.ndarray]]):
    import torch

    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}
