"""Planetary Computer SAS signing against a loopback SAS endpoint."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloudyeo.archives import PlanetaryComputerSigner, SearchQuery, StacApiArchive, readable_href
from cloudyeo.http import AuthError, HttpClient, RetryPolicy, redact

UTC = dt.UTC
SIG = "SECRETsig0123456789abcdef"
FAST = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.02, timeout=5)


class SasServer:
    """``GET /api/sas/v1/token/<collection>`` -> a token; scripted failures first."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.failures: list[Any] = []
        self.expiry = (dt.datetime.now(UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.calls.append((self.path, dict(self.headers)))
                if server.failures:
                    status, headers = server.failures.pop(0)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                collection = self.path.rsplit("/", 1)[-1]
                body = json.dumps({"msft:expiry": server.expiry,
                                   "token": f"st=2024-01-01&se=2030-01-01&sp=rl&sv=2021-06-08&sr=c"
                                            f"&skoid={collection}-oid&sig={SIG}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/sas/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sas():
    server = SasServer()
    try:
        yield server
    finally:
        server.close()


def signer(sas: SasServer, **kw: Any) -> PlanetaryComputerSigner:
    return PlanetaryComputerSigner(sas.url, client=HttpClient(FAST), **kw)


def test_token_fetched_once_cached_and_appended(sas: SasServer, caplog):
    caplog.set_level(logging.DEBUG)
    s = signer(sas, env={})
    href = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/33/U/UP/B02.tif"
    signed = s.sign_href(href, "sentinel-2-l2a")
    assert signed.startswith(href + "?st=") and signed.endswith(f"sig={SIG}")
    assert s.sign_href(href + "?x=1", "sentinel-2-l2a").startswith(href + "?x=1&st=")
    assert s.sign_href(signed, "sentinel-2-l2a") == signed  # already signed
    assert s.sign_href("/local/file.tif", "sentinel-2-l2a") == "/local/file.tif"
    assert [p for p, _ in sas.calls] == ["/api/sas/v1/token/sentinel-2-l2a"]
    s.sign_href(href, "sentinel-1-grd")
    assert len(sas.calls) == 2  # one token per collection
    assert SIG not in caplog.text
    assert SIG not in redact(signed)


def test_expired_token_is_refreshed(sas: SasServer):
    now = [1_000_000_000.0]
    sas.expiry = "2001-09-09T02:00:00Z"  # = 1_000_000_800 + a little
    s = signer(sas, env={}, clock=lambda: now[0], margin_s=60)
    s.token("sentinel-2-l2a")
    s.token("sentinel-2-l2a")
    assert len(sas.calls) == 1
    now[0] += 3600
    s.token("sentinel-2-l2a")
    assert len(sas.calls) == 2


def test_subscription_key_header_and_rate_limit_retry(sas: SasServer, caplog):
    caplog.set_level(logging.DEBUG)
    key = "pc-subscription-KEY-987654321"
    sas.failures = [(429, {"Retry-After": "0"}), (503, {})]
    s = signer(sas, env={"PC_SDK_SUBSCRIPTION_KEY": key})
    assert "sig=" in s.token("sentinel-2-l2a")
    assert len(sas.calls) == 3
    assert all(h.get("Ocp-Apim-Subscription-Key") == key for _, h in sas.calls)
    assert key not in caplog.text and SIG not in caplog.text
    assert sum("retry" in r.getMessage() for r in caplog.records) == 2


def test_refused_key_raises_auth_error(sas: SasServer, caplog):
    key = "pc-subscription-KEY-refused-1"
    sas.failures = [(401, {})]
    s = signer(sas, env={"PC_SDK_SUBSCRIPTION_KEY": key})
    with pytest.raises(AuthError) as info:
        s.token("sentinel-2-l2a")
    assert "PC_SDK_SUBSCRIPTION_KEY" in str(info.value) and key not in str(info.value)
    assert key not in caplog.text


def test_planetary_computer_archive_signs_at_read_time(sas: SasServer, flaky_proxy,
                                                      catalog_dir: Path, monkeypatch):
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "pc-subscription-KEY-archive-1")
    arch = StacApiArchive("planetary-computer", url=flaky_proxy.url, sas_url=sas.url,
                          asset_base="https://pc.blob.core.windows.net/demo/", policy=FAST)
    query = SearchQuery("sentinel-2-l2a", dt.datetime(2022, 3, 1, tzinfo=UTC),
                        dt.datetime(2022, 3, 2, tzinfo=UTC), tile="33UUP")
    rec = arch.search(query)[0]
    href = rec.assets["B02"].href
    assert href == f"https://pc.blob.core.windows.net/demo/33UUP/{rec.id}/B02.tif"  # unsigned
    signed = readable_href(arch, rec, "B02")
    assert signed.startswith(href + "?") and f"sig={SIG}" in signed
    assert sas.calls[0][0].endswith("/token/sentinel-2-l2a")
    # The STAC API saw the subscription key header too.
    assert flaky_proxy.requests[-1][2].get("Ocp-Apim-Subscription-Key") == "pc-subscription-KEY-archive-1"
