"""Aggregation of per-sample metric records: per method, per class, per cloud-cover bin.

A *record* is a flat dict for one scored sample (or one sample x class), for example
``{"method": "mosaicing", "sample": "ROI0007_t3", "cloud_fraction": 0.42, "nrmse": 0.031, ...}``.
:func:`aggregate` groups records and averages every metric column.

Cloud bins
----------
Bins are given by ascending edges, as fractions in ``[0, 1]`` (default ``0, 0.1, ..., 1.0``).
Every bin is closed on the left and open on the right, ``[lo, hi)``, except the last one, which
also contains its right edge (``[0.9, 1.0]``), so a fully cloudy sample lands in ``"90-100%"``.
Labels read ``"<lo>-<hi>%"`` in percent. A NaN fraction (unknown cover) gets the label
``"unknown"``; a fraction outside the edges is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd

DEFAULT_CLOUD_BIN_EDGES: tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(11))
UNKNOWN_BIN = "unknown"


def _check_edges(edges: Sequence[float] | np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(
            f"cloud bin edges must be at least two strictly ascending values, got {edges}"
        )
    return e


def cloud_bin_labels(edges: Sequence[float] | np.ndarray = DEFAULT_CLOUD_BIN_EDGES) -> list[str]:
    """The bin labels in order, e.g. ``["0-10%", "10-20%", ..., "90-100%"]``."""
    e = _check_edges(edges)
    return [f"{lo * 100:g}-{hi * 100:g}%" for lo, hi in pairwise(e)]


def cloud_bin_label(fraction: float, edges: Sequence[float] = DEFAULT_CLOUD_BIN_EDGES) -> str:
    """The label of the bin holding ``fraction`` (in ``[0, 1]``); ``"unknown"`` for NaN/None."""
    return str(cloud_bins([fraction], edges)[0])


def cloud_bins(fractions, edges: Sequence[float] = DEFAULT_CLOUD_BIN_EDGES) -> np.ndarray:
    """Vectorised :func:`cloud_bin_label`: an object array of labels."""
    e = _check_edges(edges)
    f = np.asarray(
        [np.nan if v is None else v for v in np.ravel(np.asarray(fractions, dtype=object))],
        dtype=np.float64,
    )
    known = ~np.isnan(f)
    outside = known & ((f < e[0]) | (f > e[-1]))
    if np.any(outside):
        raise ValueError(
            f"cloud fraction(s) {f[outside][:5].tolist()} outside the bin edges [{e[0]}, {e[-1]}]"
            " (fractions are in [0, 1], not percent)"
        )
    labels = np.array(cloud_bin_labels(e) + [UNKNOWN_BIN], dtype=np.object_)
    idx = np.full(f.shape, len(e) - 1, dtype=np.int64)  # -> "unknown"
    # bins [lo, hi); the right-most edge belongs to the last bin
    idx[known] = np.clip(np.searchsorted(e, f[known], side="right") - 1, 0, len(e) - 2)
    return labels[idx]


def aggregate(
    records: Iterable[dict] | pd.DataFrame,
    by: Sequence[str] = ("method", "cloud_bin"),
    metrics: Sequence[str] | None = None,
    *,
    cloud_bin_edges: Sequence[float] = DEFAULT_CLOUD_BIN_EDGES,
    fraction_column: str = "cloud_fraction",
) -> pd.DataFrame:
    """Mean of each metric per group, plus the group size ``n``.

    * ``by``: grouping columns. If ``"cloud_bin"`` is asked for but the records carry only
      ``fraction_column`` (``cloud_fraction``), the bin is derived with :func:`cloud_bins`.
      Per-class tables use e.g. ``by=("method", "class")``.
    * ``metrics``: the columns to average; default every numeric column that is not a grouping
      column nor ``fraction_column``.
    * NaN metric values (e.g. a masked metric on an empty mask) are skipped in the mean;
      ``n`` counts the records of the group, ``n_<metric>`` the non-NaN values when they differ.

    Returns a DataFrame with one row per group (groups in sorted order; cloud bins in bin order,
    empty bins left out) and columns ``by + ["n"] + metrics``.
    """
    df = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    by = list(by)
    if "cloud_bin" in by and "cloud_bin" not in df.columns:
        if fraction_column not in df.columns:
            raise KeyError(
                f"grouping by 'cloud_bin' needs a 'cloud_bin' or '{fraction_column}' column"
            )
        df["cloud_bin"] = cloud_bins(df[fraction_column].to_numpy(), cloud_bin_edges)
    if "cloud_bin" in by:
        order = cloud_bin_labels(cloud_bin_edges) + [UNKNOWN_BIN]
        present = set(df["cloud_bin"].dropna().unique())
        if present <= set(order):
            df["cloud_bin"] = pd.Categorical(df["cloud_bin"], categories=order, ordered=True)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise KeyError(f"grouping column(s) {missing} not in the records")
    if metrics is None:
        skip = set(by) | {fraction_column}
        metrics = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    metrics = list(metrics)
    grouped = df.groupby(by, sort=True, observed=True, dropna=False)
    out = grouped[metrics].mean() if metrics else grouped.size().to_frame("n").drop(columns="n")
    out.insert(0, "n", grouped.size())
    if metrics:
        counts = grouped[metrics].count()
        for name in metrics:
            if not (counts[name] == out["n"]).all():
                out[f"n_{name}"] = counts[name]
    return out.reset_index()
