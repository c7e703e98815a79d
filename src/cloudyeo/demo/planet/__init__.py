"""The Planet-CR demo world: PlanetScope-like 3 m scenes with UDM2, Sentinel-1 and WorldCover.

``generate_planet_world(cfg, out_dir)`` writes, under ``out_dir`` (``<resources_dir>/demo-planet``)::

    archive/psscene/<item>/<item>_3B_AnalyticMS_toar.tif   4 bands (B, G, R, NIR) uint16 TOA x 1e4
    archive/psscene/<item>/<item>_3B_udm2.tif              UDM2, 8 bands uint8 (absent for a few)
    archive/sentinel-1-grd/<scene>/{vv,vh}.tif             sigma0 linear power, 10 m AOI grid
    archive/esa-worldcover/<aoi>/<item>_Map.tif            WorldCover codes (10 ... 100), 10 m
    catalog/psscene.ndjson                                 Planet quick-search features
    catalog/items.ndjson, collections.json                 STAC: sentinel-1-grd, esa-worldcover
    world.json                                             written last

AOIs are small UTM squares on six continents (:mod:`cloudyeo.demo.planet.aois`, placed by
:mod:`cloudyeo.aois`); each AOI's 3 m grid is shifted 1-2 m from its 10 m grid, as in the real data,
and each Sentinel-1 product is misregistered against it (:mod:`cloudyeo.demo.sar_geometry`). Lives in its own subpackage (and
its own code-version stage ``demo_planet``) so that editing it never regenerates the CBEN world.
"""

from cloudyeo.aois import AoiSpec, place_aoi
from cloudyeo.demo.planet.aois import KNOWN_AOIS
from cloudyeo.demo.planet.render import OPTICAL_ASSET, PLANET_BANDS, UDM2_ASSET, UDM2_BANDS
from cloudyeo.demo.planet.world import (
    DEFAULT_CFG,
    GENERATOR_VERSION,
    PSSCENE_FILE,
    WORLD_FILE,
    generate_planet_world,
    load_planet_world,
    normalise_cfg,
    plan_world,
)
from cloudyeo.grids import utm_epsg

__all__ = [
    "DEFAULT_CFG",
    "GENERATOR_VERSION",
    "KNOWN_AOIS",
    "OPTICAL_ASSET",
    "PLANET_BANDS",
    "PSSCENE_FILE",
    "UDM2_ASSET",
    "UDM2_BANDS",
    "WORLD_FILE",
    "AoiSpec",
    "generate_planet_world",
    "load_planet_world",
    "normalise_cfg",
    "place_aoi",
    "plan_world",
    "utm_epsg",
]
