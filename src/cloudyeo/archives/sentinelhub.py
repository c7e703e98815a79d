"""Sentinel-1/2 scenes from Sentinel Hub: Catalog API search and Process API windows.

The Copernicus Data Space Ecosystem (CDSE) runs the Sentinel Hub APIs; ``preset: cdse`` points
at it (``https://sh.dataspace.copernicus.eu``, token from the CDSE identity server);
``preset: sentinel-hub`` at the commercial deployment. ``base_url`` / ``token_url`` override
either (tests use loopback).

Search: ``POST <base>/api/v1/catalog/1.0.0/search`` (STAC API item search)::

    {"collections": ["sentinel-2-l2a"],
     "datetime": "<start>Z/<end>Z",                      # both ends inclusive
     "intersects": <query.intersects>,                   # or "bbox" around query.tile
     "filter": "eo:cloud_cover <= 30 AND eo:cloud_cover >= 5",
     "filter-lang": "cql2-text",
     "limit": <page_size>}

Sentinel-1 asks ``sar:instrument_mode = 'IW' AND s1:polarization = 'DV'`` (VV+VH). The
response's ``context.next`` is sent back as ``"next"`` in the same body until it is absent.
Tiles are not queryable on Sentinel Hub, so a tile query sends a box around the tile and the
tile is matched client-side; every filter is re-applied client-side (:func:`apply_filters`).

Records (from each Catalog item):

==================  ========================================================================
record field        from
==================  ========================================================================
id                  item ``id`` (the SAFE name, e.g. ``S2A_MSIL2A_20220301T101019_N0400_
                    R022_T33UUP_20220301T131415.SAFE``)
datetime            ``datetime``; footprint: ``geometry``
tile                ``_T<tile>_`` in the id
cloud_cover         ``eo:cloud_cover`` (shadow/cirrus are not published: None)
processing_baseline ``_Nxxyy_`` in the id ("04.00")
relative_orbit      ``_Rnnn_`` in the id (S2); ``sat:relative_orbit`` or, for S1A/S1B, derived
                    from the absolute orbit in the id (S1)
orbit_state         ``sat:orbit_state`` (S1)
polarizations       ``s1:polarization`` ("DV" -> VV, VH; "DH" -> HH, HV; "SV"; "SH")
radiometric_offset  **0**: windows are requested with ``units: "DN"`` and
                    ``processing.harmonizeValues: true`` (the Sentinel Hub default, sent
                    explicitly), which removes the -1000 offset of baseline >= 04.00, so
                    reflectance = DN / 10000 for every scene (``quantification`` 10000)
sar_units           ``"linear"``: windows are sigma0 (``backCoeff: SIGMA0_ELLIPSOID``,
                    orthorectified on the Copernicus 30 m DEM) in linear power
                    (``units: "LINEAR_POWER"``), float32
assets              empty: Sentinel Hub serves pixels through the Process API only
==================  ========================================================================

Windows: ``POST <base>/api/v1/process`` with ``input.bounds`` = the target box in the target
EPSG (``http://www.opengis.net/def/crs/EPSG/0/<epsg>``), ``output`` = width x height, one
``image/tiff`` response, ``dataFilter.timeRange`` = the record's datetime +-
``time_tolerance_s`` (one acquisition; adjacent tiles of the same datatake mosaic seamlessly),
``upsampling``/``downsampling`` = the resampling, and an evalscript returning the bands in
order as ``FLOAT32`` (S2: DN; S1: linear sigma0), NaN where ``dataMask`` is 0 (no data).
Only north-up grids can be expressed as a box; larger windows than 2500 px a side are split.

Auth: OAuth client credentials from the environment variables named by ``client_id_env`` /
``client_secret_env`` (default ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET``; the config only names
the variables). ``POST <token_url>`` (``grant_type=client_credentials``) gives a bearer token,
cached until a minute before it expires and refreshed once when the API answers 401. Missing
variables, a refused client (token endpoint 400 ``invalid_client``/401) or a second 401 raise
:class:`cloudyeo.http.AuthError` naming ``SH_CLIENT_ID``. Secret and tokens are registered with
:func:`cloudyeo.http.register_secret`: they never reach logs, errors or records.

Transport and retries: :class:`cloudyeo.http.HttpClient` (429/5xx, connection errors and
timeouts retried with full-jitter backoff, ``Retry-After`` honoured, total sleep bounded,
every retry logged redacted), ``max_retries`` / ``timeout_s`` from the config. The
``sentinelhub`` package is not needed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from cloudyeo.archives.base import SceneRecord, SearchQuery, normalise_and_filter
from cloudyeo.archives.stac_items import (
    format_datetime,
    mgrs_tile_bbox,
    normalise_platform,
    parse_datetime,
    parse_number,
)
from cloudyeo.http import AuthError, HttpClient, HttpError, RetryPolicy, redact, register_secret

log = logging.getLogger(__name__)

CLIENT_ID_ENV = "SH_CLIENT_ID"
CLIENT_SECRET_ENV = "SH_CLIENT_SECRET"
CATALOG_PATH = "/api/v1/catalog/1.0.0/search"
PROCESS_PATH = "/api/v1/process"
MAX_PAGE_SIZE = 100  # the Catalog API's largest limit
MAX_OUTPUT_SIDE = 2500  # Process API output limit (px per side)
S2_QUANTIFICATION = 10000.0
RESAMPLING = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC"}
POLARIZATION_CODES = {"DV": ("VV", "VH"), "DH": ("HH", "HV"), "SV": ("VV",), "SH": ("HH",),
                      "VV": ("VV",), "HH": ("HH",)}
_TILE_IN_ID_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|\.|$)")
_BASELINE_IN_ID_RE = re.compile(r"_N(\d{2})(\d{2})_")
_REL_ORBIT_IN_ID_RE = re.compile(r"_R(\d{3})_")
_S1_ABS_ORBIT_RE = re.compile(r"^S1([A-D])_.*_\d{8}T\d{6}_\d{8}T\d{6}_(\d{6})_")


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    token_url: str


PRESETS: dict[str, Preset] = {
    "cdse": Preset(
        "cdse",
        "https://sh.dataspace.copernicus.eu",
        "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token",
    ),
    "sentinel-hub": Preset(
        "sentinel-hub",
        "https://services.sentinel-hub.com",
        "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token",
    ),
}
COLLECTIONS: dict[str, str] = {
    "sentinel-2-l1c": "sentinel-2-l1c",
    "sentinel-2-l2a": "sentinel-2-l2a",
    "sentinel-1-grd": "sentinel-1-grd",
}


def _fmt(value: float) -> str:
    return format(float(value), "g")


# --------------------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------------------


def cql2_filter(query: SearchQuery, *, instrument_mode: str = "IW", polarization: str = "DV") -> str | None:
    """The CQL2 text filter for a query (None when there is nothing to filter on)."""
    parts: list[str] = []
    if query.collection.startswith("sentinel-1"):
        if instrument_mode:
            parts.append(f"sar:instrument_mode = '{instrument_mode}'")
        if polarization:
            parts.append(f"s1:polarization = '{polarization}'")
    else:
        if query.max_cloud_cover is not None:
            parts.append(f"eo:cloud_cover <= {_fmt(query.max_cloud_cover)}")
        if query.min_cloud_cover is not None:
            parts.append(f"eo:cloud_cover >= {_fmt(query.min_cloud_cover)}")
    return " AND ".join(parts) or None


def north_up_bbox(transform: Sequence[float], shape: tuple[int, int]) -> list[float]:
    """[minx, miny, maxx, maxy] of a north-up grid (ValueError for rotated/south-up grids)."""
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    if b != 0.0 or d != 0.0 or a <= 0.0 or e >= 0.0:
        raise ValueError(f"Sentinel Hub windows need a north-up grid (b = d = 0, a > 0, e < 0), "
                         f"not transform {tuple(transform[:6])}")
    rows, cols = int(shape[0]), int(shape[1])
    return [c, f + e * rows, c + a * cols, f]


def evalscript(bands: Sequence[str], *, sar: bool) -> str:
    """A VERSION=3 evalscript returning ``bands`` in order as FLOAT32, NaN where there is no data.

    Sentinel-2 bands in ``DN`` units, Sentinel-1 in ``LINEAR_POWER``; ``dataMask`` (``DN``)
    marks the pixels with data.
    """
    names = ", ".join(f'"{b}"' for b in bands)
    values = ", ".join(f"s.{b}" for b in bands)
    nans = ", ".join("NaN" for _ in bands)
    unit = "LINEAR_POWER" if sar else "DN"
    units = ", ".join([f'"{unit}"'] * len(bands) + ['"DN"'])
    return (
        "//VERSION=3\n"
        "function setup() {\n"
        f"  return {{input: [{{bands: [{names}, \"dataMask\"], units: [{units}]}}],\n"
        f"          output: {{bands: {len(bands)}, sampleType: \"FLOAT32\"}}}};\n"
        "}\n"
        "function evaluatePixel(s) {\n"
        f"  return s.dataMask ? [{values}] : [{nans}];\n"
        "}\n"
    )


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


def s1_relative_orbit(platform: str, absolute_orbit: int) -> int | None:
    """Relative orbit (1-175) of a Sentinel-1A/1B absolute orbit (None for other units)."""
    offset = {"sentinel-1a": 73, "sentinel-1b": 27}.get(platform)
    if offset is None:
        return None
    return (absolute_orbit - offset) % 175 + 1


def item_to_record(item: Mapping[str, Any], collection: str) -> SceneRecord:
    """One Catalog item -> :class:`SceneRecord` (ValueError when unusable)."""
    item_id = item.get("id")
    if not item_id:
        raise ValueError("item without an id")
    item_id = str(item_id)
    props = item.get("properties") or {}
    when = parse_datetime(props.get("datetime"))
    if when is None:
        raise ValueError("no datetime")
    geometry = item.get("geometry")
    if not isinstance(geometry, Mapping) or "type" not in geometry:
        raise ValueError("no footprint geometry")
    platform = normalise_platform(props.get("platform"), item_id)
    if collection.startswith("sentinel-1"):
        code = str(props.get("s1:polarization") or "").upper()
        pols = POLARIZATION_CODES.get(code)
        if pols is None:
            pols = tuple(str(p).upper() for p in props.get("sar:polarizations") or ())
        rel = parse_number(props.get("sat:relative_orbit"))
        if rel is None:
            absolute = parse_number(props.get("sat:absolute_orbit"))
            m = _S1_ABS_ORBIT_RE.match(item_id)
            if absolute is None and m:
                absolute = float(m.group(2))
            if absolute is not None:
                rel = s1_relative_orbit(platform, int(absolute))
        orbit = props.get("sat:orbit_state")
        return SceneRecord(
            id=item_id,
            collection=collection,
            platform=platform,
            datetime=when,
            footprint=dict(geometry),
            relative_orbit=int(rel) if rel is not None else None,
            orbit_state=str(orbit).lower() if orbit else None,
            instrument_mode=props.get("sar:instrument_mode"),
            polarizations=tuple(pols),
            # What process_body asks: backCoeff SIGMA0_ELLIPSOID, orthorectify on COPERNICUS_30,
            # units LINEAR_POWER (change these together with the request).
            sar_units="linear",
            sar_radiometry="sigma0",
            sar_geometry="terrain",
            quantification=1.0,
            source_collection=COLLECTIONS.get(collection, collection),
        )
    m_tile = _TILE_IN_ID_RE.search(item_id)
    m_base = _BASELINE_IN_ID_RE.search(item_id)
    m_rel = _REL_ORBIT_IN_ID_RE.search(item_id)
    baseline = f"{m_base.group(1)}.{m_base.group(2)}" if m_base and m_base.group(1) != "99" else None
    return SceneRecord(
        id=item_id,
        collection=collection,
        platform=platform,
        datetime=when,
        footprint=dict(geometry),
        tile=m_tile.group(1) if m_tile else None,
        cloud_cover=parse_number(props.get("eo:cloud_cover")),
        processing_baseline=baseline,
        radiometric_offset=0.0,  # harmonizeValues: true removes the baseline-04.00 offset
        quantification=S2_QUANTIFICATION,
        relative_orbit=int(m_rel.group(1)) if m_rel else None,
    )


# --------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------


class SentinelHubArchive:
    """Search (Catalog API) and read windows (Process API) from a Sentinel Hub deployment.

    Parameters
    ----------
    preset:
        ``cdse`` (Copernicus Data Space) or ``sentinel-hub``.
    base_url, token_url:
        Override the preset's service and OAuth token URLs.
    client_id_env, client_secret_env:
        Names of the environment variables holding the OAuth client (never the values).
    collections:
        Logical name -> Sentinel Hub collection / data type id, merged over :data:`COLLECTIONS`.
    page_size:
        Catalog ``limit`` (1-100).
    max_pages:
        Bound on Catalog pages followed for one search (more raises :class:`HttpError`).
    time_tolerance_s:
        Half-width of the Process API time range around a record's datetime.
    max_retries, timeout_s, policy:
        Retry/timeout policy of the :class:`HttpClient`.
    env:
        Where the credentials are read (default ``os.environ``), at request time.
    client:
        An :class:`HttpClient` to use.
    """

    name = "sentinelhub"

    def __init__(
        self,
        preset: str = "cdse",
        *,
        base_url: str | None = None,
        token_url: str | None = None,
        client_id_env: str = CLIENT_ID_ENV,
        client_secret_env: str = CLIENT_SECRET_ENV,
        collections: Mapping[str, str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = 1000,
        time_tolerance_s: float = 60.0,
        instrument_mode: str = "IW",
        polarization: str = "DV",
        max_retries: int = 5,
        timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
        client: HttpClient | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"sentinelhub.preset must be one of {sorted(PRESETS)}, not {preset!r}")
        self.preset = PRESETS[preset]
        self.base_url = (base_url or self.preset.base_url).rstrip("/")
        self.token_url = token_url or self.preset.token_url
        self.client_id_env = client_id_env
        self.client_secret_env = client_secret_env
        self.collections: dict[str, str] = {**COLLECTIONS, **dict(collections or {})}
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.max_pages = max(1, int(max_pages))
        self.time_tolerance = dt.timedelta(seconds=float(time_tolerance_s))
        self.instrument_mode = instrument_mode
        self.polarization = polarization
        self.policy = policy or RetryPolicy(max_retries=max_retries, timeout=timeout_s)
        self._env = os.environ if env is None else env
        self._client = client
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self.credential_env = client_id_env

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> "SentinelHubArchive":
        """Build from the whole validated config (its ``sentinelhub`` section) or the section."""
        sec = dict((config.get("sentinelhub") if "archive" in config else config) or {})
        args: dict[str, Any] = {}
        for key, conv in (("preset", str), ("base_url", str), ("token_url", str),
                          ("client_id_env", str), ("client_secret_env", str), ("page_size", int),
                          ("max_pages", int), ("time_tolerance_s", float), ("max_retries", int),
                          ("timeout_s", float)):
            if sec.get(key) is not None:
                args[key] = conv(sec[key])
        if sec.get("collections"):
            args["collections"] = dict(sec["collections"])
        preset = args.pop("preset", "cdse")
        return cls(preset, **{**args, **kwargs})

    def __repr__(self) -> str:
        return f"SentinelHubArchive(preset={self.preset.name!r}, base_url={redact(self.base_url)!r})"

    # -- auth / transport ---------------------------------------------------------------

    def _http(self) -> HttpClient:
        if self._client is None:
            self._client = HttpClient(self.policy, credential_env=self.client_id_env)
        return self._client

    def _client_credentials(self) -> tuple[str, str]:
        cid = (self._env.get(self.client_id_env) or "").strip()
        secret = (self._env.get(self.client_secret_env) or "").strip()
        missing = [n for n, v in ((self.client_id_env, cid), (self.client_secret_env, secret)) if not v]
        if missing:
            raise AuthError(
                f"Sentinel Hub needs an OAuth client: set the environment variable"
                f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} (not set); "
                f"no request was made", url=self.token_url, credential_env=missing[0])
        register_secret(secret)
        return cid, secret

    def _refused(self, status: int | None, url: str) -> AuthError:
        return AuthError(
            f"Sentinel Hub refused the OAuth client (HTTP {status} from {redact(url)}): check the "
            f"environment variables {self.client_id_env} and {self.client_secret_env}",
            status=status, url=url, credential_env=self.client_id_env)

    def token(self, *, refresh: bool = False) -> str:
        """A bearer token (cached until a minute before it expires)."""
        with self._lock:
            if not refresh and self._token and time.monotonic() < self._token_expires:
                return self._token
            cid, secret = self._client_credentials()
            client = self._http()
            try:
                resp = client.post(
                    self.token_url, ok={400},
                    data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
                    headers={"Accept": "application/json"})
            except AuthError as exc:
                raise self._refused(exc.status, self.token_url) from None
            try:
                body = resp.json()
            except ValueError:
                body = {}
            if resp.status_code == 400:
                error = str(body.get("error") or "") if isinstance(body, dict) else ""
                if error in ("invalid_client", "unauthorized_client", "invalid_grant"):
                    raise self._refused(400, self.token_url)
                raise HttpError(f"POST {redact(self.token_url)} returned HTTP 400: "
                                f"{redact(error or resp.text[:200])}", status=400, url=self.token_url)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not token:
                raise HttpError(f"POST {redact(self.token_url)} returned no access_token",
                                url=self.token_url)
            register_secret(str(token))
            expires_in = parse_number(body.get("expires_in")) or 300.0
            self._token = str(token)
            self._token_expires = time.monotonic() + max(0.0, expires_in - 60.0)
            return self._token

    def _post(self, url: str, body: dict[str, Any], accept: str) -> Any:
        """POST JSON with a bearer token; one token refresh on 401."""
        client = self._http()
        for attempt in (0, 1):
            token = self.token(refresh=attempt > 0)
            try:
                return client.post(url, json=body, headers={
                    "Authorization": f"Bearer {token}", "Accept": accept})
            except AuthError as exc:
                if attempt == 0 and exc.status == 401:
                    log.info("Sentinel Hub answered 401 for %s; refreshing the token once", redact(url))
                    continue
                raise self._refused(exc.status, url) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- searching ------------------------------------------------------------------------

    def server_collection(self, logical: str) -> str:
        try:
            return self.collections[logical]
        except KeyError:
            raise ValueError(
                f"collection {logical!r} has no Sentinel Hub id; map it with config key "
                f"sentinelhub.collections") from None

    def search_body(self, query: SearchQuery) -> dict[str, Any]:
        """The Catalog search body of the first page."""
        body: dict[str, Any] = {
            "collections": [self.server_collection(query.collection)],
            "datetime": f"{format_datetime(query.start)}/{format_datetime(query.end)}",
            "limit": self.page_size,
        }
        if query.intersects is not None:
            body["intersects"] = dict(query.intersects)
        elif query.tile is not None:
            bbox = mgrs_tile_bbox(query.tile)
            if bbox is not None:
                body["bbox"] = bbox
        text = cql2_filter(query, instrument_mode=self.instrument_mode, polarization=self.polarization)
        if text:
            body["filter"] = text
            body["filter-lang"] = "cql2-text"
        return body

    def pages(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        """Catalog result pages, following ``context.next``."""
        url = self.base_url + CATALOG_PATH
        body = self.search_body(query)
        seen: set[Any] = set()
        for _ in range(self.max_pages):
            resp = self._post(url, body, "application/geo+json")
            try:
                page = resp.json()
            except ValueError:
                raise HttpError(f"POST {redact(url)} did not return JSON", url=url) from None
            yield page
            nxt = (page.get("context") or {}).get("next") if isinstance(page, dict) else None
            if nxt is None:
                return
            if nxt in seen:
                log.warning("Sentinel Hub Catalog paging token repeats (%s); stopping", nxt)
                return
            seen.add(nxt)
            body = {**body, "next": nxt}
        raise HttpError(f"Sentinel Hub Catalog returned more than {self.max_pages} pages of "
                        f"{self.page_size} items; narrow the query or raise sentinelhub.max_pages",
                        url=url)

    def search_items(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Raw Catalog items for a query (all pages, server-side filters only)."""
        items: list[dict[str, Any]] = []
        n = 0
        for page in self.pages(query):
            n += 1
            items.extend(f for f in page.get("features") or [] if isinstance(f, dict))
        log.info("Sentinel Hub Catalog %s %s: %d items in %d pages", redact(self.base_url),
                 self.server_collection(query.collection), len(items), n)
        return items

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        return normalise_and_filter(
            self.search_items(query), lambda item: item_to_record(item, query.collection),
            query, "Sentinel Hub")

    # -- pixels -----------------------------------------------------------------------------

    def process_body(
        self, record: SceneRecord, bands: Sequence[str], *, epsg: int,
        transform: Sequence[float], shape: tuple[int, int], resampling: str = "bilinear",
    ) -> dict[str, Any]:
        """The Process API request for one window (at most 2500 px a side)."""
        if resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {sorted(RESAMPLING)}, not {resampling!r}")
        sar = record.collection.startswith("sentinel-1")
        mode = RESAMPLING[resampling]
        t0, t1 = record.datetime - self.time_tolerance, record.datetime + self.time_tolerance
        data_filter: dict[str, Any] = {"timeRange": {"from": format_datetime(t0), "to": format_datetime(t1)}}
        processing: dict[str, Any] = {"upsampling": mode, "downsampling": mode}
        if sar:
            data_filter.update(acquisitionMode=self.instrument_mode, polarization=self.polarization,
                               resolution="HIGH")
            processing.update(backCoeff="SIGMA0_ELLIPSOID", orthorectify=True,
                              demInstance="COPERNICUS_30")
        else:
            processing["harmonizeValues"] = True
        return {
            "input": {
                "bounds": {
                    "bbox": north_up_bbox(transform, shape),
                    "properties": {"crs": f"http://www.opengis.net/def/crs/EPSG/0/{int(epsg)}"},
                },
                "data": [{
                    "type": self.server_collection(record.collection),
                    "dataFilter": data_filter,
                    "processing": processing,
                }],
            },
            "output": {
                "width": int(shape[1]),
                "height": int(shape[0]),
                "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}],
            },
            "evalscript": evalscript(list(bands), sar=sar),
        }

    def read_window(
        self,
        record: SceneRecord,
        bands: Sequence[str],
        *,
        epsg: int,
        transform: tuple[float, ...],
        shape: tuple[int, int],
        resampling: str = "bilinear",
    ) -> np.ndarray:
        """Pixels of ``bands`` on the target grid, shape (len(bands), rows, cols).

        float32 in the record's units, NaN = no data. Sentinel-2: DN, reflectance =
        (DN + record.radiometric_offset) / record.quantification. Sentinel-1: linear sigma0.
        """
        bands = list(bands)
        if not bands:
            raise ValueError("read_window needs at least one band")
        rows, cols = int(shape[0]), int(shape[1])
        north_up_bbox(transform, (rows, cols))  # fail before any request
        out = np.zeros((len(bands), rows, cols), dtype=np.float32)
        url = self.base_url + PROCESS_PATH
        a, b, c, d, e, f = (float(v) for v in transform[:6])
        for r0 in range(0, rows, MAX_OUTPUT_SIDE):
            for c0 in range(0, cols, MAX_OUTPUT_SIDE):
                nr, nc = min(MAX_OUTPUT_SIDE, rows - r0), min(MAX_OUTPUT_SIDE, cols - c0)
                sub = (a, b, c + a * c0, d, e, f + e * r0)
                body = self.process_body(record, bands, epsg=epsg, transform=sub, shape=(nr, nc),
                                         resampling=resampling)
                resp = self._post(url, body, "image/tiff")
                out[:, r0:r0 + nr, c0:c0 + nc] = _decode_tiff(resp.content, len(bands), (nr, nc),
                                                              sub, epsg, record.id)
        return out


def _decode_tiff(content: bytes, n_bands: int, shape: tuple[int, int], transform: Sequence[float],
                 epsg: int, scene: str) -> np.ndarray:
    """The TIFF's pixels, checked against the requested grid (when the TIFF is georeferenced)."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with MemoryFile(content) as mem, mem.open() as src:
                arr = src.read()
                crs, got = src.crs, tuple(src.transform)[:6]
    except Exception as exc:  # noqa: BLE001 - not a TIFF (an error page?)
        raise HttpError(f"Sentinel Hub Process API returned no readable TIFF for {scene}: "
                        f"{type(exc).__name__}") from None
    if arr.shape != (n_bands, *shape):
        raise HttpError(f"Sentinel Hub returned pixels of shape {arr.shape} for {scene}, "
                        f"expected {(n_bands, *shape)}")
    if crs is not None:
        tol = 1e-6 * max(abs(float(transform[0])), abs(float(transform[4])))
        if crs.to_epsg() != int(epsg) or any(abs(g - float(w)) > tol for g, w in zip(got, tuple(transform)[:6], strict=True)):
            raise HttpError(f"Sentinel Hub returned {scene} on another grid ({crs}, {got}) than "
                            f"requested (EPSG:{epsg}, {tuple(transform)})")
    return arr


__all__ = [
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_ENV",
    "COLLECTIONS",
    "PRESETS",
    "SentinelHubArchive",
    "cql2_filter",
    "evalscript",
    "item_to_record",
    "north_up_bbox",
    "s1_relative_orbit",
]
