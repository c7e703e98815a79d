"""The demo world's validation page: every published statistic against what the world shows.

``write_page(table, figure data..., out)`` writes ``validation.md`` (the table, a verdict per row and the
references), ``validation.csv`` and six figures: sigma0 per class group and season against the
literature ranges, NDVI through the year per class group, the misregistration histogram, the
parcel-size distribution, land-cover shares per tile against its country's forest share, and
example Sentinel-1 / Sentinel-2 pairs side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import rasterio  # noqa: E402

from cloudyeo.atomic import atomic_write, write_csv, write_text  # noqa: E402
from cloudyeo.report.tables import markdown_table  # noqa: E402
from cloudyeo.sentinel import BEN19_CLASSES  # noqa: E402

FIGURES = {
    "sigma0": "sigma0_per_class.png",
    "ndvi": "ndvi_per_class.png",
    "misregistration": "misregistration.png",
    "parcels": "parcel_sizes.png",
    "landcover": "landcover_per_tile.png",
    "examples": "s1_s2_examples.png",
}
SEASON_ORDER = ["DJF", "MAM", "JJA", "SON"]
# Which literature range each sigma0 panel shows, per (group, state, polarisation).
SIGMA0_RANGES = {
    ("inland water", "all", "vv"): "s1_vv_water",
    ("broad-leaved forest", "all", "vv"): "s1_vv_forest",
    ("broad-leaved forest", "all", "vh"): "s1_vh_forest",
    ("mixed forest", "all", "vv"): "s1_vv_forest",
    ("mixed forest", "all", "vh"): "s1_vh_forest",
    ("urban", "all", "vv"): "s1_vv_urban",
    ("arable", "bare", "vh"): "s1_vh_crop_bare",
    ("arable", "peak", "vh"): "s1_vh_crop_peak",
}


def _save(fig: Any, path: Path) -> None:
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def _ranges(table: pd.DataFrame) -> dict[str, tuple[float, float]]:
    return {r.key: (float(r.low), float(r.high)) for r in table.itertuples()}


def sigma0_figure(sigma0: pd.DataFrame, ranges: dict[str, tuple[float, float]], path: Path) -> None:
    panels = [(g, s) for g, s in sigma0[["group", "state"]].drop_duplicates().itertuples(index=False)
              if s != "wet_snow_drop"]
    panels.sort()
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.45 * len(panels) + 1.5), sharey=True, constrained_layout=True)
    for ax, pol in zip(axes, ("vv", "vh"), strict=True):
        for i, (group, state) in enumerate(panels):
            d = sigma0[(sigma0["group"] == group) & (sigma0["state"] == state)]
            for j, season in enumerate(SEASON_ORDER):
                v = d.loc[d["season"] == season, f"{pol}_db"]
                if len(v):
                    ax.scatter(v, np.full(len(v), i + (j - 1.5) * 0.15), s=6, color=f"C{j}",
                               label=season if i == 0 else None, alpha=0.6)
            key = SIGMA0_RANGES.get((group, state, pol))
            if key in ranges:
                lo, hi = max(ranges[key][0], -35.0), min(ranges[key][1], 10.0)
                ax.fill_betweenx([i - 0.4, i + 0.4], lo, hi, color="k", alpha=0.12, lw=0)
        ax.set_yticks(range(len(panels)), [f"{g} ({s})" for g, s in panels])
        ax.set(xlabel=f"sigma0 {pol.upper()} (dB), median per product", xlim=(-32, 8))
        ax.grid(axis="x", alpha=0.3)
    axes[0].legend(title="season", loc="lower left", fontsize=8)
    fig.suptitle("Sentinel-1 backscatter per class and season; grey: published range")
    _save(fig, path)


def ndvi_figure(ndvi: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    for i, (group, d) in enumerate(ndvi.groupby("group")):
        m = d.groupby("month")["ndvi"].median()
        ax.plot(m.index, m.values, "-o", ms=3, color=f"C{i}", label=group)
    ax.set(xlabel="month", ylabel="NDVI (median of clear pixels)", xticks=range(1, 13), ylim=(-0.8, 1.0),
           title="NDVI through the year per class (clear L2A pixels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    _save(fig, path)


def misregistration_figure(mis: pd.DataFrame, ranges: dict[str, tuple[float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    bins = list(np.linspace(0, max(40.0, float(mis["p95_m"].max()) + 1 if len(mis) else 40.0), 41))
    label = mis["pair"] + (", " + mis["terrain"].fillna("") if "terrain" in mis else "")
    for i, (name, d) in enumerate(mis.groupby(label.str.rstrip(", "))):
        ax.hist(d["p95_m"], bins=bins, alpha=0.6, color=f"C{i}", label=f"{name} (n = {len(d)})")
    for key in ("s2_s1_shift_p95_m", "s2_s1_relief_p95_m", "planet_s1_shift_p95_m"):
        if key in ranges:
            ax.axvline(ranges[key][1], ls="--", color="k", lw=0.8)
    ax.set(xlabel="displacement per product, 95th percentile over its pixels (m)", ylabel="products",
           title="Misregistration against Sentinel-1 (dashed: published upper bounds)")
    ax.legend()
    _save(fig, path)


def parcel_figure(parcels: pd.DataFrame, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    area = parcels["area_ha"].clip(lower=0.01)
    ax1.hist(area, bins=list(np.logspace(-2, 2.5, 40)), color="C2")
    ax1.set_xscale("log")
    for edge in (0.64, 2.56, 16.0, 100.0):  # Lesiv et al. 2019 field-size classes
        ax1.axvline(edge, ls="--", color="k", lw=0.7)
    ax1.set(xlabel="parcel area (ha)", ylabel="parcels", title="Agricultural parcels; dashed: field-size classes")
    mow = parcels.loc[parcels["class"] == 4, "mowings"]
    ax2.bar(*np.unique(mow, return_counts=True), color="C1")
    ax2.set(xlabel="mowing events per year", ylabel="pasture parcels", title="Grassland mowing")
    _save(fig, path)


def landcover_figure(cover: pd.DataFrame, class_names: list[str], path: Path) -> None:
    """Per tile: its class composition (stacked) and its forest share beside the country's."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 6), constrained_layout=True)
    labels = [f"{t}\n{c}" for t, c in zip(cover["tile"], cover["country"], strict=True)]
    left = np.zeros(len(cover))
    colours = plt.get_cmap("tab20")
    for c, name in enumerate(class_names):
        share = cover[f"class_{c}"].to_numpy()
        if share.max() > 0:
            ax1.barh(labels, share, left=left, color=colours(c % 20), label=name)
            left += share
    ax1.set(xlabel="share of the tile (%)", title="Land cover per tile")
    fig.legend(*ax1.get_legend_handles_labels(), fontsize=7, ncol=3, loc="outside lower center")
    y = np.arange(len(cover))
    ax2.barh(y - 0.2, cover["forest_percent"], height=0.4, color="C2", label="tile")
    ax2.barh(y + 0.2, cover["country_forest_percent"], height=0.4, color="0.6", label="country (FAO 2020)")
    ax2.set_yticks(y, labels)
    ax2.set(xlabel="forest (%)", title="Forest share: tile vs its country")
    ax2.legend()
    _save(fig, path)


def _rgb(example: dict[str, Any]) -> np.ndarray:
    folder = Path(example["folder"]) / "catalog"
    bands = []
    for b in ("B04", "B03", "B02"):
        with rasterio.open((folder / example["l2a"][b]).resolve()) as src:
            bands.append((src.read(1).astype(np.float64) + example["offset"]) / 10000.0)
    return np.clip(np.stack(bands, axis=-1) / 0.25, 0, 1)


def examples_figure(examples: list[dict[str, Any]], path: Path) -> None:
    n = max(len(examples), 1)
    fig, axes = plt.subplots(n, 2, figsize=(8, 4 * n), constrained_layout=True, squeeze=False)
    for row, ex in zip(axes, examples, strict=False):
        row[0].imshow(_rgb(ex))
        row[0].set_title(f"S2 L2A {ex['tile']} {ex['date']}")
        if ex.get("s1_vv"):
            with rasterio.open(ex["s1_vv"]) as src:
                vv = 10 * np.log10(np.maximum(src.read(1), 1e-6))
            row[1].imshow(vv, cmap="gray", vmin=-25, vmax=0)
            row[1].set_title(f"S1 VV (dB) {ex.get('s1_date', '')}")
    for ax in axes.ravel():
        ax.set_axis_off()
    _save(fig, path)


def write_page(table: pd.DataFrame, out: Path, *, sigma0: pd.DataFrame, ndvi: pd.DataFrame,
               misregistration: pd.DataFrame, parcels: pd.DataFrame, examples: list[dict[str, Any]],
               landcover: pd.DataFrame | None = None) -> Path:
    """Write the validation page and its figures under ``out``; returns the page's path.

    ``table``: one row per statistic (key, statistic, value, low, high, unit, holds, detail,
    source, reference), as :func:`cloudyeo.demo.validation.measure` returns it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ranges = _ranges(table)
    write_csv(table, out / "validation.csv")
    if len(sigma0):
        sigma0_figure(sigma0, ranges, out / FIGURES["sigma0"])
    if len(ndvi):
        ndvi_figure(ndvi, out / FIGURES["ndvi"])
    if len(misregistration):
        misregistration_figure(misregistration, ranges, out / FIGURES["misregistration"])
    if len(parcels):
        parcel_figure(parcels, out / FIGURES["parcels"])
    if landcover is not None and len(landcover):
        landcover_figure(landcover, list(BEN19_CLASSES), out / FIGURES["landcover"])
    examples_figure(examples, out / FIGURES["examples"])
    t = table.copy()
    t["range"] = [f"[{lo:g}, {hi:g}]" for lo, hi in zip(t["low"], t["high"], strict=True)]
    t["verdict"] = np.where(t["holds"], "holds", "**does not hold**")
    shown = t[["statistic", "value", "range", "unit", "verdict", "source", "detail"]]
    held = int(t["holds"].sum())
    refs = "\n".join(f"- `{k}`: {r}" for k, r in sorted(set(zip(t["source"], t["reference"], strict=True))))
    figures = "\n\n".join(f"![{name}]({file})" for name, file in FIGURES.items() if (out / file).exists())
    text = (
        "# Demo world validation\n\n"
        "Each statistic of the generated world (measured from its files: COGs, truth masks, land "
        "cover) against the published range it is built to match (`cloudyeo.demo.literature`). "
        "The ranges were fixed before any effect was measured on the world.\n\n"
        f"**{held} of {len(t)} statistics hold.**\n\n"
        + markdown_table(shown, float_format="{:.3f}") + "\n\n## Figures\n\n" + figures
        + "\n\n## References\n\n" + refs + "\n"
    )
    page = out / "validation.md"
    write_text(page, text)
    return page
