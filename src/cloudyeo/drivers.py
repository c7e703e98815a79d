"""The generic dataset drivers: plan -> init -> extract (one unit) -> finalize, once for every
builder of :mod:`cloudyeo.datasets.builder` (pangeo-forge style: create the target, each worker
writes its own region, consolidate).

What every dataset gets from here, the same way:

- the plan's tables written atomically (GeoParquet where they hold geometries);
- the store created from the builder's layout, plan-time samples written, a creation record
  that differs on every creation (so every extraction reruns after a new store);
- extract: the store marked incomplete before the first write, the unit's samples written into
  its own rows, then (last) the unit's part file - a killed job leaves no part;
- finalize: every unit's part present (else an error naming the missing units), staged samples
  packed into shards, per-sample coordinates written, outputs (parquet, CSV, figures through
  the report layer's renderers, the card) written atomically, and the completion mark last.

This module sits above the report layer (figures and cards are rendered here by name) and below
the CLI.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from . import store
from .atomic import write_creation_record, write_csv, write_parquet, write_text
from .datasets.builder import DatasetBuilder, Figure, Summary, Table

log = logging.getLogger(__name__)


def read_plan(builder: DatasetBuilder) -> dict[str, pd.DataFrame]:
    """The plan's tables as written (GeoDataFrames where they hold geometries)."""
    import geopandas as gpd

    out = {}
    for name, path in builder.paths.plan.items():
        if not path.is_file():
            raise FileNotFoundError(f"{builder.name}: no plan table {path}; run `cloudyeo dataset {builder.name} plan` first")
        try:
            out[name] = gpd.read_parquet(path)
        except ValueError:  # no geometry column: a plain table
            out[name] = pd.read_parquet(path)
    return out


def run_plan(builder: DatasetBuilder, *, progress: bool = False) -> dict[str, Path]:
    tables = builder.plan(progress=progress)
    if list(tables) != list(builder.plan_tables):
        raise RuntimeError(f"{builder.name}: plan returned tables {list(tables)}, declared {list(builder.plan_tables)}")
    manifest = tables[builder.plan_tables[0]]
    if "skip_reason" not in manifest:
        raise RuntimeError(f"{builder.name}: the plan's manifest has no skip_reason column")
    builder.paths.root.mkdir(parents=True, exist_ok=True)
    # Manifest last: the checkpoint's first output exists only when the whole plan does.
    for name in reversed(builder.plan_tables):
        write_parquet(tables[name], builder.paths.plan[name])
    n_skip = int(manifest["skip_reason"].notna().sum())
    log.info("%s: planned %d rows (%d skipped), %d units", builder.name, len(manifest), n_skip,
             len(builder.units(tables)))
    return dict(builder.paths.plan)


def run_init(builder: DatasetBuilder) -> Path:
    plan = read_plan(builder)
    layout = builder.layout(plan)
    p = builder.paths
    store.create_store(p.store, layout.n_samples, layout.variables, layout.coords, layout.attrs, codec=layout.codec,
                       sample_dim=layout.sample_dim)
    if layout.n_samples and layout.initial:
        store.write_samples(p.store, 0, layout.initial)
    return write_creation_record(p.created, store=str(p.store), n_samples=int(layout.n_samples),
                                 codec=layout.codec, **layout.record)


def run_extract(builder: DatasetBuilder, unit: str, *, progress: bool = False) -> Path:
    plan = read_plan(builder)
    units = builder.units(plan)
    if unit not in units:
        raise KeyError(f"{builder.name}: {builder.unit_label} {unit!r} is not a unit of the plan "
                       f"{builder.paths.manifest} ({len(units)} units, e.g. {', '.join(units[:3])})")
    p = builder.paths
    store.mark_incomplete(p.store)

    def write(start: int, data: dict) -> None:
        store.write_samples(p.store, start, data)

    part = builder.extract(unit, plan, write, progress=progress)
    return write_parquet(part, p.part(unit))


def read_parts(builder: DatasetBuilder, plan: dict[str, pd.DataFrame]) -> pd.DataFrame:
    units = builder.units(plan)
    missing = [u for u in units if not builder.paths.part(u).is_file()]
    if missing:
        raise RuntimeError(f"cannot finalize {builder.paths.store}: no extracted part for "
                           f"{builder.unit_label} {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    frames = [pd.read_parquet(builder.paths.part(u)) for u in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_finalize(builder: DatasetBuilder, *, progress: bool = False) -> dict[str, Path]:
    from .report.dataset_card import render_card
    from .report.renderers import render

    p = builder.paths
    plan = read_plan(builder)
    parts = read_parts(builder, plan)
    store.pack_shards(p.store, progress=progress)  # the statistics below read the data
    coords = builder.sample_coords(plan, parts)
    if coords:
        store.write_coords(p.store, coords)
    ds = store.open_store(p.store, require_complete=False)
    summary: Summary = builder.summarise(plan, parts, ds, progress=progress)
    unknown = set(summary.outputs) - set(p.outputs)
    if unknown:
        raise RuntimeError(f"{builder.name}: summarise returned undeclared outputs {sorted(unknown)}")
    for name, value in summary.outputs.items():
        path = p.outputs[name]
        if isinstance(value, Table):
            write_csv(value.frame, path, value.float_format)
        elif isinstance(value, Figure):
            render(value.renderer, path, **value.data)
        elif isinstance(value, pd.DataFrame):
            write_parquet(value, path)
        elif isinstance(value, str):
            write_text(path, value)
        else:
            raise TypeError(f"{builder.name}: output {name} is a {type(value).__name__}")
    if "card" in p.outputs:
        files = {k: v for k, v in p.outputs.items() if k != "card"}
        write_text(p.outputs["card"], render_card(builder, summary, plan, ds.attrs, files))
    missing = [k for k, v in p.outputs.items() if not v.is_file()]
    if missing:
        raise RuntimeError(f"{builder.name}: finalize wrote no {', '.join(missing)}")
    store.mark_complete(p.store, summary.complete_attrs)
    return dict(p.outputs)
