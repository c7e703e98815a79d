"""STAC item (a plain dict) -> :class:`SceneRecord`, hiding server differences.

The same facts are spelled differently by different servers; this module reads all the
spellings we know and writes one record:

================  =======================================================================
fact              where it is read from (first hit wins)
================  =======================================================================
tile              ``s2:mgrs_tile`` (Planetary Computer, demo) | ``grid:code`` ("MGRS-33UUP",
                  Earth Search v1, CDSE) | ``mgrs:utm_zone`` + ``mgrs:latitude_band`` +
                  ``mgrs:grid_square`` (Earth Search v1) | ``tileId`` | the product id
cloud             ``eo:cloud_cover``
shadow            ``s2:cloud_shadow_percentage`` (flat: Earth Search, PC) |
                  ``statistics.cloud_shadow`` (nested: CDSE STAC v1)
cirrus            ``s2:thin_cirrus_percentage`` | ``statistics.thin_cirrus``
baseline          ``s2:processing_baseline`` | ``processing:version`` (CDSE) |
                  ``sentinel:processing_baseline`` | ``_Nxxyy_`` in the product id
EPSG              ``proj:code`` ("EPSG:32633") | ``proj:epsg`` — asset level first, then item
grid              asset ``proj:transform`` / ``proj:shape`` (item level as a fallback)
offset (DN)       :func:`cloudyeo.sentinel.radiometric_offset`, the one precedence rule:
                  0 when ``earthsearch:boa_offset_applied`` / ``sentinel:boa_offset_applied``
                  is true (Earth Search); else 0 for a baseline below 04.00, whatever the band
                  metadata says; else the asset's ``raster:bands[0]`` (or STAC 1.1
                  ``raster:offset``/``raster:scale``, or ``bands[0]``) ``offset/scale``
                  (Earth Search, CDSE, the demo); else -1000 from baseline 04.00 (Planetary
                  Computer, whose items carry no offset), 0 when the baseline is unknown
quantification    ``1/scale`` when a scale is given, else 10000 (S2) / 1 (S1)
SAR units         ``raster:bands[0].unit`` of the VV/VH asset ("dB" or "linear"; default linear)
SAR physics       :func:`s1_physics` (radiometry, geometry) from what the service declares,
                  first hit wins: ``cloudyeo:sar_radiometry`` / ``cloudyeo:sar_geometry``
                  (asset, then item; the demo world declares these) | CARD4L
                  ``card4l:specification`` NRB (terrain-flattened gamma0, terrain-corrected)
                  or ``card4l:measurement_type`` | the item's own collection id
                  ``sentinel-1-rtc`` or ``sar:product_type`` RTC/NRB (Planetary Computer
                  RTC: terrain-flattened gamma0, terrain-corrected) | ``sar:product_type``
                  GRD or a ``S1x_xx_GRDx_`` id (Level-1 GRD as Earth Search, CDSE and Planetary
                  Computer serve it: amplitude DN, GCP-only) | unknown (None)
band names        B01..B12, B8A, SCL from "B02", "B02_10m" (native resolution preferred),
                  Earth Search common names ("blue", "nir08", "scl", ...); "vv"/"vh" -> VV/VH;
                  other raster assets with role "data" (or "demo-truth") keep their own key
                  (e.g. "truth_mask", "aot"); "-jp2" duplicates, previews, metadata are dropped
================  =======================================================================

Relative asset hrefs are resolved against ``base_href`` (the catalog folder for local files,
or an ``asset_base`` URL) or, failing that, against the item's ``self`` link.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from cloudyeo.archives.base import SAR_GEOMETRY, SAR_RADIOMETRY, AssetInfo, SceneRecord
from cloudyeo.sentinel import S2_BAND_GSD, S2_QUANTIFICATION, radiometric_offset

# Earth Search v1 (and other stactools-derived catalogs) use common names as asset keys.
EARTH_SEARCH_ASSET_KEYS: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
S1_ASSET_KEYS: dict[str, str] = {"vv": "VV", "vh": "VH", "hh": "HH", "hv": "HV"}
SCL_NATIVE_GSD = 20
_BAND_RE = re.compile(r"^(?P<band>B(?:0[1-9]|1[0-2]|8A)|SCL)(?:_(?P<res>\d+)m)?$", re.IGNORECASE)
_BASELINE_IN_ID_RE = re.compile(r"_N(\d{2})(\d{2})_")
_TILE_RE = re.compile(r"^(\d{1,2})([C-X])([A-Z]{2})$")
_TILE_IN_ID_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|$)")
_S1_GRD_ID_RE = re.compile(r"^S1[A-D]_[A-Z0-9]{2}_GRD[HMF]_", re.IGNORECASE)
# STAC collections of radiometrically terrain-corrected Sentinel-1 (terrain-flattened gamma0,
# linear power, on a UTM grid): Planetary Computer's ``sentinel-1-rtc``.
S1_RTC_COLLECTIONS: frozenset[str] = frozenset({"sentinel-1-rtc"})


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def parse_number(value: Any) -> float | None:
    """A finite-or-None float from a property value (None for missing, bool, NaN or garbage)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def format_datetime(t: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` (naive datetimes are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: str | None) -> dt.datetime | None:
    """RFC 3339 -> timezone-aware UTC datetime (accepts ``Z`` and 7+ fractional digits)."""
    if not value:
        return None
    s = value.strip().replace("z", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(.*?\.\d{6})\d+(.*)$", s)  # Python parses at most 6 fraction digits
    if m:
        s = m.group(1) + m.group(2)
    out = dt.datetime.fromisoformat(s)
    if out.tzinfo is None:
        out = out.replace(tzinfo=dt.UTC)
    return out.astimezone(dt.UTC)


def feature_basics(feature: Mapping[str, Any], time_key: str, kind: str = "feature"
                   ) -> tuple[str, Mapping[str, Any], dt.datetime, Mapping[str, Any]]:
    """(id, properties, time from ``properties[time_key]``, footprint) of a GeoJSON feature (ValueError when one is missing)."""
    item_id = feature.get("id")
    if not item_id:
        raise ValueError(f"{kind} without an id")
    props = feature.get("properties") or {}
    when = parse_datetime(props.get(time_key))
    if when is None:
        raise ValueError(f"no {time_key!r} timestamp")
    geometry = feature.get("geometry")
    if not isinstance(geometry, Mapping) or "type" not in geometry:
        raise ValueError("no footprint geometry")
    return str(item_id), props, when, geometry


def raster_grid(transform: Any, shape: Any) -> tuple[tuple[float, ...] | None, tuple[int, int] | None]:
    """STAC ``proj:transform`` / ``proj:shape`` values -> (6 affine coefficients, (rows, cols)), None where absent."""
    return (tuple(float(v) for v in list(transform)[:6]) if transform else None,
            (int(shape[0]), int(shape[1])) if shape else None)


def normalise_tile(value: Any) -> str | None:
    """'MGRS-T33UUP' / 'MGRS-33UUP' / 'T33UUP' / '33UUP' / '9WXY' -> '33UUP' (zone zero-padded)."""
    if value is None:
        return None
    s = str(value).strip().upper()
    if s.startswith("MGRS-"):
        s = s[5:]
    if s.startswith("T") and len(s) >= 6:
        s = s[1:]
    m = _TILE_RE.match(s)
    if not m:
        return None
    return f"{int(m.group(1)):02d}{m.group(2)}{m.group(3)}"


_LAT_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # 8 degrees each from 80S; X spans 72N..84N
# Irregular UTM zones (Norway, Svalbard): (zone, band) -> (west, east) longitude.
_SPECIAL_ZONES = {(31, "V"): (0.0, 3.0), (32, "V"): (3.0, 12.0), (31, "X"): (0.0, 9.0),
                  (33, "X"): (9.0, 21.0), (35, "X"): (21.0, 33.0), (37, "X"): (33.0, 42.0)}


def mgrs_tile_bbox(tile: str, margin_km: float = 120.0) -> list[float] | None:
    """A generous lon/lat box [w, s, e, n] that contains every footprint of an MGRS tile.

    The UTM zone x latitude band cell, widened by ``margin_km`` (an S2 tile is 109.8 km and
    may reach past its zone's edge). Used only to pre-filter server-side; records are matched
    on the tile id client-side.
    """
    t = normalise_tile(tile)
    if t is None:
        return None
    zone, band = int(t[:2]), t[2]
    if not 1 <= zone <= 60 or band not in _LAT_BANDS:
        return None
    i = _LAT_BANDS.index(band)
    south = -80.0 + 8.0 * i
    north = 84.0 if band == "X" else south + 8.0
    west, east = _SPECIAL_ZONES.get((zone, band), (-180.0 + 6.0 * (zone - 1), -174.0 + 6.0 * (zone - 1)))
    dlat = margin_km / 111.0
    south, north = max(-90.0, south - dlat), min(90.0, north + dlat)
    coslat = math.cos(math.radians(max(abs(south), abs(north))))
    dlon = 180.0 if coslat < 1e-3 else min(180.0, margin_km / (111.32 * coslat))
    west, east = west - dlon, east + dlon
    if west < -180.0 or east > 180.0:
        west, east = -180.0, 180.0  # crossing the antimeridian: do not pre-filter longitude
    return [west, south, east, north]


def parse_epsg(obj: Mapping[str, Any]) -> int | None:
    """EPSG code from ``proj:code`` ('EPSG:32633') or ``proj:epsg`` of a dict."""
    code = obj.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        try:
            return int(code.split(":", 1)[1])
        except ValueError:
            pass
    epsg = obj.get("proj:epsg")
    if epsg is not None and not isinstance(epsg, bool):
        try:
            return int(epsg)
        except (TypeError, ValueError):
            return None
    return None


def normalise_platform(value: Any, item_id: str = "") -> str:
    """'Sentinel-2A' / 'sentinel-2a' / 'S2A' -> 'sentinel-2a'; guessed from the id if absent."""
    if value:
        s = str(value).strip().lower().replace("_", "-").replace(" ", "-")
        m = re.fullmatch(r"s(?:entinel-?)?([12])([a-d])", s)
        if m:
            return f"sentinel-{m.group(1)}{m.group(2)}"
        return s
    m = re.match(r"^S([12])([A-D])_", item_id or "")
    if m:
        return f"sentinel-{m.group(1)}{m.group(2).lower()}"
    return "unknown"


def asset_band_name(key: str, asset: Mapping[str, Any] | None = None) -> tuple[str, int | None] | None:
    """Map an asset key to (band name, resolution in metres or None); None if not a band."""
    k = key.strip()
    low = k.lower()
    if low in EARTH_SEARCH_ASSET_KEYS:
        return EARTH_SEARCH_ASSET_KEYS[low], None
    if low in S1_ASSET_KEYS:
        return S1_ASSET_KEYS[low], None
    m = _BAND_RE.match(k)
    if m:
        band = m.group("band").upper()
        res = int(m.group("res")) if m.group("res") else None
        return band, res
    return None


def _native_gsd(band: str) -> int | None:
    if band == "SCL":
        return SCL_NATIVE_GSD
    return S2_BAND_GSD.get(band)


def _first_band(asset: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("raster:bands", "bands"):
        bands = asset.get(key)
        if isinstance(bands, list) and bands and isinstance(bands[0], Mapping):
            return bands[0]
    return {}


def asset_scale_offset(asset: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(scale, offset) of an asset from ``raster:bands``/``bands`` or STAC 1.1 asset fields."""
    band = _first_band(asset)
    scale = parse_number(band.get("scale", band.get("raster:scale")))
    offset = parse_number(band.get("offset", band.get("raster:offset")))
    if scale is None:
        scale = parse_number(asset.get("raster:scale"))
    if offset is None:
        offset = parse_number(asset.get("raster:offset"))
    return scale, offset


def asset_unit(asset: Mapping[str, Any]) -> str | None:
    band = _first_band(asset)
    unit = band.get("unit", band.get("raster:unit", asset.get("unit", asset.get("raster:unit"))))
    return str(unit) if unit else None


def _is_url(href: str) -> bool:
    parts = urlsplit(href)
    return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme == "file") and len(parts.scheme) > 1


def resolve_href(href: str, base: str | None) -> str:
    """Absolute form of ``href``: URLs and absolute paths unchanged, relative ones joined.

    ``base`` is a folder (local path, or URL ending in ``/``) or a document URL/path whose
    folder is used (an item's ``self`` link).
    """
    if not href or _is_url(href) or os.path.isabs(href) or base is None:
        return href
    if _is_url(base):
        return urljoin(base, href)
    if base.endswith(("/", os.sep)) or os.path.isdir(base):
        folder = base
    else:
        folder = os.path.dirname(base)
    return os.path.normpath(os.path.join(folder, href))


def _self_href(item: Mapping[str, Any]) -> str | None:
    for link in item.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "self" and link.get("href"):
            return str(link["href"])
    return None


# --------------------------------------------------------------------------------------
# field extraction
# --------------------------------------------------------------------------------------


def extract_tile(props: Mapping[str, Any], item_id: str = "") -> str | None:
    for key in ("s2:mgrs_tile", "grid:code", "mgrs:tile", "tileId", "s2:tile_id"):
        tile = normalise_tile(props.get(key))
        if tile:
            return tile
    zone, band, square = (props.get("mgrs:utm_zone"), props.get("mgrs:latitude_band"),
                          props.get("mgrs:grid_square"))
    if zone is not None and band and square:
        tile = normalise_tile(f"{int(zone):02d}{band}{square}")
        if tile:
            return tile
    m = _TILE_IN_ID_RE.search(item_id or "")
    if m:
        return m.group(1)
    m = re.match(r"^S2[A-D]_(\d{1,2}[C-X][A-Z]{2})_\d{8}", item_id or "")  # Earth Search ids
    if m:
        return normalise_tile(m.group(1))
    return None


def _stat(props: Mapping[str, Any], flat: Iterable[str], nested: Iterable[str]) -> float | None:
    for key in flat:
        v = parse_number(props.get(key))
        if v is not None:
            return v
    stats = props.get("statistics")
    if isinstance(stats, Mapping):
        for key in nested:
            v = parse_number(stats.get(key))
            if v is not None:
                return v
    return None


def extract_shadow(props: Mapping[str, Any]) -> float | None:
    return _stat(props, ("s2:cloud_shadow_percentage", "cloud_shadow_percentage"),
                 ("cloud_shadow", "cloud_shadows"))


def extract_cirrus(props: Mapping[str, Any]) -> float | None:
    return _stat(props, ("s2:thin_cirrus_percentage", "thin_cirrus_percentage"),
                 ("thin_cirrus", "cirrus"))


def extract_baseline(props: Mapping[str, Any], item_id: str = "") -> str | None:
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline",
                "processing_baseline"):
        v = props.get(key)
        if v not in (None, ""):
            s = str(v).strip()
            try:
                return f"{float(s):05.2f}"
            except ValueError:
                return s
    m = _BASELINE_IN_ID_RE.search(item_id or "")
    if m and m.group(1) != "99":  # N9999 marks reprocessing placeholders
        return f"{m.group(1)}.{m.group(2)}"
    return None


def _declared(key: str, vocabulary: Mapping[str, str], *where: Mapping[str, Any]) -> str | None:
    for obj in where:
        value = obj.get(key)
        if value is not None:
            value = str(value).strip().lower()
            return value if value in vocabulary else None  # a bad declaration is unknown
    return None


def s1_physics(item: Mapping[str, Any], data_assets: Iterable[Mapping[str, Any]] = ()
               ) -> tuple[str | None, str | None]:
    """(radiometry, geometry) of a Sentinel-1 item, from what the service declares.

    Keys of :data:`cloudyeo.archives.base.SAR_RADIOMETRY` / ``SAR_GEOMETRY``, None where
    nothing declares it. See the module table for the order of the evidence.
    """
    props: Mapping[str, Any] = item.get("properties") or {}
    assets = [a for a in data_assets if isinstance(a, Mapping)]
    radiometry = geometry = None
    for obj in (*assets, props):
        if radiometry is None:
            radiometry = _declared("cloudyeo:sar_radiometry", SAR_RADIOMETRY, obj)
        if geometry is None:
            geometry = _declared("cloudyeo:sar_geometry", SAR_GEOMETRY, obj)
    # One record, one physics: assets that declare different things make it unknown (refused).
    for key, vocabulary in (("cloudyeo:sar_radiometry", SAR_RADIOMETRY), ("cloudyeo:sar_geometry", SAR_GEOMETRY)):
        if len({_declared(key, vocabulary, a) for a in assets if key in a}) > 1:
            return None, None
    if radiometry and geometry:
        return radiometry, geometry
    spec = str(props.get("card4l:specification") or "").strip().upper()
    product_type = str(props.get("sar:product_type") or "").strip().upper()
    collection = str(item.get("collection") or "").strip().lower()
    if spec == "NRB" or product_type in ("RTC", "NRB") or collection in S1_RTC_COLLECTIONS:
        return radiometry or "gamma0_terrain", geometry or "terrain"
    measured = str(props.get("card4l:measurement_type") or "").strip().lower()
    if radiometry is None and measured in ("beta0", "sigma0", "gamma0"):
        radiometry = measured
    if radiometry is None and geometry is None and (
            product_type == "GRD" or _S1_GRD_ID_RE.match(str(item.get("id") or ""))):
        return "amplitude_dn", "gcp"  # Level-1 GRD measurement files as ESA distributes them
    return radiometry, geometry


def _is_sar(collection: str, platform: str, bands: Iterable[str]) -> bool:
    if collection.startswith("sentinel-1") or platform.startswith("sentinel-1"):
        return True
    return any(b in ("VV", "VH", "HH", "HV") for b in bands)


# --------------------------------------------------------------------------------------
# the conversion
# --------------------------------------------------------------------------------------


def asset_href(asset: Mapping[str, Any]) -> str:
    """The href to read an asset from: the primary one, except that an ``s3://`` href with an
    https twin in the alternate-assets extension (``alternate.<name>.href``, the same file) reads
    from the twin. CDSE's items point at ``s3://eodata/...``, which needs S3 keys; their https
    alternate on the download service takes the archive's bearer token (sent by the reading layer
    to that origin only)."""
    href = str(asset["href"])
    if href.startswith("s3://"):
        for alt in (asset.get("alternate") or {}).values():
            if isinstance(alt, Mapping) and str(alt.get("href", "")).startswith("https://"):
                return str(alt["href"])
    return href


def item_to_record(
    item: Mapping[str, Any],
    *,
    collection: str | None = None,
    base_href: str | None = None,
) -> SceneRecord:
    """Normalise one STAC item dict into a :class:`SceneRecord`.

    ``collection`` overrides the item's ``collection`` (use it to map a server collection id to
    the logical name); ``base_href`` resolves relative asset hrefs (default: the self link).
    """
    item_id = str(item["id"])
    props: Mapping[str, Any] = item.get("properties") or {}
    coll = collection or str(item.get("collection") or "")
    when = parse_datetime(props.get("datetime")) or parse_datetime(props.get("start_datetime"))
    if when is None:
        raise ValueError(f"STAC item {item_id!r} has no datetime")
    footprint = item.get("geometry")
    if not footprint and item.get("bbox"):
        bbox = [float(v) for v in item["bbox"]]
        w, s, e, n = (bbox[0], bbox[1], bbox[3], bbox[4]) if len(bbox) == 6 else bbox[:4]
        footprint = {"type": "Polygon",
                     "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    platform = normalise_platform(props.get("platform"), item_id)

    item_epsg = parse_epsg(props)
    item_transform = props.get("proj:transform")
    item_shape = props.get("proj:shape")
    base = base_href if base_href is not None else _self_href(item)

    # Choose one asset per band: the native resolution when several are offered (CDSE).
    chosen: dict[str, tuple[int, str, Mapping[str, Any]]] = {}
    for key, asset in (item.get("assets") or {}).items():
        if not isinstance(asset, Mapping) or not asset.get("href"):
            continue
        mapped = asset_band_name(key, asset)
        if mapped is None:
            continue
        band, res = mapped
        native = _native_gsd(band)
        rank = 0 if res is None or res == native else (1 if native is None or res > native else 2)
        rank = rank * 1000 + (res or 0)
        if band not in chosen or rank < chosen[band][0]:
            chosen[band] = (rank, key, asset)

    # Other raster data assets (AOT, WVP, the demo world's truth mask, ...) keep their keys.
    for key, asset in (item.get("assets") or {}).items():
        if key in chosen or not isinstance(asset, Mapping) or not asset.get("href"):
            continue
        if asset_band_name(key) is not None or key.lower().endswith("-jp2"):
            continue
        roles = set(asset.get("roles") or ())
        media = str(asset.get("type") or "")
        raster = media.startswith("image/tiff") or media.startswith("image/jp2") or \
            str(asset["href"]).lower().split("?")[0].endswith((".tif", ".tiff", ".jp2"))
        if raster and roles & {"data", "demo-truth"}:
            chosen[key] = (0, key, asset)

    assets: dict[str, AssetInfo] = {}
    for band in sorted(chosen):
        _, _key, asset = chosen[band]
        transform = asset.get("proj:transform") or None
        shape = asset.get("proj:shape") or None
        if transform is None and item_transform and shape in (None, item_shape):
            transform = item_transform
        if shape is None and item_shape and transform in (None, item_transform):
            shape = item_shape
        grid_transform, grid_shape = raster_grid(transform, shape)
        assets[band] = AssetInfo(href=resolve_href(asset_href(asset), base), epsg=parse_epsg(asset) or item_epsg,
                                 transform=grid_transform, shape=grid_shape)

    sar = _is_sar(coll, platform, assets)
    baseline = None if sar else extract_baseline(props, item_id)
    offset, quant = 0.0, (1.0 if sar else S2_QUANTIFICATION)
    sar_units = radiometry = geometry = None
    if sar:
        units = None
        for band in ("VV", "VH", "HH", "HV"):
            if band in chosen:
                units = asset_unit(chosen[band][2])
                if units:
                    break
        sar_units = "dB" if units and units.strip().lower() in ("db", "decibel", "decibels") else "linear"
        radiometry, geometry = s1_physics(
            item, [chosen[b][2] for b in ("VV", "VH", "HH", "HV") if b in chosen])
    else:
        scale = off = None
        for band in sorted(chosen):
            if band not in S2_BAND_GSD:  # reflectance bands only (not SCL, AOT, masks)
                continue
            scale, off = asset_scale_offset(chosen[band][2])
            if scale is not None or off is not None:
                break
        if scale:
            quant = round(1.0 / scale, 6)
        applied = props.get("earthsearch:boa_offset_applied") is True or \
            props.get("sentinel:boa_offset_applied") is True
        band_dn = None
        if off is not None:
            band_dn = round(off / scale, 6) if scale else round(off * S2_QUANTIFICATION, 6)
        offset = radiometric_offset(baseline, offset_applied=applied, band_offset_dn=band_dn)

    pols = props.get("sar:polarizations") or ()
    rel_orbit = props.get("sat:relative_orbit", props.get("s1:relative_orbit"))
    orbit_state = props.get("sat:orbit_state")
    return SceneRecord(
        id=item_id,
        collection=coll,
        platform=platform,
        datetime=when,
        footprint=dict(footprint) if footprint else {},
        tile=None if sar else extract_tile(props, item_id),
        cloud_cover=None if sar else parse_number(props.get("eo:cloud_cover")),
        shadow_percent=None if sar else extract_shadow(props),
        cirrus_percent=None if sar else extract_cirrus(props),
        processing_baseline=baseline,
        radiometric_offset=offset,
        quantification=quant,
        relative_orbit=int(rel_orbit) if rel_orbit is not None else None,
        orbit_state=str(orbit_state).lower() if orbit_state else None,
        instrument_mode=props.get("sar:instrument_mode") if sar else None,
        polarizations=tuple(str(p).upper() for p in pols) if sar else (),
        sar_units=sar_units,
        sar_radiometry=radiometry,
        sar_geometry=geometry,
        assets=assets,
        source_collection=str(item["collection"]) if item.get("collection") else None,
    )


def items_to_records(
    items: Iterable[Mapping[str, Any]],
    *,
    collection: str | None = None,
    base_href: str | None = None,
) -> list[SceneRecord]:
    return [item_to_record(it, collection=collection, base_href=base_href) for it in items]


__all__ = [
    "EARTH_SEARCH_ASSET_KEYS",
    "S1_ASSET_KEYS",
    "asset_band_name",
    "asset_scale_offset",
    "extract_baseline",
    "extract_cirrus",
    "extract_shadow",
    "extract_tile",
    "item_to_record",
    "items_to_records",
    "mgrs_tile_bbox",
    "s1_physics",
    "normalise_platform",
    "normalise_tile",
    "parse_datetime",
    "parse_epsg",
    "resolve_href",
]
