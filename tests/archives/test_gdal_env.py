"""cloudyeo.archives.gdal_env: GDAL options for remote reads, checked with real GDAL on loopback.

A scripted ThreadingHTTPServer serves a small GeoTIFF (Range requests honoured); rasterio opens
``/vsicurl/`` URLs inside ``rasterio.Env(**gdal_read_options(archive, href))``.
"""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from cloudyeo.archives import LocalStacArchive, StacApiArchive
from cloudyeo.archives.gdal_env import describe, gdal_read_options, http_url, is_remote
from cloudyeo.http import RetryPolicy

DATA = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 10000
_names = itertools.count()


def _tiff() -> bytes:
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=64, height=64, count=1, dtype="uint16",
                      crs="EPSG:32633", transform=from_origin(300000, 5400000, 10, 10)) as ds:
            ds.write(DATA, 1)
        return mem.read()


TIFF = _tiff()


class TiffServer:
    """Serves TIFF at every path ending in .tif; ``script`` holds actions consumed one per
    request (in arrival order): an int status, or "stall" (hold the connection silently)."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, body: bool) -> None:
                with srv.lock:
                    srv.seen.append((self.command, self.path, dict(self.headers)))
                    action = srv.script.pop(0) if srv.script else None
                try:
                    if action == "stall":
                        srv.release.wait(60)
                        return
                    if isinstance(action, int):
                        self.send_response(action)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    if not self.path.split("?")[0].endswith(".tif"):
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    payload, status, extra = TIFF, 200, {}
                    rng = self.headers.get("Range")
                    if rng:
                        start, _, end = rng.split("=", 1)[1].partition("-")
                        lo, hi = int(start), min(int(end or len(TIFF) - 1), len(TIFF) - 1)
                        payload, status = TIFF[lo:hi + 1], 206
                        extra["Content-Range"] = f"bytes {lo}-{hi}/{len(TIFF)}"
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("Content-Type", "image/tiff")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if body:
                        self.wfile.write(payload)
                except OSError:
                    pass

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def href(self) -> str:
        # A fresh name per read: GDAL caches what it learnt about a URL for the process.
        return f"{self.url}/scene{next(_names)}/B04.tif"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiffs():
    servers: list[TiffServer] = []

    def make() -> TiffServer:
        servers.append(TiffServer())
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def stac(url: str, *, retries: int = 3, timeout: float = 2.0, preset: str = "custom",
         env: dict[str, str] | None = None, **kw: Any) -> StacApiArchive:
    return StacApiArchive(preset, url=url, env=env or {},
                          policy=RetryPolicy(max_retries=retries, timeout=timeout, backoff_base=0.05),
                          **kw)


def read(archive: Any, href: str, **extra: str) -> np.ndarray:
    with rasterio.Env(**{**gdal_read_options(archive, href), **extra}), rasterio.open(href) as src:
        return src.read(1)


# ------------------------------------------------------------------------------ the options


def test_options_follow_the_archive_config():
    arch = StacApiArchive.from_config({"archive": "stac-api", "stac": {
        "preset": "custom", "url": "https://stac.example/v1", "max_retries": 7, "timeout_s": 12.5}})
    opts = gdal_read_options(arch, "https://data.example/a/B04.tif")
    assert opts["GDAL_HTTP_MAX_RETRY"] == "7"
    assert opts["GDAL_HTTP_TIMEOUT"] == "13" and opts["GDAL_HTTP_CONNECTTIMEOUT"] == "13"
    assert opts["GDAL_HTTP_RETRY_DELAY"] == "0.5"  # RetryPolicy.backoff_base
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert opts["GDAL_HTTP_MULTIRANGE"] == "YES"
    assert "GDAL_HTTP_HEADERS" not in opts  # no credential configured
    split = stac("https://stac.example", timeout=(3.0, 20.0))  # (connect, read) like requests
    o = gdal_read_options(split, "s3://bucket/B04.tif")
    assert (o["GDAL_HTTP_CONNECTTIMEOUT"], o["GDAL_HTTP_TIMEOUT"]) == ("3", "20")
    # Local files get nothing; rasters outside any archive get the default policy.
    assert gdal_read_options(arch, "/data/B04.tif") == {}
    assert gdal_read_options(LocalStacArchive.__new__(LocalStacArchive), "relative/B04.tif") == {}
    assert gdal_read_options(None, "https://x.example/lc.tif")["GDAL_HTTP_MAX_RETRY"] == "5"


def test_href_forms():
    assert is_remote("https://h/a.tif") and is_remote("/vsicurl/http://h/a.tif")
    assert is_remote("s3://b/k.tif") and is_remote("/vsis3/b/k.tif")
    assert is_remote("/vsizip//vsicurl/https://h/a.zip/x.tif")
    assert not is_remote("/vsizip//data/a.zip/x.tif") and not is_remote("/data/x.tif")
    assert http_url("/vsicurl/https://h/a.tif?x=1") == "https://h/a.tif?x=1"
    assert http_url("/vsizip//vsicurl/https://h/a.zip/x.tif") == "https://h/a.zip/x.tif"
    assert http_url("/vsis3/b/k.tif") is None and http_url("s3://b/k.tif") is None


def test_credential_only_for_the_configured_origins():
    token = "cdse-token-0123456789abcdef"
    cdse = stac("https://stac.dataspace.copernicus.eu/v1", preset="cdse",
                env={"CDSE_ACCESS_TOKEN": token})
    dl = "https://download.dataspace.copernicus.eu/odata/v1/Products(1)/Nodes(B04.jp2)/$value"
    for href in (dl, "/vsicurl/" + dl):
        assert gdal_read_options(cdse, href)["GDAL_HTTP_HEADERS"] == f"Authorization: Bearer {token}"
    for href in ("https://evil.example/B04.tif", "http://download.dataspace.copernicus.eu/x",
                 "https://download.dataspace.copernicus.eu.evil.example/x",
                 "/vsis3/eodata/Sentinel-2/B04.jp2", "/local/B04.tif"):
        assert "GDAL_HTTP_HEADERS" not in gdal_read_options(cdse, href), href
    assert token not in str(describe(gdal_read_options(cdse, dl)))
    # Planetary Computer: reads are signed URLs; the subscription key is never sent with them.
    pc = stac("https://planetarycomputer.microsoft.com/api/stac/v1", preset="planetary-computer",
              env={"PC_SDK_SUBSCRIPTION_KEY": "pc-key-0123456789"})
    blob = "https://sentinel2l2a01.blob.core.windows.net/c/B04.tif?st=1&sig=abc"
    assert "GDAL_HTTP_HEADERS" not in gdal_read_options(pc, blob)


# ------------------------------------------------------------------------- real GDAL reads


def test_retries_503_then_reads(tiffs):
    srv = tiffs()
    arch = stac(srv.url, retries=3)
    srv.script = [503, 503]
    np.testing.assert_array_equal(read(arch, srv.href()), DATA)
    assert [p for _, p, _ in srv.seen[:3]] == [srv.seen[0][1]] * 3  # the same request, retried
    # With GDAL's defaults (no retry) the same two 503s fail the read: the options matter.
    srv.script = [503, 503]
    with pytest.raises(rasterio.errors.RasterioIOError), rasterio.open(srv.href()):
        pass


def test_retries_are_bounded(tiffs):
    srv = tiffs()
    arch = stac(srv.url, retries=2)
    srv.script = [503] * 50
    with pytest.raises(rasterio.errors.RasterioIOError):
        read(arch, srv.href())
    # Each HTTP request GDAL makes is tried 1 + GDAL_HTTP_MAX_RETRY times.
    assert len(srv.seen) % 3 == 0 and 3 <= len(srv.seen) <= 12


def test_a_stalled_server_fails_within_the_timeout(tiffs):
    srv = tiffs()
    retries, timeout = 1, 1.0
    arch = stac(srv.url, retries=retries, timeout=timeout)
    srv.script = ["stall"] * 50
    t0 = time.monotonic()
    with pytest.raises(rasterio.errors.RasterioIOError):
        read(arch, srv.href())
    elapsed = time.monotonic() - t0
    # Without a timeout GDAL would wait as long as the server holds the connection (60 s here).
    # Bound: every request GDAL makes on open (at most 3 here) x (1 + retries) attempts x
    # timeout, plus the retry delays (0.05 s, doubling), plus 2 s of scheduling slack.
    assert elapsed < 3 * (1 + retries) * timeout + 2.0, elapsed
    assert elapsed >= timeout * 0.9


def test_image_requests_carry_the_token_only_to_its_origin(tiffs):
    stac_srv, download_srv, other_srv = tiffs(), tiffs(), tiffs()
    token = "cdse-token-LOOPBACK-0123456789"
    arch = stac(stac_srv.url, preset="cdse", env={"CDSE_ACCESS_TOKEN": token},
                read_auth_origins=[download_srv.url])  # the "download service" on loopback
    np.testing.assert_array_equal(read(arch, download_srv.href()), DATA)
    np.testing.assert_array_equal(read(arch, "/vsicurl/" + stac_srv.href()), DATA)
    np.testing.assert_array_equal(read(arch, other_srv.href()), DATA)
    assert download_srv.seen and stac_srv.seen and other_srv.seen
    assert all(h.get("Authorization") == f"Bearer {token}" for _, _, h in download_srv.seen)
    assert all(h.get("Authorization") == f"Bearer {token}" for _, _, h in stac_srv.seen)
    assert not any(token in str(h) for _, _, h in other_srv.seen)
    assert all("Authorization" not in h for _, _, h in other_srv.seen)


def test_the_reading_layer_reads_with_these_options(tiffs):
    """Every dataset read goes through reading.open_raster: it retries and sends the token."""
    from cloudyeo.archives.reading import open_raster

    srv = tiffs()
    token = "cdse-token-READING-0123456789"
    arch = stac(srv.url, retries=3, preset="cdse", env={"CDSE_ACCESS_TOKEN": token},
                read_auth_origins=[srv.url])
    srv.script = [503, 503]
    with open_raster(arch, srv.href(), what="B04 of a loopback scene") as src:
        np.testing.assert_array_equal(src.read(1), DATA)
    assert all(h.get("Authorization") == f"Bearer {token}" for _, _, h in srv.seen)
