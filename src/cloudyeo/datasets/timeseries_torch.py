"""torch ``Dataset`` over ``timeseries.zarr`` and a seq2point sampling manifest.

Each item is one manifest row: ``n`` input time points and the target of one patch, read from
the store's per-(patch, time) chunks. Masks are the stored s2cloudless masks - nothing is
computed at load time. Reflectance is ``stored * scale_factor`` (the store's attributes; clipped
to ``[0, clip]`` if asked); S1 is dB, optionally rescaled to [0, 1] from ``s1_db_range`` (SEN12MS-CR-TS: [-25, 0]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cloudyeo.datasets.reader import StoreDataset, decode_reflectance

VARIABLES = ("s2", "s1", "cloud_mask", "landcover")
RGB = (3, 2, 1)  # B04, B03, B02 in the 13-band L1C order


class TimeSeriesDataset(StoreDataset):
    """Samples of a seq2point manifest as dicts of tensors.

    Keys: ``s2`` (n, 13, H, W) float32 reflectance, ``s1`` (n, 2, H, W), ``cloud_mask``
    (n, H, W) bool, ``target`` (13, H, W), ``target_mask`` (H, W) bool, ``landcover`` (H, W)
    int64, ``input_times``/``target_time`` (long), ``patch`` (long), and ``sample_id``.
    ``transforms``: a callable applied to each sample dict.
    """

    title = "time-series"
    variables = VARIABLES
    build_rule = "timeseries_finalize"
    plot_bands = {"s2": RGB, "target": RGB}  # B04, B03, B02 in the 13-band L1C order

    def __init__(self, store_path: str | Path, manifest: str | Path | pd.DataFrame, *,
                 clip: float | None = 1.0, s1_db_range: tuple[float, float] | None = (-25.0, 0.0),
                 require_complete: bool = True, transforms=None) -> None:
        super().__init__(store_path, variables=VARIABLES, transforms=transforms, require_complete=require_complete)
        self.store_path = self.path
        self.s2_encoding = self.encoding("s2", required=("scale_factor", "_FillValue"))
        self.samples = manifest if isinstance(manifest, pd.DataFrame) else pd.read_parquet(manifest)
        self.clip = clip
        self.s1_db_range = s1_db_range
        self._group = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None  # reopened in each worker
        return state

    def _arrays(self):
        if self._group is None:
            import zarr

            self._group = zarr.open_group(str(self.store_path), mode="r")
        return self._group

    def _s2(self, patch: int, times: list[int]) -> np.ndarray:
        raw = np.stack([np.asarray(self._arrays()["s2"][patch, t]) for t in times])
        return decode_reflectance(raw, self.s2_encoding, clip=self.clip)

    def _s1(self, patch: int, times: list[int]) -> np.ndarray:
        s1 = np.stack([np.asarray(self._arrays()["s1"][patch, t]) for t in times]).astype(np.float32)
        if self.s1_db_range is not None:
            lo, hi = self.s1_db_range
            s1 = (np.clip(s1, lo, hi) - lo) / (hi - lo)
        return s1

    def _mask(self, patch: int, times: list[int]) -> np.ndarray:
        return np.stack([np.asarray(self._arrays()["cloud_mask"][patch, t]) == 1 for t in times])

    def load(self, i: int) -> dict[str, Any]:
        row = self.samples.iloc[i]
        patch = int(row["patch"])
        inputs = [int(t) for t in row["inputs"]]
        target = int(row["target"])
        return {
            "s2": torch.from_numpy(self._s2(patch, inputs)),
            "s1": torch.from_numpy(self._s1(patch, inputs)),
            "cloud_mask": torch.from_numpy(self._mask(patch, inputs)),
            "target": torch.from_numpy(self._s2(patch, [target])[0]),
            "target_mask": torch.from_numpy(self._mask(patch, [target])[0]),
            "landcover": torch.from_numpy(np.asarray(self._arrays()["landcover"][patch]).astype(np.int64)),
            "input_times": torch.tensor(inputs, dtype=torch.long),
            "target_time": torch.tensor(target, dtype=torch.long),
            "patch": torch.tensor(patch, dtype=torch.long),
            "sample_id": str(row["sample_id"]),
        }
