"""PlanetArchive against a loopback server speaking the Planet Data API v1 quick-search."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cloudyeo.archives import SearchQuery
from cloudyeo.archives.planet import (
    LocalPlanetArchive,
    PlanetActivationTimeout,
    PlanetArchive,
    PlanetAssetInfo,
    PlanetAssetMissing,
    PlanetSearchTruncated,
    build_filter,
    feature_to_record,
    quantification_for,
)
from cloudyeo.http import AuthError, HttpError, RetryPolicy

UTC = dt.UTC
KEY = "PLAK-0123456789abcdef-secret"
FAST = dict(backoff_base=0.01, backoff_max=0.05, max_total_sleep=5.0)
AOI = {"type": "Polygon", "coordinates": [[[11.9, 47.9], [12.6, 47.9], [12.6, 48.4],
                                           [11.9, 48.4], [11.9, 47.9]]]}


def _square(lon: float, lat: float, size: float = 0.1) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                [lon, lat + size], [lon, lat]]]}


def psscene(item_id: str, acquired: str, cloud: float | None, *, clear: float = 90.0,
            shadow: float = 1.0, instrument: str = "PSB.SD", satellite: str = "2447",
            lon: float = 12.1, lat: float = 48.1, quality: str = "standard",
            base: str = "https://api.planet.com/data/v1") -> dict[str, Any]:
    """A quick-search feature shaped like a real PSScene item."""
    props: dict[str, Any] = {
        "acquired": acquired,
        "anomalous_pixels": 0,
        "clear_confidence_percent": 88,
        "clear_percent": clear,
        "cloud_percent": 0 if cloud is None else round(cloud * 100),
        "epsg_code": 32633,
        "ground_control": True,
        "gsd": 3.9,
        "heavy_haze_percent": 0,
        "instrument": instrument,
        "item_type": "PSScene",
        "light_haze_percent": 2,
        "pixel_resolution": 3,
        "provider": "planetscope",
        "published": "2022-04-01T02:13:10Z",
        "publishing_stage": "finalized",
        "quality_category": quality,
        "satellite_azimuth": 280.1,
        "satellite_id": satellite,
        "shadow_percent": shadow,
        "snow_ice_percent": 0,
        "strip_id": "5501234",
        "sun_azimuth": 150.2,
        "sun_elevation": 35.5,
        "updated": "2022-04-02T08:00:00Z",
        "view_angle": 3.1,
        "visible_confidence_percent": 70,
        "visible_percent": 99,
    }
    if cloud is not None:
        props["cloud_cover"] = cloud
    item = f"{base}/item-types/PSScene/items/{item_id}"
    return {
        "_links": {"_self": item, "assets": item + "/assets/",
                   "thumbnail": f"https://tiles.planet.com/data/v1/item-types/PSScene/items/{item_id}/thumb"},
        "_permissions": ["assets.ortho_analytic_4b:download", "assets.ortho_analytic_4b_sr:download",
                         "assets.ortho_udm2:download"],
        "assets": ["ortho_analytic_4b", "ortho_analytic_4b_sr", "ortho_analytic_4b_xml", "ortho_udm2"],
        "geometry": _square(lon, lat),
        "id": item_id,
        "properties": props,
        "type": "Feature",
    }


def three_pages() -> list[list[dict[str, Any]]]:
    """Results as a server that ignores cloud / geometry filters would page them (3 pages)."""
    return [
        [psscene("20220302_101112_12_2447", "2022-03-02T10:11:12.123456Z", 0.05, clear=95),
         psscene("20220305_100000_00_2447", "2022-03-05T10:00:00Z", 0.3, clear=70),  # == 30 %
         psscene("20220307_100000_00_2447", "2022-03-07T10:00:00Z", 0.8, clear=10)],  # too cloudy
        [psscene("20220310_093000_00_241c", "2022-03-10T09:30:00+00:00", None, clear=92,
                 instrument="PS2.SD", satellite="241c"),  # no cloud_cover: 100 - clear
         psscene("20220420_100000_00_2447", "2022-04-20T10:00:00Z", 0.0),  # outside the dates
         psscene("20220302_101112_12_2447", "2022-03-02T10:11:12.123456Z", 0.05, clear=95)],  # dup
        [psscene("20220320_100000_00_1001", "2022-03-20T10:00:00Z", 0.12, instrument="PS2",
                 satellite="1001", lon=30.0, lat=10.0),  # outside the AOI
         psscene("20220325_100000_00_2447", "2022-03-25T10:00:00Z", 0.1, clear=90,
                 quality="test")],
    ]


class PlanetServer:
    """``POST /data/v1/quick-search`` -> page 0; ``GET /data/v1/searches/<id>/results?_page=N``.

    ``plan(path_prefix, *actions)`` queues failures for matching requests: a status, ``(status,
    headers)`` or ``("slow", seconds)`` (sleep, then answer normally). Requests must carry
    ``KEY`` as basic auth or an ``api-key`` header, else 401.
    """

    def __init__(self, pages: list[list[dict[str, Any]]]):
        self.pages = pages
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.actions: dict[str, list[Any]] = defaultdict(list)
        self.next_origin: str | None = None  # make _next links point elsewhere
        self.last_next: Any = "omit"  # "omit" the key on the last page, or e.g. None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                try:
                    self.send_response(status)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                    pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append((self.command, self.path, dict(self.headers), body))
                    action = None
                    for prefix, queue in server.actions.items():
                        if self.path.startswith(prefix) and queue:
                            action = queue.pop(0)
                            break
                if isinstance(action, tuple) and action[0] == "slow":
                    time.sleep(action[1])
                elif isinstance(action, int):
                    return self._send(action, {"message": "injected", "errors": []})
                elif isinstance(action, tuple):
                    return self._send(action[0], {"message": "injected"}, action[1])
                auth = self.headers.get("Authorization", "")
                basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
                if auth not in (basic, f"api-key {KEY}"):
                    return self._send(401, {"message": "Please enter your API key, or email and password.",
                                            "errors": []})
                parts = urlsplit(self.path)
                if parts.path.startswith(("/data/v1/item-types/", "/data/v1/assets/",
                                          "/data/v1/download/")):
                    return server.asset_request(self, parts.path)
                if self.command == "POST" and parts.path == "/data/v1/quick-search":
                    page = 0
                elif self.command == "GET" and parts.path.startswith("/data/v1/searches/"):
                    page = int(parse_qs(parts.query)["_page"][0])
                else:
                    return self._send(404, {"message": "not found"})
                self._send(200, server.page(page))

            do_GET = _handle  # noqa: N815
            do_POST = _handle  # noqa: N815

        # Activation: item id -> asset type -> {"data": bytes, "status": str, "polls": int,
        # "permissions": list, "md5": str | None}; "polls" = assets GETs until "active".
        self.assets: dict[str, dict[str, dict[str, Any]]] = {}
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/data/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def page(self, n: int) -> dict[str, Any]:
        origin = self.next_origin or f"http://127.0.0.1:{self.port}"
        results = f"{origin}/data/v1/searches/4b1e9d0ef1a14f6a9f3c/results"
        links: dict[str, Any] = {"_self": f"{results}?_page={n}", "_first": f"{results}?_page=0"}
        if n + 1 < len(self.pages):
            links["_next"] = f"{results}?_page={n + 1}"
        elif self.last_next != "omit":
            links["_next"] = self.last_next
        return {"_links": links, "features": self.pages[n] if n < len(self.pages) else [],
                "type": "FeatureCollection"}

    def plan(self, prefix: str, *actions: Any) -> None:
        with self.lock:
            self.actions[prefix].extend(actions)

    def add_asset(self, item: str, asset: str, data: bytes, *, polls: int = 2,
                  permissions: tuple[str, ...] = ("download",), md5: str | None = "auto") -> None:
        self.assets.setdefault(item, {})[asset] = {
            "data": data, "status": "inactive", "polls": polls, "permissions": list(permissions),
            "md5": hashlib.md5(data).hexdigest() if md5 == "auto" else md5}

    def asset_request(self, handler: Any, path: str) -> None:
        """Planet's assets document, activation and download, on loopback."""
        origin = f"http://127.0.0.1:{self.port}/data/v1"
        parts = path.strip("/").split("/")
        if path.startswith("/data/v1/item-types/") and handler.command == "GET":
            item = parts[5]
            doc = {}
            for name, a in self.assets.get(item, {}).items():
                if a["status"] == "activating":
                    a["polls"] -= 1
                    if a["polls"] <= 0:
                        a["status"] = "active"
                state = {"_links": {"_self": f"{origin}/assets/{item}/{name}",
                                    "activate": f"{origin}/assets/{item}/{name}/activate",
                                    "type": f"{origin}/asset-types/{name}"},
                         "_permissions": a["permissions"], "status": a["status"],
                         "type": name, "md5_digest": None}
                if a["status"] == "active":
                    state["location"] = f"{origin}/download/{item}/{name}"
                    state["md5_digest"] = a["md5"]
                doc[name] = state
            return handler._send(200, doc)
        if path.startswith("/data/v1/assets/") and handler.command == "POST" and parts[-1] == "activate":
            a = self.assets[parts[3]][parts[4]]
            if a["status"] == "inactive":
                a["status"] = "activating"
                return handler._send(202)
            return handler._send(204)
        if path.startswith("/data/v1/download/") and handler.command == "GET":
            data = self.assets[parts[3]][parts[4]]["data"]
            try:
                handler.send_response(200)
                handler.send_header("Content-Type", "image/tiff")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        return handler._send(404, {"message": "not found"})

    def count(self, prefix: str = "/") -> int:
        with self.lock:
            return sum(1 for _, p, _, _ in self.requests if p.startswith(prefix))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _planet_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PL_API_KEY", KEY)


@pytest.fixture
def planet():
    server = PlanetServer(three_pages())
    try:
        yield server
    finally:
        server.close()


def q(start=(2022, 3, 1), end=(2022, 3, 31), **kw) -> SearchQuery:
    return SearchQuery("planetscope", dt.datetime(*start, tzinfo=UTC),
                       dt.datetime(*end, 23, 59, 59, tzinfo=UTC), **kw)


def archive(server: PlanetServer, *, retries: int = 3, timeout: float = 5.0, page_size: int = 3,
            **kw: Any) -> PlanetArchive:
    return PlanetArchive(url=server.url, page_size=page_size,
                         policy=RetryPolicy(max_retries=retries, timeout=timeout, **FAST), **kw)


QUERY_IDS = ["20220302_101112_12_2447", "20220305_100000_00_2447", "20220310_093000_00_241c",
             "20220325_100000_00_2447"]


def test_request_body_and_paging(planet: PlanetServer, caplog):
    caplog.set_level(logging.INFO, logger="cloudyeo")
    arch = archive(planet)
    records = arch.search(q(intersects=AOI, max_cloud_cover=30))
    assert [r.id for r in records] == QUERY_IDS
    methods = [(m, urlsplit(p).path) for m, p, _, _ in planet.requests]
    assert methods == [("POST", "/data/v1/quick-search"),
                       ("GET", "/data/v1/searches/4b1e9d0ef1a14f6a9f3c/results"),
                       ("GET", "/data/v1/searches/4b1e9d0ef1a14f6a9f3c/results")]
    first = planet.requests[0]
    assert parse_qs(urlsplit(first[1]).query) == {"_page_size": ["3"], "_sort": ["acquired asc"]}
    assert "%20" in first[1]  # the documented spelling, not "+"
    body = json.loads(first[3])
    assert body["item_types"] == ["PSScene"]
    f = body["filter"]
    assert f["type"] == "AndFilter"
    assert f["config"] == [
        {"type": "DateRangeFilter", "field_name": "acquired",
         "config": {"gte": "2022-03-01T00:00:00Z", "lte": "2022-03-31T23:59:59Z"}},
        {"type": "GeometryFilter", "field_name": "geometry", "config": AOI},
        {"type": "RangeFilter", "field_name": "cloud_cover", "config": {"lte": 0.3}},
    ]
    assert "8 items in 3 pages" in caplog.text


def test_records_are_normalised(planet: PlanetServer):
    arch = archive(planet)
    recs = {r.id: r for r in arch.search(q())}
    a = recs["20220302_101112_12_2447"]
    assert a.collection == "planetscope" and a.platform == "planetscope-psb.sd"
    assert a.datetime == dt.datetime(2022, 3, 2, 10, 11, 12, 123456, tzinfo=UTC)
    assert a.datetime.utcoffset() == dt.timedelta(0)
    assert a.cloud_cover == 5.0 and a.shadow_percent == 1.0 and a.tile is None
    assert a.quantification == 10000.0 and a.radiometric_offset == 0.0
    assert a.footprint == _square(12.1, 48.1)
    asset = a.assets["assets_url"]
    # One entry per listed asset type besides the assets URL: "has it a UDM2?" needs no request.
    assert isinstance(asset, PlanetAssetInfo) and list(a.assets) == [
        "assets_url", "ortho_analytic_4b", "ortho_analytic_4b_sr", "ortho_analytic_4b_xml", "ortho_udm2"]
    udm2 = a.assets["ortho_udm2"]
    assert (udm2.href, udm2.asset_type, udm2.permitted) == (asset.href, "ortho_udm2", True)
    assert asset.href == "https://api.planet.com/data/v1/item-types/PSScene/items/20220302_101112_12_2447/assets/"
    assert (asset.epsg, asset.gsd, asset.asset_type, asset.permitted) == (
        32633, 3.0, "ortho_analytic_4b_sr", True)
    assert recs["20220305_100000_00_2447"].cloud_cover == 30.0  # not 30.000000000000004
    d = recs["20220310_093000_00_241c"]
    assert d.cloud_cover == 8.0 and d.platform == "planetscope-ps2.sd"  # 100 - clear_percent
    assert recs["20220320_100000_00_1001"].platform == "planetscope-ps2"
    assert len(recs) == 6  # the duplicate across pages is kept once; April is filtered out
    assert all(r.datetime.tzinfo is not None for r in recs.values())


def test_client_side_filters_reapplied(planet: PlanetServer):
    # The loopback server ignores every filter: what comes back must still match the query.
    assert [r.id for r in archive(planet).search(q(intersects=AOI, max_cloud_cover=30))] == QUERY_IDS
    assert [r.id for r in archive(planet).search(q(min_cloud_cover=50))] == ["20220307_100000_00_2447"]
    clear = archive(planet, min_clear_percent=90, quality_category="standard")
    assert [r.id for r in clear.search(q(intersects=AOI))] == [
        "20220302_101112_12_2447", "20220310_093000_00_241c"]
    cfg = json.loads(planet.requests[-3][3])["filter"]["config"]
    assert {"type": "RangeFilter", "field_name": "clear_percent", "config": {"gte": 90.0}} in cfg
    assert {"type": "StringInFilter", "field_name": "quality_category", "config": ["standard"]} in cfg
    # Radiance products are scaled by 100, not 10000.
    rad = archive(planet, asset_type="ortho_analytic_4b").search(q(end=(2022, 3, 3)))
    assert [r.quantification for r in rad] == [100.0]


def test_query_times_sent_in_utc_and_bad_queries_refused(planet: PlanetServer):
    cet = dt.timezone(dt.timedelta(hours=1))
    query = SearchQuery("planetscope", dt.datetime(2022, 3, 2, 11, 0, tzinfo=cet),
                        dt.datetime(2022, 3, 5, 12, 0, tzinfo=cet))
    ids = [r.id for r in archive(planet).search(query)]
    assert ids == ["20220302_101112_12_2447", "20220305_100000_00_2447"]
    date = json.loads(planet.requests[0][3])["filter"]["config"][0]["config"]
    assert date == {"gte": "2022-03-02T10:00:00Z", "lte": "2022-03-05T11:00:00Z"}
    n = len(planet.requests)
    with pytest.raises(ValueError, match="planetscope"):
        archive(planet).search(SearchQuery("sentinel-2-l2a", query.start, query.end))
    with pytest.raises(ValueError, match="intersects"):
        archive(planet).search(q(tile="33UUP"))
    assert len(planet.requests) == n


def test_429_and_503_then_success(planet: PlanetServer, caplog):
    caplog.set_level(logging.WARNING)
    planet.plan("/data/v1/quick-search", (429, {"Retry-After": "0"}), 503)
    planet.plan("/data/v1/searches/", 503)  # a paging request fails once too
    ids = [r.id for r in archive(planet).search(q(intersects=AOI, max_cloud_cover=30))]
    assert ids == QUERY_IDS
    assert planet.count("/data/v1/quick-search") == 3 and planet.count("/data/v1/searches/") == 3
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3
    assert any("HTTP 429" in m for m in retries) and any("HTTP 503" in m for m in retries)


def test_retries_are_bounded(planet: PlanetServer):
    planet.plan("/data/v1/quick-search", *([503] * 10))
    with pytest.raises(HttpError) as info:
        archive(planet, retries=2).search(q())
    assert info.value.status == 503
    assert planet.count() == 3  # first attempt + 2 retries


def test_slow_response_times_out_and_is_retried(planet: PlanetServer, caplog):
    caplog.set_level(logging.WARNING)
    planet.plan("/data/v1/quick-search", ("slow", 1.2))
    t0 = time.monotonic()
    ids = [r.id for r in archive(planet, timeout=0.4).search(q(intersects=AOI, max_cloud_cover=30))]
    assert ids == QUERY_IDS
    assert time.monotonic() - t0 < 5
    assert planet.count("/data/v1/quick-search") == 2
    assert any("ReadTimeout" in r.getMessage() for r in caplog.records)


def test_401_names_the_variable_and_hides_the_key(planet: PlanetServer, caplog):
    caplog.set_level(logging.DEBUG)
    planet.plan("/data/v1/quick-search", 401)
    with pytest.raises(AuthError) as info:
        archive(planet).search(q())
    msg = str(info.value)
    assert "PL_API_KEY" in msg and "401" in msg and info.value.credential_env == "PL_API_KEY"
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    for text in (msg, repr(info.value), caplog.text):
        assert KEY not in text and basic not in text
    assert planet.count() == 1  # not retried
    # ... while the key was sent, as basic auth with the key as user name.
    assert planet.requests[0][2]["Authorization"] == f"Basic {basic}"
    # A refused paging request names it too.
    planet.plan("/data/v1/searches/", 403)
    with pytest.raises(AuthError, match="PL_API_KEY"):
        archive(planet).search(q())


def test_wrong_key_and_api_key_header(planet: PlanetServer, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    arch = archive(planet, auth="api-key")
    assert len(arch.search(q())) == 6
    assert planet.requests[0][2]["Authorization"] == f"api-key {KEY}"
    wrong = "PLAK-wrong-key-987654321"
    monkeypatch.setenv("PL_API_KEY", wrong)
    with pytest.raises(AuthError) as info:
        arch.search(q())  # the same archive picks up the new key
    assert "PL_API_KEY" in str(info.value) and "refused" in str(info.value)
    assert wrong not in str(info.value) and wrong not in caplog.text and KEY not in caplog.text
    assert planet.requests[-1][2]["Authorization"] == f"api-key {wrong}"


def test_missing_key_fails_before_any_request(planet: PlanetServer, monkeypatch):
    monkeypatch.delenv("PL_API_KEY")
    with pytest.raises(AuthError) as info:
        archive(planet).search(q())
    assert "PL_API_KEY" in str(info.value) and "not set" in str(info.value)
    assert info.value.credential_env == "PL_API_KEY"
    assert planet.requests == []
    with pytest.raises(AuthError, match="PL_API_KEY"):
        PlanetArchive(url=planet.url, env={"PL_API_KEY": "  "}).search(q())
    assert planet.requests == []
    # A key passed in an explicit env mapping and refused by the server.
    with pytest.raises(AuthError, match="PL_API_KEY. was refused") as info:
        PlanetArchive(url=planet.url, env={"PL_API_KEY": "PLAK-refused-0001"}).search(q())
    assert "PLAK-refused-0001" not in str(info.value) and info.value.status == 401


def test_paging_is_bounded_and_stays_on_the_api_origin(planet: PlanetServer):
    with pytest.raises(PlanetSearchTruncated, match="max_pages"):
        archive(planet, max_pages=2).search(q())
    assert planet.count("/data/v1/searches/") == 2  # page 2, then page 3 to see it is not empty
    # Exactly max_pages full pages followed by an empty one is not a truncation.
    planet.pages.append([])
    assert len(archive(planet, max_pages=3).search(q())) == 6
    # A null _next on the last page ends paging as an absent one does.
    planet.pages.pop()
    planet.last_next = None
    assert len(archive(planet).search(q())) == 6
    # A paging link to another origin would carry the key there: refused, nothing sent.
    planet.next_origin = f"http://localhost:{planet.port}"
    n = len(planet.requests)
    with pytest.raises(HttpError, match="another server"):
        archive(planet).search(q())
    assert len(planet.requests) == n + 1  # the POST only


def test_pure_helpers():
    query = q(min_cloud_cover=5, max_cloud_cover=30)
    f = build_filter(query, min_clear_percent=80)
    assert [c["type"] for c in f["config"]] == ["DateRangeFilter", "RangeFilter", "RangeFilter"]
    assert f["config"][1]["config"] == {"gte": 0.05, "lte": 0.3}
    assert quantification_for("ortho_analytic_8b_sr") == 10000.0
    assert quantification_for("basic_analytic_4b") == 100.0
    feat = psscene("x1", "2022-03-02T10:00:00.123456789Z", None, clear=60)
    del feat["_links"], feat["_permissions"], feat["properties"]["instrument"]
    rec = feature_to_record(feat, base_url="http://example.test/data/v1/")
    assert rec.cloud_cover == 40.0 and rec.platform == "planetscope-2447"
    assert rec.datetime == dt.datetime(2022, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
    assert rec.assets["assets_url"].href == "http://example.test/data/v1/item-types/PSScene/items/x1/assets/"
    assert rec.assets["assets_url"].permitted is None
    with pytest.raises(ValueError, match="acquired"):
        feature_to_record({"id": "y", "properties": {}, "geometry": _square(0, 0)})
    cfg = PlanetArchive.from_config({"archive": "planet", "planet": {"page_size": 1000, "url": "http://x/"}})
    assert cfg.page_size == 250 and cfg.url == "http://x" and cfg.name == "planet"


# --------------------------------------------------------------------- activation + download


def _record(planet: PlanetServer, item: str = "20220302_101112_12_2447"):
    base = f"http://127.0.0.1:{planet.port}/data/v1"
    return feature_to_record(psscene(item, "2022-03-02T10:11:12Z", 0.3, base=base), base_url=base)


def test_activate_poll_and_download(planet: PlanetServer, tmp_path):
    data = b"II*\x00" + bytes(range(256)) * 40
    planet.add_asset("20220302_101112_12_2447", "ortho_udm2", data, polls=3)
    rec = _record(planet)
    sleeps: list[float] = []
    dest = tmp_path / "udm2.tif"
    out = archive(planet).download_asset(rec, "ortho_udm2", dest, poll_s=0.5, sleep=sleeps.append)
    assert out == dest and dest.read_bytes() == data and sleeps == [0.5] * 3  # 3 polls "activating"
    methods = [(m, p.split("/data/v1/")[1].split("/")[0]) for m, p, _, _ in planet.requests]
    assert methods.count(("POST", "assets")) == 1 and methods[-1] == ("GET", "download")
    assert all(h.get("Authorization", "").startswith("Basic ") for _, _, h, _ in planet.requests)
    # A complete earlier copy (with its provenance record) is reused without any request.
    n = len(planet.requests)
    assert archive(planet).download_asset(rec, "ortho_udm2", dest) == dest and len(planet.requests) == n


def test_download_failures_are_named(planet: PlanetServer, tmp_path):
    rec = _record(planet)
    planet.add_asset(rec.id, "ortho_analytic_4b_sr", b"abc", polls=1, md5="0" * 32)
    with pytest.raises(HttpError, match="MD5"):
        archive(planet).download_asset(rec, "ortho_analytic_4b_sr", tmp_path / "a.tif", sleep=lambda s: None)
    assert not (tmp_path / "a.tif").exists()
    planet.add_asset(rec.id, "ortho_udm2", b"x", permissions=())
    with pytest.raises(AuthError, match="PL_API_KEY") as info:
        archive(planet).download_asset(rec, "ortho_udm2", tmp_path / "b.tif", sleep=lambda s: None)
    assert info.value.credential_env == "PL_API_KEY"
    with pytest.raises(PlanetAssetMissing, match="ortho_visual"):
        archive(planet).download_asset(rec, "ortho_visual", tmp_path / "c.tif", sleep=lambda s: None)
    planet.add_asset(rec.id, "basic_udm2", b"y", polls=10**6)
    with pytest.raises(PlanetActivationTimeout, match="not active"):
        archive(planet).download_asset(rec, "basic_udm2", tmp_path / "d.tif", poll_s=0.01, timeout_s=0.05)
    planet.plan("/data/v1/item-types/", 401)
    with pytest.raises(AuthError, match="PL_API_KEY"):
        archive(planet).download_asset(rec, "basic_udm2", tmp_path / "e.tif", sleep=lambda s: None)


def test_download_retries_5xx_and_429(planet: PlanetServer, tmp_path):
    rec = _record(planet)
    planet.add_asset(rec.id, "ortho_udm2", b"udm2-bytes", polls=1)
    planet.plan("/data/v1/item-types/", 503)
    planet.plan("/data/v1/download/", (429, {"Retry-After": "0"}), 502)
    dest = archive(planet).download_asset(rec, "ortho_udm2", tmp_path / "u.tif", sleep=lambda s: None)
    assert dest.read_bytes() == b"udm2-bytes"
    assert planet.count("/data/v1/download/") == 3


def test_a_download_failing_planets_md5_is_fetched_again(planet: PlanetServer, tmp_path):
    rec = _record(planet)
    planet.add_asset(rec.id, "ortho_udm2", b"udm2-bytes-0123456789", polls=1)
    planet.plan("/data/v1/download/", 200)  # a complete-looking 200 with other bytes
    dest = archive(planet).download_asset(rec, "ortho_udm2", tmp_path / "m.tif", sleep=lambda s: None)
    assert dest.read_bytes() == b"udm2-bytes-0123456789"
    assert planet.count("/data/v1/download/") == 2
    # A copy changed on disk since it was verified is not reused.
    dest.write_bytes(b"udm2-bytes-0123456780")
    archive(planet).download_asset(rec, "ortho_udm2", dest, sleep=lambda s: None)
    assert dest.read_bytes() == b"udm2-bytes-0123456789" and planet.count("/data/v1/download/") == 3


def test_assets_outside_the_api_origin_are_refused(planet: PlanetServer, tmp_path):
    rec = feature_to_record(psscene("x", "2022-03-02T10:00:00Z", 0.1))  # api.planet.com links
    with pytest.raises(HttpError, match="not on the Planet API origin"):
        archive(planet).download_asset(rec, "ortho_udm2", tmp_path / "x.tif")
    assert planet.requests == []


def test_local_catalog_records_match_the_api_records(tmp_path):
    feat = psscene("20220302_101112_12_2447", "2022-03-02T10:11:12Z", 0.3)
    api = feature_to_record(feat)
    local = dict(feat, assets={"ortho_analytic_4b_sr": {"href": "x/sr.tif", "proj:epsg": 32633,
                                                        "proj:transform": [3, 0, 1, 0, -3, 2],
                                                        "proj:shape": [4, 5]}})
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "items.ndjson").write_text(json.dumps(local) + "\n")
    arch = LocalPlanetArchive(tmp_path / "sub" / "items.ndjson", asset_type="ortho_analytic_4b_sr")
    (rec,) = arch.search(q())
    for field in ("id", "collection", "platform", "datetime", "footprint", "cloud_cover",
                  "shadow_percent", "quantification"):
        assert getattr(rec, field) == getattr(api, field)
    sr = rec.assets["ortho_analytic_4b_sr"]
    assert sr.href == str(tmp_path / "sub" / "x" / "sr.tif") and sr.shape == (4, 5) and sr.epsg == 32633
    assert arch.download_asset(rec, "ortho_analytic_4b_sr") == tmp_path / "sub" / "x" / "sr.tif"
    assert "ortho_udm2" not in rec.assets
    with pytest.raises(PlanetAssetMissing):
        arch.download_asset(rec, "ortho_udm2")
    with pytest.raises(ValueError, match="planetscope"):
        arch.search(SearchQuery("sentinel-1-grd", q().start, q().end))
