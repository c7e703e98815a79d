"""The one dataset card writer: a markdown page saying what a built dataset is, how many samples
it holds, what was skipped and why, its dataset-specific sections, tables, files, sources and
licences, and the configuration it was built with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .tables import markdown_table


def _section(body: Any) -> str:
    return markdown_table(body) if isinstance(body, pd.DataFrame) else str(body)


def render_card(builder: Any, summary: Any, plan: dict[str, pd.DataFrame], attrs: dict[str, Any],
                files: dict[str, Path]) -> str:
    """The card of ``builder``'s dataset (a :class:`cloudyeo.datasets.builder.DatasetBuilder`)
    from its finalize :class:`~cloudyeo.datasets.builder.Summary`."""
    from ..datasets.builder import Table

    manifest = plan[builder.plan_tables[0]]
    skipped = manifest[manifest["skip_reason"].notna()]
    lines = [
        f"# {builder.title}", "",
        f"Built by cloudyeo {attrs.get('code_version')} from archive `{builder.cfg.get('archive', 'n/a')}`.", "",
        f"- plan: {len(manifest)} rows, {len(skipped)} skipped (reason in `{builder.paths.manifest.name}`, "
        "column `skip_reason`)", "",
    ]
    for heading, body in summary.card:
        lines += [f"## {heading}", "", _section(body), ""]
    for value in summary.outputs.values():
        if isinstance(value, Table) and value.title:
            lines += [f"## {value.title}", "", markdown_table(value.frame), ""]
    lines += ["## Files", ""] + [f"- `{name}`: `{p}`" for name, p in files.items()] + [""]
    if summary.licences:
        lines += ["## Sources and licences", ""] + [f"- {k}: {v}" for k, v in summary.licences.items()] + [""]
    build = {k: builder.cfg[k] for k in builder.sections if k in builder.cfg}
    lines += ["## Build configuration", "", "```json", json.dumps(build, indent=2, sort_keys=True, default=str), "```", ""]
    return "\n".join(lines)
