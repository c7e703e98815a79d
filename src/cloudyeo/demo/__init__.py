"""The embedded demo world: a small, deterministic, synthetic Sentinel-1/2 archive.

``generate_world(cfg, out_dir)`` writes, under ``out_dir`` (e.g. ``resources/demo``)::

    climatology/MODCF_monthlymean_01..12.tif, MODCF_interannualSD.tif   EarthEnv layout
    archive/sentinel-2-l2a/<scene_id>/<B01..B12, B8A, SCL>.tif           COGs, tile UTM grid
    archive/sentinel-2-l1c/<scene_id>/<B01..B12, B8A, B10>.tif
    archive/sentinel-1-grd/<scene_id>/{vv,vh}.tif                        linear power, float32
    archive/truth/<datatake>.tif                                         bits 1 cloud 2 cirrus
                                                                         4 shadow 8 snow
    landcover/<tile>.tif                                                 BEN19 class index
    catalog/items.ndjson, catalog/collections.json                       STAC 1.0.0
    reben/metadata.parquet, reben/BigEarthNet-S2/..., reben/BigEarthNet-S1/...
    world.json                                                           written last

The pipeline reads it exactly like a real archive. See :mod:`cloudyeo.demo.world`.
"""

from cloudyeo.demo.world import (
    DEFAULT_CFG,
    GENERATOR_VERSION,
    WORLD_FILE,
    clear_sky_reflectance,
    generate_world,
    load_world,
    normalise_cfg,
    plan_world,
)

__all__ = [
    "DEFAULT_CFG",
    "GENERATOR_VERSION",
    "WORLD_FILE",
    "clear_sky_reflectance",
    "generate_world",
    "load_world",
    "normalise_cfg",
    "plan_world",
]
