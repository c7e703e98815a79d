"""Figures a dataset builder names in its summary (``Figure("<renderer>", data)``), rendered by
the drivers. Builders live below the report layer, so they name a figure instead of drawing it.

Each renderer is ``function(path=..., **data)`` and writes one PNG.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import cben_figures, planetcr_figures, ssl4eo_figures, timeseries_figures

RENDERERS: dict[str, Callable[..., Any]] = {
    "cben_cloud_cover": cben_figures.cloud_cover_histogram,
    "timeseries_coverage": timeseries_figures.coverage_figure,
    "timeseries_dt": timeseries_figures.dt_figure,
    "timeseries_example": timeseries_figures.example_figure,
    "planetcr_distributions": planetcr_figures.distributions,
    "planetcr_examples": planetcr_figures.example_quartets,
    "ssl4eo_cloud_cover": ssl4eo_figures.cloud_cover_figure,
    "ssl4eo_examples": ssl4eo_figures.example_figure,
}


def renderer(name: str) -> Callable[..., Any]:
    if name not in RENDERERS:
        raise KeyError(f"no figure renderer {name!r}; known: {', '.join(sorted(RENDERERS))}")
    return RENDERERS[name]


def render(name: str, path: Path, **data: Any) -> Any:
    """Draw figure ``name`` into ``path`` (the renderer writes atomically or not at all)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return renderer(name)(path=Path(path), **data)
