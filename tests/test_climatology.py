"""cloudyeo.climatology on tiny EarthEnv-like rasters written here (windowed reads only)."""

from __future__ import annotations

import functools
import math
import pickle
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from cloudyeo.climatology import (
    NODATA,
    Climatology,
    climatology_filenames,
    download_earthenv,
    find_climatology_files,
)

WEST, NORTH, RES = -10.0, 60.0, 1.0
W, H = 20, 20


def expected_raw(month: int | None, row: int, col: int) -> int:
    if col < 3:
        return NODATA  # "sea" along the western edge
    return 1000 + row * 10 + col if month is None else month * 500 + row * 20 + col


def write_layers(directory: Path, *, width: int = W, height: int = H, res: float = RES,
                 west: float = WEST, north: float = NORTH, tile: int = 16) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:height, 0:width]
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint16",
                   crs="EPSG:4326", transform=Affine(res, 0.0, west, 0.0, -res, north), nodata=NODATA,
                   tiled=True, blockxsize=tile, blockysize=tile, compress="deflate")
    for i, name in enumerate(climatology_filenames()):
        month = i + 1 if i < 12 else None
        data = (1000 + rows * 10 + cols) if month is None else (month * 500 + rows * 20 + cols)
        data = np.where(cols < 3, NODATA, data % 65535).astype(np.uint16)
        with rasterio.open(directory / name, "w", **profile) as ds:
            ds.write(data, 1)
    return directory


@pytest.fixture
def clim_dir(tmp_path: Path) -> Path:
    return write_layers(tmp_path / "clim")


def test_lookup_values_in_percent(clim_dir: Path):
    clim = Climatology(clim_dir)
    v = clim.lookup(5.5, 50.5, 3)  # col 15, row 9
    assert v.skip_reason is None and v.ok
    assert v.mean_percent == pytest.approx(expected_raw(3, 9, 15) / 100) == pytest.approx(16.95)
    assert v.sd_percent == pytest.approx(expected_raw(None, 9, 15) / 100)
    # Pixel edges: the north-west corner of a pixel belongs to it; the far edges to the last.
    assert clim.lookup(-7.0, 60.0, 1).mean_percent == pytest.approx(expected_raw(1, 0, 3) / 100)
    assert clim.lookup(10.0, 40.0, 12).mean_percent == pytest.approx(expected_raw(12, 19, 19) / 100)


def test_nodata_outside_and_invalid_give_nan_and_reason(clim_dir: Path):
    clim = Climatology(clim_dir)
    sea = clim.lookup(-9.5, 45.0, 7)
    assert math.isnan(sea.mean_percent) and math.isnan(sea.sd_percent)
    assert "nodata (sea)" in sea.skip_reason and "month 7" in sea.skip_reason
    assert "lon=-9.5" in sea.skip_reason
    out = clim.lookup(25.0, 45.0, 7)
    assert math.isnan(out.mean_percent) and "outside climatology extent" in out.skip_reason
    assert "outside" in clim.lookup(0.0, 39.99, 7).skip_reason
    assert "invalid coordinates" in clim.lookup(float("nan"), 45.0, 7).skip_reason
    with pytest.raises(ValueError, match="month"):
        clim.lookup(0, 45, 13)
    with pytest.raises(ValueError, match="month"):
        clim.lookup_many([0], [45], [0])


def test_lookup_many_equals_lookup(clim_dir: Path):
    rng = np.random.default_rng(42)
    n = 500
    lons = rng.uniform(-12, 12, n)  # includes sea and outside points
    lats = rng.uniform(38, 62, n)
    months = rng.integers(1, 13, n)
    lons[:3] = [np.nan, 10.0, -10.0]
    lats[:3] = [50.0, 40.0, 60.0]
    clim = Climatology(clim_dir)
    batch = clim.lookup_many(lons, lats, months)
    assert len(batch) == n
    single = Climatology(clim_dir)
    for i in range(n):
        a, b = batch[i], single.lookup(lons[i], lats[i], int(months[i]))
        assert a.skip_reason == b.skip_reason
        np.testing.assert_equal([a.mean_percent, a.sd_percent], [b.mean_percent, b.sd_percent])
    assert batch.ok.sum() == sum(v.ok for v in batch)
    # One month for every point.
    one = clim.lookup_many(lons[:50], lats[:50], 4)
    assert [v.skip_reason for v in one] == [single.lookup(lo, la, 4).skip_reason
                                            for lo, la in zip(lons[:50], lats[:50])]
    empty = clim.lookup_many([], [], 1)
    assert len(empty) == 0


def test_files_opened_once_lazily_and_reads_are_windowed(tmp_path: Path, monkeypatch):
    directory = write_layers(tmp_path / "big", width=720, height=360, res=0.5, west=-180, north=90,
                             tile=64)
    opened: list[str] = []
    real_open = rasterio.open

    def spy_open(path, *a, **kw):
        opened.append(Path(path).name)
        return real_open(path, *a, **kw)

    windows: list[tuple[int, int]] = []
    real_read = rasterio.io.DatasetReader.read

    def spy_read(self, *a, **kw):
        assert kw.get("window") is not None, "whole-raster read"
        windows.append((int(kw["window"].height), int(kw["window"].width)))
        return real_read(self, *a, **kw)

    monkeypatch.setattr(rasterio, "open", spy_open)
    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy_read)

    clim = Climatology(directory)
    assert opened == []  # nothing opened until needed
    for lon in np.linspace(0, 20, 30):
        clim.lookup(lon, 45.0, 6)
    clim.lookup_many(np.linspace(0, 20, 100), np.full(100, 45.0), 6)
    clim.lookup_many(np.linspace(-170, 170, 100), np.linspace(-80, 80, 100), 6)
    assert sorted(opened) == sorted(["MODCF_monthlymean_06.tif", "MODCF_interannualSD.tif"])
    assert windows and max(h * w for h, w in windows) < 720 * 360 / 4
    assert max(h * w for h, w in windows[:60]) == 1  # single lookups read one pixel


def test_read_plan_prefers_cheap_strategies(tmp_path: Path):
    directory = write_layers(tmp_path / "plan", width=720, height=360, res=0.5, west=-180, north=90,
                             tile=64)
    layer = Climatology(directory)._layer(1)
    rows, cols, _ = layer.pixels(np.linspace(0, 5, 50), np.linspace(45, 47, 50))
    assert layer.plan(rows, cols) in ("window", "blocks")
    rows, cols, _ = layer.pixels(np.array([-170.0, 170.0]), np.array([-80.0, 80.0]))
    assert layer.plan(rows, cols) == "points"  # two far-apart points: no bounding window
    rows, cols, _ = layer.pixels(np.array([3.0]), np.array([45.0]))
    assert layer.plan(rows, cols) == "points"


def test_missing_files_named(tmp_path: Path, clim_dir: Path):
    (clim_dir / "MODCF_monthlymean_07.tif").unlink()
    with pytest.raises(FileNotFoundError, match="MODCF_monthlymean_07.tif"):
        Climatology(clim_dir)
    (clim_dir / "MODCF_interannualSD.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"MODCF_monthlymean_07.tif .*1 more: MODCF_interannualSD"):
        find_climatology_files(clim_dir)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_climatology_files(tmp_path / "nowhere")


def test_pickles_without_open_files(clim_dir: Path):
    clim = Climatology(clim_dir)
    v = clim.lookup(5.5, 50.5, 3)
    clone = pickle.loads(pickle.dumps(clim))
    assert clone.lookup(5.5, 50.5, 3) == v
    clim.close()


def test_download_earthenv_from_loopback(tmp_path: Path, clim_dir: Path):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(clim_dir))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/"
        out = tmp_path / "downloaded"
        sizes = {n: (clim_dir / n).stat().st_size for n in climatology_filenames()}
        records = download_earthenv(base, out, expected={n: {"size": s} for n, s in sizes.items()})
        assert [r["file"] for r in records] == climatology_filenames()
        assert all(r["size"] == sizes[r["file"]] and len(r["sha256"]) == 64 for r in records)
        assert all((out / f"{n}.provenance.json").exists() for n in climatology_filenames())
        licence = (out / "LICENCE.md").read_text()
        assert "CC BY-NC 4.0" in licence and "Wilson" in licence and "Jetz" in licence
        assert "PLoS Biology" in licence
        assert Climatology(out).lookup(5.5, 50.5, 3) == Climatology(clim_dir).lookup(5.5, 50.5, 3)
        # A second run finds everything in place and fetches nothing.
        again = download_earthenv(base, out)
        assert [r["sha256"] for r in again] == [r["sha256"] for r in records]
    finally:
        httpd.shutdown()
        httpd.server_close()


class LayerServer:
    """Serves files from ``folder``; ``short[name]`` counts how many more GETs of ``name`` get
    only the first two thirds of the file, with a Content-Length that matches (no HTTP-level
    sign of the loss)."""

    def __init__(self, folder: Path) -> None:
        from http.server import BaseHTTPRequestHandler

        self.folder = folder
        self.short: dict[str, int] = {}
        self.gets: dict[str, int] = {}
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                srv.gets[name] = srv.gets.get(name, 0) + 1
                path = srv.folder / name
                body = path.read_bytes() if path.exists() else b""
                if srv.short.get(name, 0) > 0:
                    srv.short[name] -= 1
                    body = body[: len(body) * 2 // 3]
                self.send_response(200 if path.exists() else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def layer_server(clim_dir: Path):
    srv = LayerServer(clim_dir)
    try:
        yield srv
    finally:
        srv.close()


def fast_client(retries: int = 3):
    from cloudyeo.http import HttpClient, RetryPolicy

    return HttpClient(RetryPolicy(max_retries=retries, backoff_base=0.01, backoff_max=0.02, timeout=5.0))


def test_download_refetches_a_short_body_that_matched_its_content_length(layer_server, clim_dir,
                                                                         tmp_path: Path):
    import hashlib
    import json

    names = climatology_filenames()
    layer_server.short = {n: 1 for n in names}
    out = tmp_path / "downloaded"
    records = download_earthenv(layer_server.url, out, fast_client())
    for name, rec in zip(names, records):
        assert (out / name).read_bytes() == (clim_dir / name).read_bytes(), name
        assert rec["retries"] == 1 and rec["verified"]["format"] and layer_server.gets[name] == 2
    # What was kept is pinned; the pins are the true checksums of the served files.
    pins = json.loads((out / "earthenv-sha256.json").read_text())
    assert set(pins) == set(names)
    for name in names:
        data = (clim_dir / name).read_bytes()
        assert pins[name]["size"] == len(data)
        assert pins[name]["sha256"] == hashlib.sha256(data).hexdigest()


def test_download_gives_up_on_a_file_that_stays_short(layer_server, tmp_path: Path):
    from cloudyeo.http import IntegrityError

    first = climatology_filenames()[0]
    layer_server.short = {first: 10}
    out = tmp_path / "downloaded"
    with pytest.raises(IntegrityError, match=f"{first}: .*cut short"):
        download_earthenv(layer_server.url, out, fast_client(retries=2))
    assert not (out / first).exists() and not (out / f"{first}.part").exists()
    assert layer_server.gets[first] == 3


def test_pinned_checksums_guard_later_downloads(layer_server, clim_dir: Path, tmp_path: Path):
    from cloudyeo.http import IntegrityError

    out = tmp_path / "downloaded"
    download_earthenv(layer_server.url, out, fast_client())
    name = climatology_filenames()[2]
    original = (out / name).read_bytes()
    # A file corrupted on disk (same size) is noticed and fetched again.
    corrupt = bytearray(original)
    corrupt[-1] ^= 0xFF
    (out / name).write_bytes(bytes(corrupt))
    before = layer_server.gets[name]
    download_earthenv(layer_server.url, out, fast_client())
    assert (out / name).read_bytes() == original and layer_server.gets[name] == before + 1
    # The server now serves different (valid) bytes: refused, naming the pin.
    write_layers(clim_dir, tile=32)  # same grid, other block layout: other bytes
    assert (clim_dir / name).read_bytes() != original
    (out / name).unlink()
    with pytest.raises(IntegrityError, match=f"{name}: .*pinned in .*earthenv-sha256.json"):
        download_earthenv(layer_server.url, out, fast_client(retries=1))
    # An explicit table of expected values takes precedence (and re-pins).
    import hashlib

    new = (clim_dir / name).read_bytes()
    table = {name: {"size": len(new), "sha256": hashlib.sha256(new).hexdigest()}}
    download_earthenv(layer_server.url, out, fast_client(), expected=table)
    assert (out / name).read_bytes() == new


def test_check_geotiff_complete_catches_every_cut(clim_dir: Path, tmp_path: Path):
    from cloudyeo.climatology import check_geotiff_complete, check_layer
    from cloudyeo.http import IntegrityError

    src = clim_dir / climatology_filenames()[0]
    check_layer(src)
    data = src.read_bytes()
    cut = tmp_path / "cut.tif"
    for n in range(len(data)):  # every possible truncation of a small tiled, compressed GeoTIFF
        cut.write_bytes(data[:n])
        with pytest.raises(IntegrityError):
            check_geotiff_complete(cut)
    wrong = tmp_path / "wrong.tif"
    with rasterio.open(wrong, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       crs="EPSG:4326", transform=Affine(1, 0, 0, 0, -1, 4)) as ds:
        ds.write(np.zeros((4, 4), np.float32), 1)
    with pytest.raises(IntegrityError, match="uint16"):
        check_layer(wrong)
