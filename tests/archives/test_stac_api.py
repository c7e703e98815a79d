"""StacApiArchive against a real STAC API (rustac serve) on loopback, with injected faults."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from cloudyeo.archives import LocalStacArchive, SearchQuery, StacApiArchive
from cloudyeo.archives.presets import build_cql2_filter, build_query, get_preset
from cloudyeo.http import AuthError, HttpError, RetryPolicy

UTC = dt.UTC
FAST = dict(backoff_base=0.01, backoff_max=0.05, max_total_sleep=5.0)


def q(collection="sentinel-2-l2a", start=(2022, 3, 1), end=(2022, 3, 31), **kw):
    return SearchQuery(collection, dt.datetime(*start, tzinfo=UTC),
                       dt.datetime(*end, 23, 59, 59, tzinfo=UTC), **kw)


def archive(url: str, catalog_dir: Path, *, page_size: int = 2, retries: int = 3,
            timeout: float = 5.0, **kw) -> StacApiArchive:
    return StacApiArchive("custom", url=url, page_size=page_size, asset_base=str(catalog_dir) + "/",
                          policy=RetryPolicy(max_retries=retries, timeout=timeout, **FAST), **kw)


def test_tile_date_cloud_search(rustac_url: str, catalog_dir: Path):
    arch = archive(rustac_url, catalog_dir)
    assert [r.id for r in arch.search(q(tile="33UUP"))] == [
        "S2A_33UUP_20220301_L2A", "S2A_33UUP_20220306_L2A", "S2A_33UUP_20220311_L2A",
        "S2A_33UUP_20220316_L2A"]
    # rustac ignores cloud/tile filters: these are re-applied client-side.
    assert [r.id for r in arch.search(q(tile="33UUP", max_cloud_cover=50))] == [
        "S2A_33UUP_20220301_L2A", "S2A_33UUP_20220311_L2A"]
    assert [r.id for r in arch.search(q(min_cloud_cover=60))] == [
        "S2A_33UUP_20220306_L2A", "S2A_32TNT_20220312_L2A"]
    assert [r.id for r in arch.search(q(start=(2022, 4, 1), end=(2022, 4, 30)))] == [
        "S2A_33UUP_20220415_L2A"]
    point = {"type": "Point", "coordinates": [8.2, 46.2]}
    assert [r.tile for r in arch.search(q(intersects=point))] == ["32TNT", "32TNT"]


def test_records_are_normalised(rustac_url: str, catalog_dir: Path):
    arch = archive(rustac_url, catalog_dir)
    rec = arch.search(q(tile="33UUP", end=(2022, 3, 1)))[0]
    assert rec.collection == "sentinel-2-l2a" and rec.platform == "sentinel-2a"
    assert rec.datetime == dt.datetime(2022, 3, 1, 10, 10, tzinfo=UTC)
    assert rec.processing_baseline == "05.00"
    assert rec.radiometric_offset == -1000.0 and rec.quantification == 10000.0
    assert set(rec.assets) == {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                               "B09", "B11", "B12", "SCL"}
    assert rec.assets["B04"].epsg == 32633
    assert rec.assets["B04"].transform == (10.0, 0.0, 300000.0, 0.0, -10.0, 5400000.0)
    assert rec.assets["B11"].shape == (60, 60)
    assert rec.assets["B04"].href == str(catalog_dir / "33UUP" / rec.id / "B04.tif")
    s1 = arch.search(q("sentinel-1-grd"))
    assert [(r.sar_units, r.polarizations) for r in s1] == [("linear", ("VV", "VH")), ("dB", ("VV", "VH"))]


def test_same_records_as_the_local_adapter(rustac_url: str, catalog_dir: Path):
    api, local = archive(rustac_url, catalog_dir, page_size=3), LocalStacArchive(catalog_dir)
    for query in (q(), q(tile="32TNT"), q(max_cloud_cover=30), q("sentinel-2-l1c"),
                  q("sentinel-1-grd"), q(start=(2021, 1, 1), end=(2022, 12, 31))):
        assert api.search(query) == local.search(query)


def test_pages_through_all_results(flaky_proxy, catalog_dir: Path, caplog):
    arch = archive(flaky_proxy.url, catalog_dir, page_size=1)
    caplog.set_level(logging.INFO, logger="cloudyeo")
    items = arch.search_items(q(start=(2021, 1, 1), end=(2022, 12, 31)))
    assert len(items) == 8 and len({it["id"] for it in items}) == 8
    assert flaky_proxy.count("/search") >= 8  # one request per page
    assert "8 items in 8 pages" in caplog.text


def test_retries_429_503_and_timeouts_then_recovers(flaky_proxy, catalog_dir: Path, caplog):
    caplog.set_level(logging.WARNING)
    arch = archive(flaky_proxy.url, catalog_dir, page_size=2, retries=4, timeout=0.5)
    arch._open()  # landing page first, so the faults below hit the search
    flaky_proxy.plan("/search", (429, {"Retry-After": "0"}), 503, ("slow", 1.5),
                     (503, {"Retry-After": "0"}))
    ids = [r.id for r in arch.search(q(tile="33UUP"))]
    assert len(ids) == 4
    retries = [r for r in caplog.records if r.levelno == logging.WARNING and "retry" in r.getMessage()]
    assert len(retries) == 4
    assert any("HTTP 429" in r.getMessage() for r in retries)
    assert any("ReadTimeout" in r.getMessage() for r in retries)
    assert all("/search" in r.getMessage() for r in retries)


def test_bounded_attempts(flaky_proxy, catalog_dir: Path):
    arch = archive(flaky_proxy.url, catalog_dir, retries=2)
    arch._open()
    flaky_proxy.plan("/search", *([503] * 10))
    with pytest.raises(HttpError) as info:
        arch.search(q())
    assert info.value.status == 503
    assert flaky_proxy.count("/search") == 3  # first attempt + 2 retries


def test_auth_error_names_the_variable_and_hides_the_token(flaky_proxy, catalog_dir: Path,
                                                           caplog, monkeypatch):
    secret = "s3cr3t-Token-0123456789"
    monkeypatch.setenv("CLOUDYEO_STAC_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    arch = archive(flaky_proxy.url, catalog_dir)
    arch._open()
    flaky_proxy.plan("/search", 401)
    with pytest.raises(AuthError) as info:
        arch.search(q())
    msg = str(info.value)
    assert "CLOUDYEO_STAC_TOKEN" in msg and "401" in msg
    assert secret not in msg and secret not in repr(info.value)
    assert secret not in caplog.text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # ... while the token was sent to the server
    assert flaky_proxy.requests[-1][2].get("Authorization") == f"Bearer {secret}"
    # A refused landing page also names the variable.
    fresh = archive(flaky_proxy.url, catalog_dir)
    flaky_proxy.plan("/", 403)
    with pytest.raises(AuthError, match="CLOUDYEO_STAC_TOKEN"):
        fresh.search(q())


def test_server_side_filters_sent_where_advertised_and_dropped_on_400(flaky_proxy, catalog_dir: Path):
    arch = archive(flaky_proxy.url, catalog_dir, page_size=50)
    client = arch._open()
    client.add_conforms_to("FILTER")  # pretend the server supports CQL2
    flaky_proxy.plan("/search", 400)  # ... but it rejects our filter
    ids = [r.id for r in arch.search(q(max_cloud_cover=50))]
    assert ids == ["S2A_33UUP_20220301_L2A", "S2A_32TNT_20220302_L2A", "S2A_33UUP_20220311_L2A"]
    posts = [json.loads(b) for m, p, _, b in flaky_proxy.requests if m == "POST" and p.startswith("/search")]
    assert posts[0]["filter"] == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 50]}
    assert posts[0]["limit"] == 50 and posts[0]["collections"] == ["sentinel-2-l2a"]
    assert posts[0]["datetime"] == "2022-03-01T00:00:00Z/2022-03-31T23:59:59Z"
    assert "filter" not in posts[1]


def test_preset_filter_bodies():
    es, pc, cdse = get_preset("earth-search"), get_preset("planetary-computer"), get_preset("cdse")
    assert build_query(es, tile="33UUP", max_cloud_cover=20, min_cloud_cover=None) == {
        "eo:cloud_cover": {"lte": 20}, "grid:code": {"eq": "MGRS-33UUP"}}
    assert build_cql2_filter(pc, tile="33UUP", max_cloud_cover=None, min_cloud_cover=None) == {
        "op": "=", "args": [{"property": "s2:mgrs_tile"}, "33UUP"]}
    f = build_cql2_filter(cdse, tile="33UUP", max_cloud_cover=20, min_cloud_cover=5)
    assert f["op"] == "and" and len(f["args"]) == 3
    assert build_query(get_preset("custom"), tile="33UUP", max_cloud_cover=None,
                       min_cloud_cover=None) is None
    assert "sentinel-2-l1c" not in pc.collections
    with pytest.raises(ValueError, match="stac.collections"):
        StacApiArchive("planetary-computer").server_collection("sentinel-2-l1c")


# ---------------------------------------------------------------------------------------
# credentials stay on the configured origin (G.4); image-read auth (G.6)
# ---------------------------------------------------------------------------------------

CREDENTIALS = {  # preset -> (environment variable, header it is sent in, header value template)
    "custom": ("CLOUDYEO_STAC_TOKEN", "Authorization", "Bearer {}"),
    "cdse": ("CDSE_ACCESS_TOKEN", "Authorization", "Bearer {}"),
    "planetary-computer": ("PC_SDK_SUBSCRIPTION_KEY", "Ocp-Apim-Subscription-Key", "{}"),
}


def preset_archive(preset: str, url: str, catalog_dir: Path, secret: str, **kw) -> StacApiArchive:
    env_name = CREDENTIALS[preset][0]
    return StacApiArchive(preset, url=url, page_size=1, asset_base=str(catalog_dir) + "/",
                          policy=RetryPolicy(max_retries=2, timeout=5.0, **FAST),
                          env={env_name: secret}, **kw)


def _sent_secret(requests_seen, secret: str) -> list[str]:
    return [f"{m} {p}" for m, p, headers, _ in requests_seen
            if any(secret in str(v) for v in headers.values())]


@pytest.mark.parametrize("preset", sorted(CREDENTIALS))
def test_credentials_never_follow_next_links_or_redirects_to_another_host(
        preset, flaky_proxy, rustac_url: str, catalog_dir: Path, catalog_tools):
    secret = f"{preset}-s3cr3t-0123456789"
    _, header, template = CREDENTIALS[preset]
    other = catalog_tools.FlakyProxy(rustac_url)  # another origin (port) serving the same API
    try:
        arch = preset_archive(preset, flaky_proxy.url, catalog_dir, secret)
        arch._open()
        flaky_proxy.plan("/search", ("links-to", other.url))  # page 1 links page 2 elsewhere
        items = arch.search_items(q(start=(2021, 1, 1), end=(2022, 12, 31)))
        assert len(items) == 8  # every page was still read ...
        assert other.count("/search") == 7  # ... pages 2-8 from the other host
        assert _sent_secret(other.requests, secret) == []  # ... which never saw the credential
        sent = [h.get(header) for m, p, h, _ in flaky_proxy.requests]
        assert sent and all(v == template.format(secret) for v in sent)  # the endpoint always did
        # A redirect of the landing page to another host: followed without the credential.
        n_other = len(other.requests)
        flaky_proxy.plan("/", ("redirect", other.url))
        fresh = preset_archive(preset, flaky_proxy.url, catalog_dir, secret)
        assert len(fresh.search_items(q(tile="33UUP"))) == 4
        assert len(other.requests) > n_other
        assert _sent_secret(other.requests, secret) == []
    finally:
        other.close()


def test_read_auth_only_for_the_configured_origins(flaky_proxy, catalog_dir: Path):
    token = "cdse-access-token-0123456789"
    cdse = preset_archive("cdse", flaky_proxy.url, catalog_dir, token)
    want = {"Authorization": f"Bearer {token}"}
    dl = "https://download.dataspace.copernicus.eu/odata/v1/Products(abc)/Nodes(B04.jp2)/$value"
    assert cdse.read_auth(dl) == want
    assert cdse.read_auth("https://DOWNLOAD.dataspace.copernicus.eu:443/x") == want
    assert cdse.read_auth(flaky_proxy.url + "/x.tif") == want  # the endpoint's own origin
    for elsewhere in ("http://download.dataspace.copernicus.eu/x",  # other scheme
                      "https://download.dataspace.copernicus.eu:8443/x",  # other port
                      "https://download.dataspace.copernicus.eu.evil.example/x",
                      "https://evil.example/?u=https://download.dataspace.copernicus.eu/",
                      "s3://eodata/Sentinel-2/B04.jp2", "/local/B04.tif"):
        assert cdse.read_auth(elsewhere) is None, elsewhere
    # Without a token nothing is sent; other presets have no download origins by default.
    assert StacApiArchive("cdse", env={}).read_auth(dl) is None
    custom = preset_archive("custom", flaky_proxy.url, catalog_dir, token)
    assert custom.read_auth(dl) is None and custom.read_auth(flaky_proxy.url + "/a.tif") == want
    extra = preset_archive("custom", flaky_proxy.url, catalog_dir, token,
                           read_auth_origins=["https://assets.example:8443"])
    assert extra.read_auth("https://assets.example:8443/a.tif") == want
    from_cfg = StacApiArchive.from_config(
        {"preset": "custom", "url": flaky_proxy.url, "read_auth_origins": ["https://assets.example"]},
        env={"CLOUDYEO_STAC_TOKEN": token})
    assert from_cfg.read_auth("https://assets.example/a.tif") == want
    assert from_cfg.read_auth("https://assets.example:8443/a.tif") is None
    assert token not in repr(cdse) and token not in repr(cdse.read_credentials)


# ---------------------------------------------------------------------------------------
# responses cut short are retried (G.7)
# ---------------------------------------------------------------------------------------


def test_cut_and_truncated_pages_are_retried(flaky_proxy, catalog_dir: Path, caplog):
    caplog.set_level(logging.WARNING)
    arch = archive(flaky_proxy.url, catalog_dir, page_size=2, retries=3)
    arch._open()
    # Headers then a dropped connection; a JSON page cut short with a matching Content-Length.
    flaky_proxy.plan("/search", ("cut", 0), ("cut", 50), ("truncate", 120))
    ids = [r.id for r in arch.search(q(tile="33UUP"))]
    assert ids == ["S2A_33UUP_20220301_L2A", "S2A_33UUP_20220306_L2A", "S2A_33UUP_20220311_L2A",
                   "S2A_33UUP_20220316_L2A"]
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert sum("interrupted response body" in m for m in retries) == 2
    assert sum("truncated or invalid JSON" in m for m in retries) == 1


def test_truncated_pages_are_bounded(flaky_proxy, catalog_dir: Path):
    arch = archive(flaky_proxy.url, catalog_dir, retries=2)
    arch._open()
    flaky_proxy.plan("/search", *([("truncate", 10)] * 10))
    with pytest.raises(HttpError, match="truncated or invalid JSON") as info:
        arch.search(q())
    assert flaky_proxy.count("/search") == 3  # first attempt + 2 retries
    assert "/search" in str(info.value)
