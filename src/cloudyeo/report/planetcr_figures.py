"""Figures and dataset card of the Planet-CR-style store (called by :func:`planetcr.finalize`).

* ``distributions.png`` - like Fig. 2 of the Planet-CR paper: samples per cloud-coverage bin
  (per split), the per-sample cloud coverage, and the land-cover class distribution (pixel share
  and dominant class per sample, per split);
* ``example_quartets.png`` - one sample per cloud bin: cloudy RGB, clear RGB, cloud mask, S1 VV,
  land cover;
* ``dataset_card.md`` - sources, counts, variables, remap table, statistics, skips, licences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from ..archives.s1_source import s1_card_line  # noqa: E402
from ..atomic import write_text
from ..landcover import CLASS_COLOURS, CLASSES, IGNORE_INDEX, WORLDCOVER_CLASSES, WORLDCOVER_TO_CLASS  # noqa: E402

SPLIT_COLOURS = {"train": "tab:blue", "validation": "tab:green", "test": "tab:orange"}
LICENCES = {
    "PlanetScope": "Planet Labs PBC, licensed per Planet's terms (the Planet-CR release is gated); "
                   "demo builds use synthetic scenes (CC0).",
    "Sentinel-1": "Copernicus Sentinel data, free and open (Copernicus data licence).",
    "ESA WorldCover": "CC BY 4.0, (c) ESA WorldCover project / Contains modified Copernicus "
                      "Sentinel data processed by ESA WorldCover consortium.",
}


def _save(fig, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _bin_labels(bins) -> list[str]:
    return [f"{lo:g}-{hi:g}%" for lo, hi in zip(bins, bins[1:])]


def distributions(index: pd.DataFrame, bins, path: Path) -> None:
    splits = [s for s in ("train", "validation", "test") if (index["split"] == s).any()]
    labels = _bin_labels(bins)
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


def example_quartets(store_path: Path, index: pd.DataFrame, path: Path, per_bin: int = 1) -> None:
    import zarr

    group = zarr.open_group(str(store_path), mode="r")
    picks = []
    for b in sorted(index["cloud_bin"].dropna().unique(), key=lambda s: float(s.split("-")[0])):
        sub = index[index["cloud_bin"] == b]
        if len(sub):
            picks += list(sub.sort_values("cloud_percent")["sample"].iloc[[len(sub) // 2]])[:per_bin]
    n = max(len(picks), 1)
    fig, axes = plt.subplots(n, 5, figsize=(15, 3.1 * n), squeeze=False, constrained_layout=True)
    lc_colours = np.zeros((256, 3))
    for i, c in enumerate(CLASSES):
        lc_colours[i] = np.array(CLASS_COLOURS[c]) / 255.0
    lc_colours[IGNORE_INDEX] = (0.0, 0.0, 0.0)
    cmap_lc = ListedColormap(lc_colours)
    cmap_mask = ListedColormap(["#dddddd", "#1f77b4", "#7f3fbf"] + ["#000000"] * 253)
    for r, i in enumerate(picks):
        row = index[index["sample"] == i].iloc[0]
        cloudy = np.asarray(group["optical_cloudy"][i])
        clear = np.asarray(group["optical_clear"][i])
        mask = np.asarray(group["cloud_mask"][i])
        s1 = np.asarray(group["s1"][i])
        lc = np.asarray(group["landcover"][i])
        axes[r, 0].imshow(_rgb(cloudy))
        axes[r, 0].set_title(f"cloudy {row['cloudy_id']}\n{row['aoi']}, cloud {row['cloud_percent']:.0f} %",
                             fontsize=8)
        axes[r, 1].imshow(_rgb(clear))
        axes[r, 1].set_title(f"clear {row['clear_id']}\n dt {row['dt_clear_days']:+.1f} d", fontsize=8)
        axes[r, 2].imshow(mask, cmap=cmap_mask, vmin=0, vmax=255, interpolation="nearest")
        axes[r, 2].set_title("cloud mask (UDM2): blue cloud,\npurple shadow, black nodata", fontsize=8)
        axes[r, 3].imshow(s1[0], cmap="gray", vmin=-25, vmax=0)
        axes[r, 3].set_title(f"S1 VV dB (10 m)\n dt {row['dt_s1_days']:+.1f} d", fontsize=8)
        axes[r, 4].imshow(lc, cmap=cmap_lc, vmin=0, vmax=255, interpolation="nearest")
        axes[r, 4].set_title(f"land cover (10 m)\n dominant {row['dominant_class']}", fontsize=8)
        for a in axes[r]:
            a.set_xticks([]), a.set_yticks([])
    if not picks:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center")
    _save(fig, path)


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_card(path: Path, *, cfg: dict[str, Any], index: pd.DataFrame, manifest: pd.DataFrame,
               scenes: pd.DataFrame, stats: pd.DataFrame, band_stats: pd.DataFrame,
               skips: pd.DataFrame, attrs: dict[str, Any], files: dict[str, Path]) -> None:
    sec = cfg["planetcr"]
    bins = _bin_labels(sec["bins"])
    by_bin = pd.crosstab(index["cloud_bin"], index["split"]).reindex(bins, fill_value=0) \
        if len(index) else pd.DataFrame()
    by_class = pd.crosstab(index["dominant_class"], index["split"]) if len(index) else pd.DataFrame()
    remap = pd.DataFrame({
        "WorldCover code": list(WORLDCOVER_TO_CLASS),
        "WorldCover class": [WORLDCOVER_CLASSES[c] for c in WORLDCOVER_TO_CLASS],
        "Planet-CR class": list(WORLDCOVER_TO_CLASS.values()),
        "index": [CLASSES.index(v) if v in CLASSES else IGNORE_INDEX for v in WORLDCOVER_TO_CLASS.values()],
    })
    off = index[["offset_x_m", "offset_y_m"]].abs()
    dt = index[["dt_clear_days", "dt_s1_days"]]
    aois = index.groupby(["aoi", "split"]).size().reset_index(name="samples") if len(index) else pd.DataFrame()
    lines = [
        "# Planet-CR-style quartets (cloudyeo)", "",
        f"Built by cloudyeo {attrs.get('code_version')} from source `{sec['source']}` "
        f"(optical asset `{attrs.get('optical_asset')}`: {attrs.get('optical_radiometry')}).", "",
        "After Xu et al., *High-Resolution Cloud Removal with Multi-Modal and Multi-Resolution Data "
        "Fusion* (Planet-CR): per AOI, a cloudy PlanetScope scene, the closest clear scene "
        f"(|dt| <= {sec['max_clear_days']} days), the closest Sentinel-1 GRD (|dt| <= "
        f"{sec['max_s1_days']} days) and ESA WorldCover remapped to six classes.", "",
        "## Counts", "",
        f"- samples: {len(index)} from {index['aoi'].nunique() if len(index) else 0} AOIs; "
        f"PlanetScope scenes seen: {len(scenes)} ({int((~scenes['has_udm2']).sum()) if len(scenes) else 0} "
        "without UDM2, skipped)",
        f"- candidate windows: {int((manifest['row_10m'] >= 0).sum())}; selected: {int(manifest['selected'].sum())}",
        "- split by AOI (seeded; no AOI in two splits): "
        + ", ".join(f"{k}: {v}" for k, v in index["split"].value_counts().sort_index().items()),
        "",
        "### Samples per cloud-coverage bin and split", "", _md(by_bin.reset_index()) if len(by_bin) else "-", "",
        "### Samples per dominant land-cover class and split", "",
        _md(by_class.reset_index()) if len(by_class) else "-", "",
        "### Samples per AOI", "", _md(aois) if len(aois) else "-", "",
        "## Variables", "",
        f"- `optical_cloudy`, `optical_clear` (sample, band, y, x): uint16, {attrs.get('optical_encoding')}; "
        f"bands {', '.join(attrs.get('optical_bands', []))}; 300 x 300 at 3 m.",
        f"- `cloud_mask` (sample, y, x): uint8, {attrs.get('cloud_mask_values')}; cloud = UDM2 "
        f"{', '.join(attrs.get('udm2_cloud_classes', []))}.",
        f"- `s1` (sample, polarization, y_10m, x_10m): float32 {attrs.get('s1_units')}, VV and VH, 90 x 90 at 10 m.",
        s1_card_line(attrs),
        f"- `landcover` (sample, y_10m, x_10m): uint8 class index {list(CLASSES)}, {IGNORE_INDEX} = ignore.",
        "- per-sample coordinates: `sample_id`, `aoi`, `split`, `batch`, scene ids and datetimes "
        "(`cloudy_*`, `clear_*`, `s1_*`), `dt_clear_days`, `dt_s1_days`, `cloud_percent`, "
        "`shadow_percent`, `nodata_percent`, `cloud_bin`, `dominant_class`, `landcover_fraction`, "
        "`epsg`, `transform_3m`, `transform_10m`, `offset_x_m`, `offset_y_m`, `s1_valid_fraction`.",
        "",
        "## WorldCover -> Planet-CR classes", "", _md(remap), "",
        "## Alignment", "",
        "PlanetScope windows are cut on the scenes' own 3 m grid (never resampled); the 10 m windows "
        "on the AOI grid. Every sample's footprints agree within "
        f"{sec['max_offset_m']} m at both corners (checked at plan and again at extraction); "
        f"corner offsets found: |dx| {off['offset_x_m'].min():.2f}-{off['offset_x_m'].max():.2f} m, "
        f"|dy| {off['offset_y_m'].min():.2f}-{off['offset_y_m'].max():.2f} m." if len(index) else "-", "",
        "## Time differences (days)", "",
        _md(dt.describe().T.reset_index().rename(columns={"index": "pair"})) if len(index) else "-", "",
        "## Band statistics (reflectance; S1 in dB)", "", _md(band_stats), "",
        "## Skips", "", _md(skips) if len(skips) else "none", "",
        "## Files", "",
    ] + [f"- `{k}`: `{v}`" for k, v in files.items()] + [
        "", "## Sources and licences", "",
    ] + [f"- {k}: {v}" for k, v in LICENCES.items()] + [
        "", "## Build configuration (planetcr)", "", "```json",
        json.dumps(sec, indent=2, sort_keys=True, default=str), "```", "",
    ]
    write_text(path, "\n".join(lines))
