"""Tiny stores in the exact CBEN and SSL4EO layouts, for tests, smoke runs and benchmarks.

Written through :mod:`cloudyeo.store` the way the dataset pipelines write them (create, write
samples, coordinates, completion mark), with random but plausible values: S2 reflectance x 1e4
as int16, S1 dB as float32, multi-hot labels whose classes leave a trace in the pixels (so a few
training steps can move AP), cloud fractions in [0, 1]. Real data comes from the workflow.
"""

from __future__ import annotations

import os

import numpy as np

from cloudyeo import store
from cloudyeo.sentinel import BEN19_CLASSES, S1_POLARIZATIONS, S2_L2A_BANDS

S2_ATTRS = {"scale_factor": 1e-4, "add_offset": 0.0, "_FillValue": -32768, "units": "1"}
S1_ATTRS = {"_FillValue": float("nan"), "units": "dB"}


def write_cben_store(path: str | os.PathLike, n: int = 12, px: int = 32, seed: int = 0,
                     splits: tuple[str, ...] = ("train", "train", "validation", "test")) -> dict:
    """A complete CBEN-layout store of ``n`` patches (``px`` side); returns the raw arrays."""
    rng = np.random.default_rng(seed)
    variables = {
        "s2": store.VariableSpec(("band", "y", "x"), (12, px, px), "int16", S2_ATTRS),
        "s2_reference": store.VariableSpec(("band", "y", "x"), (12, px, px), "int16", S2_ATTRS),
        "s1": store.VariableSpec(("polarization", "y", "x"), (2, px, px), "float32", S1_ATTRS),
        "labels": store.VariableSpec(("label",), (19,), "uint8", {}),
    }
    split = np.array([splits[i % len(splits)] for i in range(n)])
    coords: dict[str, tuple[tuple[str, ...], np.ndarray]] = {
        "patch_id": (("sample",), np.array([f"S2A_MSIL2A_T33UUP_{i // 4}_{i % 4}" for i in range(n)])),
        "split": (("sample",), split),
        "band": (("band",), np.array(S2_L2A_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        "label": (("label",), np.array(BEN19_CLASSES)),
    }
    store.create_store(path, n, variables, coords, {"dataset": "CBEN (synthetic)"}, codec="none")
    labels = (rng.random((n, 19)) < 0.25).astype(np.uint8)
    labels[np.arange(n), rng.integers(0, 19, n)] = 1
    signature = rng.normal(0, 400, (19, 12))  # each class shifts the band means
    ref = 1500 + labels.astype(float) @ signature
    ref = ref[:, :, None, None] + rng.normal(0, 200, (n, 12, px, px))
    cloud = rng.random(n).astype(np.float32)
    mask = rng.random((n, 1, px, px)) < cloud[:, None, None, None]
    cloudy = np.where(mask, 6000 + rng.normal(0, 300, (n, 12, px, px)), ref)
    s1 = (-12 + labels[:, :2].astype(float) * 3)[:, :, None, None] + rng.normal(0, 2, (n, 2, px, px))
    data: dict[str, np.ndarray] = {
        "s2": np.clip(cloudy, 0, 10000).astype(np.int16),
        "s2_reference": np.clip(ref, 0, 10000).astype(np.int16),
        "s1": s1.astype(np.float32),
        "labels": labels,
    }
    store.write_samples(path, 0, data)
    store.write_coords(path, {"cloud_fraction": (("sample",), mask.mean(axis=(1, 2, 3)).astype(np.float32))})
    store.mark_complete(path, {"finalized": True})
    return data


def write_ssl4eo_store(path: str | os.PathLike, n: int = 6, seasons: int = 4, px: int = 48,
                       seed: int = 0, invalid: tuple[tuple[int, int], ...] = ((0, 3),)) -> dict:
    """A complete SSL4EO-layout store (``s2_l2a`` + ``s1`` per (sample, season), ``valid`` and
    ``s1_valid`` flags, ``band_statistics`` attribute); seasons in ``invalid`` are not valid."""
    rng = np.random.default_rng(seed)
    inner = lambda c: (1, c, px, px)
    variables = {
        "s2_l2a": store.VariableSpec(("season", "l2a_band", "y", "x"), (seasons, 12, px, px), "int16",
                                     S2_ATTRS, inner_chunks=inner(12)),
        "s1": store.VariableSpec(("season", "polarization", "y", "x"), (seasons, 2, px, px), "float32",
                                 S1_ATTRS, inner_chunks=inner(2)),
    }
    valid = np.ones((n, seasons), dtype=bool)
    for i, s in invalid:
        if i < n and s < seasons:
            valid[i, s] = False
    coords = {
        "location": (("sample",), np.array([f"loc{i}" for i in range(n)])),
        "season": (("season",), np.array([f"2021-{3 * k + 3:02d}-21" for k in range(seasons)])),
        "l2a_band": (("l2a_band",), np.array(S2_L2A_BANDS)),
        "polarization": (("polarization",), np.array(S1_POLARIZATIONS)),
        "valid": (("sample", "season"), valid),
        "s1_valid": (("sample", "season"), valid.copy()),
    }
    store.create_store(path, n, variables, coords, {"title": "SSL4EO (synthetic)"}, codec="none")
    base = rng.normal(2000, 500, (n, 1, 12, 1, 1))
    s2 = np.clip(base + rng.normal(0, 300, (n, seasons, 12, px, px)), 0, 10000).astype(np.int16)
    s1 = (-12 + rng.normal(0, 3, (n, seasons, 2, px, px))).astype(np.float32)
    s2[~valid] = -32768
    s1[~valid] = np.nan
    store.write_samples(path, 0, {"s2_l2a": s2, "s1": s1})
    stats = []
    for var, names, arr, scale in (("s2_l2a", S2_L2A_BANDS, s2, 1e-4), ("s1", S1_POLARIZATIONS, s1, 1.0)):
        vals = arr[valid].astype(np.float64) * scale  # (k, C, px, px)
        for b, name in enumerate(names):
            v = vals[:, b]
            stats.append({"variable": var, "band": name, "mean": float(v.mean()), "std": float(v.std()),
                          "pixels": int(v.size)})
    store.mark_complete(path, {"band_statistics": stats, "n_samples": n, "n_seasons": seasons})
    return {"s2_l2a": s2, "s1": s1, "valid": valid}
