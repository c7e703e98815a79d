"""Any STAC API (Earth Search, CDSE, Planetary Computer, or a custom server) via pystac-client.

* Transport: pystac-client's ``StacApiIO`` with :class:`cloudyeo.http.LoggingRetry` (429/5xx,
  connection errors and read timeouts retried with full-jitter backoff, ``Retry-After``
  honoured, total sleep bounded, POST ``/search`` included, each retry logged redacted).
* Paging: every page is followed (``next`` links, GET or POST) with ``limit = page_size``.
* Filters: datetime and ``intersects`` are always sent; cloud cover and tile are sent as CQL2
  ``filter`` or ``query`` where the preset/server supports it; if the server rejects them
  (HTTP 400) the search is repeated without. Results are ALWAYS re-filtered, de-duplicated
  and sorted client-side (:func:`apply_filters`), because servers differ (Earth Search ignores
  CQL2 ``filter``, the rustac test server ignores both).
* Auth: 401/403 -> :class:`cloudyeo.http.AuthError` naming the preset's environment variable.
  Credentials come from the environment only and are redacted everywhere. They are sent only
  to the configured endpoint's origin (scheme+host+port) -- never to a host that a ``next``
  link, a landing-page link or a redirect points to (:class:`cloudyeo.http.GuardedAdapter`).
  Image reads get them through :meth:`StacApiArchive.read_auth`, only for hrefs on the
  endpoint's origin or the preset's download origins (CDSE: ``download.dataspace.copernicus.eu``).
* Truncated responses: a body cut off after its headers, shorter than its ``Content-Length``, or
  a JSON page that does not parse is retried with the same backoff, then reported.
* Signing: records keep *unsigned* hrefs; call :meth:`StacApiArchive.sign_href` right before
  reading (Planetary Computer SAS tokens expire and are credentials).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from cloudyeo.archives.base import SceneRecord, SearchQuery, normalise_and_filter
from cloudyeo.archives.presets import Preset, build_cql2_filter, build_query, get_preset
from cloudyeo.archives.signing import PlanetaryComputerSigner
from cloudyeo.archives.stac_items import format_datetime, item_to_record, mgrs_tile_bbox
from cloudyeo.http import (
    AUTH_STATUSES,
    AuthError,
    GuardedAdapter,
    HttpError,
    RetryPolicy,
    ScopedCredentials,
    auth_error,
    mount_guarded,
    redact,
    register_secret,
)

log = logging.getLogger(__name__)

# Origins, besides the STAC endpoint's own, that serve a preset's assets and need its
# credential. CDSE serves asset files over https from its download service, which requires the
# same OIDC bearer token (its ``s3://eodata`` hrefs need S3 keys instead, not this token).
READ_AUTH_ORIGINS: dict[str, tuple[str, ...]] = {
    "cdse": ("https://download.dataspace.copernicus.eu",),
}


class StacApiArchive:
    """Search a STAC API and return normalised :class:`SceneRecord` objects.

    Parameters
    ----------
    preset:
        ``earth-search`` | ``cdse`` | ``planetary-computer`` | ``custom``.
    url:
        Endpoint; overrides the preset's (required for ``custom``).
    collections:
        Logical name -> server collection id, merged over the preset's mapping.
    page_size, max_retries, timeout_s:
        Paging and transport settings (``stac.page_size`` etc. in the config).
    asset_base:
        Folder/URL against which relative asset hrefs are resolved (default: each item's
        ``self`` link, as the STAC spec says). Useful when serving a local catalog.
    sas_url:
        Planetary Computer SAS API base (tests point it at loopback).
    policy:
        Full retry policy (overrides ``max_retries``/``timeout_s``).
    env:
        Where credentials are read (default ``os.environ``).
    read_auth_origins:
        Origins (``scheme://host[:port]``) of asset hrefs that get the credential on image
        reads (:meth:`read_auth`), in addition to the endpoint's own; default: the preset's
        (:data:`READ_AUTH_ORIGINS`).
    """

    def __init__(
        self,
        preset: str = "earth-search",
        *,
        url: str | None = None,
        collections: Mapping[str, str] | None = None,
        page_size: int = 100,
        max_retries: int = 5,
        timeout_s: float = 60.0,
        asset_base: str | None = None,
        sas_url: str | None = None,
        policy: RetryPolicy | None = None,
        env: Mapping[str, str] | None = None,
        read_auth_origins: tuple[str, ...] | list[str] | None = None,
    ):
        self.preset: Preset = get_preset(preset)
        self.url = (url or self.preset.url or "").rstrip("/")
        if not self.url:
            raise ValueError(f"stac.url is required with stac.preset: {preset}")
        self.collections: dict[str, str] = {**self.preset.collections, **dict(collections or {})}
        if self.preset.max_page_size:
            page_size = min(page_size, self.preset.max_page_size)
        self.page_size = max(1, int(page_size))
        self.policy = policy or RetryPolicy(max_retries=max_retries, timeout=timeout_s)
        self.asset_base = asset_base
        self.name = f"stac-api:{self.preset.name}"
        self._env = os.environ if env is None else env
        self.credential_env = self.preset.credential_env
        self._headers = self._auth_headers()
        # Searches: the endpoint's origin only. Reads: the endpoint's and the download origins.
        self.search_credentials = ScopedCredentials(self._headers, [self.url])
        if read_auth_origins is None:
            read_auth_origins = READ_AUTH_ORIGINS.get(self.preset.name, ())
        self.read_credentials = ScopedCredentials(self._headers, [self.url, *read_auth_origins])
        self._client: Any = None
        self._signer: PlanetaryComputerSigner | None = None
        self._sas_url = sas_url or self.preset.sas_url

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> StacApiArchive:
        """Build from the whole validated config (or just its ``stac`` section)."""
        stac = dict((config.get("stac") if "archive" in config else config) or {})
        return cls(
            stac.get("preset", "earth-search"),
            url=stac.get("url"),
            collections=stac.get("collections") or {},
            page_size=int(stac.get("page_size", 100)),
            max_retries=int(stac.get("max_retries", 5)),
            timeout_s=float(stac.get("timeout_s", 60)),
            asset_base=stac.get("asset_base"),
            sas_url=stac.get("sas_url"),
            read_auth_origins=stac.get("read_auth_origins"),  # None: the preset's
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"StacApiArchive(preset={self.preset.name!r}, url={redact(self.url)!r})"

    # -- auth / transport -------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        env_name = self.preset.credential_env
        if not env_name:
            return {}
        secret = self._env.get(env_name)
        if not secret:
            return {}
        register_secret(secret)
        if self.preset.credential_header.lower() == "authorization":
            return {"Authorization": f"Bearer {secret}"}
        return {self.preset.credential_header: secret}

    def _open(self) -> Any:
        if self._client is not None:
            return self._client
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        stac_io = StacApiIO(
            headers={"User-Agent": "cloudyeo"},
            timeout=self.policy.timeout,
            max_retries=self.policy.urllib3_retry(log),
        )
        # Credentials only for the endpoint's origin (also on next links and redirects);
        # bodies cut short or unparsable are retried with the policy's backoff.
        mount_guarded(stac_io.session, GuardedAdapter(self.policy, self.search_credentials,
                                                      json_bodies=True, logger=log))
        try:
            self._client = Client.open(self.url, stac_io=stac_io, timeout=self.policy.timeout)
        except Exception as exc:  # noqa: BLE001 - translated, redacted
            raise self._translate(exc, self.url) from None
        return self._client

    def _translate(self, exc: BaseException, url: str) -> HttpError:
        status = getattr(exc, "status_code", None)
        if status in AUTH_STATUSES:
            return auth_error(status, url, self.credential_env)
        text = redact(str(exc))[:300]
        if status is not None:
            return HttpError(f"STAC API {redact(url)} answered HTTP {status}: {text}",
                             status=status, url=url)
        return HttpError(f"STAC API {redact(url)} failed: {type(exc).__name__}: {text}", url=url)

    # -- collections --------------------------------------------------------------------

    def server_collection(self, logical: str) -> str:
        try:
            return self.collections[logical]
        except KeyError:
            raise ValueError(
                f"collection {logical!r} is not offered by STAC preset {self.preset.name!r}; "
                f"map it to a server collection id with config key stac.collections"
            ) from None

    # -- searching ------------------------------------------------------------------------

    def _filter_params(self, client: Any, query: SearchQuery) -> dict[str, Any]:
        if query.collection.startswith("sentinel-1"):
            return {}
        mode = self.preset.filter_mode
        if mode == "none":
            return {}
        from pystac_client.conformance import ConformanceClasses

        can_filter = client.conforms_to(ConformanceClasses.FILTER)
        can_query = client.conforms_to(ConformanceClasses.QUERY)
        if mode == "auto":
            mode = "filter" if can_filter else ("query" if can_query else "none")
        if mode == "filter" and can_filter:
            body = build_cql2_filter(self.preset, tile=query.tile, max_cloud_cover=query.max_cloud_cover,
                                     min_cloud_cover=query.min_cloud_cover)
            return {"filter": body, "filter_lang": "cql2-json"} if body else {}
        if mode == "query" and can_query:
            body = build_query(self.preset, tile=query.tile, max_cloud_cover=query.max_cloud_cover,
                               min_cloud_cover=query.min_cloud_cover)
            return {"query": body} if body else {}
        return {}

    def _pages(self, client: Any, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        import warnings

        methods = {(link.extra_fields.get("method") or "GET").upper()
                   for link in client.get_links("search")}
        method = "POST" if not methods or "POST" in methods else "GET"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DoesNotConformTo etc.: we re-filter anyway
            search = client.search(method=method, **params)
            yield from search.pages_as_dicts()

    def search_items(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Raw item dicts for a query (all pages, server-side filters only)."""
        client = self._open()
        server_id = self.server_collection(query.collection)
        params: dict[str, Any] = {
            "collections": [server_id],
            "datetime": f"{format_datetime(query.start)}/{format_datetime(query.end)}",
            "limit": self.page_size,
        }
        if query.intersects is not None:
            params["intersects"] = query.intersects
        elif query.tile is not None:
            # Not every server can filter on the tile id: a box around the tile keeps the
            # result set small everywhere (the exact tile match is made client-side).
            bbox = mgrs_tile_bbox(query.tile)
            if bbox is not None:
                params["bbox"] = bbox
        extra = self._filter_params(client, query)
        try:
            return self._collect(client, {**params, **extra})
        except HttpError as exc:
            if extra and exc.status == 400:
                log.warning("server rejected the %s extension (%s); searching without it and "
                            "filtering client-side", "/".join(k for k in extra if k != "filter_lang"),
                            exc)
                return self._collect(client, params)
            raise

    def _collect(self, client: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pages = 0
        try:
            for page in self._pages(client, params):
                pages += 1
                items.extend(page.get("features") or [])
        except (AuthError, HttpError):
            raise
        except Exception as exc:  # noqa: BLE001 - APIError and transport errors, redacted
            raise self._translate(exc, f"{self.url}/search") from None
        log.info("STAC search %s %s: %d items in %d pages", redact(self.url),
                 params.get("collections"), len(items), pages)
        return items

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        return normalise_and_filter(
            self.search_items(query),
            lambda item: item_to_record(item, collection=query.collection, base_href=self.asset_base),
            query, "STAC",
        )

    # -- signing ----------------------------------------------------------------------------

    @property
    def signer(self) -> PlanetaryComputerSigner | None:
        if self.preset.signing != "planetary-computer":
            return None
        if self._signer is None:
            self._signer = PlanetaryComputerSigner(self._sas_url or "", env=self._env,
                                                   policy=self.policy)
        return self._signer

    def sign_href(self, href: str, collection: str) -> str:
        """A readable href for ``href`` of a record in logical ``collection``.

        Planetary Computer: appends a cached SAS token. Other presets: unchanged. The result
        may contain a credential: use it right away, never store or log it.
        """
        signer = self.signer
        if signer is None:
            return href
        return signer.sign_href(href, self.server_collection(collection))

    def read_auth(self, href: str) -> dict[str, str] | None:
        """Headers to send when reading ``href`` (e.g. the CDSE bearer token), or None.

        Only hrefs on the endpoint's origin or the preset's download origins get them; any
        other host (a public bucket, a CDN, a signed blob URL) gets nothing. Do not log them.
        """
        return self.read_credentials.for_url(href) or None


__all__ = ["StacApiArchive"]
