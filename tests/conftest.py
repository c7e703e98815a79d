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
