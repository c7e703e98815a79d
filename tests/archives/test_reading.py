"""cloudyeo.archives.reading: the one raster-reading layer (windows, adapters, GDAL environment)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin

from cloudyeo.archives import reading
from cloudyeo.archives.base import AssetInfo, SceneRecord
from cloudyeo.archives.reading import ReadError, open_raster, read_band, read_windows

EPSG = 32633
T20 = from_origin(300000.0, 5400000.0, 20.0, 20.0)
DATA = ((np.arange(50 * 60, dtype=np.uint16).reshape(50, 60) * 13) % 9000 + 1).astype(np.uint16)
DATA[0, :5] = 0  # no data


@pytest.fixture
def raster(tmp_path):
    path = tmp_path / "B05.tif"
    with rasterio.open(path, "w", driver="GTiff", width=60, height=50, count=1, dtype="uint16", crs=f"EPSG:{EPSG}",
                       transform=T20, nodata=0) as dst:
        dst.write(DATA, 1)
    return path


class Local:
    name = "local-test"


def _record(path) -> SceneRecord:
    return SceneRecord("S2X_TEST", "sentinel-2-l2a", "sentinel-2a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                       {"type": "Point", "coordinates": [0, 0]},
                       assets={"B05": AssetInfo(str(path), EPSG, tuple(T20)[:6], DATA.shape)})


def _at(col: int, row: int, t: Affine = T20) -> Affine:
    return t @ Affine.translation(col, row)


def _expected(col: int, row: int, n: int) -> np.ndarray:
    out = DATA[row:row + n, col:col + n].astype(np.float32)
    out[out == 0] = np.nan
    return out


def test_many_windows_one_open_same_pixels(raster, monkeypatch):
    opened = []
    real = rasterio.open
    monkeypatch.setattr(reading.rasterio, "open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    spots = [(0, 0), (6, 0), (30, 12), (54, 44)]
    cuts = read_windows(Local(), _record(raster), "B05", epsg=EPSG, transforms=[_at(c, r) for c, r in spots],
                        shape=(6, 6))
    assert opened == [str(raster)]  # the file is opened (and its windows' union decoded) once
    for (c, r), cut in zip(spots, cuts, strict=True):
        assert cut.dtype == np.float32
        np.testing.assert_array_equal(cut, _expected(c, r, 6))
    assert np.isnan(cuts[0][0, :5]).all() and np.isfinite(cuts[0][0, 5])


def test_exact_windows_refuse_off_grid_and_outside(raster):
    rec = _record(raster)
    half = T20 @ Affine.translation(0.5, 0)
    with pytest.raises(ReadError, match="not on the raster's grid") as err:
        read_windows(Local(), rec, "B05", epsg=EPSG, transforms=[half], shape=(4, 4))
    assert "B05.tif" in str(err.value)
    with pytest.raises(ReadError, match="not on the raster's grid"):
        read_windows(Local(), rec, "B05", epsg=32632, transforms=[T20], shape=(4, 4))
    with pytest.raises(ReadError, match="outside the raster"):
        read_windows(Local(), rec, "B05", epsg=EPSG, transforms=[_at(58, 0)], shape=(4, 4))
    with pytest.raises(ReadError, match="no asset for band B06"):
        read_windows(Local(), rec, "B06", epsg=EPSG, transforms=[T20], shape=(4, 4))


def test_inexact_windows_resample_like_read_band(raster):
    rec = _record(raster)
    t10 = from_origin(300000.0 + 20 * 7, 5400000.0 - 20 * 9, 10.0, 10.0)
    cuts = read_windows(Local(), rec, "B05", epsg=EPSG, transforms=[t10, _at(100, 0, t10)], shape=(8, 8),
                        resampling="bilinear", exact=False)
    np.testing.assert_array_equal(cuts[0], read_band(Local(), rec, "B05", epsg=EPSG, transform=t10, shape=(8, 8)))
    # partly past the raster's edge: NaN there, data elsewhere
    assert np.isnan(cuts[1]).any() and np.isfinite(cuts[1]).any()


class Service:
    """A read_window adapter (the Earth Engine / Sentinel Hub protocol) over a known function."""

    name = "service"

    def __init__(self):
        self.calls = []

    def read_window(self, record, bands, *, epsg, transform, shape, resampling="bilinear"):
        self.calls.append((tuple(bands), epsg, tuple(transform), tuple(shape), resampling))
        t = Affine(*transform)
        rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
        x, y = t.c + t.a * (cols + 0.5), t.f + t.e * (rows + 0.5)
        return np.stack([(x - 300000.0) * 1e-3 + (5400000.0 - y)]).astype(np.float32)


def test_adapter_is_asked_for_the_union_box_of_compact_windows():
    svc = Service()
    rec = SceneRecord("X", "sentinel-2-l2a", "sentinel-2a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                      {"type": "Point", "coordinates": [0, 0]})
    spots = [(0, 0), (6, 0), (0, 6), (6, 6)]
    cuts = read_windows(svc, rec, "B05", epsg=EPSG, transforms=[_at(c, r) for c, r in spots], shape=(6, 6))
    assert len(svc.calls) == 1
    (bands, epsg, transform, shp, resampling), = svc.calls
    assert bands == ("B05",) and epsg == EPSG and shp == (12, 12) and resampling == "nearest"
    assert Affine(*transform).almost_equals(T20)
    for (c, r), cut in zip(spots, cuts, strict=True):
        np.testing.assert_array_equal(cut, Service().read_window(rec, ["B05"], epsg=EPSG, transform=tuple(_at(c, r))[:6],
                                                                 shape=(6, 6))[0])


def test_adapter_is_asked_per_window_when_windows_are_sparse_or_off_lattice():
    svc = Service()
    rec = SceneRecord("X", "sentinel-2-l2a", "sentinel-2a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                      {"type": "Point", "coordinates": [0, 0]})
    read_windows(svc, rec, "B05", epsg=EPSG, transforms=[_at(0, 0), _at(500, 500)], shape=(6, 6))
    assert [c[3] for c in svc.calls] == [(6, 6), (6, 6)]
    svc.calls.clear()
    read_windows(svc, rec, "B05", epsg=EPSG, transforms=[_at(0, 0), T20 @ Affine.translation(0.5, 0)], shape=(6, 6))
    assert len(svc.calls) == 2


def test_every_open_runs_inside_the_archive_gdal_environment(raster, monkeypatch):
    seen = []
    monkeypatch.setattr(reading, "gdal_read_options",
                        lambda archive, href: seen.append((archive.name, href)) or {"GDAL_HTTP_MAX_RETRY": "7"})
    with open_raster(Local(), str(raster)) as src:
        assert rasterio.env.getenv()["GDAL_HTTP_MAX_RETRY"] == "7"
        assert src.count == 1
    read_windows(Local(), _record(raster), "B05", epsg=EPSG, transforms=[T20], shape=(2, 2))
    read_band(Local(), _record(raster), "B05", epsg=EPSG, transform=T20, shape=(2, 2))
    assert seen == [("local-test", str(raster))] * 3
    assert reading.gdal_read_options.__name__ == "<lambda>"


def test_open_errors_are_redacted_and_not_chained(tmp_path):
    href = str(tmp_path / "missing.tif") + "?sig=SECRETSIGNATURE&se=2030"
    with pytest.raises(ReadError) as err:
        with open_raster(Local(), href, what="B04 of scene S"):
            pass
    assert "SECRETSIGNATURE" not in str(err.value) and "B04 of scene S" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


class Refusing(Service):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def read_window(self, record, bands, **kw):
        raise self.error


def test_a_refused_window_is_a_read_error_but_outages_and_auth_stop_the_job():
    from cloudyeo.http import AuthError, HttpError

    rec = SceneRecord("S2X_REFUSED", "sentinel-2-l2a", "sentinel-2a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                      {"type": "Point", "coordinates": [0, 0]})
    with pytest.raises(ReadError, match="B09 of scene S2X_REFUSED"):
        read_band(Refusing(HttpError("no such band", status=400)), rec, "B09", epsg=EPSG, transform=T20, shape=(2, 2))
    with pytest.raises(ReadError):
        read_windows(Refusing(HttpError("gone", status=404)), rec, "B09", epsg=EPSG, transforms=[T20], shape=(2, 2))
    for error in (HttpError("outage", status=503), AuthError("refused", status=401), HttpError("no answer")):
        with pytest.raises(HttpError) as err:
            read_band(Refusing(error), rec, "B09", epsg=EPSG, transform=T20, shape=(2, 2))
        assert err.value is error


def test_asset_on_grid_from_files_and_from_services(raster):
    from cloudyeo.archives.reading import read_asset_on_grid

    rec = _record(raster)
    t = _at(58, 0)  # two columns inside, two past the edge
    got = read_asset_on_grid(Local(), rec, "B05", epsg=EPSG, transform=t, shape=(3, 4), fill=-1)
    assert got.dtype == np.uint16  # the stored values, not a float conversion
    np.testing.assert_array_equal(got[:, :2], DATA[:3, 58:60])
    svc = Service()
    out = read_asset_on_grid(svc, rec, "B05", epsg=EPSG, transform=t, shape=(3, 4), fill=-1)
    np.testing.assert_array_equal(out, Service().read_window(rec, ["B05"], epsg=EPSG, transform=tuple(t)[:6],
                                                             shape=(3, 4))[0])
    assert svc.calls[0][4] == "nearest"


def test_window_blocks_tile_the_grid_and_carry_their_origin():
    blocks = list(reading.grid_blocks((5, 7), 2, 3))
    covered = np.zeros((5, 7), dtype=int)
    for r0, c0, nr, nc in blocks:
        assert nr <= 2 and nc <= 3
        covered[r0:r0 + nr, c0:c0 + nc] += 1
    assert (covered == 1).all()
    assert reading.block_transform((10.0, 0.0, 500.0, 0.0, -10.0, 900.0), 2, 3) == (10.0, 0.0, 530.0, 0.0, -10.0, 880.0)
    assert reading.window_request(("B02",), (4, 6)) == (["B02"], 4, 6)
    with pytest.raises(ValueError, match="at least one band"):
        reading.window_request((), (4, 6))
