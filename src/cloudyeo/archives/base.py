"""The normalised scene record every archive adapter returns, and the adapter protocol.

Servers name the same things differently (``s2:mgrs_tile`` vs ``grid:code``, flat vs nested
shadow/cirrus percentages, ``proj:epsg`` vs ``proj:code``); adapters hide that and hand the
rest of the package a :class:`SceneRecord`. Servers also differ in filter support, so
:func:`apply_filters` re-applies every filter and the sort order client-side.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloudyeo.http import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AssetInfo:
    """One band's file and grid."""

    href: str
    epsg: int | None = None
    transform: tuple[float, ...] | None = None  # affine (a, b, c, d, e, f)
    shape: tuple[int, int] | None = None  # (rows, cols)


@dataclass(frozen=True)
class SceneRecord:
    """One acquisition, normalised across archives.

    Radiometry: physical value = (DN + ``radiometric_offset``) / ``quantification``
    for optical data (Sentinel-2 BOA_ADD_OFFSET / RADIO_ADD_OFFSET, in DN; 0 before
    processing baseline 04.00, see :func:`cloudyeo.sentinel.radiometric_offset`).
    Percentages are 0-100 or None when the archive does not say.

    Sentinel-1 physics, as the service declares it, for every band asset of the record (one
    product is one measurement; assets that declare different physics make it unknown): ``sar_radiometry`` (a key of :data:`SAR_RADIOMETRY`:
    amplitude DN, beta0, sigma0, gamma0 or terrain-flattened gamma0; None when the service
    does not say), ``sar_geometry`` (a key of :data:`SAR_GEOMETRY`: GCP-only radar geometry,
    ellipsoid-corrected or terrain-corrected; None when unknown) and ``sar_units`` ("linear"
    or "dB"; "linear" for amplitude DN means the DN themselves). ``source_collection`` is the
    service's own collection id (``sentinel-1-rtc``, ``COPERNICUS/S1_GRD``), while
    ``collection`` is the logical name the query used. Only records for which
    :func:`sar_physics_problem` is None may be stored as backscatter.
    """

    id: str
    collection: str
    platform: str
    datetime: dt.datetime  # timezone-aware UTC
    footprint: dict[str, Any]  # GeoJSON geometry, EPSG:4326
    tile: str | None = None  # MGRS tile without the "T" prefix, e.g. "33UUP"
    cloud_cover: float | None = None
    shadow_percent: float | None = None
    cirrus_percent: float | None = None
    processing_baseline: str | None = None
    radiometric_offset: float = 0.0
    quantification: float = 10000.0
    relative_orbit: int | None = None
    orbit_state: str | None = None
    instrument_mode: str | None = None
    polarizations: tuple[str, ...] = ()
    sar_units: str | None = None
    sar_radiometry: str | None = None
    sar_geometry: str | None = None
    assets: dict[str, AssetInfo] = field(default_factory=dict)  # band name -> asset
    source_collection: str | None = None

    @property
    def date(self) -> dt.date:
        return self.datetime.date()


# Sentinel-1 radiometry: what a pixel value measures.
SAR_RADIOMETRY: dict[str, str] = {
    "amplitude_dn": "uncalibrated amplitude digital numbers (Level-1 GRD measurement files)",
    "beta0": "radar brightness beta0 (calibrated, not normalised to the ground)",
    "sigma0": "backscatter coefficient sigma0 (calibrated, ellipsoid incidence angle)",
    "gamma0": "backscatter coefficient gamma0 (calibrated, ellipsoid incidence angle)",
    "gamma0_terrain": "terrain-flattened gamma0 (radiometric terrain correction, RTC)",
}
# Sentinel-1 geometry: where a pixel is.
SAR_GEOMETRY: dict[str, str] = {
    "gcp": "radar (ground-range) geometry, georeferenced only by ground control points",
    "ellipsoid": "geocoded onto a map grid on the ellipsoid (no DEM)",
    "terrain": "terrain-corrected (orthorectified with a DEM) onto a map grid",
}
# What a dataset may store as Sentinel-1 backscatter.
STORABLE_SAR_RADIOMETRY = frozenset({"sigma0", "gamma0", "gamma0_terrain"})
STORABLE_SAR_GEOMETRY = frozenset({"ellipsoid", "terrain"})
SAR_UNITS = frozenset({"linear", "dB"})


class SarPhysicsError(Exception):
    """Sentinel-1 data whose physics cloudyeo must not store as backscatter (raw GRD, unknown).

    Deliberately not a ValueError: adapters skip unusable items on ValueError, and a refused
    collection must stop the build instead of being skipped item by item.
    """


def sar_physics_problem(radiometry: str | None, geometry: str | None, units: str | None) -> str | None:
    """Why SAR data with this physics cannot be stored as backscatter (None when it can)."""
    if radiometry not in STORABLE_SAR_RADIOMETRY:
        what = SAR_RADIOMETRY.get(radiometry or "", "radiometry not declared by the service")
        return f"radiometry {radiometry or 'unknown'} ({what}) is not calibrated backscatter"
    if geometry not in STORABLE_SAR_GEOMETRY:
        what = SAR_GEOMETRY.get(geometry or "", "geometry not declared by the service")
        return f"geometry {geometry or 'unknown'} ({what}) is not on a map grid"
    if units not in SAR_UNITS:
        return f"units {units!r} are neither linear nor dB"
    return None


@dataclass(frozen=True)
class S1Product:
    """What a service's Sentinel-1 product holds (from its documentation and metadata)."""

    radiometry: str | None  # key of SAR_RADIOMETRY
    geometry: str | None  # key of SAR_GEOMETRY
    units: str | None  # "linear" | "dB"
    note: str = ""

    @property
    def problem(self) -> str | None:
        return sar_physics_problem(self.radiometry, self.geometry, self.units)

    def attrs(self, source_collection: str | None, source: str) -> dict[str, str]:
        """Store attributes describing a dataset's Sentinel-1 input (one vocabulary for all)."""
        return {
            "s1_radiometry": self.radiometry or "unknown",
            "s1_radiometry_description": SAR_RADIOMETRY.get(self.radiometry or "", "unknown"),
            "s1_geometry": self.geometry or "unknown",
            "s1_geometry_description": SAR_GEOMETRY.get(self.geometry or "", "unknown"),
            "s1_source_units": self.units or "unknown",
            "s1_source_collection": source_collection or "unknown",
            "s1_source_archive": source,
            "s1_source_note": self.note,
        }


def is_sar(record: SceneRecord) -> bool:
    return record.collection.startswith("sentinel-1") or record.platform.startswith("sentinel-1")


def refuse_unstorable_sar(records: Iterable[SceneRecord], source: str, config_key: str) -> None:
    """Raise :class:`SarPhysicsError` for the first Sentinel-1 record that is not storable.

    The message names the scene, the service's collection, what is wrong and the config key
    to change (``config_key``).
    """
    for r in records:
        if not is_sar(r):
            continue
        problem = sar_physics_problem(r.sar_radiometry, r.sar_geometry, r.sar_units)
        if problem:
            raise SarPhysicsError(
                f"{source} Sentinel-1 scene {r.id} of collection "
                f"{r.source_collection or r.collection!r}: {problem}; cloudyeo stores only "
                f"calibrated backscatter (sigma0/gamma0) on a map grid and refuses to "
                f"store it as sigma0. Change config key {config_key} so that Sentinel-1 comes "
                f"from a calibrated, terrain-corrected collection (e.g. stac.preset: "
                f"planetary-computer, which maps it to sentinel-1-rtc), or use archive: "
                f"earthengine (COPERNICUS/S1_GRD) or archive: sentinelhub.")


# The config key to change when an adapter's Sentinel-1 collection is refused.
SAR_CONFIG_KEYS: dict[str, str] = {
    "STAC": "stac.collections.sentinel-1-grd (or stac.preset)",
    "Earth Engine": "earthengine.collections.sentinel-1-grd",
    "Sentinel Hub": "sentinelhub.preset",
    "local": "archive (or declare cloudyeo:sar_radiometry / cloudyeo:sar_geometry on the "
             "catalog's Sentinel-1 items)",
}


@dataclass(frozen=True)
class SearchQuery:
    """What to look for. Every field is optional except the collection and time range."""

    collection: str  # logical name: "sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd"
    start: dt.datetime
    end: dt.datetime  # inclusive
    tile: str | None = None
    intersects: dict[str, Any] | None = None  # GeoJSON geometry, EPSG:4326
    max_cloud_cover: float | None = None
    min_cloud_cover: float | None = None


class Archive(Protocol):
    """Anything that can answer a :class:`SearchQuery` with scene records."""

    name: str

    def search(self, query: SearchQuery) -> list[SceneRecord]: ...


def _intersects(a: dict[str, Any], b: dict[str, Any]) -> bool:
    from shapely.geometry import shape

    return shape(a).intersects(shape(b))


def apply_filters(records: Iterable[SceneRecord], query: SearchQuery) -> list[SceneRecord]:
    """Re-apply a query client-side and sort by (datetime, id) for a stable order."""
    out: list[SceneRecord] = []
    for r in records:
        if not (query.start <= r.datetime <= query.end):
            continue
        if query.tile is not None and r.tile != query.tile:
            continue
        if query.max_cloud_cover is not None and (
            r.cloud_cover is None or r.cloud_cover > query.max_cloud_cover
        ):
            continue
        if query.min_cloud_cover is not None and (
            r.cloud_cover is None or r.cloud_cover < query.min_cloud_cover
        ):
            continue
        if query.intersects is not None and not _intersects(r.footprint, query.intersects):
            continue
        out.append(r)
    # Deduplicate (paging overlaps, reprocessed duplicates keep the first id seen).
    seen: set[str] = set()
    unique = []
    for r in sorted(out, key=lambda r: (r.datetime, r.id)):
        if r.id not in seen:
            seen.add(r.id)
            unique.append(r)
    return unique


def normalise_and_filter(
    items: Iterable[dict[str, Any]], to_record: Callable[[dict[str, Any]], SceneRecord],
    query: SearchQuery, source: str,
) -> list[SceneRecord]:
    """Records of the usable items (unusable ones are logged and skipped), re-filtered."""
    records = []
    for item in items:
        try:
            records.append(to_record(item))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unusable %s item %s: %s", source, redact(item.get("id")), exc)
    out = apply_filters(records, query)
    refuse_unstorable_sar(out, source, SAR_CONFIG_KEYS.get(source, "archive"))
    return out


def by_id(records: Sequence[SceneRecord]) -> dict[str, SceneRecord]:
    return {r.id: r for r in records}
