"""GDAL configuration for reading archive rasters over HTTP: one place, from the archive config.

:func:`gdal_read_options` returns the options to wrap every remote ``rasterio.open`` in
(``with rasterio.Env(**gdal_read_options(archive, href)): ...``):

* retries and timeouts of the archive's :class:`cloudyeo.http.RetryPolicy` (``stac.max_retries``,
  ``stac.timeout_s``): ``GDAL_HTTP_MAX_RETRY``, ``GDAL_HTTP_RETRY_DELAY`` (GDAL backs off
  exponentially from it; it retries 429/500/502/503/504 and timeouts), ``GDAL_HTTP_TIMEOUT`` and
  ``GDAL_HTTP_CONNECTTIMEOUT`` -- so three quick 503s do not fail a product and a stalled server
  cannot hang a job;
* request economy for cloud-optimised GeoTIFFs: no directory listing on open
  (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``), parallel multi-range reads
  (``GDAL_HTTP_MULTIRANGE=YES``) with consecutive ranges merged;
* the archive's credential (``GDAL_HTTP_HEADERS``, e.g. the CDSE bearer token) -- only when
  ``archive.read_auth(href)`` grants it, i.e. when ``href`` is on an origin the archive is
  configured to authenticate to. Any other host gets no credential.

The options may hold a credential: pass them to ``rasterio.Env`` and never log them
(:func:`describe` gives a redacted copy for messages). Local paths get no options.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cloudyeo.http import USER_AGENT, RetryPolicy, redact

# GDAL virtual file systems that go through libcurl (and so honour the GDAL_HTTP_* options).
_CURL_PREFIXES = ("/vsicurl/", "/vsicurl_streaming/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/",
                  "/vsioss/", "/vsiswift/", "/vsiwebhdfs/")
_REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "az://", "azure://")


def is_remote(href: str) -> bool:
    """True for hrefs GDAL reads over the network (http(s), object stores, /vsicurl/ ...)."""
    h = str(href)
    if h.startswith("/vsi"):
        inner = h.split("/", 2)[2] if h.count("/") >= 2 else ""
        return h.startswith(_CURL_PREFIXES) or is_remote(inner)
    return h.lower().startswith(_REMOTE_SCHEMES)


def http_url(href: str) -> str | None:
    """The http(s) URL behind ``href`` (``/vsicurl/`` and nested ``/vsi*/`` prefixes removed),
    or None when ``href`` is not read over plain HTTP."""
    h = str(href)
    while h.startswith("/vsi"):
        if h.startswith("/vsicurl?"):
            return None  # option-string form: not produced by this package
        parts = h.split("/", 2)
        h = parts[2] if len(parts) > 2 else ""
    return h if h.lower().startswith(("http://", "https://")) else None


def _timeouts(timeout: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(timeout, (tuple, list)):
        connect, read = float(timeout[0]), float(timeout[1])
    else:
        connect = read = float(timeout)
    return connect, read


def _seconds(value: float) -> str:
    # GDAL parses these with CPLAtof; whole seconds are written without a fraction.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def gdal_read_options(archive: Any, href: str) -> dict[str, str]:
    """GDAL configuration options for reading ``href`` of ``archive`` (see the module docstring).

    ``archive`` may be None (a raster that belongs to no archive, e.g. a land-cover map read
    over HTTP): the default :class:`RetryPolicy` applies and no credential is sent. Returns
    ``{}`` for local files.
    """
    if not is_remote(href):
        return {}
    policy = getattr(archive, "policy", None)
    if not isinstance(policy, RetryPolicy):
        policy = RetryPolicy()
    connect, read = _timeouts(policy.timeout)
    opts: dict[str, str] = {
        "GDAL_HTTP_MAX_RETRY": str(int(policy.max_retries)),
        # GDAL's first retry waits this long, later ones about twice the previous (jittered).
        "GDAL_HTTP_RETRY_DELAY": _seconds(max(policy.backoff_base, 0.0)),
        # Whole-request limit; a ranged COG request is small, so the read timeout bounds it.
        "GDAL_HTTP_TIMEOUT": _seconds(max(1.0, math.ceil(read))),
        "GDAL_HTTP_CONNECTTIMEOUT": _seconds(max(1.0, math.ceil(connect))),
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_USERAGENT": USER_AGENT,
    }
    url = http_url(href)
    read_auth = getattr(archive, "read_auth", None)
    headers = read_auth(url) if (url and callable(read_auth)) else None
    if headers:
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                raise ValueError(f"credential header {name!r} of {archive!r} contains a line break")
        # One "Name: value" per line. libcurl drops a custom Authorization header on a redirect
        # to another host; GDAL adds these headers to every request of this read.
        opts["GDAL_HTTP_HEADERS"] = "\r\n".join(f"{k}: {v}" for k, v in headers.items())
    return opts


def describe(options: Mapping[str, Any]) -> dict[str, str]:
    """A copy of ``options`` safe to log (credential values redacted)."""
    return {k: redact(v) for k, v in options.items()}


__all__ = ["describe", "gdal_read_options", "http_url", "is_remote"]
