"""Planet-CR builder pieces without a world: alignment, windows, UDM2 masks, balance, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from cloudyeo.config import validate_config
from cloudyeo.datasets import planetcr as pcr


def settings(**over) -> pcr.Settings:
    return pcr.Settings.from_config(validate_config({"archive": "demo", "planetcr": over}))


T10 = Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 4_000_020.0)


def test_alignment_default_windows_and_a_misaligned_case():
    s = settings()
    assert (s.window_3m, s.window_10m, s.max_offset_m) == (300, 90, 10.0)
    # A 3 m scene grid shifted by (+1.4, -1.7) m against the 10 m lattice.
    scene = Affine(3.0, 0.0, 600_000.0 - 15 + 1.4, 0.0, -3.0, 4_000_020.0 + 15 - 1.7)
    win, t3 = pcr.planet_window(scene, (610, 610), T10 @ Affine.translation(45, 45), 300)
    assert (win.col_off, win.row_off, win.width) == (155, 154, 300)  # nearest 3 m corner
    dx, dy = pcr.check_alignment(T10 @ Affine.translation(45, 45), 90, t3, 300, s.max_offset_m)
    assert dx == pytest.approx(1.4) and dy == pytest.approx(1.3)
    # Deliberately misaligned: a 12 m shift fails, naming the offsets; so does another CRS.
    bad = t3 @ Affine.translation(4, 0)  # 4 px * 3 m = 12 m
    with pytest.raises(pcr.AlignmentError, match="differ by 13.40 m"):
        pcr.check_alignment(T10 @ Affine.translation(45, 45), 90, bad, 300, 10.0)
    with pytest.raises(pcr.AlignmentError, match="EPSG"):
        pcr.check_alignment(T10, 90, t3, 300, 10.0, 32633, 32634)
    # Wrong window sizes (300 at 3 m vs 80 at 10 m) do not cover the same ground either.
    with pytest.raises(pcr.AlignmentError):
        pcr.check_alignment(T10, 80, scene, 300, 10.0)
    # A window leaving the scene's raster is refused.
    assert pcr.planet_window(scene, (400, 400), T10 @ Affine.translation(90, 90), 300) is None


def test_udm2_layers_and_cloud_mask():
    udm = np.zeros((8, 2, 4), dtype=np.uint8)
    udm[0, 0, 0] = 1  # clear
    udm[5, 0, 1] = 1  # cloud
    udm[4, 0, 2] = 1  # heavy haze
    udm[2, 0, 3] = 1  # shadow
    udm[3, 1, 0] = 1  # light haze
    udm[1, 1, 1] = 1  # snow
    udm[7, 1, 2] = 1  # blackfill (bit 0), no class
    # (1, 3): nothing flagged at all -> nodata too
    layers = pcr.udm2_layers(udm, ("cloud", "heavy_haze"))
    mask = pcr.cloud_mask(layers)
    np.testing.assert_array_equal(mask, [[0, 1, 1, 2], [0, 0, 255, 255]])
    pct = pcr.udm2_percent(layers)
    assert pct["cloud_percent"] == pytest.approx(100 * 2 / 6) and pct["nodata_percent"] == 25.0
    assert pct["atmos_percent"] == pytest.approx(100 * 4 / 6)  # cloud, haze x2, shadow
    only_cloud = pcr.cloud_mask(pcr.udm2_layers(udm, ("cloud",)))
    assert only_cloud[0, 2] == 0  # heavy haze no longer counts
    assert pcr.mask_percent(mask)["cloud_percent"] == pytest.approx(100 * 2 / 6)


def candidates(n_per: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for b in ("0-20%", "20-40%", "40-60%", "60-80%", "80-100%"):
        for cls in ("forest", "agriculture", "water"):
            for k in range(n_per):
                aoi = ("a", "b", "c")[k % 3]
                rows.append(dict(cloud_bin=b, dominant_class=cls, aoi=aoi,
                                 cloudy_id=f"{aoi}-{b}-{cls}-{k // 3}", row_10m=0, col_10m=0,
                                 cloud_percent=rng.uniform(0, 100)))
    rows += [dict(cloud_bin="80-100%", dominant_class="urban", aoi="a", cloudy_id="u", row_10m=0,
                  col_10m=0, cloud_percent=90.0)]
    return pd.DataFrame(rows)


def test_selection_balances_bins_and_landcover():
    c = candidates()
    chosen = pcr.select_balanced(c, settings(samples_per_bin=7))
    sel = c[chosen]
    assert (sel["cloud_bin"].value_counts() == 7).all() and len(sel) == 35
    for _, g in sel.groupby("cloud_bin"):
        counts = g["dominant_class"].value_counts()
        assert counts.max() - counts.min() <= 1 or len(counts) == 4  # round robin over classes
        assert g["aoi"].nunique() == 3  # and over AOIs within a class
    # The rare class is taken whenever its bin has room.
    assert "u" in set(sel["cloudy_id"])
    # Deterministic for a seed, different for another.
    assert (pcr.select_balanced(c, settings(samples_per_bin=7)) == chosen).all()
    assert not (pcr.select_balanced(c, settings(samples_per_bin=7, seed=99)) == chosen).all()
    # A bin with fewer candidates than samples_per_bin gives all of them.
    small = c[(c["cloud_bin"] != "0-20%") | (c.index % 9 == 0)]
    sel2 = small[pcr.select_balanced(small.reset_index(drop=True), settings(samples_per_bin=7))]
    assert (sel2["cloud_bin"] == "0-20%").sum() == ((small["cloud_bin"] == "0-20%").sum())


def test_overlapping_windows_of_one_scene_are_not_both_taken():
    rows = [dict(cloud_bin="0-20%", dominant_class="forest", aoi="a", cloudy_id="s", row_10m=r,
                 col_10m=c) for r in (0, 45, 90) for c in (0, 45, 90)]
    c = pd.DataFrame(rows)
    for limit in (0.0, 0.2, 0.25, 0.5):
        sel = c[pcr.select_balanced(c, settings(samples_per_bin=9, max_overlap=limit))]
        pos = list(zip(sel["row_10m"], sel["col_10m"]))
        assert len(pos) >= 1
        for k, (r1, c1) in enumerate(pos):
            for r2, c2 in pos[k + 1:]:
                assert max(0, 90 - abs(r1 - r2)) * max(0, 90 - abs(c1 - c2)) <= limit * 90 * 90
    no_overlap = c[pcr.select_balanced(c, settings(samples_per_bin=9, max_overlap=0.0))]
    assert len(no_overlap) <= 4
    assert pcr.select_balanced(c, settings(samples_per_bin=9, max_overlap=1.0)).sum() == 9


def test_splits_by_aoi():
    ids = [f"aoi{i}" for i in range(6)]
    split = pcr.assign_splits(ids, settings())
    assert sorted(split) == ids and list(split.values()).count("test") == 2
    assert pcr.assign_splits(ids, settings()) == split
    assert pcr.assign_splits(["x"], settings()) == {"x": "train"}
    assert set(pcr.assign_splits(["x", "y"], settings(splits={"test_fraction": 0.9})).values()) == {"train", "test"}


def test_cloud_bins():
    bins = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)
    assert pcr.cloud_bin(0.0, bins) == "0-20%" and pcr.cloud_bin(19.99, bins) == "0-20%"
    assert pcr.cloud_bin(20.0, bins) == "20-40%" and pcr.cloud_bin(100.0, bins) == "80-100%"
    assert pcr.cloud_bin(100.5, bins) is None


def test_planet_api_source_stops_on_401_naming_the_key(tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cloudyeo.http import AuthError

    hits = []

    class Refuse(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            body = b'{"message": "Please enter your API key."}'
            self.send_response(401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = validate_config({
            "archive": "demo", "resources_dir": str(tmp_path / "r"), "results_dir": str(tmp_path / "o"),
            "stac": {"preset": "custom", "url": "http://127.0.0.1:9/stac"},
            "planetcr": {"source": "planet-api",
                         "aois": [{"id": "iowa", "lon": -93.6, "lat": 42.0, "start": "2022-06-01",
                                   "end": "2022-06-20"}],
                         "planet_api": {"url": f"http://127.0.0.1:{httpd.server_address[1]}/data/v1",
                                        "max_retries": 0}},
        })
        monkeypatch.setenv("PL_API_KEY", "PLAK-wrong")
        with pytest.raises(AuthError, match="PL_API_KEY") as info:
            pcr.plan(cfg)
        assert info.value.status == 401 and "PLAK-wrong" not in str(info.value) and len(hits) == 1
        monkeypatch.delenv("PL_API_KEY")
        with pytest.raises(AuthError, match="PL_API_KEY.*not set"):
            pcr.plan(cfg)
        assert len(hits) == 1  # no request without a key
        cfg["planetcr"]["aois"] = [{"id": "x"}]
        with pytest.raises(ValueError, match="id, lon, lat, start, end"):
            pcr.Source(cfg)
    finally:
        httpd.shutdown()
        httpd.server_close()
