"""Earth Engine adapter, offline, with the earthengine-api's own test harness.

``ee.apitestcase.ApiTestCase`` initialises the library against its bundled algorithm list and
``UsingCloudApi(mock_http=...)`` routes every REST call through a mocked ``httplib2.Http``, so
these tests see the exact HTTP requests the client sends (URL, method, JSON body) and answer
them with recorded-style responses.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from typing import Any
from unittest import mock

import httplib2
import numpy as np
import pytest

ee = pytest.importorskip("ee")
from ee import apitestcase
from support.loopback import ee_invocations as invocations

from cloudyeo.archives import earthengine as eea
from cloudyeo.archives import open_archive
from cloudyeo.archives.base import SearchQuery
from cloudyeo.archives.earthengine import EarthEngineArchive, image_to_record
from cloudyeo.config import load_config
from cloudyeo.http import AuthError, HttpError, redact

UTC = dt.UTC
L2A = "COPERNICUS/S2_SR_HARMONIZED"
S1 = "COPERNICUS/S1_GRD"
AOI = {"type": "Polygon", "coordinates": [[[12.1, 48.1], [12.3, 48.1], [12.3, 48.3], [12.1, 48.3],
                                           [12.1, 48.1]]]}


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def s2_image(index: str, when: str, cloud: float, *, tile: str = "33UUP", baseline: str = "04.00",
             lon: float = 12.0, lat: float = 48.0) -> dict[str, Any]:
    """An image as ``getInfo`` describes one of COPERNICUS/S2_SR_HARMONIZED (trimmed)."""
    band = lambda name, gsd: {
        "id": name, "data_type": {"type": "PixelType", "precision": "int", "min": 0, "max": 65535},
        "dimensions": [109800 // gsd, 109800 // gsd], "crs": "EPSG:32633",
        "crs_transform": [gsd, 0, 300000, 0, -gsd, 5400000]}
    return {
        "type": "Image",
        "bands": [band("B1", 60), band("B2", 10), band("B8A", 20), band("B11", 20), band("SCL", 20)],
        "id": f"{L2A}/{index}",
        "version": 1700000000000000,
        "properties": {
            "system:index": index,
            "system:time_start": _ms(when),
            "system:footprint": {"type": "LinearRing", "coordinates": [
                [lon, lat], [lon + 1, lat], [lon + 1, lat + 1], [lon, lat + 1], [lon, lat]]},
            "MGRS_TILE": tile,
            "CLOUDY_PIXEL_PERCENTAGE": cloud,
            "CLOUD_SHADOW_PERCENTAGE": 1.25,
            "THIN_CIRRUS_PERCENTAGE": 0.5,
            "PROCESSING_BASELINE": baseline,
            "PRODUCT_ID": f"S2A_MSIL2A_{index[:15]}_N{baseline.replace('.', '')}_R022_T{tile}_20220301T131415",
            "SPACECRAFT_NAME": "Sentinel-2A",
            "SENSING_ORBIT_NUMBER": 22,
            "SENSING_ORBIT_DIRECTION": "DESCENDING",
        },
    }


def s1_image(index: str, when: str) -> dict[str, Any]:
    return {
        "type": "Image",
        "bands": [{"id": pol, "crs": "EPSG:32633", "crs_transform": [10, 0, 290000, 0, -10, 5420000],
                   "dimensions": [25000, 17000]} for pol in ("VV", "VH", "angle")],
        "id": f"{S1}/{index}",
        "properties": {
            "system:index": index,
            "system:time_start": _ms(when),
            "system:footprint": {"type": "LinearRing", "coordinates": [
                [11.0, 47.0], [14.0, 47.0], [14.0, 50.0], [11.0, 50.0], [11.0, 47.0]]},
            "instrumentMode": "IW",
            "transmitterReceiverPolarisation": ["VV", "VH"],
            "orbitProperties_pass": "ASCENDING",
            "relativeOrbitNumber_start": 117,
            "platform_number": "A",
            "resolution_meters": 10,
        },
    }


def ok(payload: Any) -> tuple[httplib2.Response, bytes]:
    return httplib2.Response({"status": 200}), json.dumps(payload).encode()


def status(code: int) -> tuple[httplib2.Response, bytes]:
    body = {"error": {"code": code, "message": f"injected {code}", "status": "X"}}
    return httplib2.Response({"status": code}), json.dumps(body).encode()


def npy(arrays: dict[str, np.ndarray]) -> tuple[httplib2.Response, bytes]:
    """A computePixels NPY answer: a structured array with one field per band."""
    names = list(arrays)
    first = arrays[names[0]]
    out = np.zeros(first.shape, dtype=[(n, arrays[n].dtype) for n in names])
    for n in names:
        out[n] = arrays[n]
    buf = io.BytesIO()
    np.save(buf, out)
    return httplib2.Response({"status": 200}), buf.getvalue()


def sent(mock_http: mock.MagicMock) -> list[tuple[str, str, dict[str, Any]]]:
    """(url, method, JSON body) of every request the client sent."""
    out = []
    for call in mock_http.request.call_args_list:
        url, method = call.args[0], call.args[1]
        out.append((url, method, json.loads(call.kwargs["body"])))
    return out


def names(expression: dict[str, Any]) -> list[str]:
    return [n for n, _ in invocations(expression)]


def query(collection: str = "sentinel-2-l2a", **kw: Any) -> SearchQuery:
    return SearchQuery(collection, dt.datetime(2022, 3, 1, tzinfo=UTC),
                       dt.datetime(2022, 3, 31, 23, 59, 59, tzinfo=UTC), **kw)


class EarthEngineTest(apitestcase.ApiTestCase):
    """Requests through the real ``ee.data`` functions, answered by a mocked transport."""

    def setUp(self) -> None:
        super().setUp()
        ee.data.computeValue = self.old_compute_value  # the real one, not the harness' stub
        self.http = mock.MagicMock(httplib2.Http)
        self.archive = EarthEngineArchive(initialize=False, page_size=2)

    def run_cloud(self, fn, *responses):
        self.http.request.side_effect = list(responses)
        with apitestcase.UsingCloudApi(mock_http=self.http), mock.patch("time.sleep") as sleep:
            result = fn()
        self.sleeps = sleep.call_args_list
        return result

    # -- search ---------------------------------------------------------------------------

    def test_s2_search_requests_pages_and_records(self) -> None:
        q = query(intersects=AOI, tile="33UUP", max_cloud_cover=30, min_cloud_cover=5)
        page1 = [s2_image("20220311T101019_20220311T101021_T33UUP", "2022-03-11T10:14:00Z", 20.0),
                 s2_image("20220301T101019_20220301T101021_T33UUP", "2022-03-01T10:14:00Z", 12.5)]
        # The second page holds one image the server should not have matched (80 %): the
        # adapter must drop it client-side.
        page2 = [s2_image("20220321T101019_20220321T101021_T33UUP", "2022-03-21T10:14:00Z", 80.0)]
        records = self.run_cloud(lambda: self.archive.search(q), ok({"result": page1}),
                                 ok({"result": page2}))

        requests = sent(self.http)
        self.assertEqual(len(requests), 2)  # a short page ends the paging
        for url, method, _ in requests:
            self.assertEqual(method, "POST")
            self.assertTrue(url.startswith("https://earthengine.googleapis.com/"), url)
            self.assertIn("/projects/my-project/value:compute", url)

        # The exact expression: built here independently with the ee API.
        expected = (ee.ImageCollection(L2A)
                    .filterDate("2022-03-01T00:00:00.000Z", "2022-03-31T23:59:59.001Z")
                    .filterBounds(ee.Geometry(AOI, None, False))
                    .filter(ee.Filter.eq("MGRS_TILE", "33UUP"))
                    .filter(ee.Filter.lte("CLOUDY_PIXEL_PERCENTAGE", 30.0))
                    .filter(ee.Filter.gte("CLOUDY_PIXEL_PERCENTAGE", 5.0))
                    .sort("system:index"))
        for (_, _, body), offset in zip(requests, (0, 2), strict=True):
            self.assertEqual(body, {"expression": ee.serializer.encode(
                expected.toList(2, offset), for_cloud_api=True)})

        # ... and what it says, spelled out.
        calls = invocations(requests[1][2]["expression"])
        by_name: dict[str, list[dict[str, Any]]] = {}
        for name, args in calls:
            by_name.setdefault(name, []).append(args)
        self.assertEqual(by_name["ImageCollection.load"], [{"id": L2A}])
        self.assertEqual(by_name["DateRange"], [{"start": "2022-03-01T00:00:00.000Z",
                                                 "end": "2022-03-31T23:59:59.001Z"}])
        self.assertEqual(by_name["Filter.equals"], [{"leftField": "MGRS_TILE", "rightValue": "33UUP"}])
        # lte(x) is sent as not(greaterThan(x)), gte(x) as not(lessThan(x))
        self.assertEqual(by_name["Filter.greaterThan"],
                         [{"leftField": "CLOUDY_PIXEL_PERCENTAGE", "rightValue": 30.0}])
        self.assertEqual(by_name["Filter.lessThan"],
                         [{"leftField": "CLOUDY_PIXEL_PERCENTAGE", "rightValue": 5.0}])
        geometry = by_name["GeometryConstructors.Polygon"][0]
        self.assertEqual(geometry["coordinates"], AOI["coordinates"])
        self.assertFalse(geometry["geodesic"])
        self.assertEqual(by_name["Collection.limit"][0]["key"], "system:index")
        self.assertEqual(by_name["Collection.toList"], [{"collection": "Collection.limit",
                                                         "count": 2, "offset": 2}])

        # Records: normalised, filtered and sorted.
        self.assertEqual([r.id for r in records], ["20220301T101019_20220301T101021_T33UUP",
                                                   "20220311T101019_20220311T101021_T33UUP"])
        r = records[0]
        self.assertEqual(r.collection, "sentinel-2-l2a")
        self.assertEqual(r.platform, "sentinel-2a")
        self.assertEqual(r.datetime, dt.datetime(2022, 3, 1, 10, 14, tzinfo=UTC))
        self.assertEqual(r.footprint["type"], "Polygon")
        self.assertEqual(r.footprint["coordinates"][0][0], [12.0, 48.0])
        self.assertEqual((r.tile, r.cloud_cover, r.shadow_percent, r.cirrus_percent),
                         ("33UUP", 12.5, 1.25, 0.5))
        self.assertEqual(r.processing_baseline, "04.00")
        # *_HARMONIZED already removed the baseline-04.00 offset.
        self.assertEqual((r.radiometric_offset, r.quantification), (0.0, 10000.0))
        self.assertEqual((r.relative_orbit, r.orbit_state), (22, "descending"))
        self.assertEqual(r.sar_units, None)
        self.assertEqual(sorted(r.assets), ["B01", "B02", "B11", "B8A", "SCL"])
        self.assertEqual(r.assets["B02"].epsg, 32633)
        self.assertEqual(r.assets["B02"].transform, (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0))
        self.assertEqual(r.assets["B8A"].shape, (5490, 5490))
        self.assertEqual(r.assets["B01"].href, f"ee://{L2A}/{r.id}#B1")

    def test_paging_stops_on_an_empty_page(self) -> None:
        imgs = [s2_image(f"2022030{i}T101019_2022030{i}T101021_T33UUP", f"2022-03-0{i}T10:14:00Z", 5.0)
                for i in (1, 2)]
        records = self.run_cloud(lambda: self.archive.search(query()), ok({"result": imgs}),
                                 ok({"result": []}))
        self.assertEqual(len(sent(self.http)), 2)
        self.assertEqual(len(records), 2)

    def test_l1c_and_overrides_pick_the_collection(self) -> None:
        archive = EarthEngineArchive(initialize=False, collections={"sentinel-2-l1c": "users/me/S2"})
        self.run_cloud(lambda: archive.search(query("sentinel-2-l1c")), ok({"result": []}))
        expr = sent(self.http)[0][2]["expression"]
        self.assertIn(("ImageCollection.load", {"id": "users/me/S2"}), invocations(expr))
        default = EarthEngineArchive(initialize=False)
        self.assertEqual(default.server_collection("sentinel-2-l1c"), "COPERNICUS/S2_HARMONIZED")
        with self.assertRaisesRegex(ValueError, "earthengine.collections"):
            default.server_collection("landsat-8")

    def test_s1_search_filters_mode_and_polarisations(self) -> None:
        imgs = [s1_image("S1A_IW_GRDH_1SDV_20220303T050000_20220303T050025_042123_050555_ABCD",
                         "2022-03-03T05:00:00Z")]
        records = self.run_cloud(lambda: self.archive.search(query("sentinel-1-grd", intersects=AOI)),
                                 ok({"result": imgs}))
        expr = sent(self.http)[0][2]["expression"]
        calls = invocations(expr)
        self.assertIn(("ImageCollection.load", {"id": S1}), calls)
        self.assertIn(("Filter.equals", {"leftField": "instrumentMode", "rightValue": "IW"}), calls)
        self.assertIn(("Filter.listContains", {"leftField": "transmitterReceiverPolarisation",
                                               "rightValue": "VV"}), calls)
        self.assertIn(("Filter.listContains", {"leftField": "transmitterReceiverPolarisation",
                                               "rightValue": "VH"}), calls)
        self.assertNotIn("CLOUDY_PIXEL_PERCENTAGE", json.dumps(expr))
        (r,) = records
        self.assertEqual(r.platform, "sentinel-1a")
        self.assertEqual(r.polarizations, ("VV", "VH"))
        self.assertEqual(r.sar_units, "dB")  # S1_GRD is already 10*log10(sigma0)
        self.assertEqual((r.relative_orbit, r.orbit_state, r.instrument_mode), (117, "ascending", "IW"))
        self.assertEqual((r.tile, r.cloud_cover), (None, None))
        self.assertEqual(sorted(r.assets), ["VH", "VV", "angle"])

    # -- pixels ------------------------------------------------------------------------------

    def record(self, index: str = "20220301T101019_20220301T101021_T33UUP"):
        return image_to_record(s2_image(index, "2022-03-01T10:14:00Z", 10.0), "sentinel-2-l2a", L2A)

    def test_read_window_sends_the_target_grid(self) -> None:
        rec = self.record()
        t = (10.0, 0.0, 300120.0, 0.0, -10.0, 5399880.0)
        b02 = np.arange(12, dtype=np.float32).reshape(3, 4) + 1000
        b8a = b02 + 1
        b02[0, 0] = 0.0  # a dark pixel: DN 0 is data, not "no data"
        scl = np.full((3, 4), 4, np.float32)
        scl[2, 3] = eea.FILL  # masked: outside the scene
        out = self.run_cloud(
            lambda: self.archive.read_window(rec, ["B02", "B8A", "SCL"], epsg=32633, transform=t,
                                             shape=(3, 4)),
            npy({"B02": b02, "B8A": b8a, "SCL": scl}))
        (url, method, body), = sent(self.http)
        self.assertEqual(method, "POST")
        self.assertIn("/projects/my-project/image:computePixels", url)
        self.assertEqual(body["fileFormat"], "NPY")
        self.assertEqual(body["bandIds"], ["B02", "B8A", "SCL"])
        self.assertEqual(body["grid"], {
            "dimensions": {"width": 4, "height": 3},
            "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": 300120.0,
                                "shearY": 0.0, "scaleY": -10.0, "translateY": 5399880.0},
            "crsCode": "EPSG:32633"})
        calls = invocations(body["expression"])
        self.assertEqual(calls, [
            ("Image.load", {"id": f"{L2A}/{rec.id}"}),
            ("Image.select", {"input": "Image.load", "bandSelectors": ["B2", "B8A", "SCL"],
                              "newNames": ["B02", "B8A", "SCL"]}),
            ("Image.resample", {"image": "Image.select", "mode": "bilinear"}),
            ("Image.toFloat", {"value": "Image.resample"}),
            ("Image.constant", {"value": eea.FILL}),
            ("Image.unmask", {"input": "Image.toFloat", "value": "Image.constant",
                              "sameFootprint": False}),
        ])
        self.assertEqual(out.shape, (3, 3, 4))
        self.assertEqual(out.dtype, np.float32)
        np.testing.assert_array_equal(out[0], b02)
        np.testing.assert_array_equal(out[1], b8a)
        np.testing.assert_array_equal(out[2, :2], scl[:2])
        self.assertTrue(np.isnan(out[2, 2, 3]))
        self.assertEqual(int(np.isnan(out).sum()), 1)

    def test_read_window_nearest_does_not_resample(self) -> None:
        rec = self.record()
        self.run_cloud(lambda: self.archive.read_window(
            rec, ["SCL"], epsg=32633, transform=(20.0, 0, 300000.0, 0, -20.0, 5400000.0), shape=(2, 2),
            resampling="nearest"), npy({"SCL": np.ones((2, 2), np.float32)}))
        self.assertNotIn("Image.resample", names(sent(self.http)[0][2]["expression"]))
        with self.assertRaisesRegex(ValueError, "resampling"):
            self.archive.read_window(rec, ["SCL"], epsg=32633, transform=(20.0, 0, 0, 0, -20.0, 0),
                                     shape=(2, 2), resampling="lanczos")

    def test_read_window_s1_is_db_with_nan_for_no_data(self) -> None:
        rec = image_to_record(s1_image("S1A_X", "2022-03-03T05:00:00Z"), "sentinel-1-grd", S1)
        vv = np.array([[-12.5, eea.FILL], [-7.0, -20.0]], np.float32)
        vh = vv - 6.0
        vh[0, 1] = eea.FILL
        out = self.run_cloud(lambda: self.archive.read_window(
            rec, ["VV", "VH"], epsg=32633, transform=(10.0, 0, 300000.0, 0, -10.0, 5400000.0),
            shape=(2, 2)), npy({"VV": vv, "VH": vh}))
        body = sent(self.http)[0][2]
        calls = invocations(body["expression"])
        self.assertIn(("Image.load", {"id": f"{S1}/S1A_X"}), calls)
        self.assertIn(("Image.unmask", {"input": "Image.toFloat", "value": "Image.constant",
                                        "sameFootprint": False}), calls)
        self.assertEqual(out.dtype, np.float32)
        self.assertTrue(np.isnan(out[0, 0, 1]) and np.isnan(out[1, 0, 1]))
        self.assertEqual(float(out[0, 1, 0]), -7.0)
        self.assertEqual(float(out[1, 0, 0]), -18.5)

    def test_large_windows_are_split_into_blocks(self) -> None:
        rec = self.record()
        full = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
        t = (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0)
        with mock.patch.object(eea, "MAX_REQUEST_SIDE", 4):
            blocks = [(0, 0, 4, 4), (0, 4, 4, 1), (4, 0, 2, 4), (4, 4, 2, 1)]
            answers = [npy({"B02": full[r:r + h, c:c + w]}) for r, c, h, w in blocks]
            out = self.run_cloud(lambda: self.archive.read_window(
                rec, ["B02"], epsg=32633, transform=t, shape=(6, 5)), *answers)
        grids = [body["grid"] for _, _, body in sent(self.http)]
        self.assertEqual([(g["affineTransform"]["translateX"], g["affineTransform"]["translateY"],
                           g["dimensions"]["height"], g["dimensions"]["width"]) for g in grids],
                         [(300000.0, 5400000.0, 4, 4), (300040.0, 5400000.0, 4, 1),
                          (300000.0, 5399960.0, 2, 4), (300040.0, 5399960.0, 2, 1)])
        np.testing.assert_array_equal(out[0], full)

    # -- errors -------------------------------------------------------------------------------

    def test_429_and_503_are_retried(self) -> None:
        page = [s2_image("20220301T101019_20220301T101021_T33UUP", "2022-03-01T10:14:00Z", 5.0)]
        records = self.run_cloud(lambda: self.archive.search(query()), status(429), status(503),
                                 ok({"result": page}))
        self.assertEqual(len(records), 1)
        self.assertEqual(self.http.request.call_count, 3)
        self.assertEqual(len(self.sleeps), 2)  # googleapiclient's backoff, once per retry
        bodies = [b for _, _, b in sent(self.http)]
        self.assertEqual(bodies[0], bodies[2])

    def test_persistent_503_becomes_http_error(self) -> None:
        ee.data.setMaxRetries(1)
        with self.assertRaises(HttpError) as ctx:
            self.run_cloud(lambda: self.archive.search(query()), status(503), status(503))
        self.assertEqual(ctx.exception.status, 503)
        self.assertNotIsInstance(ctx.exception, AuthError)

    def test_401_is_auth_error_naming_the_key_variable(self) -> None:
        with self.assertRaises(AuthError) as ctx:
            self.run_cloud(lambda: self.archive.search(query()), status(401))
        self.assertEqual(ctx.exception.credential_env, "GOOGLE_APPLICATION_CREDENTIALS")
        self.assertIn("GOOGLE_APPLICATION_CREDENTIALS", str(ctx.exception))
        self.assertEqual(self.http.request.call_count, 1)  # never retried


# -- auth (no requests) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def service_account_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    """A syntactically real (throw-away) service-account key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    key = {"type": "service_account", "project_id": "key-project", "private_key_id": "abcdef0123456789",
           "private_key": pem, "client_email": "cloudyeo@key-project.iam.gserviceaccount.com",
           "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
    path = tmp_path_factory.mktemp("ee") / "key.json"
    path.write_text(json.dumps(key))
    return path, key


def test_missing_key_is_auth_error_before_any_request() -> None:
    archive = EarthEngineArchive(env={})
    with mock.patch.object(ee, "Initialize") as init, pytest.raises(AuthError) as info:
        archive.search(query())
    init.assert_not_called()
    assert info.value.credential_env == "GOOGLE_APPLICATION_CREDENTIALS"
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)
    assert "EE_SERVICE_ACCOUNT_KEY" in str(info.value)


def test_key_from_env_initialises_with_the_service_account(service_account_key, caplog) -> None:
    path, key = service_account_key
    caplog.set_level(logging.DEBUG)
    archive = EarthEngineArchive(env={"EE_SERVICE_ACCOUNT_KEY": str(path),
                                      "GOOGLE_APPLICATION_CREDENTIALS": "/elsewhere.json"},
                                 max_retries=3, timeout_s=30)
    with mock.patch.object(ee, "Initialize") as init, \
            mock.patch.object(ee.data, "setMaxRetries") as retries, \
            mock.patch.object(ee.data, "setDeadline") as deadline:
        archive.initialize()
        archive.initialize()  # once only
    init.assert_called_once()
    creds = init.call_args.args[0]
    assert creds.service_account_email == key["client_email"]
    assert init.call_args.kwargs == {"project": "key-project"}
    retries.assert_called_once_with(3)
    deadline.assert_called_once_with(30000)
    assert archive.credential_env == "EE_SERVICE_ACCOUNT_KEY"
    # The key material is registered as a secret: it never survives redaction.
    assert key["private_key"] not in redact(f"oops {key['private_key']}")
    assert all(key["private_key_id"] not in r.getMessage() for r in caplog.records)


def test_config_key_path_and_project_win(service_account_key) -> None:
    path, _ = service_account_key
    cfg = load_config(None, {"archive": "earthengine",
                             "earthengine": {"project": "cfg-project", "service_account_key": str(path)}})
    archive = open_archive(cfg)
    assert isinstance(archive, EarthEngineArchive)
    with mock.patch.object(ee, "Initialize") as init, mock.patch.object(ee.data, "setDeadline"):
        archive.initialize()
    assert init.call_args.kwargs == {"project": "cfg-project"}
    assert archive.credential_env == "earthengine.service_account_key"


def test_unusable_key_files_name_their_variable(tmp_path) -> None:
    missing = EarthEngineArchive(env={"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json")})
    with pytest.raises(AuthError, match="GOOGLE_APPLICATION_CREDENTIALS.*does not exist"):
        missing.initialize()
    user_creds = tmp_path / "adc.json"
    user_creds.write_text(json.dumps({"type": "authorized_user", "refresh_token": "r-123456"}))
    wrong = EarthEngineArchive(env={"EE_SERVICE_ACCOUNT_KEY": str(user_creds)})
    with pytest.raises(AuthError, match="EE_SERVICE_ACCOUNT_KEY.*not a service-account key") as info:
        wrong.initialize()
    assert "r-123456" not in str(info.value)


def test_refused_key_at_initialise_is_auth_error(service_account_key) -> None:
    from google.auth.exceptions import RefreshError

    path, key = service_account_key
    archive = EarthEngineArchive(env={"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    with mock.patch.object(ee, "Initialize", side_effect=RefreshError("invalid_grant: bad key")), \
            pytest.raises(AuthError) as info:
        archive.initialize()
    assert info.value.credential_env == "GOOGLE_APPLICATION_CREDENTIALS"
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)
    assert key["private_key"] not in str(info.value)


def test_example_config_builds_the_archive() -> None:
    cfg = load_config("config/examples/earthengine.yaml")
    archive = open_archive(cfg)
    assert isinstance(archive, EarthEngineArchive)
    assert archive.project == "my-ee-project"
    assert archive.server_collection("sentinel-2-l2a") == L2A
    assert archive.server_collection("sentinel-1-grd") == S1
