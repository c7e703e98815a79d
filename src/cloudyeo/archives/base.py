"""The normalised scene record every archive adapter returns, and the adapter protocol.

Servers name the same things differently (``s2:mgrs_tile`` vs ``grid:code``, flat vs nested
shadow/cirrus percentages, ``proj:epsg`` vs ``proj:code``); adapters hide that and hand the
rest of the package a :class:`SceneRecord`. Servers also differ in filter support, so
:func:`apply_filters` re-applies every filter and the sort order client-side.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

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
    processing baseline 04.00). SAR values are in ``sar_units`` ("linear" or "dB").
    Percentages are 0-100 or None when the archive does not say.
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
    assets: dict[str, AssetInfo] = field(default_factory=dict)  # band name -> asset

    @property
    def date(self) -> dt.date:
        return self.datetime.date()


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
    return apply_filters(records, query)


def by_id(records: Sequence[SceneRecord]) -> dict[str, SceneRecord]:
    return {r.id: r for r in records}
