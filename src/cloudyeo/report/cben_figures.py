"""Figures for dataset statistics (PNG, matplotlib Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def cloud_cover_histogram(index: pd.DataFrame, manifest: pd.DataFrame, path: Path) -> None:
    """Per-patch cloud/shadow/cirrus cover, and scene cloud cover against its climatology window."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    bins = np.linspace(0, 100, 21)
    for name, colour in (("cloud", "tab:blue"), ("cirrus", "tab:orange"), ("shadow", "tab:grey")):
        ax1.hist(index[f"{name}_percent"], bins=bins, alpha=0.6, label=name, color=colour)
    ax1.set(xlabel="cover per patch (%)", ylabel="patches", title=f"CBEN patches (n = {len(index)})")
    ax1.legend()

    chosen = manifest[manifest["skip_reason"].isna()].sort_values("clim_mean").reset_index(drop=True)
    x = np.arange(len(chosen))
    ax2.errorbar(x, chosen["clim_mean"], yerr=chosen["clim_sd"], fmt="_", color="k", capsize=3,
                 label="climatology mean ± SD")
    ax2.scatter(x, chosen["cloud_cover"], color="tab:blue", zorder=3, label="chosen scene")
    ax2.set(xlabel="product (sorted by climatology mean)", ylabel="cloud cover (%)", ylim=(-2, 102),
            title=f"{len(chosen)} products chosen, {int(manifest['skip_reason'].notna().sum())} skipped")
    ax2.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
