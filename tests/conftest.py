"""Shared fixtures: a tiny demo world, generated once per test session by the real generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudyeo.config import paths, validate_config

ROOT = Path(__file__).resolve().parents[1]

# Small enough to build in seconds, large enough to exercise every branch: two tiles in two
# UTM zones, two reference products per tile, several candidate scenes per window.
TINY_DEMO = {
    "tiles": ["33UUP", "35VLH"],
    "tile_size_px": 240,
    "references_per_tile": 2,
    "days_around_reference": 40,
}


def tiny_config(base: Path, **sections) -> dict:
    cfg = {
        "archive": "demo",
        "resources_dir": str(base / "resources"),
        "results_dir": str(base / "results"),
        "demo": dict(TINY_DEMO),
    }
    cfg.update(sections)
    return validate_config(cfg)


@pytest.fixture(scope="session")
def tiny_demo() -> dict:
    return dict(TINY_DEMO)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> dict:
    """Config dict of a generated tiny demo world (read-only for tests)."""
    from cloudyeo.demo import generate_world

    base = tmp_path_factory.mktemp("tiny")
    cfg = tiny_config(base)
    generate_world(cfg["demo"], paths(cfg).demo, progress=False)
    return cfg


# The time-series part of the demo world, tiny: two ROIs of one 256 px patch each, in two UTM
# zones, a year of scenes (with partial scenes and one scene missing a band), no SSL locations.
TINY_TIMESERIES_DEMO = {
    "rois": ["14SKF", "44QKE"],
    "roi_size_px": 264,
    "ssl_locations": [],
}


@pytest.fixture(scope="session")
def tiny_timeseries_demo() -> dict:
    return dict(TINY_TIMESERIES_DEMO)


@pytest.fixture(scope="session")
def tiny_timeseries_world(tmp_path_factory) -> dict:
    """Config dict of a generated tiny time-series demo world (read-only for tests)."""
    from cloudyeo.demo.timeseries import generate_timeseries_world

    base = tmp_path_factory.mktemp("tiny_ts")
    cfg = tiny_config(base, demo_timeseries=dict(TINY_TIMESERIES_DEMO), timeseries={
        "intervals": 12,
        "splits": {"train": ["14SKF"], "validation": [], "test": ["44QKE"]},
        "manifest": {"samples_per_patch": 4, "cloud_range": {"train": [0, 100], "validation": [0, 100],
                                                              "test": [0, 100]}},
    })
    generate_timeseries_world(cfg["demo_timeseries"], paths(cfg).demo_timeseries, progress=False)
    return cfg
