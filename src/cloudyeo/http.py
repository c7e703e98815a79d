"""HTTP with retries, redaction and resumable downloads.

One home for talking to remote services:

* :class:`RetryPolicy` — bounded retries with exponential backoff and *full jitter*
  (``sleep = uniform(0, min(cap, base * 2**n))``), ``Retry-After`` honoured (capped), and a
  bound on the total time slept. The same policy drives :class:`HttpClient` (requests) and
  :class:`LoggingRetry` (urllib3, used under pystac-client).
* :class:`HttpClient` — a ``requests`` session that retries HTTP 429 / 5xx, connection errors
  and timeouts; 401/403 raise :class:`AuthError` at once, naming the environment variable
  that should hold the credential (never the credential itself).
* :func:`redact` — strips secrets (``sig=``, ``token=``, ``key=``, ``Authorization`` …, and any
  value registered with :func:`register_secret`) from URLs, headers and messages. Every log
  line and exception message written by this module goes through it.
* :func:`download` — resumable (HTTP Range into ``<dest>.part``), atomic rename, size / sha256
  verification, and a provenance record written next to the file.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cloudyeo.atomic import write_json

log = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
AUTH_STATUSES: frozenset[int] = frozenset({401, 403})
USER_AGENT = "cloudyeo (+https://github.com/cloudyeo)"


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class HttpError(RuntimeError):
    """A request failed (after retries, or with a status that is not retried).

    The message carries a redacted URL only; ``status`` is the last HTTP status (None when no
    response was received).
    """

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None):
        super().__init__(redact(message))
        self.status = status
        self.url = redact(url) if url else None


class AuthError(HttpError):
    """The server refused the credentials (HTTP 401/403) or none were given.

    The message names the environment variable expected to hold the credential
    (``credential_env``) and never contains the credential.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        credential_env: str | None = None,
    ):
        super().__init__(message, status=status, url=url)
        self.credential_env = credential_env


class IntegrityError(HttpError):
    """A downloaded file does not match its expected size or sha256."""


def auth_error(status: int | None, url: str, credential_env: str | None) -> AuthError:
    """Build the :class:`AuthError` for a refused request (message names the env variable)."""
    what = {401: "401 Unauthorized", 403: "403 Forbidden"}.get(status or 0, f"{status}")
    if credential_env:
        hint = (
            f"set the environment variable {credential_env} to a valid credential "
            f"(it is {'set but was refused' if os.environ.get(credential_env) else 'not set'})"
        )
    else:
        hint = "this service needs credentials that cloudyeo was not given"
    return AuthError(
        f"HTTP {what} from {redact(url)}: {hint}",
        status=status,
        url=url,
        credential_env=credential_env,
    )


# --------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------

REDACTED = "REDACTED"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# Query-string / form / JSON keys whose values are secrets (matched on the whole key, case-
# insensitively, ``-`` read as ``_``). Azure SAS tokens carry the signature in ``sig`` and its
# expiry/permissions/signing-key identity in ``se``/``sp``/``sk*``; AWS and Google presigned URLs
# use ``X-Amz-*``/``X-Goog-*``; OAuth redirects carry ``code``.
_SECRET_KEYS = frozenset({
    "sig", "signature", "se", "sp", "skoid", "sktid", "skt", "ske", "sks", "skv",
    "token", "access_token", "refresh_token", "id_token", "auth_token", "session_token",
    "security_token", "sas_token", "bearer", "code",
    "key", "api_key", "apikey", "access_key", "secret_key", "private_key", "account_key",
    "subscription_key", "ocp_apim_subscription_key", "client_secret", "secret",
    "password", "passwd", "pwd", "authorization", "auth",
    "x_amz_signature", "x_amz_credential", "x_amz_security_token",
    "x_goog_signature", "x_goog_credential",
})
# Short or common words that are secrets only as URL query parameters (``?code=``, ``&se=``),
# not in prose such as "exit code=3".
_QUERY_ONLY_KEYS = frozenset({"code", "se", "sp", "key", "auth"})
# ``key=value`` where the key starts a token (start, whitespace, ``?&;,("'`` before it). The
# value stops at whitespace, ``& ; , # ) ] > " '`` so that the words around it survive.
_KV_RE = re.compile(
    r"(?P<pre>(?:^|[?&;\s,\"'(\[{]))(?P<key>[A-Za-z0-9_.\-]+)=(?P<val>[^&;\s,\"')\]>#}]+)")
# JSON / repr of a mapping: "key": "value" (both quote styles).
_JSON_KV_RE = re.compile(
    r"(?P<q>[\"'])(?P<key>[A-Za-z0-9_.\-]+)(?P=q)(?P<sep>\s*:\s*)(?P<vq>[\"'])(?P<val>[^\"'\n\r]*)(?P=vq)")
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s:?#]+(?::[^/@\s?#]*)?@")
# A credential-bearing header: its value is an optional auth scheme plus ONE token.
_HEADER_RE = re.compile(
    r"(?i)(?P<name>\b(?:proxy-)?authorization|ocp-apim-subscription-key|x-api-key|api-key|apikey|"
    r"x-amz-security-token|x-auth-token|private-token)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<val>(?:(?:bearer|basic|api-key|token|sharedaccesssignature)\s+)?[^\s\"',;}\])]+)"
)
# Cookies are lists of pairs: the whole header value goes (up to a quote or the line end).
_COOKIE_RE = re.compile(r"(?i)(?P<name>\b(?:set-)?cookie)(?P<sep>[\"']?\s*:\s*[\"']?)(?P<val>[^\"'\n\r]+)")
# ``Bearer <token>`` in free text. A token has >= 8 characters and at least one character that
# is not a lower-case letter, so that "basic authentication" or "bearer tokens" stay readable.
_SCHEME_TOKEN_RE = re.compile(
    r"\b(?P<scheme>(?i:bearer|basic|sharedaccesssignature))\s+"
    r"(?P<val>(?=[A-Za-z0-9._~+/=\-]*[^a-z\s])[A-Za-z0-9._~+/=\-&%]{8,})")

_SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "ocp-apim-subscription-key",
        "x-api-key",
        "api-key",
        "apikey",
        "cookie",
        "set-cookie",
        "x-amz-security-token",
        "x-auth-token",
        "private-token",
    }
)


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` removes it wherever it appears."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _is_secret_key(key: str, pre: str) -> bool:
    k = key.lower().replace("-", "_")
    if k not in _SECRET_KEYS:
        return False
    return k not in _QUERY_ONLY_KEYS or pre in ("?", "&", ";")


def redact(text: Any) -> str:
    """Return ``text`` (URL, header dump, message) with secrets replaced by ``REDACTED``.

    Removes exactly the secret and nothing around it: values of secret query/form/JSON keys
    (``sig``, ``se``, ``sp``, ``sk*``, ``token``, ``access_token``, ``key``, ``api_key``,
    ``X-Amz-Signature`` ...; the value ends at ``&``, whitespace or punctuation), URL user-info
    (``user:pass@``), the one token after ``Authorization:`` / subscription-key headers (with
    its ``Bearer``/``Basic`` scheme), ``Bearer <token>`` in prose, and any value registered
    with :func:`register_secret`. Words next to a secret survive.
    """
    if text is None:
        return ""
    s = str(text)
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in s:
            s = s.replace(secret, REDACTED)
    s = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", s)
    s = _COOKIE_RE.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", s)
    s = _HEADER_RE.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", s)
    s = _SCHEME_TOKEN_RE.sub(lambda m: f"{m.group('scheme')} {REDACTED}", s)

    def _json_kv(m: re.Match[str]) -> str:
        if m.group("val") and _is_secret_key(m.group("key"), "&") and m.group("val") != REDACTED:
            return (f"{m.group('q')}{m.group('key')}{m.group('q')}{m.group('sep')}"
                    f"{m.group('vq')}{REDACTED}{m.group('vq')}")
        return m.group(0)

    def _kv(m: re.Match[str]) -> str:
        if _is_secret_key(m.group("key"), m.group("pre")):
            return f"{m.group('pre')}{m.group('key')}={REDACTED}"
        return m.group(0)

    s = _JSON_KV_RE.sub(_json_kv, s)
    return _KV_RE.sub(_kv, s)


def redact_url(url: str) -> str:
    """Redact a URL (alias of :func:`redact` for readability at call sites)."""
    return redact(url)


def redact_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A copy of ``headers`` with sensitive values replaced by ``REDACTED``."""
    out: dict[str, str] = {}
    for k, v in (headers or {}).items():
        out[k] = REDACTED if k.lower() in _SENSITIVE_HEADERS else redact(v)
    return out


def strip_query(url: str) -> str:
    """The URL without query string and fragment (for provenance where no query is needed)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _redact_exception_text(record: logging.LogRecord, formatter: logging.Formatter) -> None:
    """Render the record's traceback (chained causes included) once, redacted, into exc_text."""
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(formatter.formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record: its message (``msg`` % ``args``), and its
    traceback text including every chained ``__cause__``/``__context__``.

    Attached to a *handler* it sees every record the handler writes, whichever logger emitted
    it (``rasterio._err`` with GDAL's message naming a signed URL, urllib3, our own).
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - malformed record: leave it alone
            msg = None
        if msg is not None:
            red = redact(msg)
            if red != msg:
                record.msg, record.args = red, None
        _redact_exception_text(record, self._formatter)
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and redacts everything it produces (message, traceback, stack)."""

    def __init__(self, inner: logging.Formatter | None = None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        _redact_exception_text(record, self.inner)
        return redact(self.inner.format(record))

    def formatException(self, ei: Any) -> str:
        return redact(self.inner.formatException(ei))


_FILTER = RedactingFilter()


def install_log_redaction(names: Iterable[str] = ("urllib3", "urllib3.connectionpool",
                                                   "urllib3.util.retry", "pystac_client",
                                                   "pystac_client.stac_api_io", "requests",
                                                   "rasterio._err", "rasterio._env",
                                                   __name__)) -> None:
    """Attach :class:`RedactingFilter` to third-party loggers that print request URLs.

    urllib3 and pystac-client log full URLs (and pystac-client request headers) at DEBUG
    level, rasterio relays GDAL's error messages (which name the opened URL); with the filter
    those lines are redacted too. Idempotent. Logger filters do not see records of child
    loggers: :func:`install_handler_redaction` covers every logger at the handler level.
    """
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    # The handler of last resort (a process that never configured logging) redacts too.
    last = logging.lastResort
    if last is not None and _FILTER not in last.filters:
        last.addFilter(_FILTER)


def install_handler_redaction(logger: logging.Logger | None = None) -> None:
    """Redact every record written by the handlers of ``logger`` (default: the root logger).

    Each handler gets :class:`RedactingFilter` (message, args, traceback with chained causes)
    and its formatter is wrapped in :class:`RedactingFormatter` (the final text). Call it
    after configuring logging (the CLI does); idempotent.
    """
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def redacting_excepthook(exc_type: type[BaseException], exc: BaseException | None, tb: Any) -> None:
    """``sys.excepthook`` that prints the traceback (chained causes included) redacted."""
    import sys
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))
    sys.stderr.flush()


install_log_redaction()


# --------------------------------------------------------------------------------------
# Retry policy (shared by requests and urllib3 paths)
# --------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now_ts = time.time() if now is None else now
    return max(0.0, when.timestamp() - now_ts)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    ``max_retries`` retries after the first attempt (so ``max_retries + 1`` attempts at most);
    the n-th retry sleeps ``uniform(0, min(backoff_max, backoff_base * 2**(n-1)))`` (full
    jitter), or the server's ``Retry-After`` (capped at ``retry_after_max``) when given; no
    retry is made once the sleeps would exceed ``max_total_sleep`` seconds in total.
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    max_total_sleep: float = 180.0
    timeout: float | tuple[float, float] = 60.0
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Full-jitter delay before retry number ``retry_number`` (1-based)."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** max(0, retry_number - 1)))
        return (rng or random).uniform(0.0, cap)

    def delay(
        self, retry_number: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.retry_after_max))
        return self.backoff(retry_number, rng)

    def urllib3_retry(self, logger: logging.Logger | None = None) -> LoggingRetry:
        """The equivalent urllib3 ``Retry`` (for requests adapters / pystac-client)."""
        return LoggingRetry.from_policy(self, logger=logger)


class _RetryBudget:
    """Mutable bookkeeping for one logical request under a :class:`RetryPolicy`."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.policy = policy
        self.retries = 0
        self.slept = 0.0
        self._rng = rng
        self._sleep = sleep

    def wait(self, *, method: str, url: str, reason: str, retry_after: float | None) -> bool:
        """Sleep before the next retry and log it; False when the budget is spent."""
        if self.retries >= self.policy.max_retries:
            return False
        delay = self.policy.delay(self.retries + 1, retry_after, self._rng)
        if self.slept + delay > self.policy.max_total_sleep:
            remaining = self.policy.max_total_sleep - self.slept
            if retry_after is not None or remaining <= 0:
                return False  # the server asks for more than we are willing to wait
            delay = remaining
        self.retries += 1
        log.warning(
            "retry %d/%d for %s %s after %s; sleeping %.2f s",
            self.retries, self.policy.max_retries, method, redact(url), redact(reason), delay,
        )
        self.slept += delay
        self._sleep(delay)
        return True


class LoggingRetry(Retry):
    """urllib3 ``Retry`` with full-jitter backoff, a total-sleep bound and redacted logging.

    Used under pystac-client (``StacApiIO(max_retries=LoggingRetry(...))``). Each retry is
    logged at WARNING with the URL redacted; ``Retry-After`` is honoured (capped at
    ``retry_after_max``); POST is retried too (STAC ``/search`` is a read).
    """

    DEFAULT_ALLOWED_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST"})

    def __init__(self, *args: Any, max_total_sleep: float = 180.0, backoff_base: float = 0.5,
                 slept: float = 0.0, logger_name: str = __name__, **kwargs: Any):
        kwargs.setdefault("allowed_methods", self.DEFAULT_ALLOWED_METHODS)
        super().__init__(*args, **kwargs)
        self.max_total_sleep = max_total_sleep
        self.backoff_base = backoff_base
        self.slept = slept
        self.logger_name = logger_name
        self._next_delay: float | None = None

    @classmethod
    def from_policy(cls, policy: RetryPolicy, logger: logging.Logger | None = None) -> LoggingRetry:
        return cls(
            total=policy.max_retries,
            connect=policy.max_retries,
            read=policy.max_retries,
            status=policy.max_retries,
            other=0,
            redirect=10,
            status_forcelist=sorted(policy.statuses),
            backoff_factor=policy.backoff_base,
            backoff_max=policy.backoff_max,
            retry_after_max=int(policy.retry_after_max),
            raise_on_status=False,
            respect_retry_after_header=True,
            max_total_sleep=policy.max_total_sleep,
            backoff_base=policy.backoff_base,
            logger_name=(logger or log).name,
        )

    def new(self, **kw: Any) -> LoggingRetry:
        new = super().new(**kw)
        new.max_total_sleep = self.max_total_sleep
        new.backoff_base = self.backoff_base
        new.slept = self.slept
        new.logger_name = self.logger_name
        return new

    def _n_errors(self) -> int:
        return sum(1 for h in self.history if h.redirect_location is None)

    def get_backoff_time(self) -> float:
        n = self._n_errors()
        if n <= 0:
            return 0.0
        cap = min(self.backoff_max, self.backoff_base * (2 ** (n - 1)))
        return random.uniform(0.0, cap)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self.slept >= self.max_total_sleep > 0

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None):
        full = url or ""
        if _pool is not None and url and url.startswith("/"):
            port = getattr(_pool, "port", None)
            full = f"{getattr(_pool, 'scheme', 'http')}://{getattr(_pool, 'host', '')}" + (
                f":{port}" if port else "") + url
        if error is not None:
            reason = type(error).__name__
        elif response is not None and getattr(response, "status", None):
            reason = f"HTTP {response.status}"
        else:
            reason = "error"
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if error is None and response is not None and response.get_redirect_location():
            new._next_delay = 0.0  # a redirect, not a failure
            return new
        retry_after = None
        if response is not None and self.respect_retry_after_header:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None:
            delay = min(retry_after, float(self.retry_after_max))
        else:
            delay = new.get_backoff_time()
        remaining = self.max_total_sleep - self.slept
        if delay > remaining:
            if retry_after is not None or remaining <= 0:
                logging.getLogger(self.logger_name).warning(
                    "giving up on %s %s after %s: waiting %.1f s would exceed the %.0f s retry budget",
                    method, redact(full), reason, delay, self.max_total_sleep)
                from urllib3.exceptions import MaxRetryError, ResponseError
                raise MaxRetryError(_pool, url, error or ResponseError(reason))
            delay = remaining
        new._next_delay = delay
        new.slept = self.slept + delay
        n = new._n_errors()
        limit = n + new.total if isinstance(new.total, int) else "?"
        logging.getLogger(self.logger_name).warning(
            "retry %d/%s for %s %s after %s; sleeping %.2f s",
            n, limit, method, redact(full), reason, delay,
        )
        return new

    def sleep(self, response: Any = None) -> None:
        delay = self._next_delay
        if delay is None:  # not produced by our increment (should not happen)
            delay = self.get_backoff_time()
        if delay > 0:
            time.sleep(delay)


# --------------------------------------------------------------------------------------
# Credentials scoped to origins; bodies read under the retry policy
# --------------------------------------------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, lower-cased, default port filled in (RFC 6454).

    User-info is ignored, so ``https://u@h/`` and ``https://h:443/x`` share an origin.
    """
    parts = urlsplit(str(url))
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(url: str, other: str) -> bool:
    """True when both URLs have the same scheme, host and port."""
    return origin(url) == origin(other)


class ScopedCredentials:
    """Credential headers and the origins (scheme+host+port) they may be sent to.

    ``for_url(url)`` gives the headers for a request to ``url``: all of them on an allowed
    origin, none elsewhere. Every value is registered with :func:`register_secret`.
    """

    def __init__(self, headers: Mapping[str, str] | None, origins: Iterable[str]):
        self.headers = {str(k): str(v) for k, v in (headers or {}).items() if v}
        self.origins = frozenset(origin(u) for u in origins if u)
        for value in self.headers.values():
            register_secret(value)
            register_secret(value.split(" ", 1)[-1])

    def __bool__(self) -> bool:
        return bool(self.headers)

    def __repr__(self) -> str:
        return (f"ScopedCredentials(headers={sorted(self.headers)}, "
                f"origins={sorted(f'{s}://{h}:{p}' for s, h, p in self.origins)})")

    def allows(self, url: str) -> bool:
        return bool(self.headers) and origin(url) in self.origins

    def for_url(self, url: str) -> dict[str, str]:
        return dict(self.headers) if self.allows(url) else {}


class IncompleteResponse(requests.exceptions.RequestException):
    """A response body stayed cut short or unparsable after every retry (message redacted).

    ``problem`` says what was wrong with the body (no URL).
    """

    def __init__(self, message: str, *, problem: str = "incomplete response body"):
        super().__init__(message)
        self.problem = problem


_BODY_ERRORS = (
    requests.exceptions.ChunkedEncodingError,  # connection dropped mid-body / short Content-Length
    requests.exceptions.ContentDecodingError,
    requests.exceptions.ConnectionError,  # read timeout while streaming the body
)


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` transport adapter for services that take credentials.

    * **Credentials go only to their origins.** Before *every* request it sends (redirects and
      ``next`` page links included) it removes the credential headers and adds them back only
      when the request's origin is one :class:`ScopedCredentials` allows. Session-wide headers
      are never used for credentials.
    * **Status retries** as :class:`LoggingRetry` (429/5xx, connection errors, read timeouts).
    * **Body retries** (non-streamed requests): the body is read here; a connection cut after
      the headers, a body shorter than its ``Content-Length``, or (``json_bodies``) a 2xx JSON
      response that does not parse is retried under the same :class:`RetryPolicy` backoff,
      then raised as :class:`IncompleteResponse`.
    """

    def __init__(self, policy: RetryPolicy, credentials: ScopedCredentials | None = None, *,
                 json_bodies: bool = False, status_retries: bool = True,
                 logger: logging.Logger | None = None,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any):
        self.policy = policy
        self.credentials = credentials or ScopedCredentials({}, ())
        self.json_bodies = json_bodies
        self._sleep = sleep
        # status_retries=False: the caller retries (HttpClient); errors surface unwrapped.
        retry = policy.urllib3_retry(logger) if status_retries else Retry(0, read=False)
        super().__init__(max_retries=retry, **kwargs)

    def _scope(self, request: requests.PreparedRequest) -> None:
        for name in self.credentials.headers:
            request.headers.pop(name, None)
        request.headers.update(self.credentials.for_url(request.url or ""))

    def _body_problem(self, resp: requests.Response) -> str | None:
        try:
            content = resp.content
        except _BODY_ERRORS as exc:
            return f"interrupted response body ({type(exc).__name__})"
        if self.json_bodies and 200 <= resp.status_code < 300 and \
                "json" in (resp.headers.get("Content-Type") or "").lower():
            try:
                json.loads(content.decode(resp.encoding or "utf-8"))
            except ValueError:
                return f"truncated or invalid JSON body ({len(content)} bytes)"
        return None

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self._scope(request)
        if stream:
            return super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                                proxies=proxies)
        budget = _RetryBudget(self.policy, sleep=self._sleep)
        while True:
            resp = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert,
                                proxies=proxies)
            problem = self._body_problem(resp)
            if problem is None:
                return resp
            resp.close()
            if not budget.wait(method=request.method or "GET", url=request.url or "",
                               reason=problem, retry_after=None):
                raise IncompleteResponse(redact(
                    f"{request.method} {request.url}: {problem} after {budget.retries + 1} attempts"),
                    problem=problem)


def mount_guarded(session: requests.Session, adapter: GuardedAdapter) -> requests.Session:
    """Mount ``adapter`` for http:// and https:// on ``session`` (returns the session)."""
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------


class HttpClient:
    """A ``requests`` session with bounded, logged, jittered retries.

    Parameters
    ----------
    policy:
        Retry/timeout policy (defaults: 5 retries, 0.5 s base, 30 s cap, 60 s timeout).
    credential_env:
        Name of the environment variable that holds the credential for this service; it is
        only used to word :class:`AuthError` messages.
    headers:
        Extra headers for every request (e.g. an ``Authorization`` header). Their values are
        registered as secrets so they are redacted from logs and errors.
    auth_origins:
        When given, credential headers among ``headers`` (``Authorization``, subscription
        keys ...) are sent only to these origins (scheme+host+port), redirects included,
        through a :class:`GuardedAdapter`; other headers go everywhere.
    session:
        An existing ``requests.Session`` to use (its transport adapters are kept, unless
        ``auth_origins`` is given).

    A response body cut off after its headers (or shorter than its ``Content-Length``) is
    retried like a 5xx, and so is a JSON body that does not parse in :meth:`get_json`.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        credential_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        auth_origins: Iterable[str] | None = None,
        session: requests.Session | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.policy = policy or RetryPolicy()
        self.credential_env = credential_env
        own_session = session is None
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        scoped: dict[str, str] = {}
        for k, v in (headers or {}).items():
            if k.lower() in _SENSITIVE_HEADERS:
                register_secret(str(v).split(" ", 1)[-1])
                register_secret(str(v))
                if auth_origins is not None:
                    scoped[k] = str(v)
                    continue
            self.session.headers[k] = v
        self.credentials = ScopedCredentials(scoped, auth_origins or ())
        if own_session or auth_origins is not None:
            # Statuses are retried by request() below; the adapter scopes credentials and
            # reads bodies (a failed body read surfaces at once and is retried here too).
            mount_guarded(self.session, GuardedAdapter(
                RetryPolicy(max_retries=0, timeout=self.policy.timeout), self.credentials,
                status_retries=False))
        self._rng = rng
        self._sleep = sleep

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def budget(self) -> _RetryBudget:
        return _RetryBudget(self.policy, self._rng, self._sleep)

    def request(
        self,
        method: str,
        url: str,
        *,
        ok: Iterable[int] | None = None,
        budget: _RetryBudget | None = None,
        credential_env: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request, retrying transient failures; return the response.

        Statuses < 400 (or listed in ``ok``) are returned; 401/403 raise :class:`AuthError`;
        429/5xx, connection errors and timeouts are retried; anything else raises
        :class:`HttpError` with the URL redacted.
        """
        ok_set = set(ok or ())
        kwargs.setdefault("timeout", self.policy.timeout)
        budget = budget or self.budget()
        env = credential_env or self.credential_env
        while True:
            try:
                resp = self.session.request(method, url, **kwargs)
            except requests.exceptions.SSLError:  # certificate problems do not heal by waiting
                raise HttpError(f"{method} {redact(url)}: TLS/SSL error", url=url) from None
            except (requests.ConnectionError, requests.Timeout, IncompleteResponse,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                reason = getattr(exc, "problem", None) or type(exc).__name__
                if budget.wait(method=method, url=url, reason=reason, retry_after=None):
                    continue
                raise HttpError(
                    f"{method} {redact(url)} failed after {budget.retries + 1} attempts: {reason}",
                    url=url,
                ) from None
            status = resp.status_code
            if status < 400 or status in ok_set:
                return resp
            if status in AUTH_STATUSES:
                resp.close()
                raise auth_error(status, url, env) from None
            if status in self.policy.statuses:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                resp.close()
                if budget.wait(method=method, url=url, reason=f"HTTP {status}", retry_after=retry_after):
                    continue
                raise HttpError(
                    f"{method} {redact(url)} failed after {budget.retries + 1} attempts: HTTP {status}",
                    status=status,
                    url=url,
                ) from None
            body = ""
            try:
                body = resp.text[:300]
            except Exception:  # pragma: no cover
                pass
            resp.close()
            raise HttpError(
                f"{method} {redact(url)} returned HTTP {status}: {redact(body)}", status=status, url=url
            ) from None

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", url, **kwargs)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET and parse JSON; a body that does not parse (cut short) is retried."""
        budget = kwargs.pop("budget", None) or self.budget()
        while True:
            resp = self.request("GET", url, budget=budget, **kwargs)
            try:
                return resp.json()
            except ValueError:
                n = len(resp.content or b"")
                if budget.wait(method="GET", url=url, reason=f"truncated or invalid JSON ({n} bytes)",
                               retry_after=None):
                    continue
                raise HttpError(f"GET {redact(url)} did not return JSON ({n} bytes) after "
                                f"{budget.retries + 1} attempts", status=resp.status_code,
                                url=url) from None


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------

_CONTENT_RANGE_RE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


def _sha256_file(path: Path, h: hashlib._Hash | None = None) -> hashlib._Hash:
    h = h or hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h


def provenance_path(dest: str | os.PathLike[str]) -> Path:
    """Where :func:`download` writes the provenance record of ``dest``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".provenance.json")


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    session: HttpClient | requests.Session | None = None,
    expected_size: int | None = None,
    sha256: str | None = None,
    validate: Callable[[Path], None] | None = None,
    chunk_size: int = 1 << 16,
    force: bool = False,
) -> dict[str, Any]:
    """Download ``url`` to ``dest`` resumably and atomically; return the provenance record.

    Bytes are streamed into ``<dest>.part``; an interrupted transfer (connection drop, timeout,
    5xx) resumes from the bytes already there with an HTTP ``Range`` request (restarting from
    zero when the server ignores ranges).

    Integrity, in order: the body must reach the size the server declared for the whole
    resource (``Content-Range`` total, else ``Content-Length``); a later response declaring a
    different total is refused. Then ``expected_size`` / ``sha256`` (when given) and
    ``validate(part_path)`` (a format check that raises :class:`IntegrityError`, e.g. "every
    GeoTIFF block lies inside the file") are checked. A file failing any check is deleted and
    fetched again from scratch under the retry policy; only then is :class:`IntegrityError`
    raised. A verified file is renamed onto ``dest`` (atomic on one filesystem) and a
    provenance record ``{url (redacted), size, sha256, downloaded_at, verified, ...}`` is
    written to ``<dest>.provenance.json``.

    An existing ``dest`` is reused (no request) only when its provenance record matches its
    size *and* its sha256 (re-hashed), the expectations and ``validate``; otherwise it is
    fetched again. ``force`` always fetches.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    prov_path = provenance_path(dest)
    sha256 = sha256.lower() if sha256 else None

    if dest.exists() and not force:
        existing = _existing_record(dest, prov_path, expected_size, sha256, validate)
        if existing is not None:
            return existing
        log.warning("%s: no valid provenance record or checksum mismatch; fetching it again",
                    dest.name)

    if isinstance(session, HttpClient):
        client = session
    else:
        client = HttpClient(session=session)
    budget = client.budget()
    headers_info: dict[str, str] = {}

    while True:
        total = _transfer(client, url, part, budget, expected_size, headers_info, chunk_size)
        size = part.stat().st_size
        digest = _sha256_file(part).hexdigest()
        problem = None
        if expected_size is not None and size != expected_size:
            problem = f"size {size} != expected {expected_size}"
        elif sha256 is not None and digest != sha256:
            problem = f"sha256 {digest} != expected {sha256}"
        elif validate is not None:
            try:
                validate(part)
            except IntegrityError as exc:
                problem = str(exc)
        if problem is None:
            break
        part.unlink(missing_ok=True)
        if budget.wait(method="GET", url=url, reason=f"{dest.name} failed verification ({problem})",
                       retry_after=None):
            continue
        raise IntegrityError(
            f"{dest.name}: {problem} (from {redact(url)}, {budget.retries + 1} attempts)", url=url)

    os.replace(part, dest)
    record = {
        "url": redact(url),
        "file": dest.name,
        "size": size,
        "sha256": digest,
        "declared_size": total,
        "downloaded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "verified": {"size": expected_size is not None, "sha256": sha256 is not None,
                     "format": validate is not None},
        "retries": budget.retries,
        **{k: redact(v) for k, v in headers_info.items()},
    }
    write_json(prov_path, record, indent=2, sort_keys=True)
    return record


def _transfer(client: HttpClient, url: str, part: Path, budget: _RetryBudget,
              expected_size: int | None, headers_info: dict[str, str], chunk_size: int) -> int:
    """Fill ``part`` with the whole resource (resuming); return its declared total size."""
    declared: int | None = None  # the whole resource's size as the server stated it
    total: int | None = expected_size
    name = part.name.removesuffix(".part")

    def _refuse(reason: str) -> None:
        part.unlink(missing_ok=True)
        if not budget.wait(method="GET", url=url, reason=reason, retry_after=None):
            raise IntegrityError(f"{reason} (GET {redact(url)})", url=url)

    while True:
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have > total:
            part.unlink()
            have = 0
        if total is not None and have == total and total > 0 and declared is not None:
            return total
        headers = {"Accept-Encoding": "identity"}  # byte ranges of the stored file
        if have:
            headers["Range"] = f"bytes={have}-"
        resp = client.request("GET", url, headers=headers, stream=True, ok={416}, budget=budget)
        try:
            if resp.status_code == 416:
                m = _CONTENT_RANGE_RE.search(resp.headers.get("Content-Range", ""))
                size = int(m.group(3)) if m and m.group(3) != "*" else None
                if size is not None and size == have and (total is None or total == size):
                    return size
                part.unlink(missing_ok=True)  # the part file is not a prefix of this resource
                if not budget.wait(method="GET", url=url, reason="HTTP 416", retry_after=None):
                    raise HttpError(f"GET {redact(url)}: range not satisfiable", status=416, url=url)
                continue
            if resp.status_code == 206:
                m = _CONTENT_RANGE_RE.search(resp.headers.get("Content-Range", ""))
                if not m or m.group(1) is None or int(m.group(1)) != have:
                    # Unexpected range: restart from scratch.
                    part.unlink(missing_ok=True)
                    continue
                mode = "ab"
                now = int(m.group(3)) if m.group(3) != "*" else None
            else:
                mode = "wb"  # 200: the server sent the whole body (ignores Range or fresh start)
                have = 0
                cl = resp.headers.get("Content-Length")
                identity = resp.headers.get("Content-Encoding") in (None, "identity")
                now = int(cl) if cl is not None and identity else None
            if now is not None:
                if declared is not None and now != declared:
                    # e.g. a resumed transfer answered by a cache holding a shorter copy
                    resp.close()
                    _refuse(f"{name}: the server declared a size of {now} bytes, earlier {declared}")
                    declared = None
                    continue
                if expected_size is not None and now != expected_size:
                    resp.close()
                    _refuse(f"{name}: the server declared a size of {now} bytes, expected "
                            f"{expected_size}")
                    continue
                declared = total = now
            for key in ("ETag", "Last-Modified", "Content-Type"):
                if key in resp.headers:
                    headers_info[key.lower()] = resp.headers[key]
            with open(part, mode) as fh:
                for chunk in resp.iter_content(chunk_size):
                    if chunk:
                        fh.write(chunk)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            resp.close()
            if budget.wait(method="GET", url=url, reason=f"interrupted transfer ({type(exc).__name__})",
                           retry_after=None):
                continue
            raise HttpError(f"GET {redact(url)}: transfer interrupted too often", url=url) from None
        finally:
            resp.close()
        got = part.stat().st_size
        if total is None:
            # No size declared at all (chunked, compressed): only the checks after the
            # transfer (sha256, validate) can tell a complete body from a short one.
            return got
        if got == total:
            return total
        if got < total:  # short body: resume
            if budget.wait(method="GET", url=url, reason=f"short transfer ({got}/{total} bytes)",
                           retry_after=None):
                continue
            raise HttpError(f"GET {redact(url)}: incomplete transfer ({got}/{total} bytes)", url=url)
        part.unlink()
        raise IntegrityError(f"GET {redact(url)}: received {got} bytes, more than {total}", url=url)


def _existing_record(dest: Path, prov_path: Path, expected_size: int | None,
                     sha256: str | None, validate: Callable[[Path], None] | None = None,
                     ) -> dict[str, Any] | None:
    if not prov_path.exists():
        return None
    try:
        record = json.loads(prov_path.read_text())
    except (OSError, ValueError):
        return None
    size = dest.stat().st_size
    if record.get("size") != size:
        return None
    if expected_size is not None and size != expected_size:
        return None
    if sha256 is not None and record.get("sha256") != sha256:
        return None
    if _sha256_file(dest).hexdigest() != record.get("sha256"):
        return None  # changed on disk since it was verified
    if validate is not None:
        try:
            validate(dest)
        except IntegrityError:
            return None
    return record


def verified_copy(dest: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance record of ``dest`` when the file is complete and unchanged since
    :func:`download` verified it (size and re-hashed sha256 match the record), else None."""
    dest = Path(dest)
    if not dest.exists():
        return None
    return _existing_record(dest, provenance_path(dest), None, None)


def read_provenance(dest: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record written by :func:`download` for ``dest``."""
    return json.loads(provenance_path(dest).read_text())


__all__ = [
    "AUTH_STATUSES",
    "AuthError",
    "HttpClient",
    "GuardedAdapter",
    "HttpError",
    "IncompleteResponse",
    "IntegrityError",
    "LoggingRetry",
    "REDACTED",
    "RETRY_STATUSES",
    "RedactingFilter",
    "RedactingFormatter",
    "RetryPolicy",
    "ScopedCredentials",
    "auth_error",
    "download",
    "install_handler_redaction",
    "mount_guarded",
    "origin",
    "same_origin",
    "install_log_redaction",
    "parse_retry_after",
    "provenance_path",
    "read_provenance",
    "redact",
    "redact_headers",
    "redact_url",
    "redacting_excepthook",
    "register_secret",
    "strip_query",
    "verified_copy",
]
