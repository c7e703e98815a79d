"""torch ``Dataset`` over ``timeseries.zarr`` and a seq2point sampling manifest.

Each item is one manifest row: ``n`` input time points and the target of one patch, read from
the store's per-(patch, time) chunks. Masks are the stored s2cloudless masks - nothing is
computed at load time. Reflectance is ``stored * 1e-4`` (clipped to ``[0, clip]`` if asked);
S1 is dB, optionally rescaled to [0, 1] from ``s1_db_range`` (SEN12MS-CR-TS: [-25, 0]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .. import store

S2_SCALE = 1e-4


class TimeSeriesDataset(Dataset):
    """Samples of a seq2point manifest as dicts of tensors.

    Keys: ``s2`` (n, 13, H, W) float32 reflectance, ``s1`` (n, 2, H, W), ``cloud_mask``
    (n, H, W) bool, ``target`` (13, H, W), ``target_mask`` (H, W) bool, ``landcover`` (H, W)
    int64, ``input_times``/``target_time`` (long), ``patch`` (long), and ``sample_id``.
    """

    def __init__(self, store_path: str | Path, manifest: str | Path | pd.DataFrame, *,
                 clip: float | None = 1.0, s1_db_range: tuple[float, float] | None = (-25.0, 0.0),
                 require_complete: bool = True) -> None:
        self.store_path = Path(store_path)
        if require_complete and not store.is_complete(self.store_path):
            raise store.IncompleteStoreError(f"{self.store_path} is not complete (run the finalize step)")
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
        raw = np.stack([np.asarray(self._arrays()["s2"][patch, t]) for t in times]).astype(np.float32)
        out = raw * np.float32(S2_SCALE)
        out[raw == -32768] = np.nan
        if self.clip is not None:
            out = np.clip(out, 0.0, self.clip)
        return out

    def _s1(self, patch: int, times: list[int]) -> np.ndarray:
        s1 = np.stack([np.asarray(self._arrays()["s1"][patch, t]) for t in times]).astype(np.float32)
        if self.s1_db_range is not None:
            lo, hi = self.s1_db_range
            s1 = (np.clip(s1, lo, hi) - lo) / (hi - lo)
        return s1

    def _mask(self, patch: int, times: list[int]) -> np.ndarray:
        return np.stack([np.asarray(self._arrays()["cloud_mask"][patch, t]) == 1 for t in times])

    def __getitem__(self, i: int) -> dict[str, Any]:
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
