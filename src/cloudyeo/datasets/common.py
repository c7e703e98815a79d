"""Helpers every dataset builder shares: the stored reflectance encoding, dB conversion, UTM
zones, UTC timestamps and lazy per-band statistics. One copy each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# Sentinel-2 reflectance is stored as int16 = round(reflectance / S2_SCALE); S2_FILL = no data.
# Readers take both from the store's attributes (scale_factor, _FillValue), never from here.
S2_SCALE = 1e-4
S2_FILL = -32768
# The licence line of every dataset built from Copernicus Sentinel data (cards' "Sources and licences").
# The splits of every dataset, in this order.
SPLITS = ("train", "validation", "test")

SENTINEL_LICENCE = "Copernicus Sentinel data, free and open (Copernicus data licence); cite the source archive."


def encode_s2(reflectance: np.ndarray) -> np.ndarray:
    """Reflectance (float, NaN = no data) -> int16 x 1e4, saturating at +-32767."""
    out = np.full(reflectance.shape, S2_FILL, dtype=np.int16)
    ok = np.isfinite(reflectance)
    out[ok] = np.clip(np.rint(reflectance[ok] / S2_SCALE), -32767, 32767).astype(np.int16)
    return out


def to_db(linear: np.ndarray, units: str | None = None) -> np.ndarray:
    """Linear backscatter -> dB (float32; NaN where not finite or <= 0). Values already in dB
    (``units == "dB"``) pass through."""
    if units == "dB":
        return linear.astype(np.float32)
    out = np.full(linear.shape, np.nan, dtype=np.float32)
    ok = np.isfinite(linear) & (linear > 0)
    out[ok] = 10.0 * np.log10(linear[ok])
    return out


def utc64(values: Any) -> np.ndarray:
    """Timestamps (any tz-aware or naive-UTC form) -> naive UTC ``datetime64[ns]``."""
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def band_statistics(ds: Any, specs: Sequence[tuple[str, str, tuple[str, ...], Any]], *,
                    count: bool = False) -> pd.DataFrame:
    """Per-band mean/SD (and valid pixel count) of ``ds`` computed lazily with dask.

    ``specs``: (variable, band dimension, dimensions reduced, mask or None) per variable.
    """
    import dask

    rows = []
    for var, band_dim, dims, mask in specs:
        da = ds[var] if mask is None else ds[var].where(mask)
        todo = [da.mean(dim=dims, skipna=True), da.std(dim=dims, skipna=True)]
        if count:
            todo.append(da.count(dim=dims))
        values = dask.compute(*todo)
        for i, name in enumerate(da[band_dim].values):
            row = dict(variable=var, band=str(name), mean=float(values[0].values[i]), std=float(values[1].values[i]))
            if count:
                row["pixels"] = int(values[2].values[i])
            rows.append(row)
    return pd.DataFrame(rows)
