"""Figures of the Planet-CR-style dataset: named renderers (see :mod:`cloudyeo.report.renderers`),
drawn by the drivers from the data the builder (:mod:`cloudyeo.datasets.planetcr`) gives.

* ``distributions.png`` - like Fig. 2 of the Planet-CR paper: samples per cloud-coverage bin
  (per split), the per-sample cloud coverage, and the land-cover class distribution (pixel share
  and dominant class per sample, per split);
* ``example_quartets.png`` - one sample per cloud bin: cloudy RGB, clear RGB, cloud mask, S1 VV,
  land cover.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ..landcover import CLASS_COLOURS, CLASSES, IGNORE_INDEX  # noqa: E402

SPLIT_COLOURS = {"train": "tab:blue", "validation": "tab:green", "test": "tab:orange"}


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def distributions(path: Path, index: pd.DataFrame, bin_labels: list[str]) -> None:
    """Samples per cloud bin and split, cloud and shadow per sample, land-cover shares.

    ``index``: one row per sample (``split``, ``cloud_bin``, ``cloud_percent``,
    ``shadow_percent``, ``dominant_class``, ``lc_<class>``); ``bin_labels``: the cloud bins in order.
    """
    splits = [s for s in ("train", "validation", "test") if (index["split"] == s).any()]
    labels = list(bin_labels)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    ax = axes[0]
    bottom = np.zeros(len(labels))
    for sp in splits:
        counts = np.array([((index["split"] == sp) & (index["cloud_bin"] == b)).sum() for b in labels])
        ax.bar(labels, counts, bottom=bottom, color=SPLIT_COLOURS.get(sp), label=sp)
        bottom += counts
    ax.set(xlabel="cloud coverage of the cloudy window", ylabel="samples",
           title=f"(a) cloud coverage, n = {len(index)}")
    ax.legend()
    ax = axes[1]
    ax.hist(index["cloud_percent"], bins=np.linspace(0, 100, 21), color="0.4", label="cloud")
    ax.hist(index["shadow_percent"], bins=np.linspace(0, 100, 21), color="tab:purple", alpha=0.6,
            label="shadow")
    ax.set(xlabel="per-sample cover (%)", ylabel="samples", title="(b) cloud and shadow per sample")
    ax.legend()
    ax = axes[2]
    x = np.arange(len(CLASSES))
    width = 0.8 / max(len(splits), 1)
    for k, sp in enumerate(splits):
        sub = index[index["split"] == sp]
        share = [100 * sub[f"lc_{c}"].mean() for c in CLASSES]
        ax.bar(x + (k - (len(splits) - 1) / 2) * width, share, width, color=SPLIT_COLOURS.get(sp),
               label=f"{sp} pixel share")
    dom = [int((index["dominant_class"] == c).sum()) for c in CLASSES]
    ax2 = ax.twinx()
    ax2.plot(x, dom, "kD", label="samples (dominant class)")
    ax2.set_ylabel("samples with this dominant class")
    ax.set_xticks(x, CLASSES, rotation=30)
    ax.set(ylabel="pixels (%)", title="(c) land cover (WorldCover -> 6 classes)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def _rgb(optical: np.ndarray) -> np.ndarray:
    """(4, H, W) stored DN -> display RGB (R, G, B), 2-98 % stretch of the clear reference."""
    rgb = optical[[2, 1, 0]].astype(np.float32).transpose(1, 2, 0) * 1e-4
    return np.clip(rgb / 0.3, 0, 1) ** 0.8


def example_quartets(path: Path, rows: pd.DataFrame, optical_cloudy: list[np.ndarray],
                     optical_clear: list[np.ndarray], cloud_mask: list[np.ndarray], s1: list[np.ndarray],
                     landcover: list[np.ndarray]) -> None:
    """One figure row per sample: cloudy RGB, clear RGB, cloud mask, S1 VV, land cover.

    ``rows``: the samples' index rows; per sample, the stored values (optical DN (4, H, W), mask
    (H, W), S1 dB (2, h, w), class index (h, w)). Without samples the figure says so.
    """
    n = max(len(rows), 1)
    fig, axes = plt.subplots(n, 5, figsize=(15, 3.1 * n), squeeze=False, constrained_layout=True)
    lc_colours = np.zeros((256, 3))
    for i, c in enumerate(CLASSES):
        lc_colours[i] = np.array(CLASS_COLOURS[c]) / 255.0
    lc_colours[IGNORE_INDEX] = (0.0, 0.0, 0.0)
    cmap_lc = ListedColormap(lc_colours)
    cmap_mask = ListedColormap(["#dddddd", "#1f77b4", "#7f3fbf"] + ["#000000"] * 253)
    for r in range(len(rows)):
        row = rows.iloc[r]
        axes[r, 0].imshow(_rgb(optical_cloudy[r]))
        axes[r, 0].set_title(f"cloudy {row['cloudy_id']}\n{row['aoi']}, cloud {row['cloud_percent']:.0f} %",
                             fontsize=8)
        axes[r, 1].imshow(_rgb(optical_clear[r]))
        axes[r, 1].set_title(f"clear {row['clear_id']}\n dt {row['dt_clear_days']:+.1f} d", fontsize=8)
        axes[r, 2].imshow(cloud_mask[r], cmap=cmap_mask, vmin=0, vmax=255, interpolation="nearest")
        axes[r, 2].set_title("cloud mask (UDM2): blue cloud,\npurple shadow, black nodata", fontsize=8)
        axes[r, 3].imshow(s1[r][0], cmap="gray", vmin=-25, vmax=0)
        axes[r, 3].set_title(f"S1 VV dB (10 m)\n dt {row['dt_s1_days']:+.1f} d", fontsize=8)
        axes[r, 4].imshow(landcover[r], cmap=cmap_lc, vmin=0, vmax=255, interpolation="nearest")
        axes[r, 4].set_title(f"land cover (10 m)\n dominant {row['dominant_class']}", fontsize=8)
        for a in axes[r]:
            a.set_xticks([]), a.set_yticks([])
    if not len(rows):
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center")
    _save(fig, path)
