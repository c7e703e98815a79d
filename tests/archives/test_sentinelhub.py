"""Sentinel Hub adapter (the ``sentinelhub`` package underneath) against a local server speaking
OAuth token + Catalog + Process API.

The server (a thread on 127.0.0.1) records every request, answers the Catalog search with
``context.next`` paging, renders Process API requests as GeoTIFFs whose pixel values encode
(band, row, col), and can inject failures (401, 429, 503, a stalled answer) per path.
``HOME`` and ``XDG_CONFIG_HOME`` point into the test's temporary directory (where the library
would keep its own config file).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs

import numpy as np
import pytest

from cloudyeo.archives import open_archive
from cloudyeo.archives import sentinelhub as shm
from cloudyeo.archives.base import SearchQuery
from cloudyeo.archives.sentinelhub import SentinelHubArchive, item_to_record
from cloudyeo.archives.stac_items import mgrs_tile_bbox
from cloudyeo.config import ConfigError, load_config
from cloudyeo.http import AuthError, HttpError, RetryPolicy

UTC = dt.UTC
CLIENT_ID = "cloudyeo-test-client"
SECRET = "s3cret-Value-0123456789"
AOI = {"type": "Polygon", "coordinates": [[[12.1, 48.1], [12.3, 48.1], [12.3, 48.3], [12.1, 48.3],
                                           [12.1, 48.1]]]}
STALL_S = 2.0
CATALOG = "/api/v1/catalog/1.0.0/search"
PROCESS = "/api/v1/process"


def s2_item(pid: str, when: str, cloud: float, lon: float = 12.0) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": pid,
        "geometry": {"type": "MultiPolygon", "coordinates": [[[[lon, 48.0], [lon + 1, 48.0], [lon + 1, 49.0],
                                                              [lon, 49.0], [lon, 48.0]]]]},
        "bbox": [lon, 48.0, lon + 1, 49.0],
        "properties": {"datetime": when, "platform": "sentinel-2a", "instruments": ["msi"],
                       "constellation": "sentinel-2", "gsd": 10, "eo:cloud_cover": cloud,
                       "proj:epsg": 32633},
        "assets": {"data": {"href": f"s3://EODATA/Sentinel-2/MSI/L2A/{pid}"}},
        "links": [],
    }


def s1_item(pid: str, when: str, resolution: str = "HIGH") -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": pid,
        "geometry": {"type": "Polygon", "coordinates": [[[11.0, 47.0], [14.0, 47.0], [14.0, 50.0],
                                                         [11.0, 50.0], [11.0, 47.0]]]},
        "properties": {"datetime": when, "platform": "sentinel-1a", "constellation": "sentinel-1",
                       "instruments": ["c-sar"], "sar:instrument_mode": "IW", "s1:polarization": "DV",
                       "sat:orbit_state": "ascending", "s1:resolution": resolution,
                       "s1:timeliness": "Fast24h"},
        "assets": {}, "links": [],
    }


S2_ITEMS = [
    s2_item("S2A_MSIL2A_20220311T101019_N0400_R022_T33UUP_20220311T131415.SAFE", "2022-03-11T10:14:00Z", 20.0),
    s2_item("S2A_MSIL2A_20220301T101019_N0400_R022_T33UUP_20220301T131415.SAFE", "2022-03-01T10:14:00Z", 12.5),
    # The server "forgot" the filter for this one: the adapter must drop it client-side.
    s2_item("S2A_MSIL2A_20220321T101019_N0400_R022_T33UUP_20220321T131415.SAFE", "2022-03-21T10:14:00Z", 80.0),
    s2_item("S2B_MSIL2A_20220306T100829_N0400_R022_T32UQU_20220306T120000.SAFE", "2022-03-06T10:14:00Z", 10.0,
            lon=8.0),
]
S1_ID = "S1A_IW_GRDH_1SDV_20220303T050000_20220303T050025_042123_050555_ABCD.SAFE"


def pixel_values(band: int, rows: int, cols: int) -> np.ndarray:
    return 1000 * (band + 1) + np.arange(rows * cols).reshape(rows, cols)


def render_tiff(body: dict[str, Any], nan_last_column: bool = False) -> bytes:
    from rasterio.io import MemoryFile
    from rasterio.transform import from_bounds

    script = body["evalscript"]
    n = int(re.search(r"output: \{bands: (\d+)", script).group(1))
    dtype = "float32" if "FLOAT32" in script else "uint16"
    width, height = body["output"]["width"], body["output"]["height"]
    x0, y0, x1, y1 = body["input"]["bounds"]["bbox"]
    epsg = int(body["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[1])
    transform = from_bounds(x0, y0, x1, y1, width, height)
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=width, height=height, count=n, dtype=dtype,
                      crs=f"EPSG:{epsg}", transform=transform) as dst:
            for b in range(n):
                values = pixel_values(b, height, width).astype(dtype)
                if nan_last_column:  # as if the scene ended there (dataMask 0)
                    values[:, -1] = np.nan
                dst.write(values, b + 1)
        return mem.read()


class FakeSentinelHub:
    """OAuth token endpoint + Catalog search + Process API on loopback."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = list(S2_ITEMS)
        self.requests: list[dict[str, Any]] = []
        self.faults: dict[str, list[Any]] = defaultdict(list)
        self.tokens_issued = 0
        self.nan_last_column = False
        self.fixed_next: Any = None  # a Catalog that always answers this "next" token
        self.token_expires_in = 3600
        self.valid_tokens: set[str] = set()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, payload: Any, ctype: str = "application/json",
                      headers: dict[str, str] | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                body: Any = parse_qs(raw.decode()) if "form" in ctype else json.loads(raw or b"null")
                with fake.lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                    fault = fake.faults[self.path].pop(0) if fake.faults[self.path] else None
                if fault == "stall":  # answers after the client's timeout
                    time.sleep(STALL_S)
                    try:
                        return self.reply(503, {"error": "late"})
                    except OSError:  # the client gave up (its timeout): expected
                        return None
                if fault == "truncate":  # the connection drops halfway through the body
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"type": "FeatureCollection", "features": [')
                    self.close_connection = True
                    return None
                if fault is not None:
                    code, headers = fault if isinstance(fault, tuple) else (fault, {})
                    return self.reply(code, {"error": {"status": code, "reason": "injected"}}, headers=headers)
                if self.path == "/token":
                    if body.get("client_secret") != [SECRET] or body.get("client_id") != [CLIENT_ID]:
                        return self.reply(401, {"error": "invalid_client",
                                                "error_description": "Invalid client credentials"})
                    with fake.lock:
                        fake.tokens_issued += 1
                        token = f"tok-{fake.tokens_issued}-abcdefgh"
                        fake.valid_tokens.add(token)
                    return self.reply(200, {"access_token": token, "expires_in": fake.token_expires_in,
                                            "token_type": "Bearer"})
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.valid_tokens:
                    return self.reply(401, {"error": {"status": 401, "reason": "Unauthorized"}})
                if self.path == CATALOG:
                    start, limit = int(body.get("next", 0)), int(body["limit"])
                    if fake.fixed_next is not None:
                        start = 0
                    page = fake.items[start:start + limit]
                    context: dict[str, Any] = {"limit": limit, "returned": len(page)}
                    if start + limit < len(fake.items):
                        context["next"] = start + limit
                    if fake.fixed_next is not None:
                        context["next"] = fake.fixed_next
                    return self.reply(200, {"type": "FeatureCollection", "features": page,
                                            "links": [], "context": context}, "application/geo+json")
                if self.path == PROCESS:
                    return self.reply(200, render_tiff(body, fake.nan_last_column), "image/tiff")
                return self.reply(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def sent(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME / XDG_CONFIG_HOME: where the library would keep its config.toml."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


@pytest.fixture
def server(home: Path):
    fake = FakeSentinelHub()
    try:
        yield fake
    finally:
        fake.close()


FAST = RetryPolicy(max_retries=3, backoff_base=0.0, backoff_max=0.0, timeout=5.0)


def make(server: FakeSentinelHub, env: dict[str, str] | None = None, **kw: Any) -> SentinelHubArchive:
    env = {"SH_CLIENT_ID": CLIENT_ID, "SH_CLIENT_SECRET": SECRET} if env is None else env
    return SentinelHubArchive("cdse", base_url=server.url, token_url=server.url + "/token",
                              policy=FAST, env=env, **kw)


def query(collection: str = "sentinel-2-l2a", **kw: Any) -> SearchQuery:
    return SearchQuery(collection, dt.datetime(2022, 3, 1, tzinfo=UTC),
                       dt.datetime(2022, 3, 31, 23, 59, 59, tzinfo=UTC), **kw)


# -- search -------------------------------------------------------------------------------


def test_catalog_search_requests_paging_and_records(server: FakeSentinelHub) -> None:
    archive = make(server, page_size=2)
    records = archive.search(query(intersects=AOI, max_cloud_cover=30, min_cloud_cover=5))

    (token_req,) = server.sent("/token")
    assert token_req["body"] == {"grant_type": ["client_credentials"], "client_id": [CLIENT_ID],
                                 "client_secret": [SECRET]}
    searches = server.sent(CATALOG)
    first = {
        "collections": ["sentinel-2-l2a"],
        "datetime": "2022-03-01T00:00:00Z/2022-03-31T23:59:59Z",
        "limit": 2,
        "intersects": AOI,
        "filter": "eo:cloud_cover <= 30 AND eo:cloud_cover >= 5",
        "filter-lang": "cql2-text",
    }
    assert archive.search_body(query(intersects=AOI, max_cloud_cover=30, min_cloud_cover=5)) == first
    assert [r["body"] for r in searches] == [first, {**first, "next": 2}]
    for r in searches:
        assert r["headers"]["authorization"] == "Bearer tok-1-abcdefgh"  # one token, reused
        assert r["headers"]["user-agent"].startswith("sentinelhub-py")  # sent by the library

    # 80 % dropped client-side, 32UQU dropped by the AOI; sorted by time.
    assert [r.id for r in records] == [S2_ITEMS[1]["id"], S2_ITEMS[0]["id"]]
    r = records[0]
    assert (r.collection, r.platform) == ("sentinel-2-l2a", "sentinel-2a")
    assert r.datetime == dt.datetime(2022, 3, 1, 10, 14, tzinfo=UTC)
    assert r.footprint == S2_ITEMS[1]["geometry"]
    assert (r.tile, r.cloud_cover, r.shadow_percent, r.cirrus_percent) == ("33UUP", 12.5, None, None)
    assert (r.processing_baseline, r.relative_orbit) == ("04.00", 22)
    # harmonizeValues removes the baseline-04.00 offset from the DNs the Process API returns.
    assert (r.radiometric_offset, r.quantification) == (0.0, 10000.0)
    assert r.sar_units is None and r.assets == {}


def test_tile_query_sends_a_box_and_matches_the_tile_client_side(server: FakeSentinelHub) -> None:
    records = make(server).search(query(tile="32UQU"))
    (search,) = server.sent(CATALOG)
    assert search["body"]["bbox"] == mgrs_tile_bbox("32UQU")
    assert "intersects" not in search["body"] and "filter" not in search["body"]
    assert [r.tile for r in records] == ["32UQU"]


S1_FILTER = "sar:instrument_mode = 'IW' AND s1:polarization = 'DV' AND s1:resolution = 'HIGH'"


def test_s1_search_filters_mode_polarisation_and_resolution(server: FakeSentinelHub) -> None:
    medium = "S1A_IW_GRDM_1SDV_20220304T050000_20220304T050025_042138_050555_ABCE.SAFE"
    # The server "forgot" the resolution condition for the second item: dropped client-side.
    server.items = [s1_item(S1_ID, "2022-03-03T05:00:00Z"),
                    s1_item(medium, "2022-03-04T05:00:00Z", resolution="MEDIUM")]
    (r,) = make(server).search(query("sentinel-1-grd", intersects=AOI))
    search = server.sent(CATALOG)[0]
    assert search["body"]["collections"] == ["sentinel-1-grd"]
    assert search["body"]["filter"] == S1_FILTER
    assert search["body"]["filter-lang"] == "cql2-text"
    assert r.id == S1_ID
    assert (r.platform, r.instrument_mode, r.polarizations) == ("sentinel-1a", "IW", ("VV", "VH"))
    assert (r.orbit_state, r.sar_units, r.tile, r.cloud_cover) == ("ascending", "linear", None, None)
    # What the Process request asks (SIGMA0_ELLIPSOID, orthorectified): storable backscatter.
    assert (r.sar_radiometry, r.sar_geometry, r.source_collection) == ("sigma0", "terrain", "sentinel-1-grd")
    assert r.relative_orbit == (42123 - 73) % 175 + 1 == 51  # S1A: from the absolute orbit in the id
    # A remapped collection id is searched and recorded as the source.
    (r2,) = make(server, collections={"sentinel-1-grd": "sentinel-1-grd-custom"}).search(
        query("sentinel-1-grd", intersects=AOI))
    assert server.sent(CATALOG)[-1]["body"]["collections"] == ["sentinel-1-grd-custom"]
    assert r2.source_collection == "sentinel-1-grd-custom"


def test_s1_search_and_process_requests_ask_the_same_scenes(server: FakeSentinelHub) -> None:
    """Every condition of the Catalog filter is a condition of the Process dataFilter (same value)."""
    server.items = [s1_item(S1_ID, "2022-03-03T05:00:00Z")]
    archive = make(server)
    (rec,) = archive.search(query("sentinel-1-grd"))
    archive.read_window(rec, ["VV"], epsg=32633, transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0),
                        shape=(1, 1))
    catalog = dict(re.findall(r"(\S+) = '([^']*)'", server.sent(CATALOG)[0]["body"]["filter"]))
    data_filter = server.sent(PROCESS)[0]["body"]["input"]["data"][0]["dataFilter"]
    assert catalog == {"sar:instrument_mode": "IW", "s1:polarization": "DV", "s1:resolution": "HIGH"}
    assert {prop: data_filter[key] for prop, key in shm.S1_CONDITIONS} == catalog
    # Another configuration changes both requests alike.
    other = make(server, instrument_mode="EW", polarization="DH", resolution="MEDIUM")
    assert shm.cql2_filter(query("sentinel-1-grd"), **other._s1()) == (
        "sar:instrument_mode = 'EW' AND s1:polarization = 'DH' AND s1:resolution = 'MEDIUM'")
    body = other.process_body(rec, ["HH"], epsg=32633, transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0),
                              shape=(1, 1))
    got = body["input"]["data"][0]["dataFilter"]
    assert (got["acquisitionMode"], got["polarization"], got["resolution"]) == ("EW", "DH", "MEDIUM")


def test_repeated_next_token_stops_paging(server: FakeSentinelHub) -> None:
    server.fixed_next = 7  # every page says "next": 7
    records = make(server, page_size=1).search(query())
    searches = server.sent(CATALOG)
    assert [r["body"].get("next") for r in searches] == [None, 7]  # the repeat stops paging
    assert [r.id for r in records] == [S2_ITEMS[0]["id"]]


def test_more_pages_than_max_pages_is_an_error_naming_the_key(server: FakeSentinelHub) -> None:
    with pytest.raises(HttpError, match="sentinelhub.max_pages"):
        make(server, page_size=1, max_pages=2).search(query())
    assert len(server.sent(CATALOG)) == 2


# -- pixels -------------------------------------------------------------------------------


def s2_record():
    return item_to_record(S2_ITEMS[1], "sentinel-2-l2a")


def test_process_request_for_an_s2_window(server: FakeSentinelHub) -> None:
    t = (10.0, 0.0, 300120.0, 0.0, -10.0, 5399880.0)
    server.nan_last_column = True
    out = make(server).read_window(s2_record(), ["B02", "B8A", "SCL"], epsg=32633, transform=t,
                                   shape=(3, 4))
    (req,) = server.sent(PROCESS)
    body = req["body"]
    assert req["headers"]["accept"] == "image/tiff"
    assert req["headers"]["authorization"] == "Bearer tok-1-abcdefgh"
    assert body["input"] == {
        "bounds": {"bbox": [300120.0, 5399850.0, 300160.0, 5399880.0],
                   "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"}},
        "data": [{"type": "sentinel-2-l2a",
                  "dataFilter": {"timeRange": {"from": "2022-03-01T10:13:00Z", "to": "2022-03-01T10:15:00Z"}},
                  "processing": {"upsampling": "BILINEAR", "downsampling": "BILINEAR",
                                 "harmonizeValues": True}}],
    }
    assert body["output"] == {"width": 4, "height": 3,
                              "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}]}
    script = body["evalscript"]
    assert script.startswith("//VERSION=3\n")
    assert ('input: [{bands: ["B02", "B8A", "SCL", "dataMask"], units: ["DN", "DN", "DN", "DN"]}]'
            in script)
    assert 'output: {bands: 3, sampleType: "FLOAT32"}' in script
    assert "return s.dataMask ? [s.B02, s.B8A, s.SCL] : [NaN, NaN, NaN];" in script
    assert out.shape == (3, 3, 4) and out.dtype == np.float32
    for b in range(3):
        np.testing.assert_array_equal(out[b, :, :3], pixel_values(b, 3, 4)[:, :3])
    assert np.isnan(out[:, :, 3]).all() and not np.isnan(out[:, :, :3]).any()


def test_process_request_for_an_s1_window(server: FakeSentinelHub) -> None:
    rec = item_to_record(s1_item(S1_ID, "2022-03-03T05:00:00Z"), "sentinel-1-grd")
    out = make(server).read_window(rec, ["VV", "VH"], epsg=32633,
                                   transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2),
                                   resampling="nearest")
    body = server.sent(PROCESS)[0]["body"]
    (data,) = body["input"]["data"]
    assert data == {"type": "sentinel-1-grd",
                    "dataFilter": {"timeRange": {"from": "2022-03-03T04:59:00Z", "to": "2022-03-03T05:01:00Z"},
                                   "acquisitionMode": "IW", "polarization": "DV", "resolution": "HIGH"},
                    "processing": {"upsampling": "NEAREST", "downsampling": "NEAREST",
                                   "backCoeff": "SIGMA0_ELLIPSOID", "orthorectify": True,
                                   "demInstance": "COPERNICUS_30"}}
    script = body["evalscript"]
    assert 'bands: ["VV", "VH", "dataMask"], units: ["LINEAR_POWER", "LINEAR_POWER", "DN"]' in script
    assert 'sampleType: "FLOAT32"' in script
    assert "return s.dataMask ? [s.VV, s.VH] : [NaN, NaN];" in script
    assert out.dtype == np.float32 and out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out[1], pixel_values(1, 2, 2))


def test_large_windows_are_split(server: FakeSentinelHub) -> None:
    t = (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0)
    with mock.patch.object(shm, "MAX_OUTPUT_SIDE", 4):
        out = make(server).read_window(s2_record(), ["B02"], epsg=32633, transform=t, shape=(6, 5))
    boxes = sorted(((r["body"]["input"]["bounds"]["bbox"], r["body"]["output"]["width"],
                     r["body"]["output"]["height"]) for r in server.sent(PROCESS)),
                   key=lambda box: (-box[0][3], box[0][0]))  # the tiles are fetched in parallel
    assert boxes == [([300000.0, 5399960.0, 300040.0, 5400000.0], 4, 4),
                     ([300040.0, 5399960.0, 300050.0, 5400000.0], 1, 4),
                     ([300000.0, 5399940.0, 300040.0, 5399960.0], 4, 2),
                     ([300040.0, 5399940.0, 300050.0, 5399960.0], 1, 2)]
    assert out.shape == (1, 6, 5)
    np.testing.assert_array_equal(out[0, :4, :4], pixel_values(0, 4, 4))
    np.testing.assert_array_equal(out[0, :4, 4:], pixel_values(0, 4, 1))
    np.testing.assert_array_equal(out[0, 4:, :4], pixel_values(0, 2, 4))
    np.testing.assert_array_equal(out[0, 4:, 4:], pixel_values(0, 2, 1))


def test_rotated_grid_is_refused_before_any_request(server: FakeSentinelHub) -> None:
    with pytest.raises(ValueError, match="north-up"):
        make(server).read_window(s2_record(), ["B02"], epsg=32633,
                                 transform=(10.0, 1.0, 300000.0, 0.0, -10.0, 5400000.0), shape=(2, 2))
    assert server.requests == []


# -- auth, retries, redaction -------------------------------------------------------------


def test_missing_credentials_name_the_variables(server: FakeSentinelHub) -> None:
    with pytest.raises(AuthError) as info:
        make(server, env={}).search(query())
    assert info.value.credential_env == "SH_CLIENT_ID"
    assert "SH_CLIENT_ID" in str(info.value) and "SH_CLIENT_SECRET" in str(info.value)
    assert server.requests == []
    with pytest.raises(AuthError, match="MY_SECRET_VAR"):
        make(server, env={"SH_CLIENT_ID": CLIENT_ID}, client_secret_env="MY_SECRET_VAR").search(query())


def test_refused_client_is_auth_error_naming_sh_client_id(server: FakeSentinelHub) -> None:
    wrong = "wrong-secret-987654321"
    with pytest.raises(AuthError) as info:
        make(server, env={"SH_CLIENT_ID": CLIENT_ID, "SH_CLIENT_SECRET": wrong}).search(query())
    assert info.value.credential_env == "SH_CLIENT_ID"
    assert info.value.status == 401
    assert "SH_CLIENT_ID" in str(info.value)
    assert wrong not in str(info.value)
    assert len(server.sent("/token")) == 1  # 401 is not retried
    assert server.sent(CATALOG) == []


def test_expired_token_is_refreshed_once_then_auth_error(server: FakeSentinelHub) -> None:
    archive = make(server)
    server.faults[CATALOG] = [401]
    records = archive.search(query())
    assert len(records) == 4
    assert len(server.sent("/token")) == 2  # refreshed once after the 401
    assert server.sent(CATALOG)[-1]["headers"]["authorization"] == "Bearer tok-2-abcdefgh"

    server.faults[PROCESS] = [401]
    out = archive.read_window(records[0], ["B02"], epsg=32633,
                              transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2))
    np.testing.assert_array_equal(out[0], pixel_values(0, 2, 2))
    assert len(server.sent("/token")) == 3
    assert server.sent(PROCESS)[-1]["headers"]["authorization"] == "Bearer tok-3-abcdefgh"

    server.faults[CATALOG] = [401, 401]
    with pytest.raises(AuthError) as info:
        archive.search(query())
    assert info.value.credential_env == "SH_CLIENT_ID" and info.value.status == 401
    assert "SH_CLIENT_ID" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_token_about_to_expire_is_renewed_before_use(server: FakeSentinelHub) -> None:
    # A token that expires within the renewal margin is replaced before each use.
    server.token_expires_in = int(shm.TOKEN_RENEW_BEFORE_S) - 30
    make(server, page_size=2).search(query())
    used = [r["headers"]["authorization"] for r in server.sent(CATALOG)]
    assert len(used) == 2 and len(set(used)) == 2
    assert not server.faults[CATALOG]  # both accepted by the server: no 401 involved


def test_429_and_503_are_retried(server: FakeSentinelHub, caplog: pytest.LogCaptureFixture) -> None:
    from sentinelhub.exceptions import SHRateLimitWarning

    caplog.set_level(logging.DEBUG)
    archive = make(server)
    server.faults["/token"] = [503]
    server.faults[CATALOG] = [(429, {"Retry-After": "0"}), 503]
    server.faults[PROCESS] = [503, (429, {"Retry-After": "0"})]
    with pytest.warns(SHRateLimitWarning):  # 429 goes through the library's rate limiter
        records = archive.search(query())
    with pytest.warns(SHRateLimitWarning):
        out = archive.read_window(records[0], ["B04"], epsg=32633,
                                  transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2))
    assert len(server.sent("/token")) == 2
    assert len(server.sent(CATALOG)) == 3
    assert len(server.sent(PROCESS)) == 3
    bodies = [r["body"] for r in server.sent(PROCESS)]
    assert bodies[0] == bodies[1] == bodies[2]
    np.testing.assert_array_equal(out[0], pixel_values(0, 2, 2))
    # Every retried answer is logged: the API calls by the adapter's client, the token by HttpClient.
    ours = [r.getMessage() for r in caplog.records if r.name == shm.__name__ and "retrying" in r.getMessage()]
    assert sorted((CATALOG in m, "HTTP 429" in m) for m in ours) == [
        (False, False), (False, True), (True, False), (True, True)]
    assert [m for r in caplog.records if r.name == "cloudyeo.http" and "/token" in (m := r.getMessage())
            and "HTTP 503" in m and "retry 1/3" in m]
    # Neither the secret nor any token appears in any log line (DEBUG included).
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert {r["headers"]["authorization"] for r in server.sent(PROCESS)} == {"Bearer tok-1-abcdefgh"}
    assert SECRET not in text and "tok-1-abcdefgh" not in text


def test_persistent_503_becomes_http_error(server: FakeSentinelHub) -> None:
    server.faults[CATALOG] = [503] * 4
    with pytest.raises(HttpError) as info:
        make(server).search(query())
    assert info.value.status == 503 and not isinstance(info.value, AuthError)
    assert len(server.sent(CATALOG)) == 4  # 1 + max_retries


def test_body_cut_off_is_retried(server: FakeSentinelHub) -> None:
    server.faults[CATALOG] = ["truncate"]
    server.faults[PROCESS] = ["truncate"]
    archive = make(server)
    records = archive.search(query())
    out = archive.read_window(records[0], ["B02"], epsg=32633,
                              transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2))
    assert len(records) == 4 and len(server.sent(CATALOG)) == 2 and len(server.sent(PROCESS)) == 2
    np.testing.assert_array_equal(out[0], pixel_values(0, 2, 2))


def test_process_error_names_the_scene_and_the_server_reason(server: FakeSentinelHub) -> None:
    server.faults[PROCESS] = [400]
    with pytest.raises(HttpError) as info:
        make(server).read_window(s2_record(), ["B02"], epsg=32633,
                                 transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2))
    assert info.value.status == 400 and not isinstance(info.value, AuthError)
    assert S2_ITEMS[1]["id"] in str(info.value) and "injected" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert len(server.sent(PROCESS)) == 1  # a 400 is not retried


def test_persistent_429_becomes_http_error(server: FakeSentinelHub) -> None:
    server.faults[PROCESS] = [(429, {"Retry-After": "0"})] * 4
    with pytest.warns(), pytest.raises(HttpError) as info:
        make(server).read_window(s2_record(), ["B02"], epsg=32633,
                                 transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(2, 2))
    assert info.value.status == 429 and "429" in str(info.value)
    assert len(server.sent(PROCESS)) == 4  # 1 + max_retries


def test_retry_after_is_read_in_milliseconds(server: FakeSentinelHub) -> None:
    # Sentinel Hub sends Retry-After in milliseconds; the library's rate limiter waits that long.
    server.faults[CATALOG] = [(429, {"Retry-After": "400"})]
    archive = make(server)
    archive.session()  # the token first, so that only the Catalog request is timed
    t0 = time.monotonic()
    with pytest.warns():
        assert len(archive.search(query())) == 4
    assert time.monotonic() - t0 >= 0.4
    assert len(server.sent(CATALOG)) == 2


def test_plain_http_urls_are_refused_unless_loopback() -> None:
    for key, kw in (("sentinelhub.token_url", {"token_url": "http://identity.example.org/token"}),
                    ("sentinelhub.base_url", {"base_url": "http://sh.example.org"})):
        with pytest.raises(ValueError, match=re.escape(key)):
            SentinelHubArchive("cdse", **kw)
    assert SentinelHubArchive("cdse", token_url="http://localhost:8080/t").token_url == "http://localhost:8080/t"


def test_stalled_token_endpoint_times_out(server: FakeSentinelHub) -> None:
    """The token request runs under timeout_s and max_retries (the library's own has no timeout)."""
    server.faults["/token"] = ["stall", "stall"]
    policy = RetryPolicy(max_retries=1, backoff_base=0.0, backoff_max=0.0, timeout=0.3)
    archive = SentinelHubArchive("cdse", base_url=server.url, token_url=server.url + "/token", policy=policy,
                                 env={"SH_CLIENT_ID": CLIENT_ID, "SH_CLIENT_SECRET": SECRET})
    t0 = time.monotonic()
    with pytest.raises(HttpError, match="Timeout") as info:
        archive.search(query())
    assert time.monotonic() - t0 < 2 * STALL_S  # two attempts of 0.3 s, not two stalls
    assert not isinstance(info.value, AuthError)
    assert len(server.sent("/token")) == 2 and server.sent(CATALOG) == []


def test_library_config_file_and_its_environment_are_never_used(
        server: FakeSentinelHub, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come only from the configured variables; ~/.config/sentinelhub is neither
    read nor written, and no session is cached process-wide."""
    from sentinelhub import SentinelHubDownloadClient

    toml = home / "xdg" / "sentinelhub" / "config.toml"
    toml.parent.mkdir(parents=True)
    toml.write_text('[default-profile]\nsh_client_id = "file-id"\nsh_client_secret = "file-secret"\n'
                    'sh_base_url = "http://127.0.0.1:9"\nsh_token_url = "http://127.0.0.1:9/token"\n')
    before = toml.read_bytes()
    cached = dict(SentinelHubDownloadClient._CACHED_SESSIONS)
    monkeypatch.setenv("SH_CLIENT_ID", "env-id-not-this-one")
    monkeypatch.setenv("SH_CLIENT_SECRET", "env-secret-not-this-one")
    archive = make(server, env={"MY_ID": CLIENT_ID, "MY_SECRET": SECRET},
                   client_id_env="MY_ID", client_secret_env="MY_SECRET")
    records = archive.search(query())
    archive.read_window(records[0], ["B02"], epsg=32633,
                        transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0), shape=(1, 1))
    (token_req,) = server.sent("/token")
    assert token_req["body"]["client_id"] == [CLIENT_ID] and token_req["body"]["client_secret"] == [SECRET]
    assert toml.read_bytes() == before
    assert not (home / "home" / ".config").exists()
    assert sorted(p.name for p in toml.parent.iterdir()) == ["config.toml"]
    assert SentinelHubDownloadClient._CACHED_SESSIONS == cached  # no process-wide session added
    config = archive.sh_config((CLIENT_ID, SECRET))
    assert (config.sh_base_url, config.sh_token_url) == (server.url, server.url + "/token")
    assert SECRET not in repr(config) and SECRET not in str(config)


def test_presets_config_and_secrets_stay_out_of_config(server: FakeSentinelHub) -> None:
    cdse = open_archive(load_config("config/examples/sentinelhub-cdse.yaml"))
    assert isinstance(cdse, SentinelHubArchive)
    assert cdse.base_url == "https://sh.dataspace.copernicus.eu"
    assert cdse.token_url == ("https://identity.dataspace.copernicus.eu/auth/realms/CDSE/"
                              "protocol/openid-connect/token")
    assert (cdse.client_id_env, cdse.client_secret_env) == ("SH_CLIENT_ID", "SH_CLIENT_SECRET")
    sh = SentinelHubArchive.from_config({"preset": "sentinel-hub", "client_id_env": "X_ID"})
    assert sh.base_url == "https://services.sentinel-hub.com" and sh.client_id_env == "X_ID"
    local = open_archive(load_config(None, {"archive": "sentinelhub", "sentinelhub": {
        "base_url": server.url, "token_url": server.url + "/token", "page_size": 3}}))
    assert (local.base_url, local.page_size) == (server.url, 3)
    with pytest.raises(ConfigError, match="sentinelhub"):
        load_config(None, {"archive": "sentinelhub", "sentinelhub": {"client_secret": SECRET}})
    assert SECRET not in repr(make(server))
