"""Figures of the SSL4EO four-season set: named renderers (see :mod:`cloudyeo.report.renderers`),
drawn by the drivers from the data the builder (:mod:`cloudyeo.datasets.ssl4eo`) gives.

* ``cloud_cover_histogram.png`` - scene cloud cover of the chosen scenes, and valid / missing
  seasons per reference date by skip category;
* ``examples.png`` - L2A true colour and S1 VV per season of a few locations.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SKIP_COLOURS = dict(no_scene="tab:grey", cloud="tab:blue", unpaired="tab:purple", partial="tab:orange",
                    missing_band="tab:red", nodata="tab:brown")


def _save(fig, path: Path, dpi: int) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)


def cloud_cover_figure(path: Path, index: pd.DataFrame, max_cloud: float, skip_categories: list[str]) -> None:
    """Scene cloud cover of the chosen scenes, and valid / missing seasons by category.

    ``index``: one row per (location, season) with ``valid``, ``season_date``, ``skip_category``,
    ``l1c_cloud_cover`` and ``l2a_cloud_cover``.
    """
    v = index[index["valid"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    bins = np.linspace(0, max(max_cloud, 1.0), 11)
    ax1.hist([v["l1c_cloud_cover"], v["l2a_cloud_cover"]], bins=bins, label=["L1C", "L2A"],
             color=["tab:orange", "tab:blue"])
    ax1.set(xlabel="scene cloud cover (%)", ylabel="chosen scenes",
            title=f"chosen scenes (threshold {max_cloud:g} %, n = {len(v)} seasons)")
    ax1.legend()
    dates = sorted(index["season_date"].unique())
    x = np.arange(len(dates))
    bottom = np.zeros(len(dates))
    per = index.groupby("season_date")
    valid = np.array([per.get_group(d)["valid"].sum() for d in dates], dtype=float)
    ax2.bar(x, valid, color="tab:green", label="valid")
    bottom += valid
    for cat in skip_categories:
        cnt = np.array([(per.get_group(d)["skip_category"] == cat).sum() for d in dates], dtype=float)
        if cnt.any():
            ax2.bar(x, cnt, bottom=bottom, color=SKIP_COLOURS[cat], label=f"missing: {cat}")
            bottom += cnt
    ax2.set_xticks(x, dates)
    ax2.set(ylabel="locations", title="seasons per reference date")
    ax2.legend(loc="lower right", fontsize="small")
    _save(fig, path, dpi=110)


def example_figure(path: Path, locations: list[str], seasons: list[str], valid: np.ndarray, s1_valid: np.ndarray,
                   skip_category: np.ndarray, rgb: np.ndarray, vv: np.ndarray) -> None:
    """L2A true colour and S1 VV (dB) per season, two rows per location.

    Per shown location (first axis) and season (second axis): ``valid``, ``s1_valid``,
    ``skip_category``, ``rgb`` (L2A B04, B03, B02 reflectance, NaN = no data) and ``vv``.
    """
    ns = len(seasons)
    nrow = max(2 * len(locations), 2)
    fig, axes = plt.subplots(nrow, ns, figsize=(2.6 * ns, 2.6 * nrow), squeeze=False, constrained_layout=True)
    for ax in axes.ravel():
        ax.set_xticks([]), ax.set_yticks([])
    for r, name in enumerate(locations):
        for k in range(ns):
            ax_rgb, ax_vv = axes[2 * r, k], axes[2 * r + 1, k]
            if r == 0:
                ax_rgb.set_title(seasons[k])
            if not valid[r, k]:
                ax_rgb.text(0.5, 0.5, f"missing:\n{skip_category[r, k]}", ha="center",
                            va="center", transform=ax_rgb.transAxes)
                continue
            ax_rgb.imshow(np.clip(np.nan_to_num(rgb[r, k].transpose(1, 2, 0)) / 0.3, 0, 1))
            if s1_valid[r, k]:
                lo, hi = np.nanpercentile(vv[r, k], [2, 98]) if np.isfinite(vv[r, k]).any() else (-25.0, 0.0)
                ax_vv.imshow(vv[r, k], cmap="gray", vmin=lo, vmax=hi)
            else:
                ax_vv.text(0.5, 0.5, "no S1", ha="center", va="center", transform=ax_vv.transAxes)
        axes[2 * r, 0].set_ylabel(f"{name}\nL2A RGB")
        axes[2 * r + 1, 0].set_ylabel(f"{name}\nS1 VV (dB)")
    _save(fig, path, dpi=80)
