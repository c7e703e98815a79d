"""The CBEN paper's Table VI analogue from the evaluate nodes' metrics (rule cben_eval_table).

Inputs: one JSON per (method, finetuned_on, tested_on) written by
:func:`cloudyeo.training.evaluate.evaluate`. Outputs under ``results/eval/cben/``:

* ``table_vi.csv`` - one row per (method, finetuned_on, tested_on): ``method``, ``finetuned_on``,
  ``tested_on``, ``ap_micro``, ``ap_macro`` (percent, dataset-level), ``n_samples``;
* ``table_vi.md`` - the 2x2 matrix per method, the loss on cloudy tests of the clear-trained
  model and how much of it fine-tuning on cloudy data recovers;
* ``table_vi.png`` - micro AP bars of the four cells per method;
* ``per_class_ap.csv`` - per-class AP of every cell (long format);
* ``ap_by_cloud_fraction.csv`` / ``.png`` - AP per bin of the per-patch cloud fraction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cloudyeo.atomic import write_text

METHOD_ORDER = ("moco2", "moco3", "mae")
METHOD_NAMES = {"moco2": "MoCo v2", "moco3": "MoCo v3", "mae": "MAE"}
SET_ORDER = ("ben", "cben")
SET_NAMES = {"ben": "BEN", "cben": "CBEN"}
TABLE_COLUMNS = ["method", "finetuned_on", "tested_on", "ap_micro", "ap_macro", "n_samples"]


def load_results(files) -> list[dict]:
    return [json.loads(Path(f).read_text()) for f in files]


def _order(df: pd.DataFrame) -> pd.DataFrame:
    key = {
        "method": lambda s: s.map({m: i for i, m in enumerate(METHOD_ORDER)}),
        "finetuned_on": lambda s: s.map({m: i for i, m in enumerate(SET_ORDER)}),
        "tested_on": lambda s: s.map({m: i for i, m in enumerate(SET_ORDER)}),
    }
    cols = [c for c in ("method", "finetuned_on", "tested_on") if c in df]
    return df.sort_values(cols, key=lambda s: key[s.name](s)).reset_index(drop=True)


def table_vi(results: list[dict]) -> pd.DataFrame:
    rows = [{k: r[k] for k in TABLE_COLUMNS} for r in results]
    df = _order(pd.DataFrame(rows, columns=TABLE_COLUMNS))
    df["ap_micro"] = df["ap_micro"].astype(float).round(2)
    df["ap_macro"] = df["ap_macro"].astype(float).round(2)
    df["n_samples"] = df["n_samples"].astype(int)
    return df


def per_class_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        for name, ap in r["per_class"].items():
            rows.append({"method": r["method"], "finetuned_on": r["finetuned_on"], "tested_on": r["tested_on"],
                         "class": name, "ap": round(float(ap), 2), "n_positives": r["n_positives"][name]})
    return _order(pd.DataFrame(rows)) if rows else pd.DataFrame(rows)


def bins_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        for b in r["cloud_bins"]:
            rows.append({"method": r["method"], "finetuned_on": r["finetuned_on"], "tested_on": r["tested_on"], **b})
    return _order(pd.DataFrame(rows)) if rows else pd.DataFrame(rows)


def effects(df: pd.DataFrame) -> pd.DataFrame:
    """Per method: the clear-trained model's loss on cloudy tests and the recovery by cloudy
    fine-tuning (micro AP points); NaN where a cell is missing."""
    out = []
    for method in [m for m in METHOD_ORDER if m in set(df["method"])]:
        cell = {(r.finetuned_on, r.tested_on): r for r in df[df["method"] == method].itertuples()}

        def get(a, b, col="ap_micro", cell=cell):
            return getattr(cell[(a, b)], col) if (a, b) in cell else np.nan

        loss = get("ben", "ben") - get("ben", "cben")
        recovery = get("cben", "cben") - get("ben", "cben")
        out.append({
            "method": method,
            "loss_on_cloudy": loss,
            "recovery_on_cloudy": recovery,
            "recovered_share": recovery / loss if loss and np.isfinite(loss) and loss > 0 else np.nan,
            "clear_change": get("cben", "ben") - get("ben", "ben"),
            "loss_on_cloudy_macro": get("ben", "ben", "ap_macro") - get("ben", "cben", "ap_macro"),
            "recovery_on_cloudy_macro": get("cben", "cben", "ap_macro") - get("ben", "cben", "ap_macro"),
        })
    return pd.DataFrame(out)


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.2f}"


def markdown(df: pd.DataFrame, eff: pd.DataFrame) -> str:
    n = sorted(set(df["n_samples"]))
    lines = [
        "# Table VI analogue: fine-tuned on BEN (clear) or CBEN (cloudy), tested on both",
        "",
        ("Dataset-level average precision in percent (scikit-learn definition, computed once over the "
         f"whole test split; n = {', '.join(map(str, n))} test patches). Inputs: S1 VV, VH + 12 S2 L2A "
         "bands, early fusion; backbones pretrained self-supervised on the SSL4EO store."),
        "",
        "| method | fine-tuned on | BEN test micro | BEN test macro | CBEN test micro | CBEN test macro |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in [m for m in METHOD_ORDER if m in set(df["method"])]:
        for ft in SET_ORDER:
            sub = df[(df["method"] == method) & (df["finetuned_on"] == ft)]
            if sub.empty:
                continue
            cells = []
            for te in SET_ORDER:
                r = sub[sub["tested_on"] == te]
                cells += [_fmt(float(r["ap_micro"].iloc[0])) if len(r) else "-",
                          _fmt(float(r["ap_macro"].iloc[0])) if len(r) else "-"]
            lines.append(f"| {METHOD_NAMES[method]} | {SET_NAMES[ft]} | " + " | ".join(cells) + " |")
    if len(eff):
        lines += [
            "",
            "## Cloud effect (micro AP points)",
            "",
            ("| method | loss on cloudy test (BEN-tuned: BEN - CBEN test) | recovery by CBEN tuning "
             "(CBEN test: CBEN-tuned - BEN-tuned) | share of the loss recovered | clear test change "
             "(CBEN-tuned - BEN-tuned) |"),
            "|---|---:|---:|---:|---:|",
        ]
        for r in eff.itertuples():
            share = "-" if not np.isfinite(r.recovered_share) else f"{100 * r.recovered_share:.0f} %"
            lines.append(f"| {METHOD_NAMES[r.method]} | {_fmt(r.loss_on_cloudy)} | {_fmt(r.recovery_on_cloudy)} "
                         f"| {share} | {_fmt(r.clear_change)} |")
        lines += ["", "The paper (real CBEN): losses of 23-33 points, recoveries of 17-29 points."]
    return "\n".join(lines) + "\n"


def bars_figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHOD_ORDER if m in set(df["method"])]
    cells = [(a, b) for a in SET_ORDER for b in SET_ORDER]
    colors = {("ben", "ben"): "#4c72b0", ("ben", "cben"): "#a1c9f4", ("cben", "ben"): "#dd8452",
              ("cben", "cben"): "#ffb482"}
    fig, ax = plt.subplots(figsize=(1.9 * max(len(methods), 1) + 2.5, 3.8), constrained_layout=True)
    width = 0.2
    x = np.arange(len(methods))
    for j, (ft, te) in enumerate(cells):
        vals = []
        for m in methods:
            r = df[(df["method"] == m) & (df["finetuned_on"] == ft) & (df["tested_on"] == te)]
            vals.append(float(r["ap_micro"].iloc[0]) if len(r) else np.nan)
        bars = ax.bar(x + (j - 1.5) * width, vals, width, color=colors[(ft, te)],
                      label=f"tuned {SET_NAMES[ft]}, tested {SET_NAMES[te]}", edgecolor="black", linewidth=0.4)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [METHOD_NAMES[m] for m in methods])
    ax.set_ylabel("micro AP (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Fine-tuned on clear (BEN) or cloudy (CBEN), tested on both")
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bins_figure(bins: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHOD_ORDER if len(bins) and m in set(bins["method"])]
    fig, axes = plt.subplots(1, max(len(methods), 1), figsize=(4 * max(len(methods), 1), 3.4),
                             sharey=True, constrained_layout=True, squeeze=False)
    styles = {("ben", "ben"): ("#4c72b0", "-"), ("ben", "cben"): ("#4c72b0", "--"),
              ("cben", "ben"): ("#dd8452", "-"), ("cben", "cben"): ("#dd8452", "--")}
    for ax, m in zip(axes[0], methods):
        sub = bins[bins["method"] == m]
        for (ft, te), (color, ls) in styles.items():
            s = sub[(sub["finetuned_on"] == ft) & (sub["tested_on"] == te) & (sub["n_samples"] > 0)]
            if s.empty:
                continue
            centre = (s["bin_low"] + s["bin_high"]) / 2
            ax.plot(100 * centre, s["ap_micro"].astype(float), ls, color=color,
                    marker="o" if te == "ben" else "s", markerfacecolor="white" if te == "cben" else color,
                    label=f"tuned {SET_NAMES[ft]}, tested {SET_NAMES[te]}")
        ax.set_title(METHOD_NAMES[m])
        ax.set_xlabel("cloud fraction of the CBEN patch (%)")
        ax.set_xlim(0, 100)
    axes[0][0].set_ylabel("micro AP (%)")
    if methods:
        axes[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result_files, outs: dict) -> pd.DataFrame:
    """Write every table and figure of ``outs`` (see ``experiments.table_outputs``)."""
    results = load_results(result_files)
    if not results:
        raise ValueError("no evaluation results to tabulate")
    df = table_vi(results)
    Path(outs["csv"]).parent.mkdir(parents=True, exist_ok=True)
    write_text(outs["csv"], df.to_csv(index=False))
    eff = effects(df)
    write_text(outs["markdown"], markdown(df, eff))
    write_text(outs["per_class"], per_class_table(results).to_csv(index=False))
    bins = bins_table(results)
    write_text(outs["bins"], bins.to_csv(index=False, float_format="%.4g"))
    bars_figure(df, outs["figure"])
    bins_figure(bins, outs["bins_figure"])
    return df
