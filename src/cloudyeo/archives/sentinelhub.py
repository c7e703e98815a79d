"""Sentinel-1/2 scenes from Sentinel Hub through the ``sentinelhub`` package: Catalog API search
and Process API windows.

The Copernicus Data Space Ecosystem (CDSE) runs the Sentinel Hub APIs; ``preset: cdse`` points
at it (``https://sh.dataspace.copernicus.eu``, token from the CDSE identity server);
``preset: sentinel-hub`` at the commercial deployment. ``base_url`` / ``token_url`` override
either (tests use loopback).

What the library does here
--------------------------
* :class:`sentinelhub.SHConfig` carries the base URL, token URL, OAuth client and transport
  settings. It is always built with ``use_defaults=True``, so the library neither reads nor
  writes its own ``~/.config/sentinelhub/config.toml`` (or ``$XDG_CONFIG_HOME``) and ignores
  ``SH_PROFILE``; the client id and secret come only from the environment variables named by
  ``client_id_env`` / ``client_secret_env`` (default ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET``;
  the config only names the variables).
* :class:`sentinelhub.SentinelHubSession` holds the OAuth token, adds it to every request and
  renews it two minutes before it expires.
* :class:`sentinelhub.SentinelHubCatalog` builds the Catalog search
  (``POST <base>/api/v1/catalog/1.0.0/search``); its ``CatalogSearchIterator`` follows
  ``context.next``.
* :class:`sentinelhub.SentinelHubRequest` builds the Process API request
  (``POST <base>/api/v1/process``) and :class:`sentinelhub.SentinelHubDownloadClient` runs it:
  HTTP 429 waits for the service's ``Retry-After`` (milliseconds, as Sentinel Hub sends it)
  through the client's rate limiter, 5xx / connection errors / timeouts are retried with
  exponential backoff (``download_sleep_time`` x 3 per attempt); the tiles of a large window
  are downloaded in parallel threads.

What this module adds, and why
------------------------------
* **Collections.** The library's ``DataCollection`` presets pin a ``service_url``
  (``services.sentinel-hub.com``, or CDSE for the ``*_CDSE`` variants) that overrides
  ``SHConfig.sh_base_url`` for Process requests, and new definitions are registered in a
  process-wide enum. The ``input.data`` entries are therefore plain dicts naming the
  collection id from ``sentinelhub.collections``, so the configured deployment (or loopback)
  is the one asked.
* **Sentinel-1 conditions** (:data:`S1_CONDITIONS`): one definition gives both the Catalog CQL2
  filter (``sar:instrument_mode = 'IW' AND s1:polarization = 'DV' AND s1:resolution = 'HIGH'``)
  and the Process ``dataFilter`` (``acquisitionMode``, ``polarization``, ``resolution``), so a
  searched scene is the scene whose pixels are requested. Items the server returns against
  them are dropped client-side.
* **401 renewal.** The session renews a token only by its expiry time; a token the service
  revokes earlier (HTTP 401) makes the library fail. The adapter then builds a new session
  once and repeats the request; a second 401 (or 403) is :class:`cloudyeo.http.AuthError`.
* **Errors.** Missing variables, a refused client (token endpoint ``invalid_client`` /
  ``unauthorized_client`` / ``invalid_grant`` / 401) or a second 401 raise
  :class:`~cloudyeo.http.AuthError` naming ``SH_CLIENT_ID`` (the configured variable); other
  failures :class:`~cloudyeo.http.HttpError` with the last HTTP status, never chained to the
  library's exception.
* **Paging guard.** The library's iterator follows ``next`` for as long as it changes and has
  no bound; the adapter stops on a repeated token and refuses more than ``max_pages`` pages.
* **The token request.** The library's session fetches tokens through ``requests_oauthlib``
  without a timeout (a stalled identity server hangs the job) and logs the request body
  (client secret) and the response (access token) at DEBUG level. The adapter's session
  subclass keeps the library's renewal but fetches the token itself
  (``POST <token_url>``, ``grant_type=client_credentials``) with
  :class:`cloudyeo.http.HttpClient`: ``timeout_s``, ``max_retries`` (429/5xx, connection
  errors, ``Retry-After``), every retry logged redacted. The secret and each token are
  registered with :func:`cloudyeo.http.register_secret`; the library's loggers are redacted.
  Both URLs must be https (plain http only on loopback, for test servers).
* **Sessions per archive.** ``SentinelHubDownloadClient`` caches sessions process-wide by
  (client id, base URL); the adapter's client subclass returns the archive's own session
  instead (the cache stays empty).
* **Retries logged.** Each 429/5xx answer of the Catalog/Process API is logged (redacted) at
  INFO by the adapter's client.

The subclasses override the library's hooks ``SentinelHubSession._collect_new_token``,
``SentinelHubDownloadClient.get_session`` / ``_do_download`` and
``CatalogSearchIterator._fetch_features`` (sentinelhub 3.12; pyproject pins ``<4``, and the
loopback tests exercise each).

Library behaviour that differs from :class:`cloudyeo.http.HttpClient`: no jitter and no bound
on the total sleep (the backoff triples from ``download_sleep_time`` = the policy's
``backoff_base``: 0.5 + 1.5 + 4.5 + 13.5 + 40.5 s for five retries); ``Retry-After`` is
honoured on 429 only (in milliseconds; a 429 without it waits the policy's ``backoff_max``),
not on 503; a new HTTP connection per request (``requests.request``, no pooled session).

Search body (STAC API item search)::

    {"collections": ["sentinel-2-l2a"],
     "datetime": "<start>Z/<end>Z",                      # both ends inclusive
     "intersects": <query.intersects>,                   # or "bbox" around query.tile
     "filter": "eo:cloud_cover <= 30 AND eo:cloud_cover >= 5",
     "filter-lang": "cql2-text",
     "limit": <page_size>}

The response's ``context.next`` is sent back as ``"next"`` in the same body until it is
absent. Tiles are not queryable on Sentinel Hub, so a tile query sends a box around the tile
and the tile is matched client-side; every filter is re-applied client-side
(:func:`~cloudyeo.archives.base.apply_filters`).

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

Windows: ``input.bounds`` = the target box in the target EPSG
(``http://www.opengis.net/def/crs/EPSG/0/<epsg>``), ``output`` = width x height, one
``image/tiff`` response, ``dataFilter.timeRange`` = the record's datetime +-
``time_tolerance_s`` (one acquisition; adjacent tiles of the same datatake mosaic seamlessly),
``upsampling``/``downsampling`` = the resampling, and an evalscript returning the bands in
order as ``FLOAT32`` (S2: DN; S1: linear sigma0), NaN where ``dataMask`` is 0 (no data).
Only north-up grids can be expressed as a box; larger windows than 2500 px a side are split.
The returned TIFF's grid is checked against the requested one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from cloudyeo.archives.base import SceneRecord, SearchQuery, normalise_and_filter
from cloudyeo.archives.reading import block_transform, grid_blocks, window_request
from cloudyeo.archives.stac_items import (
    feature_basics,
    format_datetime,
    mgrs_tile_bbox,
    normalise_platform,
    parse_number,
)
from cloudyeo.http import (
    AuthError,
    HttpClient,
    HttpError,
    RetryPolicy,
    install_log_redaction,
    redact,
    register_secret,
)

log = logging.getLogger(__name__)

CLIENT_ID_ENV = "SH_CLIENT_ID"
CLIENT_SECRET_ENV = "SH_CLIENT_SECRET"
MAX_PAGE_SIZE = 100  # the Catalog API's largest limit
MAX_OUTPUT_SIDE = 2500  # Process API output limit (px per side)
MAX_PARALLEL_REQUESTS = 4  # Process requests of one split window in flight at once
TOKEN_RENEW_BEFORE_S = 120.0  # a token is renewed this long before it expires
DEFAULT_TOKEN_LIFETIME_S = 300.0  # when the token response has no expires_in
S2_QUANTIFICATION = 10000.0
RESAMPLING = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC"}
POLARIZATION_CODES = {"DV": ("VV", "VH"), "DH": ("HH", "HV"), "SV": ("VV",), "SH": ("HH",),
                      "VV": ("VV",), "HH": ("HH",)}
# Sentinel-1: (Catalog property, Process API dataFilter key) of each condition a scene must meet.
S1_CONDITIONS: tuple[tuple[str, str], ...] = (
    ("sar:instrument_mode", "acquisitionMode"),
    ("s1:polarization", "polarization"),
    ("s1:resolution", "resolution"),
)
_OAUTH_REFUSALS = frozenset({"invalid_client", "unauthorized_client", "invalid_grant"})
_TILE_IN_ID_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|\.|$)")
_BASELINE_IN_ID_RE = re.compile(r"_N(\d{2})(\d{2})_")
_REL_ORBIT_IN_ID_RE = re.compile(r"_R(\d{3})_")
_S1_ABS_ORBIT_RE = re.compile(r"^S1([A-D])_.*_\d{8}T\d{6}_\d{8}T\d{6}_(\d{6})_")
_END = object()


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


def s1_condition_values(instrument_mode: str = "IW", polarization: str = "DV",
                        resolution: str = "HIGH") -> tuple[str, ...]:
    """The values of :data:`S1_CONDITIONS`, in order (empty strings leave a condition out)."""
    return (instrument_mode, polarization, resolution)


def cql2_filter(query: SearchQuery, *, instrument_mode: str = "IW", polarization: str = "DV",
                resolution: str = "HIGH") -> str | None:
    """The CQL2 text filter for a query (None when there is nothing to filter on)."""
    parts: list[str] = []
    if query.collection.startswith("sentinel-1"):
        values = s1_condition_values(instrument_mode, polarization, resolution)
        parts.extend(f"{prop} = '{value}'" for (prop, _), value in zip(S1_CONDITIONS, values, strict=True)
                     if value)
    else:
        if query.max_cloud_cover is not None:
            parts.append(f"eo:cloud_cover <= {_fmt(query.max_cloud_cover)}")
        if query.min_cloud_cover is not None:
            parts.append(f"eo:cloud_cover >= {_fmt(query.min_cloud_cover)}")
    return " AND ".join(parts) or None


def s1_process_filter(*, instrument_mode: str = "IW", polarization: str = "DV",
                      resolution: str = "HIGH") -> dict[str, str]:
    """The Process API ``dataFilter`` entries matching :func:`cql2_filter` for Sentinel-1."""
    values = s1_condition_values(instrument_mode, polarization, resolution)
    return {key: value for (_, key), value in zip(S1_CONDITIONS, values, strict=True) if value}


def s1_item_mismatch(item: Mapping[str, Any], *, instrument_mode: str = "IW", polarization: str = "DV",
                     resolution: str = "HIGH") -> str | None:
    """Which Sentinel-1 condition a Catalog item declares a different value for (None: all hold).

    A property the item does not carry is not held against it (the server filtered on it).
    """
    props = item.get("properties") or {}
    values = s1_condition_values(instrument_mode, polarization, resolution)
    for (prop, _), want in zip(S1_CONDITIONS, values, strict=True):
        got = props.get(prop)
        if want and got is not None and str(got).upper() != want.upper():
            return f"{prop} = {got!r}, not {want!r}"
    return None


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
# the library (imported on first use: ``import sentinelhub`` costs ~0.3 s, which every
# process importing cloudyeo.archives would pay otherwise)
# --------------------------------------------------------------------------------------

_LIBRARY_LOGGERS = ("sentinelhub", "sentinelhub.download.client", "sentinelhub.download.handlers",
                    "sentinelhub.download.sentinelhub_client", "sentinelhub.download.session")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@functools.cache
def _lib() -> SimpleNamespace:
    """The ``sentinelhub`` classes used here, with the adapter's three subclasses."""
    import requests
    import sentinelhub as sh
    from sentinelhub.api.catalog import CatalogSearchIterator
    from sentinelhub.download.sentinelhub_client import SentinelHubDownloadClient
    from sentinelhub.download.session import SentinelHubSession
    from sentinelhub.exceptions import (
        DownloadFailedException,
        MissingDataInRequestException,
        OutOfRequestsException,
    )

    install_log_redaction(_LIBRARY_LOGGERS)

    class Session(SentinelHubSession):
        """The library's session (renews the token ``TOKEN_RENEW_BEFORE_S`` before it expires);
        each token is fetched by :meth:`SentinelHubArchive.fetch_token`."""

        def __init__(self, archive: SentinelHubArchive, config: sh.SHConfig):
            self._archive = archive
            super().__init__(config=config, refresh_before_expiry=TOKEN_RENEW_BEFORE_S)

        def _collect_new_token(self) -> dict[str, Any]:
            return self._archive.fetch_token(self.config.sh_client_id, self.config.sh_client_secret)

    class Client(SentinelHubDownloadClient):
        """The library's rate-limited, retrying client; the session is the archive's current
        one (renewed after a 401), and every 429/5xx answer is logged."""

        def __init__(self, archive: SentinelHubArchive):
            super().__init__(config=archive.sh_config(), default_retry_time=archive.policy.backoff_max)
            self._archive = archive

        def get_session(self) -> SentinelHubSession:
            return self._archive.session()

        def _do_download(self, request: Any) -> requests.Response:
            response = super()._do_download(request)
            status = response.status_code
            if status == 429:
                after = response.headers.get("Retry-After")
                wait = f"{after} ms (Retry-After)" if after else f"{self.default_retry_time:g} ms (no Retry-After)"
                log.info("Sentinel Hub answered HTTP 429 to %s %s: waiting %s and retrying, at most %d "
                         "attempts", request.request_type.value, redact(request.url), wait,
                         self.config.max_retries)
            elif status >= 500:
                log.info("Sentinel Hub answered HTTP %d to %s %s: retrying with backoff, at most %d "
                         "attempts", status, request.request_type.value, redact(request.url),
                         self.config.max_download_attempts)
            return response

    class Pages(CatalogSearchIterator):
        """The library's Catalog iterator, stopped on a repeated ``next`` token and bounded."""

        def __init__(self, client: Any, url: str, params: dict[str, Any], *, max_pages: int):
            super().__init__(client, url, params)
            self.max_pages = max_pages
            self.pages = 0
            self._seen: set[str] = set()

        def _fetch_features(self) -> list[dict[str, Any]]:
            if self.pages >= self.max_pages:
                raise HttpError(f"Sentinel Hub Catalog returned more than {self.max_pages} pages of "
                                f"{self.params.get('limit')} items; narrow the query or raise "
                                f"sentinelhub.max_pages", url=self.url)
            features = list(super()._fetch_features())
            self.pages += 1
            if self.next is not None:
                key = json.dumps(self.next, sort_keys=True)
                if key in self._seen:
                    log.warning("Sentinel Hub Catalog paging token repeats (%s); stopping", key)
                    self.finished = True
                self._seen.add(key)
            return features

    return SimpleNamespace(
        sh=sh, Client=Client, Pages=Pages, Session=Session,
        DownloadFailed=DownloadFailedException, OutOfRequests=OutOfRequestsException,
        MissingData=MissingDataInRequestException, RequestException=requests.RequestException,
    )


def _secure_url(url: str, key: str) -> str:
    """``url`` when it is https (or http on a loopback host); ValueError naming ``key`` otherwise:
    the client secret and the bearer token are never sent in clear text."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return url
    raise ValueError(f"{key} must be an https URL (plain http only on a loopback test server), "
                     f"not {redact(url)!r}")


def _status(exc: BaseException) -> int | None:
    """The HTTP status behind a library exception (None when no response came)."""
    resp = getattr(exc, "response", None)  # requests' own exceptions
    if resp is None:  # the library's, wrapping one
        resp = getattr(getattr(exc, "request_exception", None), "response", None)
    return getattr(resp, "status_code", None)


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


def s1_relative_orbit(platform: str, absolute_orbit: int) -> int | None:
    """Relative orbit (1-175) of a Sentinel-1A/1B absolute orbit (None for other units)."""
    offset = {"sentinel-1a": 73, "sentinel-1b": 27}.get(platform)
    if offset is None:
        return None
    return (absolute_orbit - offset) % 175 + 1


def item_to_record(item: Mapping[str, Any], collection: str, server_collection: str | None = None) -> SceneRecord:
    """One Catalog item -> :class:`SceneRecord` (ValueError when unusable).

    ``server_collection``: the Sentinel Hub collection id searched (default: :data:`COLLECTIONS`).
    """
    item_id, props, when, geometry = feature_basics(item, "datetime", "item")
    platform = normalise_platform(props.get("platform"), item_id)
    basics: dict[str, Any] = {"id": item_id, "collection": collection, "platform": platform, "datetime": when,
              "footprint": dict(geometry)}
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
            **basics,
            relative_orbit=int(rel) if rel is not None else None,
            orbit_state=str(orbit).lower() if orbit else None,
            instrument_mode=props.get("sar:instrument_mode"),
            polarizations=tuple(pols),
            # What the Process request asks: backCoeff SIGMA0_ELLIPSOID, orthorectify on
            # COPERNICUS_30, units LINEAR_POWER (change these together with the request).
            sar_units="linear",
            sar_radiometry="sigma0",
            sar_geometry="terrain",
            quantification=1.0,
            source_collection=server_collection or COLLECTIONS.get(collection, collection),
        )
    m_tile = _TILE_IN_ID_RE.search(item_id)
    m_base = _BASELINE_IN_ID_RE.search(item_id)
    m_rel = _REL_ORBIT_IN_ID_RE.search(item_id)
    baseline = f"{m_base.group(1)}.{m_base.group(2)}" if m_base and m_base.group(1) != "99" else None
    return SceneRecord(
        **basics,
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
    instrument_mode, polarization, resolution:
        The Sentinel-1 conditions (:data:`S1_CONDITIONS`) of both search and Process requests.
    max_retries, timeout_s, policy:
        Retries after the first attempt (429 and 5xx each), the request timeout, and the
        backoff (``policy.backoff_base``: first 5xx sleep; ``policy.backoff_max``: the wait
        after a 429 without ``Retry-After``).
    env:
        Where the credentials are read (default ``os.environ``), when a session is opened.
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
        resolution: str = "HIGH",
        max_retries: int = 5,
        timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
    ):
        if preset not in PRESETS:
            raise ValueError(f"sentinelhub.preset must be one of {sorted(PRESETS)}, not {preset!r}")
        self.preset = PRESETS[preset]
        self.base_url = _secure_url((base_url or self.preset.base_url).rstrip("/"), "sentinelhub.base_url")
        self.token_url = _secure_url(token_url or self.preset.token_url, "sentinelhub.token_url")
        self.client_id_env = client_id_env
        self.client_secret_env = client_secret_env
        self.collections: dict[str, str] = {**COLLECTIONS, **dict(collections or {})}
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.max_pages = max(1, int(max_pages))
        self.time_tolerance = dt.timedelta(seconds=float(time_tolerance_s))
        self.instrument_mode = instrument_mode
        self.polarization = polarization
        self.resolution = resolution
        self.policy = policy or RetryPolicy(max_retries=max_retries, timeout=timeout_s)
        self._env = os.environ if env is None else env
        self._session: Any = None
        self._token_client: HttpClient | None = None
        self._lock = threading.Lock()
        self.credential_env = client_id_env

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> SentinelHubArchive:
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

    # -- library configuration, session, errors -------------------------------------------

    def sh_config(self, credentials: tuple[str, str] | None = None) -> Any:
        """The library's :class:`sentinelhub.SHConfig` for this archive.

        ``use_defaults=True``: nothing is read from (or written to) the library's config file
        or its environment variables; the OAuth client is set only when ``credentials`` are
        given (for the session).
        """
        cid, secret = credentials or ("", "")
        attempts = self.policy.max_retries + 1
        return _lib().sh.SHConfig(
            use_defaults=True,
            sh_client_id=cid,
            sh_client_secret=secret,
            sh_base_url=self.base_url,
            sh_token_url=self.token_url,
            max_download_attempts=attempts,  # 5xx, connection errors, timeouts
            max_retries=attempts,  # 429 answers
            download_sleep_time=self.policy.backoff_base,
            download_timeout_seconds=self.policy.timeout,
            number_of_download_processes=1,
        )

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

    def _error(self, exc: BaseException, url: str, what: str) -> HttpError:
        """Our error for a library exception (never chained: its text may quote a request)."""
        status = _status(exc)
        if status in (401, 403):
            return self._refused(status, url)
        if isinstance(exc, _lib().OutOfRequests):
            return HttpError(f"Sentinel Hub {what}: {redact(url)} kept answering HTTP 429 (rate limit) "
                             f"for {self.policy.max_retries + 1} attempts", status=429, url=url)
        detail = " ".join(str(exc).split())
        return HttpError(f"Sentinel Hub {what} failed{f' with HTTP {status}' if status else ''}: {detail}",
                         status=status, url=url)

    def _http(self) -> HttpClient:
        with self._lock:
            if self._token_client is None:
                self._token_client = HttpClient(self.policy, credential_env=self.client_id_env)
            return self._token_client

    def fetch_token(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """A new OAuth token (client credentials grant) as the library's session keeps it:
        ``access_token``, ``expires_in`` and ``expires_at`` (epoch seconds)."""
        register_secret(client_secret)
        try:
            resp = self._http().post(
                self.token_url, ok={400},
                data={"grant_type": "client_credentials", "client_id": client_id,
                      "client_secret": client_secret},
                headers={"Accept": "application/json"})
        except AuthError as exc:
            raise self._refused(exc.status, self.token_url) from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if resp.status_code == 400:
            error = str(body.get("error") or "")
            if error in _OAUTH_REFUSALS:
                raise self._refused(400, self.token_url)
            raise HttpError(f"POST {redact(self.token_url)} returned HTTP 400: "
                            f"{redact(error or resp.text[:200])}", status=400, url=self.token_url)
        token = body.get("access_token")
        if not token:
            raise HttpError(f"POST {redact(self.token_url)} returned no access_token", url=self.token_url)
        register_secret(str(token))
        expires_in = parse_number(body.get("expires_in")) or DEFAULT_TOKEN_LIFETIME_S
        return {"access_token": str(token), "token_type": str(body.get("token_type") or "Bearer"),
                "expires_in": expires_in, "expires_at": time.time() + expires_in}

    def session(self, *, renew: bool = False) -> Any:
        """The library's :class:`sentinelhub.SentinelHubSession` (token renewed before it
        expires); ``renew`` opens a new one. Raises :class:`AuthError` before any request when
        the credential variables are not set."""
        credentials = self._client_credentials()
        with self._lock:
            session = None if renew else self._session
        if session is None:
            session = _lib().Session(self, self.sh_config(credentials))  # fetches a token
            with self._lock:
                self._session = session
        _ = session.token  # the library renews the token here when it is about to expire
        return session

    def _call(self, fn: Callable[[], Any], url: str, what: str) -> Any:
        """Run one library call (``what``: for errors); after a 401 open a new session once and
        run it again."""
        lib = _lib()
        self.session()  # credentials checked (and a token fetched) before the request
        for attempt in (0, 1):
            try:
                return fn()
            except (lib.DownloadFailed, lib.RequestException) as exc:
                if attempt == 0 and _status(exc) == 401:
                    log.info("Sentinel Hub answered 401 for %s; opening a new session once", redact(url))
                    self.session(renew=True)
                    continue
                raise self._error(exc, url, what) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- searching ------------------------------------------------------------------------

    def server_collection(self, logical: str) -> str:
        try:
            return self.collections[logical]
        except KeyError:
            raise ValueError(
                f"collection {logical!r} has no Sentinel Hub id; map it with config key "
                f"sentinelhub.collections") from None

    def _s1(self) -> dict[str, str]:
        return {"instrument_mode": self.instrument_mode, "polarization": self.polarization,
                "resolution": self.resolution}

    def _catalog_search(self, query: SearchQuery) -> Any:
        """The library's (lazy, unsent) ``CatalogSearchIterator`` for the first page."""
        lib = _lib()
        kwargs: dict[str, Any] = {"time": (query.start, query.end), "limit": self.page_size}
        if query.intersects is not None:
            from shapely.geometry import shape

            kwargs["geometry"] = lib.sh.Geometry(shape(query.intersects), lib.sh.CRS.WGS84)
        elif query.tile is not None:
            bbox = mgrs_tile_bbox(query.tile)
            if bbox is not None:
                kwargs["bbox"] = lib.sh.BBox(bbox, crs=lib.sh.CRS.WGS84)
        text = cql2_filter(query, **self._s1())
        if text:
            kwargs["filter"] = text
            kwargs["filter_lang"] = "cql2-text"
        catalog = lib.sh.SentinelHubCatalog(config=self.sh_config())
        return catalog.search(self.server_collection(query.collection), **kwargs)

    def search_body(self, query: SearchQuery) -> dict[str, Any]:
        """The Catalog search body of the first page, as sent (JSON)."""
        return json.loads(json.dumps(self._catalog_search(query).params))

    def search_items(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Raw Catalog items for a query (all pages, server-side filters only)."""
        lib = _lib()
        first = self._catalog_search(query)
        pages = lib.Pages(lib.Client(self), first.url, dict(first.params), max_pages=self.max_pages)

        def next_item() -> Any:
            try:
                return next(pages, _END)
            except (ValueError, KeyError, TypeError, lib.MissingData) as exc:  # not a Catalog page
                raise HttpError(f"Sentinel Hub Catalog {redact(first.url)} did not return a page of "
                                f"items (JSON with features and context): {type(exc).__name__}",
                                url=first.url) from None

        items: list[dict[str, Any]] = []
        what = f"Catalog search of {self.server_collection(query.collection)}"
        while (item := self._call(next_item, first.url, what)) is not _END:
            if isinstance(item, dict):
                items.append(item)
        log.info("Sentinel Hub Catalog %s %s: %d items in %d pages", redact(self.base_url),
                 self.server_collection(query.collection), len(items), pages.pages)
        return items

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        items = self.search_items(query)
        if query.collection.startswith("sentinel-1"):
            kept = []
            for item in items:
                why = s1_item_mismatch(item, **self._s1())
                if why is None:
                    kept.append(item)
                else:
                    log.info("Sentinel Hub item %s dropped: %s", redact(item.get("id")), why)
            items = kept
        server = self.server_collection(query.collection)
        return normalise_and_filter(
            items, lambda item: item_to_record(item, query.collection, server), query, "Sentinel Hub")

    # -- pixels -----------------------------------------------------------------------------

    def process_request(
        self, record: SceneRecord, bands: Sequence[str], *, epsg: int,
        transform: Sequence[float], shape: tuple[int, int], resampling: str = "bilinear",
    ) -> Any:
        """The library's :class:`sentinelhub.SentinelHubRequest` for one window (<= 2500 px a side)."""
        if resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {sorted(RESAMPLING)}, not {resampling!r}")
        lib = _lib()
        sar = record.collection.startswith("sentinel-1")
        mode = RESAMPLING[resampling]
        t0, t1 = record.datetime - self.time_tolerance, record.datetime + self.time_tolerance
        data_filter: dict[str, Any] = {"timeRange": {"from": format_datetime(t0), "to": format_datetime(t1)}}
        processing: dict[str, Any] = {"upsampling": mode, "downsampling": mode}
        if sar:
            data_filter.update(s1_process_filter(**self._s1()))
            processing.update(backCoeff="SIGMA0_ELLIPSOID", orthorectify=True,
                              demInstance="COPERNICUS_30")
        else:
            processing["harmonizeValues"] = True
        rows, cols = int(shape[0]), int(shape[1])
        return lib.sh.SentinelHubRequest(
            evalscript=evalscript(list(bands), sar=sar),
            # a plain dict: a DataCollection would pin its own service URL (see module doc)
            input_data=[{"type": self.server_collection(record.collection),
                         "dataFilter": data_filter, "processing": processing}],
            responses=[lib.sh.SentinelHubRequest.output_response("default", lib.sh.MimeType.TIFF)],
            bbox=lib.sh.BBox(north_up_bbox(transform, (rows, cols)), crs=lib.sh.CRS(int(epsg))),
            size=(cols, rows),
            config=self.sh_config(),
        )

    def process_body(
        self, record: SceneRecord, bands: Sequence[str], *, epsg: int,
        transform: Sequence[float], shape: tuple[int, int], resampling: str = "bilinear",
    ) -> dict[str, Any]:
        """The Process API request body for one window (at most 2500 px a side)."""
        return self.process_request(record, bands, epsg=epsg, transform=transform, shape=shape,
                                    resampling=resampling).payload

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
        """:meth:`~cloudyeo.archives.reading.WindowReader.read_window` (Sentinel-1 as linear sigma0)."""
        bands, rows, cols = window_request(bands, shape)
        north_up_bbox(transform, (rows, cols))  # fail before any request
        tiles = []
        for r0, c0, nr, nc in grid_blocks((rows, cols), MAX_OUTPUT_SIDE, MAX_OUTPUT_SIDE):
            sub = block_transform(transform, r0, c0)
            req = self.process_request(record, bands, epsg=epsg, transform=sub, shape=(nr, nc),
                                       resampling=resampling)
            tiles.append((r0, c0, nr, nc, sub, req.download_list[0]))
        url = tiles[0][5].url
        lib = _lib()

        def download() -> list[Any]:
            return lib.Client(self).download([t[5] for t in tiles], decode_data=False,
                                             max_threads=min(len(tiles), MAX_PARALLEL_REQUESTS))

        responses = self._call(download, url, f"Process API window of {record.id} ({', '.join(bands)})")
        out = np.empty((len(bands), rows, cols), dtype=np.float32)
        for (r0, c0, nr, nc, sub, _), resp in zip(tiles, responses, strict=True):
            out[:, r0:r0 + nr, c0:c0 + nc] = _decode_tiff(resp.content, len(bands), (nr, nc), sub, epsg,
                                                          record.id)
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
    "S1_CONDITIONS",
    "SentinelHubArchive",
    "cql2_filter",
    "evalscript",
    "item_to_record",
    "north_up_bbox",
    "s1_item_mismatch",
    "s1_process_filter",
    "s1_relative_orbit",
]
