"""The demo world measured against the literature (cloudyeo.demo.validation, `cloudyeo demo validate`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cloudyeo.cli import main
from cloudyeo.demo.literature import BY_KEY, FOREST_SHARE_PERCENT, SOURCES, STATISTICS
from cloudyeo.demo.validation import measure


def test_every_statistic_cites_a_source_and_has_a_range():
    assert len(BY_KEY) == len(STATISTICS)
    for s in STATISTICS:
        assert s.source in SOURCES and s.low < s.high, s.key


@pytest.fixture(scope="module")
def validation(world_dir):
    return measure([world_dir])


def test_measure_reads_the_world_and_rows_every_statistic(validation, world):
    table = validation.table
    assert list(table["key"]) == [s.key for s in STATISTICS]
    measured = table.dropna(subset=["value"])
    # The tiny world (two tiles - Austrian forest, Finland - over 40 days, no farmland) measures
    # the S1, water, forest and misregistration statistics; each is judged against its own range.
    assert len(measured) >= 10
    for row in measured.itertuples():
        assert row.holds == (row.low <= row.value <= row.high), row.key
    assert not table.loc[table["value"].isna(), "holds"].any()
    # Misregistration rows come from world.json's S1 truth, one per product.
    assert len(validation.misregistration) == len(world["s1_truth"]) > 0
    # Land cover: one row per tile of a country with a published forest share; shares sum to 100.
    cover = validation.landcover
    assert sorted(cover["tile"]) == sorted(t["id"] for t in world["tiles"] if t["country"] in FOREST_SHARE_PERCENT)
    shares = cover[[f"class_{c}" for c in range(19)]].sum(axis=1)
    np.testing.assert_allclose(shares, 100.0, rtol=1e-6)


def test_sigma0_orders_classes_physically(validation):
    med = validation.sigma0[validation.sigma0["state"] == "all"].groupby("group")["vv_db"].median()
    assert med["inland water"] < -15
    forest = [g for g in ("broad-leaved forest", "coniferous forest", "mixed forest") if g in med]
    assert forest and all(med["inland water"] + 5 < med[g] for g in forest)


def test_cli_writes_the_page(world_dir, tmp_path, capsys):
    out = tmp_path / "val"
    assert main(["demo", "validate", "--quiet", "--world", str(world_dir), "--out", str(out)]) == 0
    page = (out / "validation.md").read_text()
    table = pd.read_csv(out / "validation.csv")
    assert "statistics hold" in page and "## References" in page
    assert len(table) == len(STATISTICS)
    for png in ("sigma0_per_class.png", "misregistration.png", "ndvi_per_class.png", "s1_s2_examples.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in page
    assert "within their published ranges" in capsys.readouterr().out


def test_world_json_records_s1_truth(world):
    truth = world["s1_truth"]
    assert {t["orbit_state"] for t in truth} == {"ascending", "descending"}
    for t in truth:
        assert 29.1 <= t["incidence_near_deg"] < t["incidence_far_deg"] <= 46.0
        assert 0 <= t["displacement_m_p50"] <= t["displacement_m_p95"] <= t["displacement_m_max"]
        assert np.hypot(*t["geolocation_shift_m"]) < 20
    json.dumps(truth)  # plain JSON
