"""Cloud-removal tables, figures and prediction panels from the evaluate nodes' records.

``write_tables(cfg, dataset)`` reads ``results/eval/cloud_removal/<dataset>/<method>/records.csv``
of every configured method and writes, under ``results/eval/cloud_removal/``, CSV (columns
``method``, ``dataset``, then grouping columns, ``n`` and the metrics) plus a markdown rendering:

time series (SEN12MS-CR-TS-style store)
  * ``sen12mscrts_table_i``  — every method at the store's n: NRMSE over all / cloudy / clear
    pixels, PSNR, SSIM, SAM (degrees), MAE;
  * ``sen12mscrts_table_ii`` — multi-temporal methods by number of inputs n;
  * ``sen12mscrts_table_iv`` — every method by cloud-coverage bin (mean cloud fraction of the inputs);
  * ``sen12mscrts_table_v``  — sequence-to-sequence internal learning (S1 input vs noise input);
  * ``hcr_table_2`` — HCR&LC variants: cloud-removal metrics and land-cover OA / macro F1 / mIoU
    (dataset level: from the summed confusion matrices); ``hcr_f1_by_cloud.csv/.png`` — land-cover
    F1 by the cloud coverage of the input image;
  * ``panels_timeseries.png``.

Planet-CR
  * ``planetcr_table_2`` — MAE, PSNR, SAM, SSIM overall, on cloudy and on clear pixels;
  * ``planetcr_table_2_per_class`` — the same per land-cover class;
  * ``planetcr_table_3`` — semantic recovery: mIoU and PA of the segmentation model on clear,
    cloudy and each method's images; ``planetcr_table_3_by_cloud`` — by cloud bin;
  * ``panels_planetcr.png``.

Every table is a mean of per-image values (what the papers report); land-cover and segmentation
scores are pooled over pixels of the whole set (or bin). ``tables_<dataset>.md`` gathers them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudyeo.config import paths
from cloudyeo.metrics import aggregate, cloud_bins, f1_scores, segmentation_scores
from cloudyeo.sentinel import BEN19_CLASSES

TS_TABLES = ("sen12mscrts_table_i", "sen12mscrts_table_ii", "sen12mscrts_table_iv",
             "sen12mscrts_table_v", "hcr_table_2")
PLANET_TABLES = ("planetcr_table_2", "planetcr_table_2_per_class", "planetcr_table_3",
                 "planetcr_table_3_by_cloud")
KIND_ORDER = ("baseline", "dsen2cr", "seq2point", "seq2seq", "hcr_then_lc", "hcrlc", "aligncr", "segmentation")
CR_COLUMNS = ["nrmse_all", "nrmse_cloudy", "nrmse_clear", "psnr", "ssim", "sam_deg", "mae",
              "nrmse_all_targetclear", "nrmse_cloudy_targetclear", "psnr_all_targetclear"]
PLANET_COLUMNS = ["mae", "psnr", "sam_deg", "ssim", "mae_cloudy", "psnr_cloudy", "sam_deg_cloudy",
                  "ssim_cloudy", "mae_clear", "psnr_clear", "sam_deg_clear", "ssim_clear",
                  "mae_cloudy_targetclear", "psnr_cloudy_targetclear"]
CAPTIONS = {
    "sen12mscrts_table_i": "Cloud removal on the time-series test split (n = the store's input count). "
                           "NRMSE over all pixels, pixels cloudy in every input, and pixels clear in at least one; "
                           "`*_targetclear`: the same without the pixels cloudy or shadowed in the target "
                           "(AllClear's rule).",
    "sen12mscrts_table_ii": "Multi-temporal methods by number of input time points n.",
    "sen12mscrts_table_iv": "By cloud-coverage bin (mean cloud fraction of the n inputs).",
    "sen12mscrts_table_v": "Sequence-to-sequence internal learning, S1 input vs Gaussian-noise input "
                           "(prediction at the withheld target time point).",
    "hcr_table_2": "HCR&LC: cloud removal and land-cover classification; LC scores pooled over the test set.",
    "planetcr_table_2": "Planet-CR test split, full 300 x 300 images (sliding window): overall, cloudy "
                        "and clear pixels (cloud mask of the input). SAM in degrees. `*_targetclear`: without the "
                        "pixels cloudy or shadowed in the clear target (its UDM2; AllClear's rule).",
    "planetcr_table_2_per_class": "Planet-CR metrics per land-cover class (per image, then averaged).",
    "planetcr_table_3": "Semantic recovery: segmentation model trained on clear images, applied to clear, "
                        "cloudy and recovered images (pooled mIoU and pixel accuracy).",
    "planetcr_table_3_by_cloud": "Semantic recovery by cloud-coverage bin.",
}


def eval_root(cfg: dict[str, Any]) -> Path:
    return paths(cfg).cloud_removal_eval


def table_config(cfg: dict[str, Any], dataset: str) -> str:
    """Canonical JSON of the (valid) config the tables of ``dataset`` are made with: result
    folders, cloud bins and the name and kind of each of the dataset's methods - not their
    hyperparameters (a retrained method changes the tables through its records, an input), nor
    the other dataset's methods."""
    import json

    from cloudyeo.training.cloud_removal import method_config, methods_for

    cr = cfg["cloud_removal"]
    methods = {}
    for m in methods_for(cfg, dataset):
        hp = method_config(cfg, m)
        methods[m] = {k: hp[k] for k in ("kind", "baseline") if k in hp} | {"datasets": [dataset]}
    out: dict[str, Any] = {k: cfg[k] for k in ("archive", "resources_dir", "results_dir") if k in cfg}
    out["cloud_removal"] = {"datasets": [dataset], "cloud_bin_edges": cr["cloud_bin_edges"], "methods": methods}
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def table_paths(cfg: dict[str, Any], dataset: str) -> dict[str, Path]:
    """Every file ``write_tables(cfg, dataset)`` writes (the Snakemake outputs)."""
    root = eval_root(cfg)
    names = TS_TABLES if dataset == "timeseries" else PLANET_TABLES
    out = {}
    for name in names:
        out[f"{name}_csv"] = root / f"{name}.csv"
        out[f"{name}_md"] = root / f"{name}.md"
    if dataset == "timeseries":
        out["hcr_f1_csv"] = root / "hcr_f1_by_cloud.csv"
        out["hcr_f1_png"] = root / "hcr_f1_by_cloud.png"
    out["panels"] = root / f"panels_{dataset}.png"
    out["summary"] = root / f"tables_{dataset}.md"
    return out


# ---------------------------------------------------------------------------------- markdown
def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def to_markdown(df: pd.DataFrame, caption: str = "") -> str:
    lines = [caption, ""] if caption else []
    if df.empty:
        return "\n".join(lines + ["(no method configured for this table)", ""])
    cols = list(df.columns)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in cols) + "|")
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines + [""])


def _write(df: pd.DataFrame, root: Path, name: str, extra: str = "") -> str:
    df.to_csv(root / f"{name}.csv", index=False)
    md = to_markdown(df, CAPTIONS.get(name, "") + extra)
    (root / f"{name}.md").write_text(f"# {name}\n\n{md}")
    return f"## {name}\n\n{md}"


def _mean_table(df: pd.DataFrame, by: list[str], metrics: list[str], order: list[str], **kw) -> pd.DataFrame:
    metrics = [m for m in metrics if m in df.columns]
    if df.empty or not metrics:
        return pd.DataFrame(columns=["method", "dataset", *[b for b in by if b not in ("method", "dataset")],
                                     "n", *metrics])
    out = aggregate(df, by=by, metrics=metrics, **kw)
    out = out[[c for c in out.columns if not c.startswith("n_") or c == "n_inputs"]]
    out["_o"] = out["method"].map({m: i for i, m in enumerate(order)})
    out = out.sort_values(["_o", *[b for b in by if b != "method"]]).drop(columns="_o")
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------ panels
def _rgb(a: np.ndarray, gain: float = 3.0) -> np.ndarray:
    a = np.nan_to_num(np.asarray(a, dtype=np.float32))
    return np.clip(np.moveaxis(a, 0, -1) * gain, 0, 1)


def draw_panel(panels: dict[str, dict], path: Path, title: str = "") -> Path:
    """One row per sample: the inputs (cloud mask outlined in red), the prediction, the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_in = max(len(d["inputs"]) for d in panels.values())
    ncols = n_in + 2 + (2 if any("lc" in d for d in panels.values()) else 0)
    fig, axes = plt.subplots(len(panels), ncols, figsize=(2.2 * ncols, 2.3 * len(panels)), squeeze=False)
    for r, (sid, d) in enumerate(panels.items()):
        tiles = [(f"input {k + 1}", _rgb(x), d["input_masks"][k]) for k, x in enumerate(d["inputs"])]
        tiles += [("prediction", _rgb(d["prediction"]), None), ("target", _rgb(d["target"]), None)]
        if "lc" in d:
            tiles += [("LC predicted", d["lc"], "lc"), ("LC truth", d["lc_truth"], "lc")]
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c >= len(tiles):
                continue
            name, img, extra = tiles[c]
            if isinstance(extra, str):
                ax.imshow(np.where(img == 255, np.nan, img), cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
            else:
                ax.imshow(img)
                if extra is not None and np.any(extra):
                    ax.contour(extra.astype(float), levels=[0.5], colors="red", linewidths=0.5)
            ax.set_title(f"{sid}\n{name}" if c == 0 else name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def method_panel(folder: Path, title: str) -> Path | None:
    """``panel.png`` of one evaluated method from its ``panels.npz`` (none without one); the
    evaluate command draws it after the evaluation."""
    f = folder / "panels.npz"
    if not f.exists():
        return None
    data = np.load(f)
    panels: dict[str, dict] = {}
    for key in data.files:
        sid, name = key.split("/", 1)
        panels.setdefault(sid, {})[name] = data[key]
    return draw_panel(panels, folder / "panel.png", title=title) if panels else None


def _comparison_panel(root: Path, dataset: str, methods: list[str], path: Path) -> None:
    """The first sample of each method's ``panels.npz`` side by side: inputs, predictions, target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown, first = [], None
    for m in methods:
        f = root / dataset / m / "panels.npz"
        if not f.exists():
            continue
        data = np.load(f)
        sids = sorted({k.split("/")[0] for k in data.files})
        if not sids:
            continue
        sid = sids[0]
        if first is None:
            first = (sid, data[f"{sid}/inputs"], data[f"{sid}/input_masks"], data[f"{sid}/target"])
        if f"{sid}/prediction" in data.files and np.isfinite(data[f"{sid}/prediction"].astype(np.float32)).any():
            shown.append((m, data[f"{sid}/prediction"]))
    fig_cols = (len(first[1]) if first else 0) + len(shown) + 1
    fig, axes = plt.subplots(1, max(fig_cols, 1), figsize=(2.2 * max(fig_cols, 1), 2.6), squeeze=False)
    for ax in axes[0]:
        ax.axis("off")
    if first is not None:
        sid, inputs, masks, target = first
        tiles = [(f"input {k + 1}", _rgb(x), masks[k]) for k, x in enumerate(inputs)]
        tiles += [(m, _rgb(p), None) for m, p in shown] + [("target", _rgb(target), None)]
        for ax, (name, img, mk) in zip(axes[0], tiles):
            ax.imshow(img)
            if mk is not None and np.any(mk):
                ax.contour(mk.astype(float), levels=[0.5], colors="red", linewidths=0.5)
            ax.set_title(name, fontsize=7)
        fig.suptitle(f"{dataset}: sample {sid} (inputs with their cloud masks in red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------ tables
def _read(root: Path, dataset: str, methods: list[str], name: str = "records.csv") -> pd.DataFrame:
    frames = []
    for m in methods:
        f = root / dataset / m / name
        if not f.exists():
            raise FileNotFoundError(f"{f} missing: run the evaluate node of {m} on {dataset} first")
        df = pd.read_csv(f)
        if len(df):
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _pooled_lc(root: Path, method: str, records: pd.DataFrame, edges, by_bin: bool) -> list[dict]:
    f = root / "timeseries" / method / "lc_confusion.npz"
    if not f.exists():
        return []
    data = np.load(f)
    sid_to_frac = dict(zip(records["sample_id"], records["input_cloud_fraction"]))
    fr = np.array([sid_to_frac.get(s, np.nan) for s in data["sample_ids"]])
    groups = cloud_bins(fr, edges) if by_bin else np.array(["all"] * len(fr), dtype=object)

    out = []
    for g in dict.fromkeys(groups):
        sel = groups == g
        cm = data["cms"][sel].sum(axis=0)
        seen = data["train_classes"] if "train_classes" in data.files else None
        out.append({"method": method, "dataset": "timeseries", "cloud_bin": g, "n": int(sel.sum()),
                    **f1_scores(cm, seen)})
    return out


def _unseen_note(root: Path, methods: list[str]) -> str:
    """Caption sentence: the share of labelled test pixels whose class the training ROIs lack."""
    for method in methods:
        f = root / "timeseries" / method / "lc_confusion.npz"
        if not f.exists():
            continue
        data = np.load(f)
        if "train_classes" not in data.files:
            return ""
        truth = data["cms"][data["n_inputs"] == data["n_inputs"].min()].sum(axis=(0, 2))
        unseen = np.setdiff1d(np.flatnonzero(truth), data["train_classes"])
        share = truth[unseen].sum() / truth.sum() if truth.sum() else float("nan")
        names = ", ".join(BEN19_CLASSES[i] for i in unseen) or "none"
        return (f" The split is by ROI: {100 * share:.1f} % of the labelled test pixels belong to "
                f"classes no training ROI holds ({names}); `lc_oa_seen` is the accuracy over the "
                "other pixels.")
    return ""


def _store_n_inputs(cfg) -> int:
    """n of the store's own test manifest (Table I is reported at that n)."""
    man = pd.read_parquet(paths(cfg).timeseries / "manifest_test.parquet", columns=["inputs"])
    return len(man["inputs"].iloc[0]) if len(man) else 3


def _timeseries_tables(cfg, root: Path, methods: list[str], kinds: dict[str, str]) -> list[str]:
    from cloudyeo.metrics import cloud_bin_labels

    edges = cfg["cloud_removal"]["cloud_bin_edges"]
    rec = _read(root, "timeseries", methods)
    sections = []
    store_n = _store_n_inputs(cfg)
    if not rec.empty and "n_inputs" in rec:
        base = rec[rec["n_inputs"] == store_n]
    else:
        base = rec
    cr_methods = [m for m in methods if kinds[m] not in ("seq2seq",)]
    with_cr = base[base["method"].isin(cr_methods)] if not base.empty else base
    if "nrmse_all" in with_cr:
        with_cr = with_cr[with_cr["nrmse_all"].notna()]
    t1 = _mean_table(with_cr, ["method", "dataset"], CR_COLUMNS, methods)
    sections.append(_write(t1, root, "sen12mscrts_table_i"))
    multi = [m for m in methods if kinds[m] in ("baseline", "seq2point")]
    t2 = _mean_table(rec[rec["method"].isin(multi)] if not rec.empty else rec,
                     ["method", "dataset", "n_inputs"], CR_COLUMNS, methods)
    sections.append(_write(t2, root, "sen12mscrts_table_ii"))
    t4 = _mean_table(with_cr, ["method", "dataset", "cloud_bin"], CR_COLUMNS,
                     methods, cloud_bin_edges=edges, fraction_column="cloud_fraction")
    sections.append(_write(t4, root, "sen12mscrts_table_iv"))
    s2s = [m for m in methods if kinds[m] == "seq2seq"]
    t5 = _mean_table(base[base["method"].isin(s2s)] if not base.empty else base, ["method", "dataset"],
                     CR_COLUMNS, methods)
    sections.append(_write(t5, root, "sen12mscrts_table_v"))
    hcr = [m for m in methods if kinds[m] in ("hcrlc", "hcr_then_lc")]
    hrec = base[base["method"].isin(hcr)] if not base.empty else base
    t_hcr = _mean_table(hrec, ["method", "dataset"], ["nrmse_all", "nrmse_cloudy", "psnr", "ssim", "sam_deg"],
                        methods)
    pooled = pd.DataFrame([r for m in hcr for r in _pooled_lc(root, m, hrec[hrec["method"] == m], edges, False)])
    if not pooled.empty and not t_hcr.empty:
        lc_cols = [c for c in ("lc_oa", "lc_oa_seen", "lc_f1", "lc_miou") if c in pooled]
        t_hcr = t_hcr.merge(pooled[["method", *lc_cols]], on="method", how="left")
    sections.append(_write(t_hcr, root, "hcr_table_2", extra=_unseen_note(root, hcr)))
    by_bin = pd.DataFrame([r for m in hcr for r in _pooled_lc(root, m, hrec[hrec["method"] == m], edges, True)])
    if not by_bin.empty:
        order = {b: i for i, b in enumerate(cloud_bin_labels(edges) + ["unknown"])}
        by_bin = by_bin.sort_values(["method", "cloud_bin"], key=lambda s: s.map(order) if s.name == "cloud_bin"
                                    else s.map({m: i for i, m in enumerate(methods)}))
    else:
        by_bin = pd.DataFrame(columns=["method", "dataset", "cloud_bin", "n", "lc_oa", "lc_f1", "lc_miou"])
    by_bin.to_csv(root / "hcr_f1_by_cloud.csv", index=False)
    _f1_figure(by_bin, root / "hcr_f1_by_cloud.png", cloud_bin_labels(edges))
    sections.append("## hcr_f1_by_cloud\n\nLand-cover F1 by the cloud coverage of the input image "
                    "(`hcr_f1_by_cloud.png`).\n\n" + to_markdown(by_bin))
    return sections


def _f1_figure(df: pd.DataFrame, path: Path, bins: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for m, g in df.groupby("method", sort=False):
        x = [bins.index(b) for b in g["cloud_bin"] if b in bins]
        y = [v for b, v in zip(g["cloud_bin"], g["lc_f1"]) if b in bins]
        ax.plot(x, y, marker="o", label=m)
    ax.set_xticks(range(len(bins)), bins, rotation=45, fontsize=7)
    ax.set_xlabel("cloud coverage of the input image")
    ax.set_ylabel("land-cover macro F1")
    if len(df):
        ax.legend(fontsize=7)
    ax.set_title("HCR&LC: F1 by cloud coverage", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _planet_tables(cfg, root: Path, methods: list[str], kinds: dict[str, str]) -> list[str]:
    edges = cfg["cloud_removal"]["cloud_bin_edges"]
    cr = [m for m in methods if kinds[m] != "segmentation"]
    rec = _read(root, "planetcr", cr)
    sections = [_write(_mean_table(rec, ["method", "dataset"], PLANET_COLUMNS, methods), root, "planetcr_table_2")]
    pc = _read(root, "planetcr", cr, "records_per_class.csv")
    per_class = _mean_table(pc, ["method", "dataset", "class", "class_name"], ["mae", "psnr", "sam_deg", "ssim"],
                            methods)
    sections.append(_write(per_class, root, "planetcr_table_2_per_class"))
    seg = [m for m in methods if kinds[m] == "segmentation"]
    t3_rows, bin_rows = [], []
    for m in seg:
        r = pd.read_csv(root / "planetcr" / m / "records.csv")
        data = np.load(root / "planetcr" / m / "seg_confusion.npz")
        cms = dict(zip([str(k) for k in data["keys"]], data["cms"]))
        r["cloud_bin"] = cloud_bins(r["cloud_fraction"].to_numpy(), edges)
        src_order = list(dict.fromkeys(r["source"]))
        for s in src_order:
            g = r[r["source"] == s]
            sc = segmentation_scores(sum(cms[f"{s}/{i}"] for i in g["sample"]))
            t3_rows.append({"method": s, "dataset": "planetcr", "segmentation": m, "n": len(g),
                            "miou": sc["miou"], "pa": sc["pixel_accuracy"]})
            for b, gb in g.groupby("cloud_bin", sort=False):
                sb = segmentation_scores(sum(cms[f"{s}/{i}"] for i in gb["sample"]))
                bin_rows.append({"method": s, "dataset": "planetcr", "cloud_bin": b, "n": len(gb),
                                 "miou": sb["miou"], "pa": sb["pixel_accuracy"]})
    t3 = pd.DataFrame(t3_rows, columns=["method", "dataset", "segmentation", "n", "miou", "pa"])
    sections.append(_write(t3, root, "planetcr_table_3"))
    tb = pd.DataFrame(bin_rows, columns=["method", "dataset", "cloud_bin", "n", "miou", "pa"])
    if not tb.empty:
        from cloudyeo.metrics import cloud_bin_labels

        order = {b: i for i, b in enumerate(cloud_bin_labels(edges) + ["unknown"])}
        tb["_b"] = tb["cloud_bin"].map(order)
        tb = tb.sort_values(["_b"], kind="stable").drop(columns="_b").reset_index(drop=True)
    sections.append(_write(tb, root, "planetcr_table_3_by_cloud"))
    return sections


def write_tables(cfg: dict[str, Any], dataset: str) -> dict[str, Path]:
    from cloudyeo.training.cloud_removal import method_config, methods_for

    root = eval_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    methods = methods_for(cfg, dataset)
    kinds = {m: method_config(cfg, m)["kind"] for m in methods}
    # rows by kind (baselines first), then in config order (alphabetical once the config went
    # through canonical JSON, as it does in the workflow)
    position = {m: i for i, m in enumerate(methods)}
    methods.sort(key=lambda m: (KIND_ORDER.index(kinds[m]) if kinds[m] in KIND_ORDER else len(KIND_ORDER),
                                position[m]))
    if dataset == "timeseries":
        sections = _timeseries_tables(cfg, root, methods, kinds)
    elif dataset == "planetcr":
        sections = _planet_tables(cfg, root, methods, kinds)
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    out = table_paths(cfg, dataset)
    _comparison_panel(root, dataset, [m for m in methods if kinds[m] != "segmentation"], out["panels"])
    head = (f"# Cloud removal on {dataset}\n\nMethods: {', '.join(methods) or '(none)'}. "
            "Means of per-image values on the test split (SAM in degrees); see "
            "`cloudyeo.training.cloud_removal_eval` for the definitions.\n\n")
    out["summary"].write_text(head + "\n".join(sections))
    return out
