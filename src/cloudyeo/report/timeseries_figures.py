"""Figures, tables and the dataset card of the time-series dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..archives.s1_source import dataset_s1_source, s1_card_line  # noqa: E402
from .cards import LICENCES, _markdown  # noqa: E402

COVERAGE_BINS = np.linspace(0, 100, 11)


def coverage_table(index: pd.DataFrame) -> pd.DataFrame:
    """Per split: valid (patch, time) samples, cloud-coverage mean/SD and counts per 10 % bin."""
    rows = []
    valid = index[index["valid"]]
    for split, g in valid.groupby("split", sort=False):
        counts, _ = np.histogram(g["cloud_coverage"], bins=COVERAGE_BINS)
        row = {"split": split, "samples": len(g), "mean": g["cloud_coverage"].mean(),
               "sd": g["cloud_coverage"].std(ddof=0)}
        row.update({f"{int(a)}-{int(b)}%": int(n) for a, b, n in zip(COVERAGE_BINS[:-1], COVERAGE_BINS[1:], counts)})
        rows.append(row)
    return pd.DataFrame(rows)


def coverage_figure(index: pd.DataFrame, path: Path) -> None:
    valid = index[index["valid"]]
    splits = [s for s in ("train", "validation", "test") if s in set(valid["split"])]
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


def dt_figure(index: pd.DataFrame, path: Path, max_days: float) -> None:
    per_time = index[index["valid"]].drop_duplicates(["roi", "time"])
    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    ax.hist(per_time["dt_days"], bins=np.arange(-max_days, max_days + 1, 1.0), color="tab:green",
            edgecolor="white")
    ax.set(xlabel="S1 time - S2 time (days)", ylabel="ROI time points",
           title=f"S1-S2 pairing (|dt| <= {max_days:g} d), median |dt| "
                 f"{per_time['dt_days'].abs().median():.1f} d")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def example_figure(store_path: Path, index: pd.DataFrame, path: Path) -> str | None:
    """RGB, VV and cloud mask per time point of the patch with the most valid time points."""
    import zarr

    counts = index.groupby("patch")["valid"].sum()
    if counts.empty or counts.max() == 0:
        return None
    patch = int(counts.idxmax())
    g = zarr.open_group(str(store_path), mode="r")
    s2 = np.asarray(g["s2"][patch])  # (T, 13, y, x) int16
    s1 = np.asarray(g["s1"][patch])
    m = np.asarray(g["cloud_mask"][patch])
    rows = index[index["patch"] == patch].sort_values("time")
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
        axes[2, t].imshow(m[t] == 1, cmap="Blues", vmin=0, vmax=1)
        axes[0, t].set_title(f"t{t}\n{pd.Timestamp(row['s2_datetime']):%m-%d}\n{row['cloud_coverage']:.0f}%",
                             fontsize=6)
    for ax, label in zip(axes[:, 0], ("RGB", "VV dB", "mask")):
        ax.set_ylabel(label, fontsize=7)
    fig.suptitle(f"patch {rows['patch_id'].iloc[0]} ({rows['split'].iloc[0]})", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(rows["patch_id"].iloc[0])


def write_all(cfg: dict[str, Any], store_path: Path, index: pd.DataFrame, out_dir: Path,
              quality: dict | None) -> dict[str, Path]:
    ts = cfg["timeseries"]
    out = {
        "coverage_figure": out_dir / "cloud_coverage_by_split.png",
        "dt_figure": out_dir / "dt_s1_s2_histogram.png",
        "example_figure": out_dir / "example_series.png",
        "coverage_table": out_dir / "cloud_coverage_by_split.csv",
        "card": out_dir / "dataset_card.md",
    }
    table = coverage_table(index)
    table.to_csv(out["coverage_table"], index=False)
    coverage_figure(index, out["coverage_figure"])
    dt_figure(index, out["dt_figure"], float(ts["s1_max_days"]))
    example = example_figure(store_path, index, out["example_figure"])

    per_time = index.drop_duplicates(["roi", "time"])
    avail = per_time.groupby("roi").agg(valid=("valid", "sum"), gaps=("valid", lambda v: int((~v).sum())))
    gaps = per_time[~per_time["valid"]][["roi", "time", "gap_reason"]]
    s1 = dataset_s1_source(cfg, "timeseries").attrs()
    lines = [
        "# SEN12MS-CR-TS-style time series (cloudyeo)", "",
        f"Archive `{cfg['archive']}`, year {ts['year']}, {ts['intervals']} intervals, "
        f"{index['patch'].nunique()} patches of {ts['patch_px']} px from {index['roi'].nunique()} ROIs.", "",
        "## Layout", "",
        "- `s2` (patch, time, band[13], y, x): L1C TOA reflectance x 1e4 (int16; RADIO_ADD_OFFSET applied), "
        "all bands at 10 m (20/60 m bilinear).",
        f"- `s1` (patch, time, [VV, VH], y, x): IW {s1['s1_radiometry']} in dB, closest to the S2 "
        f"scene, |dt| <= {ts['s1_max_days']:g} days.",
        s1_card_line(s1),
        "- `cloud_probability`, `cloud_mask` (patch, time, y, x): s2cloudless, computed once at build time "
        f"(threshold {ts['masks']['threshold']}, average_over {ts['masks']['average_over']}, dilation "
        f"{ts['masks']['dilation_size']}, working resolution {ts['masks']['working_resolution_m']} m).",
        "- `landcover` (patch, y, x); `truth_mask` (demo only).",
        "- per (patch, time): `valid`, `gap_reason`, scene ids and datetimes, `dt_s1_days`, `cloud_coverage` (%).",
        "- a gap keeps its time index (fill values, valid = False): inputs are never shifted.", "",
        "## Availability per ROI", "", _markdown(avail.reset_index()), "",
    ]
    if len(gaps):
        lines += ["### Gaps", "", _markdown(gaps), ""]
    lines += ["## Cloud coverage by split", "", _markdown(table), ""]
    if quality:
        q = pd.DataFrame([dict(truth_class=k, iou=v["iou"], precision=v["precision"], recall=v["recall"])
                          for k, v in quality.items() if k != "clear"])
        lines += ["## s2cloudless mask vs demo truth", "", _markdown(q), ""]
    lines += ["## Sampling manifests", "",
              f"seq2point, {ts['manifest']['n_inputs']} inputs, target = least cloudy valid frame "
              "(ties: earliest), never among the inputs; input cloud ranges: "
              + json.dumps(ts["manifest"]["cloud_range"]) + f"; seed {ts['manifest']['seed']}.", ""]
    lines += ["## Figures", "", f"- cloud coverage: `{out['coverage_figure'].name}`",
              f"- S1-S2 dt: `{out['dt_figure'].name}`",
              f"- example series: `{out['example_figure'].name}` (patch {example})", ""]
    lines += ["## Sources and licences", "",
              f"- Sentinel-1/2: {LICENCES['Sentinel-1/2']}",
              "- ESA WorldCover (real archives): CC BY 4.0.", "",
              "## Build configuration", "", "```json", json.dumps(cfg, indent=2, sort_keys=True), "```", ""]
    out["card"].write_text("\n".join(lines))
    return out
