"""Build a dataset the way the workflow does: the generic drivers over a registered builder."""

from __future__ import annotations

from cloudyeo import drivers
from cloudyeo.datasets.builder import DatasetBuilder, get_builder


def build_dataset(name: str, cfg: dict, *, units: list[str] | None = None, finalize: bool = True) -> DatasetBuilder:
    """plan -> init -> extract (every unit of the plan, or ``units``) -> finalize."""
    builder = get_builder(name, cfg)
    drivers.run_plan(builder)
    drivers.run_init(builder)
    for unit in builder.units(drivers.read_plan(builder)) if units is None else units:
        drivers.run_extract(builder, unit)
    if finalize:
        drivers.run_finalize(builder)
    return builder
