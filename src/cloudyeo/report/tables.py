"""The one markdown table writer (cards, reports)."""

from __future__ import annotations

import pandas as pd


def markdown_table(df: pd.DataFrame, float_format: str = "{:.3f}") -> str:
    """A pipe table; floats formatted with ``float_format``, everything else with ``str``."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [float_format.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
