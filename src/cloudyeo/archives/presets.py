"""What we know about each STAC API we support: endpoint, collection ids, filter dialect, auth.

A preset only tunes *server-side* pre-filtering and authentication; results are always
re-filtered and sorted client-side (:func:`cloudyeo.archives.base.apply_filters`), so a wrong
or ignored server-side filter can cost bandwidth but never correctness.

=====================  ================================  ==================  =====================
preset                 endpoint                          tile property       server-side filters
=====================  ================================  ==================  =====================
earth-search           earth-search.aws.element84.com/v1 ``grid:code``       ``query`` extension
                                                         ("MGRS-33UUP")      (CQL2 is ignored)
cdse                   stac.dataspace.copernicus.eu/v1   ``grid:code``       CQL2-JSON ``filter``
planetary-computer     planetarycomputer.microsoft.com   ``s2:mgrs_tile``    CQL2-JSON ``filter``
                       /api/stac/v1                      ("33UUP")
custom                 ``stac.url`` (required)           (not sent)          whatever the server
                                                                             advertises (cloud only)
=====================  ================================  ==================  =====================

Sentinel-1 (logical name ``sentinel-1-grd``: "the Sentinel-1 IW VV/VH backscatter collection"):
cloudyeo stores only calibrated backscatter on a map grid (see
:func:`cloudyeo.archives.base.sar_physics_problem`). Each preset lists, in ``s1_collections``,
the Sentinel-1 collections its service serves and what their files are:

==================  =====================  ===============================================
preset              collection             files
==================  =====================  ===============================================
earth-search        sentinel-1-grd         Level-1 GRD: amplitude DN, GCP-only -> refused
cdse                sentinel-1-grd         Level-1 GRD: amplitude DN, GCP-only -> refused
planetary-computer  sentinel-1-rtc         terrain-flattened gamma0 (RTC), linear power,
                    (the default)          terrain-corrected UTM COGs (signed like S2; the
                                           collection needs PC_SDK_SUBSCRIPTION_KEY)
planetary-computer  sentinel-1-grd         Level-1 GRD: amplitude DN, GCP-only -> refused
==================  =====================  ===============================================

Earth Search and CDSE publish no calibrated, terrain-corrected Sentinel-1 STAC collection,
so their presets keep ``sentinel-1-grd`` (stating what it is) and a dataset that would draw
Sentinel-1 from them is refused at plan time (:mod:`cloudyeo.archives.s1_source`), naming
``stac.collections.sentinel-1-grd`` / ``stac.preset``: take S1 from Planetary Computer,
Earth Engine (``COPERNICUS/S1_GRD``: sigma0 dB, terrain-corrected) or Sentinel Hub / CDSE
(``archive: sentinelhub``: sigma0, orthorectified) instead, or from the reBEN reference
(``cben.s1_source: reference``). A ``custom`` server or a collection not listed here is
judged item by item from what the items declare (:func:`stac_items.s1_physics`), at the
first Sentinel-1 search.

Credentials (all optional for searching; only their *names* appear in messages):

* ``CLOUDYEO_STAC_TOKEN`` — bearer token for Earth Search / custom servers that need one.
* ``CDSE_ACCESS_TOKEN`` — CDSE OIDC access token (``Authorization: Bearer``); search is public,
  asset downloads from CDSE need it.
* ``PC_SDK_SUBSCRIPTION_KEY`` — Planetary Computer subscription key
  (``Ocp-Apim-Subscription-Key``), raises SAS-token rate limits; assets are signed with SAS
  tokens fetched from ``<sas_url>/token/<collection>`` (see :mod:`cloudyeo.archives.signing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudyeo.archives.base import S1Product

LOGICAL_COLLECTIONS: tuple[str, ...] = ("sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd")


RAW_GRD = S1Product(
    "amplitude_dn", "gcp", "linear",
    "Level-1 GRD measurement files: uint16 amplitude digital numbers in radar geometry, "
    "georeferenced only by ground control points (calibration LUTs in the annotation)")
PC_RTC = S1Product(
    "gamma0_terrain", "terrain", "linear",
    "Planetary Computer sentinel-1-rtc: radiometrically terrain-corrected gamma0 (terrain-"
    "flattened, linear power, float32) on UTM grids, derived from the Level-1 GRD")


@dataclass(frozen=True)
class Preset:
    name: str
    url: str | None
    collections: Mapping[str, str]  # logical name -> server collection id
    filter_mode: str = "auto"  # "filter" (CQL2-JSON) | "query" | "auto" | "none"
    tile_property: str | None = None
    tile_format: str = "{tile}"
    credential_env: str | None = "CLOUDYEO_STAC_TOKEN"
    credential_header: str = "Authorization"  # value sent as "Bearer <token>" for Authorization
    signing: str | None = None  # "planetary-computer"
    sas_url: str | None = None
    max_page_size: int | None = None
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    s1_collections: Mapping[str, S1Product] = field(default_factory=dict)  # server id -> files

    def tile_value(self, tile: str) -> str:
        return self.tile_format.format(tile=tile)


PRESETS: dict[str, Preset] = {
    "earth-search": Preset(
        name="earth-search",
        url="https://earth-search.aws.element84.com/v1",
        collections={
            "sentinel-2-l2a": "sentinel-2-l2a",
            "sentinel-2-l1c": "sentinel-2-l1c",
            "sentinel-1-grd": "sentinel-1-grd",
        },
        filter_mode="query",
        tile_property="grid:code",
        tile_format="MGRS-{tile}",
        max_page_size=1000,
        notes="Element 84 Earth Search v1; common-name asset keys (blue, nir08, scl), "
        "earthsearch:boa_offset_applied; sentinel-1-grd is raw Level-1 GRD (refused) and "
        "requester-pays on S3. Collection-1 reprocessing is 'sentinel-2-c1-l2a' (map it with "
        "stac.collections).",
        s1_collections={"sentinel-1-grd": RAW_GRD},
    ),
    "cdse": Preset(
        name="cdse",
        url="https://stac.dataspace.copernicus.eu/v1",
        collections={
            "sentinel-2-l2a": "sentinel-2-l2a",
            "sentinel-2-l1c": "sentinel-2-l1c",
            "sentinel-1-grd": "sentinel-1-grd",
        },
        filter_mode="filter",
        tile_property="grid:code",
        tile_format="MGRS-{tile}",
        credential_env="CDSE_ACCESS_TOKEN",
        max_page_size=1000,
        notes="Copernicus Data Space Ecosystem STAC v1; asset keys like B02_10m / SCL_20m, "
        "shadow/cirrus nested in properties.statistics, baseline in processing:version; "
        "sentinel-1-grd is raw Level-1 GRD (refused: use archive: sentinelhub with preset "
        "cdse for calibrated, orthorectified Sentinel-1).",
        s1_collections={"sentinel-1-grd": RAW_GRD},
    ),
    "planetary-computer": Preset(
        name="planetary-computer",
        url="https://planetarycomputer.microsoft.com/api/stac/v1",
        collections={
            "sentinel-2-l2a": "sentinel-2-l2a",
            "sentinel-1-grd": "sentinel-1-rtc",
        },
        filter_mode="filter",
        tile_property="s2:mgrs_tile",
        tile_format="{tile}",
        credential_env="PC_SDK_SUBSCRIPTION_KEY",
        credential_header="Ocp-Apim-Subscription-Key",
        signing="planetary-computer",
        sas_url="https://planetarycomputer.microsoft.com/api/sas/v1",
        max_page_size=1000,
        notes="Microsoft Planetary Computer; asset hrefs need a SAS token (signed at read "
        "time, never stored); no Sentinel-2 L1C collection; Sentinel-1 from sentinel-1-rtc "
        "(terrain-flattened gamma0, terrain-corrected), not the raw sentinel-1-grd.",
        s1_collections={"sentinel-1-rtc": PC_RTC, "sentinel-1-grd": RAW_GRD},
    ),
    "custom": Preset(
        name="custom",
        url=None,
        collections={name: name for name in LOGICAL_COLLECTIONS},
        filter_mode="auto",
        tile_property=None,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown STAC preset {name!r} (config key stac.preset); choose one of "
            f"{', '.join(sorted(PRESETS))}"
        ) from None


def build_cql2_filter(
    preset: Preset,
    *,
    tile: str | None,
    max_cloud_cover: float | None,
    min_cloud_cover: float | None,
) -> dict[str, Any] | None:
    """CQL2-JSON for the optical filters a preset can pre-apply (None when nothing to send)."""
    args: list[dict[str, Any]] = []
    if max_cloud_cover is not None:
        args.append({"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud_cover]})
    if min_cloud_cover is not None:
        args.append({"op": ">=", "args": [{"property": "eo:cloud_cover"}, min_cloud_cover]})
    if tile is not None and preset.tile_property:
        args.append({"op": "=", "args": [{"property": preset.tile_property},
                                         preset.tile_value(tile)]})
    if not args:
        return None
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def build_query(
    preset: Preset,
    *,
    tile: str | None,
    max_cloud_cover: float | None,
    min_cloud_cover: float | None,
) -> dict[str, Any] | None:
    """STAC API ``query`` extension body for the same filters (None when nothing to send)."""
    out: dict[str, Any] = {}
    cloud: dict[str, float] = {}
    if max_cloud_cover is not None:
        cloud["lte"] = max_cloud_cover
    if min_cloud_cover is not None:
        cloud["gte"] = min_cloud_cover
    if cloud:
        out["eo:cloud_cover"] = cloud
    if tile is not None and preset.tile_property:
        out[preset.tile_property] = {"eq": preset.tile_value(tile)}
    return out or None


__all__ = [
    "LOGICAL_COLLECTIONS",
    "PC_RTC",
    "PRESETS",
    "Preset",
    "RAW_GRD",
    "build_cql2_filter",
    "build_query",
    "get_preset",
]
