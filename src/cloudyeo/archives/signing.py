"""Planetary Computer asset signing (our own, no ``planetary_computer`` package).

Blob hrefs of the Planetary Computer need a SAS token, obtained per collection from the SAS
API (``<sas_url>/token/<collection>`` -> ``{"token": "st=...&sig=...", "msft:expiry": ...}``)
and appended as the query string. Tokens are cached until shortly before they expire.

Signed hrefs are credentials: sign at *read* time (``archive.sign_href(href, collection)``)
and never write them into manifests, records, logs or dataset attributes. Every token fetched
here is registered with :func:`cloudyeo.http.register_secret`, so :func:`cloudyeo.http.redact`
removes it from any message.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from cloudyeo.http import AuthError, HttpClient, HttpError, RetryPolicy, register_secret

log = logging.getLogger(__name__)

PC_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1"
PC_SUBSCRIPTION_KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
PC_SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
DEFAULT_TOKEN_LIFETIME_S = 45 * 60


class PlanetaryComputerSigner:
    """Fetch, cache and append Planetary Computer SAS tokens.

    Parameters
    ----------
    sas_url:
        Base of the SAS API (tests point it at a loopback server).
    client:
        :class:`HttpClient` to use (retries 429/5xx, honours Retry-After).
    env:
        Where to read ``PC_SDK_SUBSCRIPTION_KEY`` (default ``os.environ``); the key, when set,
        is sent as ``Ocp-Apim-Subscription-Key`` and raises the SAS API's rate limits.
    margin_s:
        Refresh a token this many seconds before its ``msft:expiry``.
    """

    def __init__(
        self,
        sas_url: str = PC_SAS_URL,
        *,
        client: HttpClient | None = None,
        env: Mapping[str, str] | None = None,
        margin_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        policy: RetryPolicy | None = None,
    ):
        self.sas_url = sas_url.rstrip("/")
        env = os.environ if env is None else env
        key = env.get(PC_SUBSCRIPTION_KEY_ENV) or None
        headers = {PC_SUBSCRIPTION_HEADER: key} if key else {}
        if key:
            register_secret(key)
        if client is None:
            # The key goes to the SAS API's origin only (not to a host it redirects to).
            client = HttpClient(policy or RetryPolicy(timeout=30.0),
                                credential_env=PC_SUBSCRIPTION_KEY_ENV, headers=headers,
                                auth_origins=[self.sas_url])
        else:
            for k, v in headers.items():
                client.session.headers[k] = v
        self.client = client
        self.margin_s = margin_s
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, collection: str) -> str:
        """The SAS token (query string) for a server collection id, cached until expiry."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(collection)
            if hit and hit[1] - self.margin_s > now:
                return hit[0]
        url = f"{self.sas_url}/token/{collection}"
        try:
            data = self.client.get_json(url, credential_env=PC_SUBSCRIPTION_KEY_ENV)
        except AuthError:
            raise
        except HttpError as exc:
            raise HttpError(f"could not get a Planetary Computer SAS token for {collection!r}: {exc}",
                            status=exc.status, url=url) from None
        token = (data or {}).get("token")
        if not token:
            raise HttpError(f"SAS API answered without a token for {collection!r}", url=url)
        token = str(token).lstrip("?")
        register_secret(token)
        for part in token.split("&"):
            if part.startswith("sig="):
                register_secret(part[4:])
        expiry = self._parse_expiry(data.get("msft:expiry"), now)
        with self._lock:
            self._cache[collection] = (token, expiry)
        log.info("fetched a SAS token for collection %s (valid until %s)", collection,
                 dt.datetime.fromtimestamp(expiry, dt.UTC).isoformat(timespec="seconds"))
        return token

    @staticmethod
    def _parse_expiry(value: object, now: float) -> float:
        if isinstance(value, str) and value:
            from cloudyeo.archives.stac_items import parse_datetime

            try:
                when = parse_datetime(value)
                if when is not None:
                    return when.timestamp()
            except ValueError:
                pass
        return now + DEFAULT_TOKEN_LIFETIME_S

    @staticmethod
    def needs_signing(href: str) -> bool:
        parts = urlsplit(href)
        if parts.scheme not in ("http", "https"):
            return False
        return "sig=" not in parts.query

    def sign_href(self, href: str, collection: str) -> str:
        """``href`` with the collection's SAS token appended (unchanged if not http(s) or signed)."""
        if not self.needs_signing(href):
            return href
        token = self.token(collection)
        sep = "&" if urlsplit(href).query else "?"
        return f"{href}{sep}{token}"

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


__all__ = [
    "PC_SAS_URL",
    "PC_SUBSCRIPTION_HEADER",
    "PC_SUBSCRIPTION_KEY_ENV",
    "PlanetaryComputerSigner",
]
