"""Fixtures for the archive tests: demo-format STAC items, a real STAC API server (rustac) on
loopback, and a fault-injecting proxy in front of it. Everything stays on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from support.loopback import rustac_serving

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
GSD = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
       "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20}
TILES = {
    # tile: (epsg, west lon, south lat, utm x0, utm y0)
    "33UUP": (32633, 12.0, 48.0, 300000.0, 5400000.0),
    "32TNT": (32632, 8.0, 46.0, 500000.0, 5200000.0),
}


def _square(lon: float, lat: float, size: float = 0.5) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                [lon, lat + size], [lon, lat]]]}


def s2_item(item_id: str, tile: str, when: str, cloud: float, *, baseline: str = "05.00",
            collection: str = "sentinel-2-l2a", offset: bool = True, shadow: float = 1.5,
            cirrus: float = 0.5, size_px: int = 120) -> dict[str, Any]:
    epsg, lon, lat, x0, y0 = TILES[tile]
    assets = {}
    bands = S2_BANDS + (("SCL",) if collection == "sentinel-2-l2a" else ("B10",))
    for band in bands:
        gsd = GSD.get(band, 60)
        n = size_px * 10 // gsd
        asset: dict[str, Any] = {
            "href": f"{tile}/{item_id}/{band}.tif",
            "type": "image/tiff; application=geotiff",
            "roles": ["data"],
            "proj:shape": [n, n],
            "proj:transform": [gsd, 0.0, x0, 0.0, -gsd, y0, 0.0, 0.0, 1.0],
        }
        if band not in ("SCL",):
            rb: dict[str, Any] = {"data_type": "uint16", "nodata": 0, "scale": 0.0001}
            if offset:
                rb["offset"] = -0.1 if float(baseline) >= 4 else 0.0
            asset["raster:bands"] = [rb]
        assets[band] = asset
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "geometry": _square(lon, lat),
        "bbox": [lon, lat, lon + 0.5, lat + 0.5],
        "properties": {
            "datetime": when,
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "eo:cloud_cover": cloud,
            "s2:mgrs_tile": tile,
            "s2:processing_baseline": baseline,
            "s2:cloud_shadow_percentage": shadow,
            "s2:thin_cirrus_percentage": cirrus,
            "proj:code": f"EPSG:{epsg}",
            "sat:relative_orbit": 22,
            "sat:orbit_state": "descending",
        },
        "links": [],
        "assets": assets,
    }


def s1_item(item_id: str, when: str, *, unit: str | None = None, lon: float = 12.0,
            lat: float = 48.0) -> dict[str, Any]:
    def asset(pol: str) -> dict[str, Any]:
        a: dict[str, Any] = {"href": f"s1/{item_id}/{pol}.tif", "roles": ["data"],
                             "proj:shape": [60, 60],
                             "proj:transform": [20.0, 0.0, 300000.0, 0.0, -20.0, 5400000.0]}
        if unit:
            a["raster:bands"] = [{"data_type": "float32", "unit": unit}]
        return a

    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-1-grd",
        "geometry": _square(lon - 1, lat - 1, 3.0),
        "bbox": [lon - 1, lat - 1, lon + 2, lat + 2],
        "properties": {
            "datetime": when,
            "platform": "sentinel-1a",
            "sar:instrument_mode": "IW",
            "sar:polarizations": ["VV", "VH"],
            # calibrated and on a map grid, like the demo world (stac_items.s1_physics)
            "cloudyeo:sar_radiometry": "sigma0",
            "cloudyeo:sar_geometry": "terrain",
            "sat:relative_orbit": 117,
            "sat:orbit_state": "ascending",
            "proj:epsg": 32633,
        },
        "links": [],
        "assets": {"vv": asset("vv"), "vh": asset("vh")},
    }


def collection_doc(cid: str) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"demo {cid}",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                   "temporal": {"interval": [["2015-01-01T00:00:00Z", None]]}},
        "links": [],
    }


def demo_items() -> list[dict[str, Any]]:
    """A handful of items: two tiles, several dates and cloud covers, L1C, S1."""
    items = [
        s2_item("S2A_33UUP_20220301_L2A", "33UUP", "2022-03-01T10:10:00Z", 5.0),
        s2_item("S2A_33UUP_20220306_L2A", "33UUP", "2022-03-06T10:10:00Z", 80.0, shadow=10.0),
        s2_item("S2A_33UUP_20220311_L2A", "33UUP", "2022-03-11T10:10:00Z", 30.0),
        s2_item("S2A_33UUP_20220316_L2A", "33UUP", "2022-03-16T10:10:00Z", 55.5),
        s2_item("S2A_33UUP_20220415_L2A", "33UUP", "2022-04-15T10:10:00Z", 12.0),
        s2_item("S2A_33UUP_20211201_L2A", "33UUP", "2021-12-01T10:10:00Z", 20.0,
                baseline="03.01", offset=False),
        s2_item("S2A_32TNT_20220302_L2A", "32TNT", "2022-03-02T10:20:00Z", 1.0),
        s2_item("S2A_32TNT_20220312_L2A", "32TNT", "2022-03-12T10:20:00Z", 95.0),
        s2_item("S2A_33UUP_20220301_L1C", "33UUP", "2022-03-01T10:10:00Z", 5.0,
                collection="sentinel-2-l1c"),
        s1_item("S1A_IW_GRDH_20220303", "2022-03-03T05:00:00Z"),
        s1_item("S1A_IW_GRDH_20220309", "2022-03-09T05:00:00Z", unit="dB"),
    ]
    return items


def write_catalog(folder: Path, items: list[dict[str, Any]]) -> Path:
    """Write the demo layout (items.ndjson + collections.json list) and per-collection files."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "items.ndjson", "w") as fh:
        for it in items:
            fh.write(json.dumps(it) + "\n")
    cids = sorted({it["collection"] for it in items})
    (folder / "collections.json").write_text(json.dumps([collection_doc(c) for c in cids]))
    for c in cids:  # rustac serve takes one collection per file
        (folder / f"collection-{c}.json").write_text(json.dumps(collection_doc(c)))
    return folder


class CatalogTools:
    """Helpers for tests (conftest modules are not importable by name)."""

    demo_items = staticmethod(demo_items)
    write_catalog = staticmethod(write_catalog)
    s2_item = staticmethod(s2_item)
    s1_item = staticmethod(s1_item)
    FlakyProxy = None  # set below


@pytest.fixture(scope="session")
def catalog_tools() -> type[CatalogTools]:
    return CatalogTools


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("catalog"), demo_items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def rustac_url(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real STAC API (``rustac serve``, in-memory backend) with the demo items."""
    collections = sorted(str(p) for p in catalog_dir.glob("collection-*.json"))
    log_path = tmp_path_factory.mktemp("rustac") / "rustac.log"
    with rustac_serving(free_port(), collections, catalog_dir / "items.ndjson", log_path) as url:
        yield url


class FlakyProxy:
    """A loopback HTTP proxy in front of ``upstream`` that injects failures.

    ``plan(path_prefix, *actions)`` queues actions consumed by matching requests, in order:
    ``503`` / ``429`` / ``401`` (status), ``(503, {"Retry-After": "0"})`` (status + headers),
    ``("slow", seconds)`` (sleep then answer normally), ``("cut", nbytes)`` (forward, send the
    full ``Content-Length`` but only ``nbytes`` of the body, then drop the connection),
    ``("truncate", nbytes)`` (forward, send only ``nbytes`` of the body with a matching
    ``Content-Length``: a truncated JSON page), ``("links-to", url)`` (forward, with links in
    the body pointing at ``url`` instead of this proxy) and ``("redirect", url)`` (302 to
    ``url`` + the request path). Other requests are forwarded, with the upstream address in
    bodies rewritten to the proxy's so paging links come back here.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.actions: dict[str, list[Any]] = defaultdict(list)
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    proxy.requests.append((self.command, self.path, dict(self.headers), body))
                    action = None
                    for prefix, queue in proxy.actions.items():
                        if self.path.startswith(prefix) and queue:
                            action = queue.pop(0)
                            break
                if isinstance(action, tuple) and action and action[0] == "slow":
                    time.sleep(action[1])
                    action = None
                mangle = None
                if isinstance(action, tuple) and action and action[0] in ("cut", "truncate", "links-to"):
                    mangle, action = action, None
                if isinstance(action, tuple) and action and action[0] == "redirect":
                    action = (302, {"Location": action[1].rstrip("/") + self.path})
                if action is not None:
                    status, headers = (action, {}) if isinstance(action, int) else action
                    payload = json.dumps({"code": "Injected", "description": f"injected {status}",
                                          "echo": self.headers.get("Authorization", "")}).encode()
                    try:
                        self.send_response(status)
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                    except OSError:
                        pass
                    return
                fwd_headers = {k: v for k, v in self.headers.items()
                               if k.lower() in ("content-type", "accept")}
                try:
                    resp = requests.request(self.command, proxy.upstream + self.path,
                                            data=body or None, headers=fwd_headers, timeout=10)
                except requests.RequestException:  # upstream gone (end of session)
                    try:
                        self.send_response(502)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    except OSError:
                        pass
                    return
                link_base = mangle[1] if mangle and mangle[0] == "links-to" else proxy.url
                content = resp.content.replace(proxy.upstream.encode(), link_base.encode())
                declared = len(content)
                if mangle and mangle[0] in ("cut", "truncate"):
                    content = content[: mangle[1]]
                    declared = declared if mangle[0] == "cut" else len(content)
                try:
                    self.send_response(resp.status_code)
                    self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(declared))
                    self.end_headers()
                    self.wfile.write(content)
                    if mangle and mangle[0] == "cut":
                        self.wfile.flush()
                        self.close_connection = True
                except OSError:
                    pass

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def plan(self, prefix: str, *actions: Any) -> None:
        with self.lock:
            self.actions[prefix].extend(actions)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for _, p, _, _ in self.requests if p.startswith(prefix))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CatalogTools.FlakyProxy = FlakyProxy  # type: ignore[assignment]


@pytest.fixture
def flaky_proxy(rustac_url: str):
    proxy = FlakyProxy(rustac_url)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see real credentials from the developer's environment."""
    for name in ("CLOUDYEO_STAC_TOKEN", "CDSE_ACCESS_TOKEN", "PC_SDK_SUBSCRIPTION_KEY", "PL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
