"""Where scenes come from: one protocol, one adapter per backend.

``open_archive(config)`` picks the adapter from the validated config:

* ``archive: demo``     -> :class:`LocalStacArchive` over
  ``<resources_dir>/demo/catalog/items.ndjson`` (written by the demo world generator);
* ``archive: stac-api`` -> :class:`StacApiArchive` with the ``stac`` section (preset, url,
  collections, page_size, max_retries, timeout_s).
* ``archive: earthengine`` -> :class:`EarthEngineArchive` with the ``earthengine`` section
  (Earth Engine collections, service-account key; pixels through ``computePixels``);
* ``archive: sentinelhub`` -> :class:`SentinelHubArchive` with the ``sentinelhub`` section
  (Catalog API search, Process API windows; ``preset: cdse`` for Copernicus Data Space).

Every adapter returns :class:`SceneRecord` objects normalised by
:mod:`cloudyeo.archives.stac_items` (Earth Engine and Sentinel Hub records by their own modules,
which also offer ``read_window`` for pixels on a target grid). Assets of some archives must be signed right before
reading (:func:`readable_href`); records themselves never carry credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cloudyeo.archives.base import (
    Archive,
    AssetInfo,
    SceneRecord,
    SearchQuery,
    apply_filters,
    by_id,
)
from cloudyeo.archives.earthengine import EarthEngineArchive
from cloudyeo.archives.local import LocalStacArchive
from cloudyeo.archives.presets import PRESETS, Preset, get_preset
from cloudyeo.archives.sentinelhub import SentinelHubArchive
from cloudyeo.archives.signing import PlanetaryComputerSigner
from cloudyeo.archives.stac_api import StacApiArchive
from cloudyeo.archives.stac_items import item_to_record
from cloudyeo.config import paths
from cloudyeo.http import AuthError, HttpError


def open_archive(config: Mapping[str, Any], demo_catalog: str | os.PathLike | None = None) -> Archive:
    """The archive adapter for a validated config dict (``archive``: demo | stac-api |
    earthengine | sentinelhub).

    ``demo_catalog``: with ``archive: demo``, the catalog of the demo-world part a dataset
    reads (default: the CBEN part's); real archives serve every dataset from one service.
    """
    kind = config.get("archive", "demo")
    if kind == "demo":
        return LocalStacArchive(demo_catalog or paths(dict(config)).catalog)
    if kind == "stac-api":
        return StacApiArchive.from_config(config)
    if kind == "earthengine":
        return EarthEngineArchive.from_config(config)
    if kind == "sentinelhub":
        return SentinelHubArchive.from_config(config)
    raise ValueError(f"unknown archive {kind!r} (config key archive); choose demo, stac-api, "
                     f"earthengine or sentinelhub")


def readable_href(archive: Any, record: SceneRecord, band: str) -> str:
    """The href to open for ``record``'s ``band`` (signed where the archive needs it).

    The result may embed a short-lived credential: open it at once and never store or log it.
    Datasets never call this: :mod:`cloudyeo.archives.reading` opens it (inside the archive's
    GDAL environment) or asks the archive's ``read_window``.
    """
    href = record.assets[band].href
    sign = getattr(archive, "sign_href", None)
    return sign(href, record.collection) if sign else href


__all__ = [
    "Archive",
    "AssetInfo",
    "AuthError",
    "EarthEngineArchive",
    "HttpError",
    "LocalStacArchive",
    "PRESETS",
    "PlanetaryComputerSigner",
    "Preset",
    "SceneRecord",
    "SearchQuery",
    "SentinelHubArchive",
    "StacApiArchive",
    "apply_filters",
    "by_id",
    "get_preset",
    "item_to_record",
    "open_archive",
    "readable_href",
]
