"""Dataset cards: a markdown page that says what a built dataset is and where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..archives.s1_source import s1_card_line

LICENCES = {
    "Sentinel-1/2": "Copernicus Sentinel data, free and open (Copernicus data licence); cite the source archive.",
    "BigEarthNet v2.0 (reBEN)": "CDLA-Permissive-1.0; cite Clasen et al. 2024.",
    "EarthEnv cloud climatology": "CC BY-NC 4.0, Wilson & Jetz 2016 (PLoS Biology 14(3): e1002415); non-commercial use.",
}


def _markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_dataset_card(path: Path, *, title: str, cfg: dict[str, Any], manifest: pd.DataFrame,
                       index: pd.DataFrame, tables: dict[str, pd.DataFrame], attrs: dict[str, Any],
                       files: dict[str, Path]) -> None:
    skipped = manifest[manifest["skip_reason"].notna()]
    s2_bands = attrs.get("s2_bands", [])
    band_table = pd.DataFrame({
        "band": s2_bands,
        "wavelength (nm)": [attrs.get("s2_central_wavelength_nm", {}).get(b) for b in s2_bands],
        "native GSD (m)": [attrs.get("s2_band_gsd_m", {}).get(b) for b in s2_bands],
    })
    label_counts = pd.Series(0, index=attrs.get("label_order", []), dtype=int)
    for labs in index["labels"]:
        for lab in labs:
            label_counts[lab] += 1
    labels = pd.DataFrame({"index": range(len(label_counts)), "class": label_counts.index,
                           "patches": label_counts.values})
    lines = [
        f"# {title}", "",
        f"Built by cloudyeo {attrs.get('code_version')} from archive `{cfg['archive']}`.", "",
        "## Counts", "",
        f"- products planned: {len(manifest)}; built: {len(manifest) - len(skipped)}; skipped: {len(skipped)}",
        f"- samples (patches): {len(index)}; by split: "
        + ", ".join(f"{k} {v}" for k, v in index["split"].value_counts().sort_index().items()),
        "",
    ]
    if len(skipped):
        lines += ["### Skipped products", "", _markdown(skipped[["product", "skip_reason"]]), ""]
    lines += [
        "## Variables", "",
        "- `s2`: cloudy Sentinel-2 L2A, `s2_reference`: clear reBEN reference; int16, "
        f"{attrs.get('s2_encoding')}.",
        f"- `s1`: Sentinel-1 VV, VH in {attrs.get('s1_units')} (source: {attrs.get('s1_source')}).",
        s1_card_line(attrs),
        "- `labels`: multi-hot over the 19 BigEarthNet classes, order below.",
        f"- All bands at 10 m; resampling: {attrs.get('resampling')}.",
        f"- Cloud fraction: {attrs.get('cloud_fraction_definition')}; cirrus: "
        f"{attrs.get('cirrus_fraction_definition')}; shadow: {attrs.get('shadow_fraction_definition')}.",
        "", "### Sentinel-2 bands (store order)", "", _markdown(band_table), "",
        "### Label order and counts", "", _markdown(labels), "",
    ]
    for caption, table in tables.items():
        lines += [f"## {caption}", "", _markdown(table), ""]
    lines += ["## Files", ""] + [f"- `{name}`: `{p}`" for name, p in files.items()] + [""]
    lines += ["## Sources and licences", ""] + [f"- {k}: {v}" for k, v in LICENCES.items()] + [""]
    lines += ["## Build configuration", "", "```json", json.dumps(cfg, indent=2, sort_keys=True), "```", ""]
    path.write_text("\n".join(lines))
