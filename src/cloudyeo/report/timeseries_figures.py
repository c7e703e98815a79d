"""Figures of the time-series dataset: named renderers (see :mod:`cloudyeo.report.renderers`),
drawn by the drivers from the data the builder (:mod:`cloudyeo.datasets.timeseries`) gives."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..datasets.timeseries import COVERAGE_BINS, SPLITS  # noqa: E402


def coverage_figure(path: Path, index: pd.DataFrame) -> None:
    """Histogram of cloud coverage per valid (patch, time), one panel per split."""
    valid = index[index["valid"]]
    splits = [s for s in SPLITS if s in set(valid["split"])]
    fig, axes = plt.subplots(1, max(len(splits), 1), figsize=(4 * max(len(splits), 1), 3.4),
                             constrained_layout=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        g = valid[valid["split"] == split]["cloud_coverage"]
        ax.hist(g, bins=COVERAGE_BINS, color="tab:blue", edgecolor="white")
        ax.set(title=f"{split} (n = {len(g)}, mean {g.mean():.1f} %)", xlabel="cloud coverage (%)",
               ylabel="(patch, time) samples", xlim=(0, 100))
    fig.suptitle("Cloud coverage per (patch, time) - s2cloudless mask")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def dt_figure(path: Path, index: pd.DataFrame, max_days: float) -> None:
    """Histogram of S1 - S2 time differences over the valid ROI time points."""
    per_time = index[index["valid"]].drop_duplicates(["roi", "time"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    ax.hist(per_time["dt_days"], bins=np.arange(-max_days, max_days + 1, 1.0), color="tab:green",  # type: ignore[arg-type]  # stub omits ndarray bins
            edgecolor="white")
    ax.set(xlabel="S1 time - S2 time (days)", ylabel="ROI time points",
           title=f"S1-S2 pairing (|dt| <= {max_days:g} d), median |dt| "
                 f"{per_time['dt_days'].abs().median():.1f} d")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def example_figure(path: Path, rows: pd.DataFrame, s2: np.ndarray | None, s1: np.ndarray | None,
                   cloud_mask: np.ndarray | None) -> None:
    """RGB, VV and cloud mask per time point of one patch.

    ``rows``: the patch's index rows in time order; ``s2`` (T, 13, y, x) stored int16
    (reflectance x 1e4), ``s1`` (T, 2, y, x) dB, ``cloud_mask`` (T, y, x). Without a patch
    (``rows`` empty: no valid time point anywhere) the figure says so.
    """
    if rows.empty or s2 is None:
        fig, ax = plt.subplots(figsize=(5.5, 1.5), constrained_layout=True)
        ax.axis("off")
        ax.text(0.5, 0.5, "no patch has a valid time point", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    if s1 is None or cloud_mask is None:
        raise ValueError("example_figure: s2 given without s1 and cloud_mask")
    n_t = s2.shape[0]
    fig, axes = plt.subplots(3, n_t, figsize=(0.9 * n_t, 3.1), constrained_layout=True)
    axes = np.atleast_2d(axes).reshape(3, n_t)
    for t in range(n_t):
        row = rows.iloc[t]
        for ax in axes[:, t]:
            ax.set_xticks([])
            ax.set_yticks([])
        if not row["valid"]:
            for ax in axes[:, t]:
                ax.set_facecolor("0.85")
            axes[0, t].set_title(f"t{t}\ngap", fontsize=6)
            continue
        rgb = np.clip(s2[t, [3, 2, 1]].transpose(1, 2, 0) * 1e-4 * 3.0, 0, 1)
        axes[0, t].imshow(rgb)
        axes[1, t].imshow(s1[t, 0], cmap="gray", vmin=-25, vmax=0)
        axes[2, t].imshow(cloud_mask[t] == 1, cmap="Blues", vmin=0, vmax=1)
        axes[0, t].set_title(f"t{t}\n{pd.Timestamp(row['s2_datetime']):%m-%d}\n{row['cloud_coverage']:.0f}%",
                             fontsize=6)
    for ax, label in zip(axes[:, 0], ("RGB", "VV dB", "mask")):
        ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"patch {rows['patch_id'].iloc[0]} ({rows['split'].iloc[0]})", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
