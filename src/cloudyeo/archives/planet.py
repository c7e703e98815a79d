"""PlanetScope scenes from the Planet Data API v1 (``quick-search``), normalised to records.

Request (one logical search)::

    POST <url>/quick-search?_page_size=<n>&_sort=acquired%20asc
    {"item_types": ["PSScene"],
     "filter": {"type": "AndFilter", "config": [
        {"type": "DateRangeFilter", "field_name": "acquired",
         "config": {"gte": "<start>Z", "lte": "<end>Z"}},
        {"type": "GeometryFilter", "field_name": "geometry", "config": <query.intersects>},
        {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"gte": 0.05, "lte": 0.3}},
        {"type": "RangeFilter", "field_name": "clear_percent", "config": {"gte": 80}},
        {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]}]}}

The geometry, cloud, clear and quality filters are only sent when asked for. Planet's
``cloud_cover`` is a fraction (0-1); :class:`SearchQuery` and :class:`SceneRecord` use percent.

Response: a GeoJSON ``FeatureCollection`` with ``features`` and ``_links`` (``_self``,
``_next``). ``_links._next`` (a GET URL, absent or null on the last page) is followed until
exhausted, at most ``max_pages`` pages (more raises :class:`PlanetSearchTruncated` rather than
returning a silently incomplete list). A ``_next`` link on another origin than ``url`` is
refused, since following it would send the API key there.

Transport: :class:`cloudyeo.http.HttpClient` (429/5xx, connection errors and timeouts retried
with full-jitter backoff, ``Retry-After`` honoured, total sleep bounded, every retry logged
redacted). Planet rate-limits the search endpoints and answers 429 when a client is too fast.

Auth: the API key is read from the environment variable ``PL_API_KEY`` when searching and sent
as HTTP basic auth (key as user name, empty password; ``auth="basic"``, the default) or as
``Authorization: api-key <key>`` (``auth="api-key"``). It is registered with
:func:`cloudyeo.http.register_secret`, so it never appears in logs or exception messages, and it
is never written into records. A missing key raises :class:`cloudyeo.http.AuthError` before
any request is made; HTTP 401/403 raise :class:`AuthError` naming ``PL_API_KEY``.

Records (one per ``PSScene`` feature):

==================  ========================================================================
record field        from
==================  ========================================================================
id                  ``id``
collection          ``"planetscope"`` (the logical name; queries must use it)
platform            ``"planetscope-" + instrument.lower()`` (``PS2``, ``PS2.SD``, ``PSB.SD``),
                    else ``"planetscope-" + satellite_id``, else ``"planetscope"``
datetime            ``acquired`` (UTC)
footprint           ``geometry``
tile                None (PlanetScope scenes are not gridded; search with ``intersects``)
cloud_cover         ``100 * cloud_cover``; when missing ``100 - clear_percent`` (an upper
                    bound: it also counts haze, shadow and snow)
shadow_percent      ``shadow_percent``
quantification      10000 for surface-reflectance products (``*_sr``: reflectance * 10000);
                    100 for the radiance products (``ortho_analytic_4b`` ...: radiance * 100,
                    W m-2 sr-1 um-1; TOA reflectance needs the coefficients in the XML)
assets              ``{"assets_url": PlanetAssetInfo(href=_links.assets, epsg=epsg_code,
                    gsd=pixel_resolution, item_type, asset_type, permitted)}``
==================  ========================================================================

Downloading is a later step: Planet assets must be *activated* (``POST`` to the asset's
``_links.activate``, then poll until ``status == "active"``) before their ``location`` can be
fetched, so records only carry the item's assets URL (which itself holds no credential) and
the asset type to activate. Filters are always re-applied client-side
(:func:`cloudyeo.archives.base.apply_filters`, plus ``min_clear_percent`` and
``quality_category``), because a search must never return more than was asked for.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Mapping
from urllib.parse import quote, urlencode, urlsplit

from cloudyeo.archives.base import AssetInfo, SceneRecord, SearchQuery, normalise_and_filter
from cloudyeo.archives.stac_items import parse_datetime
from cloudyeo.http import AuthError, HttpClient, HttpError, RetryPolicy, redact, register_secret

log = logging.getLogger(__name__)

PLANET_DATA_URL = "https://api.planet.com/data/v1"
PL_API_KEY_ENV = "PL_API_KEY"
COLLECTION = "planetscope"
ITEM_TYPE = "PSScene"
DEFAULT_ASSET_TYPE = "ortho_analytic_4b_sr"
MAX_PAGE_SIZE = 250  # the Data API's largest _page_size
ASSETS_KEY = "assets_url"


class PlanetSearchTruncated(RuntimeError):
    """The search had more pages than ``max_pages``: narrow the query or raise the bound."""


@dataclass(frozen=True)
class PlanetAssetInfo(AssetInfo):
    """:class:`AssetInfo` for a Planet item: ``href`` is the item's assets URL (not a file).

    ``gsd`` is the item's ``pixel_resolution`` (m); ``asset_type`` the product to activate;
    ``permitted`` whether the item's ``_permissions`` grant ``assets.<asset_type>:download``
    (None when the server did not say).
    """

    gsd: float | None = None
    item_type: str = ITEM_TYPE
    asset_type: str = DEFAULT_ASSET_TYPE
    permitted: bool | None = None


def quantification_for(asset_type: str) -> float:
    """DN -> physical value divisor for a PSScene asset type (see the module table)."""
    if asset_type.endswith("_sr") or "_sr_" in asset_type:
        return 10000.0  # surface reflectance * 10000
    if "analytic" in asset_type:
        return 100.0  # at-sensor radiance * 100
    return 10000.0


def _iso(t: dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def build_filter(
    query: SearchQuery,
    *,
    min_clear_percent: float | None = None,
    quality_category: str | None = None,
) -> dict[str, Any]:
    """The Data API search filter (an ``AndFilter``) for a query."""
    date = {"type": "DateRangeFilter", "field_name": "acquired",
            "config": {"gte": _iso(query.start), "lte": _iso(query.end)}}
    parts: list[dict[str, Any]] = [date]
    if query.intersects is not None:
        parts.append({"type": "GeometryFilter", "field_name": "geometry",
                      "config": query.intersects})
    cloud: dict[str, float] = {}
    if query.min_cloud_cover is not None:
        cloud["gte"] = round(float(query.min_cloud_cover) / 100.0, 6)
    if query.max_cloud_cover is not None:
        cloud["lte"] = round(float(query.max_cloud_cover) / 100.0, 6)
    if cloud:
        parts.append({"type": "RangeFilter", "field_name": "cloud_cover", "config": cloud})
    if min_clear_percent is not None:
        parts.append({"type": "RangeFilter", "field_name": "clear_percent",
                      "config": {"gte": float(min_clear_percent)}})
    if quality_category is not None:
        parts.append({"type": "StringInFilter", "field_name": "quality_category",
                      "config": [quality_category]})
    return {"type": "AndFilter", "config": parts}


def feature_to_record(
    feature: Mapping[str, Any],
    *,
    asset_type: str = DEFAULT_ASSET_TYPE,
    base_url: str = PLANET_DATA_URL,
) -> SceneRecord:
    """One quick-search feature -> :class:`SceneRecord` (raises ValueError when unusable)."""
    item_id = feature.get("id")
    if not item_id:
        raise ValueError("feature without an id")
    props = feature.get("properties") or {}
    when = parse_datetime(props.get("acquired"))
    if when is None:
        raise ValueError("no 'acquired' timestamp")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or "type" not in geometry:
        raise ValueError("no footprint geometry")

    instrument = props.get("instrument")
    satellite = props.get("satellite_id")
    if instrument:
        platform = f"{COLLECTION}-{str(instrument).strip().lower()}"
    elif satellite:
        platform = f"{COLLECTION}-{str(satellite).strip().lower()}"
    else:
        platform = COLLECTION

    cloud = _float(props.get("cloud_cover"))
    clear = _float(props.get("clear_percent"))
    if cloud is not None:
        cloud_percent: float | None = round(100.0 * cloud, 6)  # 0.3 -> 30.0, not 30.000000000000004
    elif clear is not None:
        cloud_percent = round(100.0 - clear, 6)
    else:
        cloud_percent = None

    item_type = str(props.get("item_type") or ITEM_TYPE)
    links = feature.get("_links") or {}
    assets_url = links.get("assets") or (
        f"{base_url.rstrip('/')}/item-types/{quote(item_type)}/items/{quote(str(item_id))}/assets/")
    permissions = feature.get("_permissions")
    permitted = (f"assets.{asset_type}:download" in permissions
                 if isinstance(permissions, list) else None)
    epsg = props.get("epsg_code")
    asset = PlanetAssetInfo(
        href=str(assets_url),
        epsg=int(epsg) if _float(epsg) is not None else None,
        gsd=_float(props.get("pixel_resolution")),
        item_type=item_type,
        asset_type=asset_type,
        permitted=permitted,
    )
    return SceneRecord(
        id=str(item_id),
        collection=COLLECTION,
        platform=platform,
        datetime=when,
        footprint=geometry,
        tile=None,
        cloud_cover=cloud_percent,
        shadow_percent=_float(props.get("shadow_percent")),
        quantification=quantification_for(asset_type),
        assets={ASSETS_KEY: asset},
    )


class PlanetArchive:
    """Search PlanetScope (``PSScene``) scenes through the Planet Data API quick-search.

    Parameters
    ----------
    url:
        Data API base (default ``https://api.planet.com/data/v1``; tests use loopback).
    page_size:
        ``_page_size`` of the first request (1-250); later pages follow ``_links._next``.
    max_pages:
        Bound on the pages followed; a longer result raises :class:`PlanetSearchTruncated`.
    min_clear_percent:
        Keep scenes with ``clear_percent`` >= this (server- and client-side).
    quality_category:
        e.g. ``"standard"`` to leave out ``"test"`` scenes (server- and client-side).
    asset_type:
        The product that will be activated later (decides ``quantification``).
    auth:
        ``"basic"`` (key as user name) or ``"api-key"`` (``Authorization: api-key <key>``).
    sort:
        ``_sort`` of the search (``"acquired asc"`` keeps paging stable).
    policy, max_retries, timeout_s:
        Retry/timeout policy for :class:`HttpClient`.
    env:
        Where ``PL_API_KEY`` is read (default ``os.environ``), at search time.
    client:
        An :class:`HttpClient` to use (its session gets the credentials).
    """

    credential_env = PL_API_KEY_ENV

    def __init__(
        self,
        *,
        url: str = PLANET_DATA_URL,
        page_size: int = MAX_PAGE_SIZE,
        max_pages: int = 200,
        min_clear_percent: float | None = None,
        quality_category: str | None = None,
        asset_type: str = DEFAULT_ASSET_TYPE,
        item_type: str = ITEM_TYPE,
        auth: str = "basic",
        sort: str | None = "acquired asc",
        max_retries: int = 5,
        timeout_s: float = 60.0,
        policy: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
        client: HttpClient | None = None,
    ):
        if auth not in ("basic", "api-key"):
            raise ValueError(f"auth must be 'basic' or 'api-key', not {auth!r}")
        self.url = url.rstrip("/")
        self.page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        self.max_pages = max(1, int(max_pages))
        self.min_clear_percent = min_clear_percent
        self.quality_category = quality_category
        self.asset_type = asset_type
        self.item_type = item_type
        self.auth = auth
        self.sort = sort
        self.policy = policy or RetryPolicy(max_retries=max_retries, timeout=timeout_s)
        self._env = os.environ if env is None else env
        self._client = client
        self._client_key: str | None = None
        self.name = "planet"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> "PlanetArchive":
        """Build from the whole config (its ``planet`` section) or from that section itself."""
        sec = dict((config.get("planet") if "archive" in config else config) or {})
        known = {"url": str, "page_size": int, "max_pages": int, "min_clear_percent": float,
                 "quality_category": str, "asset_type": str, "auth": str,
                 "max_retries": int, "timeout_s": float}
        args = {k: conv(sec[k]) for k, conv in known.items() if sec.get(k) is not None}
        return cls(**{**args, **kwargs})

    def __repr__(self) -> str:
        return f"PlanetArchive(url={redact(self.url)!r}, item_type={self.item_type!r})"

    # -- auth / transport ---------------------------------------------------------------

    def _api_key(self) -> str:
        key = (self._env.get(PL_API_KEY_ENV) or "").strip()
        if not key:
            raise AuthError(
                f"Planet Data API needs an API key: set the environment variable {PL_API_KEY_ENV} "
                f"(it is not set); no request was made",
                url=self.url, credential_env=PL_API_KEY_ENV)
        register_secret(key)
        return key

    def _http(self) -> HttpClient:
        key = self._api_key()
        if self._client is None:
            self._client = HttpClient(self.policy, credential_env=PL_API_KEY_ENV)
        if self._client_key != key:
            session = self._client.session
            if self.auth == "basic":
                register_secret(base64.b64encode(f"{key}:".encode()).decode())
                session.auth = (key, "")
            else:
                register_secret(f"api-key {key}")
                session.auth = None
                session.headers["Authorization"] = f"api-key {key}"
            self._client_key = key
        return self._client

    def _request(self, client: HttpClient, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return client.request(method, url, **kwargs)
        except AuthError as exc:
            if self._env is os.environ:
                raise  # its message already says whether PL_API_KEY is set
            raise AuthError(  # the key came from an explicit env mapping: word it ourselves
                f"HTTP {exc.status} from {redact(url)}: the Planet API key "
                f"({PL_API_KEY_ENV}) was refused", status=exc.status, url=url,
                credential_env=PL_API_KEY_ENV) from None

    def _json(self, resp: Any, method: str, url: str) -> dict[str, Any]:
        try:
            page = resp.json()
        except ValueError:
            raise HttpError(f"{method} {redact(url)} did not return JSON",
                            status=resp.status_code, url=url) from None
        finally:
            resp.close()
        if not isinstance(page, dict) or not isinstance(page.get("features", []), list):
            raise HttpError(f"{method} {redact(url)} did not return a FeatureCollection",
                            status=resp.status_code, url=url)
        return page

    # -- searching ------------------------------------------------------------------------

    def request_body(self, query: SearchQuery) -> dict[str, Any]:
        """The quick-search JSON body for a query (validates the query first)."""
        if query.collection != COLLECTION:
            raise ValueError(
                f"PlanetArchive serves the collection {COLLECTION!r}, not {query.collection!r}")
        if query.tile is not None:
            raise ValueError(
                "PlanetScope scenes have no MGRS tile: search with intersects= instead of tile=")
        return {
            "item_types": [self.item_type],
            "filter": build_filter(query, min_clear_percent=self.min_clear_percent,
                                   quality_category=self.quality_category),
        }

    def search_url(self) -> str:
        params: dict[str, Any] = {"_page_size": self.page_size}
        if self.sort:
            params["_sort"] = self.sort
        return f"{self.url}/quick-search?{urlencode(params, quote_via=quote)}"

    def pages(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        """The raw result pages (FeatureCollections) of a query, first to last."""
        body = self.request_body(query)
        client = self._http()
        url = self.search_url()
        resp = self._request(client, "POST", url, json=body,
                             headers={"Content-Type": "application/json"})
        page = self._json(resp, "POST", url)
        yield page
        origin = _origin(self.url)
        seen = {url}
        count = 1
        while True:
            nxt = (page.get("_links") or {}).get("_next")
            if not nxt or not page.get("features"):
                return
            if _origin(nxt) != origin:
                raise HttpError(
                    f"Planet quick-search paging link points to another server ({redact(nxt)}); "
                    f"not following it with the {PL_API_KEY_ENV} credentials", url=nxt)
            if nxt in seen:
                log.warning("Planet quick-search paging link repeats (%s); stopping", redact(nxt))
                return
            seen.add(nxt)
            page = self._json(self._request(client, "GET", nxt), "GET", nxt)
            if count >= self.max_pages:
                # One page past the bound is fetched only to tell "exactly full" from "more".
                if page.get("features"):
                    raise PlanetSearchTruncated(
                        f"Planet quick-search returned more than {self.max_pages} pages of "
                        f"{self.page_size} items; narrow the query (dates, geometry, cloud "
                        f"cover) or raise max_pages")
                return
            count += 1
            yield page

    def search_items(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Raw quick-search features for a query (all pages, server-side filters only)."""
        features: list[dict[str, Any]] = []
        n_pages = 0
        for page in self.pages(query):
            n_pages += 1
            features.extend(f for f in page.get("features") or [] if isinstance(f, dict))
        log.info("Planet quick-search %s %s: %d items in %d pages", redact(self.url),
                 self.item_type, len(features), n_pages)
        return features

    def _keep(self, feature: Mapping[str, Any]) -> bool:
        props = feature.get("properties") or {}
        if self.min_clear_percent is not None:
            clear = _float(props.get("clear_percent"))
            if clear is None or clear < self.min_clear_percent:
                return False
        if self.quality_category is not None and props.get("quality_category") != self.quality_category:
            return False
        if props.get("item_type") not in (None, self.item_type):
            return False
        return True

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        return normalise_and_filter(
            (f for f in self.search_items(query) if self._keep(f)),
            lambda f: feature_to_record(f, asset_type=self.asset_type, base_url=self.url),
            query, "Planet",
        )


__all__ = [
    "ASSETS_KEY",
    "COLLECTION",
    "PLANET_DATA_URL",
    "PL_API_KEY_ENV",
    "PlanetArchive",
    "PlanetAssetInfo",
    "PlanetSearchTruncated",
    "build_filter",
    "feature_to_record",
    "quantification_for",
]
