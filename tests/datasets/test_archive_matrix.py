"""Every archive an example config advertises builds every dataset: the archive x dataset matrix.

Each cell builds a tiny CBEN, time-series or SSL4EO set end to end (plan, store, extract,
finalize) from one archive, with the same dataset settings, and compares it with the build from
the local STAC demo catalog:

* ``local``        -- the demo world's STAC catalog read from disk (``archive: demo``);
* ``stac-api``     -- a real STAC API, ``rustac serve`` on loopback, serving the demo world's
                      items (``stac.preset: custom``, relative hrefs resolved by ``stac.asset_base``);
* ``earthengine``  -- the earthengine-api's own test harness (``ee.apitestcase``): every REST call
                      of the real client goes through a mocked transport that answers
                      ``value:compute`` (image lists) and ``image:computePixels`` (NPY pixels of the
                      requested grid, read from the demo world's COGs) like the service;
* ``sentinelhub``  -- a loopback HTTP server speaking the Sentinel Hub OAuth, Catalog API and
                      Process API JSON (GeoTIFF pixels of the requested box, from the demo COGs).

The services answer from the demo world's files the way the real ones do: Earth Engine and
Sentinel Hub serve harmonized Sentinel-2 DN (the baseline-04.00 offset removed), Earth Engine
Sentinel-1 in dB, Sentinel Hub in linear sigma0. So every archive must give the same scenes and
the same stored pixels as the local catalog.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
import yaml
from affine import Affine
from shapely.geometry import box, shape
from support.datasets import build_dataset
from support.loopback import ee_invocations, rustac_serving

from cloudyeo import drivers, store
from cloudyeo.archives.local import LocalStacArchive
from cloudyeo.archives.reading import read_raster
from cloudyeo.config import paths, validate_config
from cloudyeo.datasets import cben
from cloudyeo.datasets import timeseries as ts

ROOT = Path(__file__).resolve().parents[2]
ARCHIVES = ("local", "stac-api", "earthengine", "sentinelhub")
UTC = dt.UTC
EE_COLLECTIONS = {"sentinel-2-l1c": "COPERNICUS/S2_HARMONIZED", "sentinel-2-l2a": "COPERNICUS/S2_SR_HARMONIZED",
                  "sentinel-1-grd": "COPERNICUS/S1_GRD"}
EE_FILL = -32768.0
SH_CLIENT_ID, SH_SECRET = "matrix-client", "matrix-secret-0123456789"


def advertised_archives() -> set[str]:
    """The archive kinds of the example configs (``config/examples/*.yaml``) and the default."""
    kinds = {yaml.safe_load((ROOT / "config" / "config.yaml").read_text()).get("archive", "demo")}
    for path in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        kinds.add(yaml.safe_load(path.read_text()).get("archive", "demo"))
    return kinds


def test_the_matrix_covers_every_advertised_archive():
    kinds = {"local" if k == "demo" else k for k in advertised_archives()}
    assert kinds <= set(ARCHIVES), f"example configs advertise archives without a matrix column: {kinds - set(ARCHIVES)}"
    assert {"stac-api", "earthengine", "sentinelhub"} <= kinds


def test_no_dataset_opens_a_raster_itself():
    """Pixels reach the datasets only through cloudyeo.archives.reading (one GDAL environment,
    every archive's read_window): no dataset module calls rasterio.open or builds a WarpedVRT."""
    import ast

    offenders = []
    for path in sorted((ROOT / "src" / "cloudyeo" / "datasets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("open", "WarpedVRT", "MemoryFile") \
                    and isinstance(node.value, ast.Name) and node.value.id in ("rasterio", "vrt", "io"):
                offenders.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rasterio") \
                    and any(a.name in ("open", "WarpedVRT", "MemoryFile") for a in node.names):
                offenders.append(f"{path.name}:{node.lineno} from {node.module} import ...")
    assert not offenders, offenders


# ------------------------------------------------------------------------------ the world


class World:
    """The demo world's scenes, as a service holds them: records with absolute hrefs, raw items."""

    def __init__(self, catalog: Path):
        self.catalog = catalog
        self.local = LocalStacArchive(catalog)
        self.items = {json.loads(line)["id"]: json.loads(line)
                      for line in (catalog / "items.ndjson").read_text().splitlines() if line.strip()}
        self.records = defaultdict(list)
        for rec in self.local.records():
            self.records[rec.collection].append(rec)
        self.by_id = {r.id: r for recs in self.records.values() for r in recs}

    def pixels(self, rec, band: str, *, epsg: int, transform, shape_: tuple[int, int], resampling: str,
               sar_db: bool) -> np.ndarray:
        """What a service computes: the stored band on the requested grid; Sentinel-2 as
        harmonized DN (offset removed), Sentinel-1 in dB or linear; NaN = no data."""
        key = band if band in rec.assets else band.lower()
        v = read_raster(rec.assets[key].href, epsg=epsg, transform=Affine(*transform[:6]), shape=shape_,
                        resampling=resampling)
        if rec.collection.startswith("sentinel-2") and band != "SCL":
            return v + np.float32(rec.radiometric_offset)
        if rec.collection.startswith("sentinel-1") and sar_db:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(v > 0, 10.0 * np.log10(v), np.nan).astype(np.float32)
        return v


# ------------------------------------------------------------------------------ STAC API


@contextmanager
def rustac_over(world: World, tmp: Path) -> Iterator[str]:
    """``rustac serve`` with the demo world's collections and items."""
    collections = sorted(str(p) for p in (world.catalog / "collections").glob("*.json"))
    with socket_port() as port:
        pass
    with rustac_serving(port, collections, world.catalog / "items.ndjson", tmp / "rustac.log") as url:
        yield url


@contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# ------------------------------------------------------------------------------ Earth Engine


def _ee_image(world: World, rec) -> dict[str, Any]:
    """An image as Earth Engine's ``getInfo`` describes it (the properties the adapter reads)."""
    from cloudyeo.archives.earthengine import band_to_ee

    item = world.items[rec.id]
    props = item["properties"]
    ring = shape(item["geometry"]).exterior.coords
    bands = []
    for name, asset in rec.assets.items():
        if name == "truth_mask" or asset.transform is None:
            continue
        ee_name = band_to_ee(name.upper() if rec.collection.startswith("sentinel-1") else name)
        bands.append({"id": ee_name, "crs": f"EPSG:{asset.epsg}", "crs_transform": list(asset.transform[:6]),
                      "dimensions": [asset.shape[1], asset.shape[0]]})
    p: dict[str, Any] = {
        "system:index": rec.id,
        "system:time_start": int(rec.datetime.timestamp() * 1000),
        "system:footprint": {"type": "LinearRing", "coordinates": [list(c) for c in ring]},
    }
    if rec.collection.startswith("sentinel-1"):
        p.update(instrumentMode="IW", transmitterReceiverPolarisation=["VV", "VH"],
                 orbitProperties_pass=str(props.get("sat:orbit_state", "")).upper(),
                 relativeOrbitNumber_start=props.get("sat:relative_orbit"),
                 platform_number=str(props["platform"])[-1].upper())
    else:
        p.update(MGRS_TILE=rec.tile, CLOUDY_PIXEL_PERCENTAGE=props.get("eo:cloud_cover"),
                 CLOUD_SHADOW_PERCENTAGE=props.get("s2:cloud_shadow_percentage"),
                 THIN_CIRRUS_PERCENTAGE=props.get("s2:thin_cirrus_percentage"),
                 PROCESSING_BASELINE=props.get("s2:processing_baseline"), PRODUCT_ID=rec.id,
                 SPACECRAFT_NAME="Sentinel-" + str(props["platform"])[-2:].upper(),
                 SENSING_ORBIT_NUMBER=props.get("sat:relative_orbit"),
                 SENSING_ORBIT_DIRECTION=str(props.get("sat:orbit_state", "")).upper())
    return {"type": "Image", "id": f"{EE_COLLECTIONS[rec.collection]}/{rec.id}", "bands": bands, "properties": p}


class FakeEarthEngine:
    """Answers the earthengine-api client's REST calls from the demo world."""

    def __init__(self, world: World):
        self.world = world
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any):
        import httplib2

        req = json.loads(body) if body else {}
        if uri.split("?")[0].endswith("/value:compute"):
            self.calls["value:compute"] += 1
            return httplib2.Response({"status": 200}), json.dumps({"result": self.list_images(req)}).encode()
        if uri.split("?")[0].endswith("/image:computePixels"):
            self.calls["computePixels"] += 1
            return httplib2.Response({"status": 200}), self.compute_pixels(req)
        body = {"error": {"code": 404, "message": f"not in the fake: {uri}", "status": "NOT_FOUND"}}
        return httplib2.Response({"status": 404}), json.dumps(body).encode()

    def list_images(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        calls = dict((name, args) for name, args in ee_invocations(req["expression"]) if name != "Collection.filter")
        filters = [args for name, args in ee_invocations(req["expression"]) if name.startswith("Filter.")
                   or name == "DateRange"]
        cid = calls["ImageCollection.load"]["id"]
        logical = {v: k for k, v in EE_COLLECTIONS.items()}[cid]
        recs = self.world.records[logical]
        for f in filters:
            if "start" in f and "end" in f:  # DateRange of filterDate (end exclusive)
                t0 = dt.datetime.fromisoformat(f["start"].replace("Z", "+00:00"))
                t1 = dt.datetime.fromisoformat(f["end"].replace("Z", "+00:00"))
                recs = [r for r in recs if t0 <= r.datetime < t1]
            if f.get("leftField") == "MGRS_TILE":
                recs = [r for r in recs if r.tile == f["rightValue"]]
        recs = sorted(recs, key=lambda r: r.id)  # .sort("system:index")
        page = calls["Collection.toList"]
        offset, count = int(page.get("offset") or 0), int(page["count"])
        return [_ee_image(self.world, r) for r in recs[offset:offset + count]]

    def compute_pixels(self, req: dict[str, Any]) -> bytes:
        calls = dict(ee_invocations(req["expression"]))
        cid, index = calls["Image.load"]["id"].rsplit("/", 1)
        rec = self.world.by_id[index]
        names = calls["Image.select"]["newNames"]
        mode = calls.get("Image.resample", {}).get("mode", "nearest")
        g = req["grid"]
        a = g["affineTransform"]
        transform = (a["scaleX"], a["shearX"], a["translateX"], a["shearY"], a["scaleY"], a["translateY"])
        shp = (g["dimensions"]["height"], g["dimensions"]["width"])
        epsg = int(g["crsCode"].split(":")[1])
        out = np.zeros(shp, dtype=[(n, np.float32) for n in req["bandIds"]])
        for name in req["bandIds"]:
            assert name in names
            v = self.world.pixels(rec, name, epsg=epsg, transform=transform, shape_=shp, resampling=mode,
                                  sar_db=True)
            out[name] = np.where(np.isfinite(v), v, np.float32(EE_FILL))
        buf = io.BytesIO()
        np.save(buf, out)
        return buf.getvalue()


@contextmanager
def earthengine_serving(world: World) -> Iterator[FakeEarthEngine]:
    ee = pytest.importorskip("ee")
    import httplib2
    from ee import apitestcase

    from cloudyeo.archives.earthengine import EarthEngineArchive

    case = apitestcase.ApiTestCase()
    case.setUp()
    ee.data.computeValue = case.old_compute_value  # the real one, not the harness' stub
    fake = FakeEarthEngine(world)
    http = mock.MagicMock(httplib2.Http)
    http.request.side_effect = fake
    try:
        # The harness initialised ee for project "my-project"; no key file is needed.
        with apitestcase.UsingCloudApi(mock_http=http), \
                mock.patch.object(EarthEngineArchive, "initialize", lambda self: None):
            yield fake
    finally:
        case.tearDown()


# ------------------------------------------------------------------------------ Sentinel Hub


def _evalscript_bands(script: str) -> list[str]:
    m = re.search(r"bands:\s*\[([^\]]*)\]", script)
    assert m, script
    return [b.strip().strip('"') for b in m.group(1).split(",") if b.strip().strip('"') != "dataMask"]


class FakeSentinelHub:
    """OAuth token endpoint, Catalog API and Process API of Sentinel Hub, on loopback."""

    def __init__(self, world: World):
        self.world = world
        self.counts: dict[str, int] = defaultdict(int)
        self.tokens: set[str] = set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, payload: Any, ctype: str = "application/json") -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.counts[self.path] += 1
                if self.path == "/oauth/token":
                    form = parse_qs(raw.decode())
                    if form.get("client_id") != [SH_CLIENT_ID] or form.get("client_secret") != [SH_SECRET]:
                        return self.reply(401, {"error": "invalid_client"})
                    token = f"token-{len(fake.tokens)}-abcdefgh"
                    fake.tokens.add(token)
                    return self.reply(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
                auth = self.headers.get("Authorization", "")
                if auth[7:] not in fake.tokens:
                    return self.reply(401, {"error": {"status": 401, "reason": "Unauthorized"}})
                body = json.loads(raw)
                if self.path == "/api/v1/catalog/1.0.0/search":
                    return self.reply(200, fake.search(body), "application/geo+json")
                if self.path == "/api/v1/process":
                    try:
                        return self.reply(200, fake.process(body), "image/tiff")
                    except LookupError as exc:
                        return self.reply(400, {"error": {"status": 400, "reason": str(exc)}})
                return self.reply(404, {"error": {"status": 404, "reason": "not found"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def _feature(self, rec) -> dict[str, Any]:
        item = self.world.items[rec.id]
        props = item["properties"]
        p: dict[str, Any] = {"datetime": props["datetime"], "platform": props.get("platform")}
        if rec.collection.startswith("sentinel-1"):
            p.update({"sar:instrument_mode": "IW", "s1:polarization": "DV",
                      "sat:orbit_state": props.get("sat:orbit_state"),
                      "sat:relative_orbit": props.get("sat:relative_orbit")})
        else:
            p["eo:cloud_cover"] = props.get("eo:cloud_cover")
        return {"type": "Feature", "stac_version": "1.0.0", "id": rec.id, "geometry": item["geometry"],
                "bbox": item.get("bbox"), "properties": p, "assets": {}, "links": []}

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        (collection,) = body["collections"]
        t0, t1 = (dt.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["datetime"].split("/"))
        area = shape(body["intersects"]) if "intersects" in body else box(*body["bbox"])
        recs = [r for r in sorted(self.world.records[collection], key=lambda r: (r.datetime, r.id))
                if t0 <= r.datetime <= t1 and shape(r.footprint).intersects(area)]
        start, limit = int(body.get("next", 0)), int(body["limit"])
        context: dict[str, Any] = {"limit": limit, "returned": len(recs[start:start + limit])}
        if start + limit < len(recs):
            context["next"] = start + limit
        return {"type": "FeatureCollection", "features": [self._feature(r) for r in recs[start:start + limit]],
                "links": [], "context": context}

    def process(self, body: dict[str, Any]) -> bytes:
        from pyproj import Transformer
        from rasterio.io import MemoryFile

        data = body["input"]["data"][0]
        rng = data["dataFilter"]["timeRange"]
        t0, t1 = (dt.datetime.fromisoformat(rng[k].replace("Z", "+00:00")) for k in ("from", "to"))
        bounds = body["input"]["bounds"]
        epsg = int(bounds["properties"]["crs"].rsplit("/", 1)[1])
        x0, y0, x1, y1 = bounds["bbox"]
        w, h = int(body["output"]["width"]), int(body["output"]["height"])
        lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform([x0, x1, x1, x0], [y0, y0, y1, y1])
        area = shape({"type": "Polygon", "coordinates": [list(zip(lon, lat)) + [(lon[0], lat[0])]]})
        recs = [r for r in self.world.records[data["type"]]
                if t0 <= r.datetime <= t1 and shape(r.footprint).intersects(area)]
        if not recs:
            raise LookupError(f"no {data['type']} acquisition in {rng}")
        transform = (float((x1 - x0) / w), 0.0, float(x0), 0.0, float(-(y1 - y0) / h), float(y1))
        mode = data["processing"]["upsampling"].lower()
        bands = _evalscript_bands(body["evalscript"])
        out = np.full((len(bands), h, w), np.nan, dtype=np.float32)
        for rec in recs:  # a mosaic of the acquisition's tiles, first with data wins
            for i, band in enumerate(bands):
                v = self.world.pixels(rec, band, epsg=epsg, transform=transform, shape_=(h, w), resampling=mode,
                                      sar_db=False)
                out[i] = np.where(np.isnan(out[i]), v, out[i])
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", width=w, height=h, count=len(bands), dtype="float32",
                          crs=f"EPSG:{epsg}", transform=Affine(*transform)) as dst:
                dst.write(out)
            return mem.read()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def sentinelhub_serving(world: World, monkeypatch) -> Iterator[FakeSentinelHub]:
    monkeypatch.setenv("SH_CLIENT_ID", SH_CLIENT_ID)
    monkeypatch.setenv("SH_CLIENT_SECRET", SH_SECRET)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http (oauthlib refuses it otherwise)
    fake = FakeSentinelHub(world)
    try:
        yield fake
    finally:
        fake.close()


# ------------------------------------------------------------------------------ configs


@contextmanager
def archive_config(kind: str, world: World, tmp: Path, monkeypatch) -> Iterator[tuple[dict[str, Any], Any]]:
    """The config sections selecting ``kind`` (serving ``world``), and the fake service."""
    if kind == "local":
        yield {"archive": "demo"}, None
    elif kind == "stac-api":
        with rustac_over(world, tmp) as url:
            yield {"archive": "stac-api", "stac": {"preset": "custom", "url": url, "page_size": 50,
                                                   "asset_base": str(world.catalog) + "/"}}, url
    elif kind == "earthengine":
        with earthengine_serving(world) as fake:
            yield {"archive": "earthengine", "earthengine": {"project": "my-project", "page_size": 20}}, fake
    elif kind == "sentinelhub":
        with sentinelhub_serving(world, monkeypatch) as fake:
            yield {"archive": "sentinelhub", "sentinelhub": {
                "preset": "cdse", "base_url": fake.url, "token_url": fake.url + "/oauth/token",
                "page_size": 20, "max_retries": 1, "timeout_s": 30}}, fake
    else:
        raise ValueError(kind)


def _served(kind: str, fake: Any) -> None:
    """The pixels really came from the service of the cell."""
    if kind == "earthengine":
        assert fake.calls["value:compute"] > 0 and fake.calls["computePixels"] > 0
    elif kind == "sentinelhub":
        assert fake.counts["/api/v1/catalog/1.0.0/search"] > 0 and fake.counts["/api/v1/process"] > 0


def _same_s1(a: np.ndarray, b: np.ndarray) -> None:
    """Equal no-data and dB equal to float32 precision (10*log10 may round differently when the
    service converts)."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    tol = 4 * np.finfo(np.float32).eps * float(np.abs(a[ok]).max()) if ok.any() else 0.0
    np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=tol)


# ------------------------------------------------------------------------------ CBEN


def _cben_cfg(world_cfg: dict[str, Any], sections: dict[str, Any], results: Path) -> dict[str, Any]:
    p = paths(world_cfg)
    return validate_config({
        **{k: world_cfg[k] for k in ("resources_dir", "demo")}, **sections, "results_dir": str(results),
        "reference": {"root": str(p.reference)}, "climatology": {"dir": str(p.climatology)},
        "cben": {"s1_source": "closest", "s1_max_days": 14, "store_shard_samples": 4},
    })


def _build_cben(cfg: dict[str, Any]) -> dict[str, Any]:
    builder = build_dataset("cben", cfg)
    m = cben.read_manifest(builder.paths.manifest)
    ds = store.open_store(builder.paths.store)
    return {"manifest": m, "index": pd.read_parquet(paths(cfg).cben / "index.parquet"),
            **{v: ds[v].values for v in ("s2", "s2_reference", "s1", "cloud_fraction", "valid_fraction")}}


@pytest.fixture(scope="module")
def cben_local(tiny_world, tmp_path_factory):
    return _build_cben(_cben_cfg(tiny_world, {"archive": "demo"}, tmp_path_factory.mktemp("cben_local")))


@pytest.mark.parametrize("kind", ARCHIVES[1:])
def test_cben_from_every_archive(kind, tiny_world, cben_local, tmp_path, monkeypatch):
    world = World(paths(tiny_world).demo / "catalog")
    with archive_config(kind, world, tmp_path, monkeypatch) as (sections, fake):
        got = _build_cben(_cben_cfg(tiny_world, sections, tmp_path / "results"))
        _served(kind, fake)
    ref = cben_local
    assert (ref["manifest"]["skip_reason"].isna()).sum() >= 2
    pd.testing.assert_series_equal(got["manifest"]["scene_id"], ref["manifest"]["scene_id"])
    assert list(got["index"]["s1_id"]) == list(ref["index"]["s1_id"])
    # The cloudy S2 cut on the native grids and upsampled by CBEN: the same integers.
    assert np.array_equal(got["s2"], ref["s2"], equal_nan=True)
    assert np.array_equal(got["s2_reference"], ref["s2_reference"], equal_nan=True)
    np.testing.assert_array_equal(got["cloud_fraction"], ref["cloud_fraction"])
    np.testing.assert_array_equal(got["valid_fraction"], ref["valid_fraction"])
    _same_s1(got["s1"], ref["s1"])
    assert np.isfinite(got["s1"]).mean() > 0.9


# ------------------------------------------------------------------------------ time series


TS_ROI = "14SKF"


def _ts_cfg(world_cfg: dict[str, Any], sections: dict[str, Any], results: Path, landcover: Path) -> dict[str, Any]:
    w = json.loads((paths(world_cfg).demo_timeseries / "world.json").read_text())
    roi = next(r for r in w["rois"] if r["id"] == TS_ROI)
    base = dict(world_cfg["timeseries"])
    base.update(
        rois=[{"name": TS_ROI, "lon": roi["centre_lon"], "lat": roi["centre_lat"], "size_px": roi["roi_shape"][0]}],
        intervals=4, splits={"train": [TS_ROI], "validation": [], "test": []},
        manifest={**base["manifest"], "samples_per_patch": 1},
    )
    if sections["archive"] != "demo":
        base["landcover"] = {**base["landcover"], "source": "worldcover",
                             "url_template": str(landcover / "ESA_WorldCover_{tile}.tif")}
    return validate_config({**{k: world_cfg[k] for k in ("resources_dir", "demo_timeseries")}, **sections,
                            "results_dir": str(results), "timeseries": base})


def _landcover_dir(world_cfg: dict[str, Any], tmp: Path) -> Path:
    """The ROI's land-cover raster under the name of its WorldCover tile (a local copy)."""
    w = json.loads((paths(world_cfg).demo_timeseries / "world.json").read_text())
    roi = next(r for r in w["rois"] if r["id"] == TS_ROI)
    folder = tmp / "worldcover"
    folder.mkdir(exist_ok=True)
    name = f"ESA_WorldCover_{ts.worldcover_tile(roi['centre_lon'], roi['centre_lat'])}.tif"
    (folder / name).write_bytes((paths(world_cfg).demo_timeseries / "landcover" / f"{TS_ROI}.tif").read_bytes())
    return folder


def _build_ts(cfg: dict[str, Any]) -> dict[str, Any]:
    builder = build_dataset("timeseries", cfg, units=[TS_ROI])
    ds = store.open_store(builder.paths.store)
    part = pd.read_parquet(builder.paths.part(TS_ROI))
    return {"part": part, **{v: ds[v].values for v in ("s2", "s1", "cloud_mask", "landcover")}}


@pytest.fixture(scope="module")
def ts_local(tiny_timeseries_world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ts_local")
    return _build_ts(_ts_cfg(tiny_timeseries_world, {"archive": "demo"}, tmp / "results", tmp))


@pytest.mark.parametrize("kind", ARCHIVES[1:])
def test_timeseries_from_every_archive(kind, tiny_timeseries_world, ts_local, tmp_path, monkeypatch):
    world = World(paths(tiny_timeseries_world).demo_timeseries / "catalog")
    lc = _landcover_dir(tiny_timeseries_world, tmp_path)
    with archive_config(kind, world, tmp_path, monkeypatch) as (sections, fake):
        got = _build_ts(_ts_cfg(tiny_timeseries_world, sections, tmp_path / "results", lc))
        _served(kind, fake)
    ref = ts_local
    assert ref["part"]["valid"].sum() >= 2
    for col in ("valid", "s2_id", "s1_id"):
        assert list(got["part"][col]) == list(ref["part"][col]), col
    assert np.array_equal(got["s2"], ref["s2"], equal_nan=True)
    assert np.array_equal(got["cloud_mask"], ref["cloud_mask"], equal_nan=True)
    assert np.array_equal(got["landcover"], ref["landcover"], equal_nan=True)
    _same_s1(got["s1"], ref["s1"])


# ------------------------------------------------------------------------------ SSL4EO


def _ssl_cfg(world_cfg: dict[str, Any], sections: dict[str, Any], results: Path) -> dict[str, Any]:
    w = json.loads((paths(world_cfg).demo_timeseries / "world.json").read_text())
    locs = [{"name": d["id"], "lon": d["centre_lon"], "lat": d["centre_lat"]} for d in w["ssl_locations"][:2]]
    return validate_config({**{k: world_cfg[k] for k in ("resources_dir",)}, **sections,
                            "results_dir": str(results), "ssl4eo": {**world_cfg["ssl4eo"], "locations": locs}})


def _build_ssl(cfg: dict[str, Any]) -> dict[str, Any]:
    builder = build_dataset("ssl4eo", cfg)
    manifest = drivers.read_plan(builder)["manifest"]
    ds = store.open_store(builder.paths.store)
    out = {"manifest": manifest.sort_values(["sample", "season"]).reset_index(drop=True)}
    for v in ds.data_vars:
        out[v] = ds[v].values
    return out


@pytest.fixture(scope="module")
def ssl_local(tiny_ssl4eo_world, tmp_path_factory):
    return _build_ssl(_ssl_cfg(tiny_ssl4eo_world, {"archive": "demo"}, tmp_path_factory.mktemp("ssl_local")))


@pytest.mark.parametrize("kind", ARCHIVES[1:])
def test_ssl4eo_from_every_archive(kind, tiny_ssl4eo_world, ssl_local, tmp_path, monkeypatch):
    world = World(paths(tiny_ssl4eo_world).demo_timeseries / "catalog")
    with archive_config(kind, world, tmp_path, monkeypatch) as (sections, fake):
        got = _build_ssl(_ssl_cfg(tiny_ssl4eo_world, sections, tmp_path / "results"))
        _served(kind, fake)
    ref = ssl_local
    assert ref["manifest"]["skip_reason"].isna().sum() >= 2
    for col in ("l1c_id", "l2a_id", "s1_id", "skip_reason"):
        assert list(got["manifest"][col]) == list(ref["manifest"][col]), col
    assert set(got) == set(ref)
    for v in ref:
        if v == "manifest":
            continue
        if ref[v].dtype.kind == "f":
            _same_s1(got[v], ref[v])
        else:
            assert np.array_equal(got[v], ref[v], equal_nan=True), v
