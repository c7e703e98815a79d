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

Besides ``assets_url``, a record has one entry per asset type the item lists (quick-search
features carry ``"assets": ["ortho_analytic_4b_sr", "ortho_udm2", ...]``): a
:class:`PlanetAssetInfo` whose ``href`` is the item's assets URL and whose ``asset_type`` names
the asset, so ``"ortho_udm2" in record.assets`` says whether a scene has a usable data mask
before anything is downloaded.

Downloading (:meth:`PlanetArchive.download_asset`): Planet assets must be *activated* before
their ``location`` can be fetched: ``GET`` the item's assets URL, ``POST`` the asset's
``_links.activate`` when its ``status`` is ``"inactive"``, poll the assets URL until ``status ==
"active"`` (bounded by ``activation_timeout_s``), then stream ``location`` into the cache with
:func:`cloudyeo.http.download` (resumable, atomic; ``md5_digest`` checked when given). The
API key is only sent to the API's own origin; a ``location`` elsewhere is fetched without it
(such links are signed). Records only carry the item's assets URL (which itself holds no
credential).

Local catalogs (the Planet-CR demo world, or a folder of features saved from the API):
:class:`LocalPlanetArchive` reads an ndjson file of the same features and normalises them with
the same :func:`feature_to_record`. There ``assets`` may map each asset type to a local file
(``{"ortho_udm2": {"href": "../archive/...", "proj:epsg": ..., "proj:transform": [...],
"proj:shape": [...]}}``); hrefs are resolved against the catalog folder.

Filters are always re-applied client-side (:func:`cloudyeo.archives.base.apply_filters`, plus
``min_clear_percent`` and ``quality_category``), because a search must never return more than
was asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from cloudyeo.archives.base import (
    AssetInfo,
    SceneRecord,
    SearchQuery,
    apply_filters,
    normalise_and_filter,
)
from cloudyeo.archives.stac_items import feature_basics, format_datetime, raster_grid, resolve_href
from cloudyeo.http import (
    AuthError,
    HttpClient,
    HttpError,
    IntegrityError,
    RetryPolicy,
    download,
    redact,
    register_secret,
    same_origin,
    verified_copy,
)

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
    if asset_type.endswith("_toar"):
        return 10000.0  # TOA reflectance * 10000 (Planet's toar tool; the demo world)
    if "analytic" in asset_type:
        return 100.0  # at-sensor radiance * 100
    return 10000.0


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def build_filter(
    query: SearchQuery,
    *,
    min_clear_percent: float | None = None,
    quality_category: str | None = None,
) -> dict[str, Any]:
    """The Data API search filter (an ``AndFilter``) for a query."""
    date = {"type": "DateRangeFilter", "field_name": "acquired",
            "config": {"gte": format_datetime(query.start), "lte": format_datetime(query.end)}}
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


def check_query(query: SearchQuery, archive: str) -> None:
    """ValueError unless ``query`` asks ``archive`` for PlanetScope scenes by place (they have no MGRS tile)."""
    if query.collection != COLLECTION:
        raise ValueError(f"{archive} serves the collection {COLLECTION!r}, not {query.collection!r}")
    if query.tile is not None:
        raise ValueError("PlanetScope scenes have no MGRS tile: search with intersects= instead of tile=")


def feature_to_record(
    feature: Mapping[str, Any],
    *,
    asset_type: str = DEFAULT_ASSET_TYPE,
    base_url: str = PLANET_DATA_URL,
    base_href: str | None = None,
) -> SceneRecord:
    """One quick-search feature -> :class:`SceneRecord` (raises ValueError when unusable).

    ``base_href`` resolves relative asset hrefs of a local catalog's features.
    """
    item_id, props, when, geometry = feature_basics(feature, "acquired")

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
    epsg_code: Any = props.get("epsg_code")
    epsg = int(epsg_code) if _float(epsg_code) is not None else None
    gsd = _float(props.get("pixel_resolution"))

    def api_asset(name: str) -> PlanetAssetInfo:
        """Asset type ``name`` as the Data API serves it (activated and listed at ``assets_url``)."""
        return PlanetAssetInfo(
            href=str(assets_url), epsg=epsg, gsd=gsd, item_type=item_type, asset_type=name,
            permitted=f"assets.{name}:download" in permissions if isinstance(permissions, list) else None)

    assets: dict[str, AssetInfo] = {ASSETS_KEY: api_asset(asset_type)}
    listed = feature.get("assets")
    if isinstance(listed, list):  # the Data API: asset type names
        for name in listed:
            if isinstance(name, str) and name:
                assets[name] = api_asset(name)
    elif isinstance(listed, Mapping):  # a local catalog: asset type -> file and grid
        for name, info in listed.items():
            if not isinstance(info, Mapping) or not info.get("href"):
                continue
            transform, shape = raster_grid(info.get("proj:transform"), info.get("proj:shape"))
            href = str(info["href"])
            assets[str(name)] = PlanetAssetInfo(
                href=resolve_href(href, base_href) if base_href else href,
                epsg=int(info["proj:epsg"]) if info.get("proj:epsg") is not None else epsg,
                transform=transform,
                shape=shape,
                gsd=gsd, item_type=item_type, asset_type=str(name), permitted=True)
    return SceneRecord(
        id=str(item_id),
        collection=COLLECTION,
        platform=platform,
        datetime=when,
        footprint=dict(geometry),
        tile=None,
        cloud_cover=cloud_percent,
        shadow_percent=_float(props.get("shadow_percent")),
        quantification=quantification_for(asset_type),
        assets=assets,
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
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> PlanetArchive:
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
        check_query(query, "PlanetArchive")
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
        seen = {url}
        count = 1
        while True:
            nxt = (page.get("_links") or {}).get("_next")
            if not nxt or not page.get("features"):
                return
            if not same_origin(nxt, self.url):
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

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        return normalise_and_filter(
            (f for f in self.search_items(query) if keep_feature(f, self)),
            lambda f: feature_to_record(f, asset_type=self.asset_type, base_url=self.url),
            query, "Planet",
        )

    # -- activation and download ------------------------------------------------------------

    def asset_states(self, record: SceneRecord) -> dict[str, Any]:
        """The item's assets document: asset type -> {status, _links, _permissions, location ...}."""
        url = record.assets[ASSETS_KEY].href
        if not same_origin(url, self.url):
            raise HttpError(f"assets URL {redact(url)} is not on the Planet API origin; not sending "
                            f"the {PL_API_KEY_ENV} credentials there", url=url)
        client = self._http()
        resp = self._request(client, "GET", url)
        try:
            doc = resp.json()
        except ValueError:
            raise HttpError(f"GET {redact(url)} did not return JSON", status=resp.status_code, url=url) from None
        finally:
            resp.close()
        if not isinstance(doc, dict):
            raise HttpError(f"GET {redact(url)} did not return an assets document", url=url)
        return doc

    def activate(self, record: SceneRecord, asset_type: str, *, poll_s: float = 5.0,
                 timeout_s: float = 900.0, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
        """Activate one asset of a scene and wait until it is ``active``; return its state.

        Raises :class:`PlanetAssetMissing` when the item has no such asset,
        :class:`AuthError` (naming ``PL_API_KEY``) without download permission and
        :class:`PlanetActivationTimeout` when it is not active within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        requested = False
        while True:
            states = self.asset_states(record)
            state = states.get(asset_type)
            if not isinstance(state, dict):
                raise PlanetAssetMissing(
                    f"Planet item {record.id} has no asset {asset_type!r} (it has: "
                    f"{', '.join(sorted(states)) or 'none'})")
            perms = state.get("_permissions")
            if isinstance(perms, list) and "download" not in perms:
                raise AuthError(
                    f"the Planet API key ({PL_API_KEY_ENV}) may not download {asset_type} of "
                    f"{record.id}: check the plan/area of access of the key", status=403,
                    url=self.url, credential_env=PL_API_KEY_ENV)
            status = state.get("status")
            if status == "active" and state.get("location"):
                return state
            if status == "inactive" and not requested:
                link = (state.get("_links") or {}).get("activate")
                if not link:
                    raise HttpError(f"Planet asset {asset_type} of {record.id} has no activate link",
                                    url=self.url)
                if not same_origin(link, self.url):
                    raise HttpError(f"activate link {redact(link)} is not on the Planet API origin",
                                    url=link)
                self._request(self._http(), "POST", link, ok=(202, 204)).close()
                requested = True
                log.info("activating Planet asset %s of %s", asset_type, record.id)
            if time.monotonic() + poll_s > deadline:
                raise PlanetActivationTimeout(
                    f"Planet asset {asset_type} of {record.id} not active after {timeout_s:.0f} s "
                    f"(status {status!r}); re-run later: activation continues server-side")
            sleep(poll_s)

    def download_asset(self, record: SceneRecord, asset_type: str, dest: str | os.PathLike[str], *,
                       poll_s: float = 5.0, timeout_s: float = 900.0,
                       sleep: Callable[[float], None] = time.sleep) -> Path:
        """Activate (if needed) and download one asset to ``dest``; reuse a complete earlier copy.

        A provenance record next to the file (``<dest>.provenance.json``, see
        :func:`cloudyeo.http.download`) marks it complete; an interrupted transfer resumes.
        """
        dest = Path(dest)
        if dest.exists() and verified_copy(dest) is not None:
            return dest  # complete, and unchanged since it was verified (sha256 re-hashed)
        state = self.activate(record, asset_type, poll_s=poll_s, timeout_s=timeout_s, sleep=sleep)
        location = str(state["location"])
        same = same_origin(location, self.url)
        session = self._http() if same else HttpClient(self.policy)
        md5 = str(state.get("md5_digest") or "").lower() or None

        def md5_matches(path: Path) -> None:
            h = hashlib.md5()
            with open(path, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != md5:
                raise IntegrityError(f"MD5 {h.hexdigest()} differs from Planet's {md5}")

        # A body failing Planet's MD5 is fetched again (then IntegrityError, an HttpError).
        download(location, dest, session=session, force=True,
                 validate=md5_matches if md5 else None)
        return dest


def keep_feature(feature: Mapping[str, Any], archive: Any) -> bool:
    """The client-side ``min_clear_percent`` / ``quality_category`` / item-type filters."""
    props = feature.get("properties") or {}
    if archive.min_clear_percent is not None:
        clear = _float(props.get("clear_percent"))
        if clear is None or clear < archive.min_clear_percent:
            return False
    if archive.quality_category is not None and props.get("quality_category") != archive.quality_category:
        return False
    if props.get("item_type") not in (None, archive.item_type):
        return False
    return True


class PlanetAssetMissing(LookupError):
    """A Planet item has no asset of the requested type."""


class PlanetActivationTimeout(TimeoutError):
    """An asset did not become active in time (activation goes on server-side: retry later)."""


class LocalPlanetArchive:
    """PlanetScope features from a local ndjson file, normalised like :class:`PlanetArchive`.

    Used for the Planet-CR demo world (``<resources_dir>/demo-planet/catalog/psscene.ndjson``)
    and for features saved from the API. Assets given as local files are already "downloaded":
    :meth:`download_asset` returns their path.
    """

    credential_env = None

    def __init__(self, path: str | os.PathLike[str], *, asset_type: str = DEFAULT_ASSET_TYPE,
                 item_type: str = ITEM_TYPE, min_clear_percent: float | None = None,
                 quality_category: str | None = None):
        self.path = Path(path)
        self.asset_type = asset_type
        self.item_type = item_type
        self.min_clear_percent = min_clear_percent
        self.quality_category = quality_category
        self.name = "planet-local"
        self._records: list[SceneRecord] | None = None

    def __repr__(self) -> str:
        return f"LocalPlanetArchive({str(self.path)!r})"

    def records(self) -> list[SceneRecord]:
        if self._records is None:
            if not self.path.exists():
                raise FileNotFoundError(
                    f"PlanetScope catalog {self.path} not found; for the demo it is written by "
                    f"`cloudyeo demo generate-planet` (rule demo_planet)")
            base = str(self.path.parent.resolve()) + os.sep
            features = []
            with open(self.path, encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            features.append(json.loads(line))
                        except ValueError as exc:
                            raise ValueError(f"{self.path}:{lineno}: not JSON: {exc}") from None
            records = []
            for f in features:
                if not keep_feature(f, self):
                    continue
                try:
                    records.append(feature_to_record(f, asset_type=self.asset_type, base_href=base))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("skipping unusable PlanetScope feature %s: %s", f.get("id"), exc)
            self._records = records
        return self._records

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        check_query(query, "LocalPlanetArchive")
        return apply_filters(self.records(), query)

    def download_asset(self, record: SceneRecord, asset_type: str, dest: Any = None, **_: Any) -> Path:
        info = record.assets.get(asset_type)
        if info is None or info.href == record.assets[ASSETS_KEY].href:
            raise PlanetAssetMissing(f"Planet item {record.id} has no local asset {asset_type!r}")
        return Path(info.href)


__all__ = [
    "ASSETS_KEY",
    "COLLECTION",
    "PLANET_DATA_URL",
    "PL_API_KEY_ENV",
    "LocalPlanetArchive",
    "PlanetActivationTimeout",
    "PlanetArchive",
    "PlanetAssetInfo",
    "PlanetAssetMissing",
    "PlanetSearchTruncated",
    "keep_feature",
    "build_filter",
    "feature_to_record",
    "quantification_for",
]
