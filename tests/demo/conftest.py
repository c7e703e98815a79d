"""A tiny demo world shared by the demo tests (generated once per test session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudyeo.demo import generate_world

TINY_CFG = {
    "seed": 424242,
    "tiles": ["33UUP", "35VLH"],
    "tile_size_px": 240,
    "references_per_tile": 1,
    "days_around_reference": 20,
    "s2_revisit_days": 5,
    "s1_revisit_days": 6,
    "climatology_resolution_deg": 1.0,
}


@pytest.fixture(scope="session")
def tiny_cfg() -> dict:
    return dict(TINY_CFG)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "world"
    return generate_world(TINY_CFG, out, progress=False, workers=2)


@pytest.fixture(scope="session")
def world(world_dir) -> dict:
    return json.loads((world_dir / "world.json").read_text())


@pytest.fixture(scope="session")
def items(world_dir) -> list[dict]:
    lines = (world_dir / "catalog" / "items.ndjson").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
