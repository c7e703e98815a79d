"""The SSL4EO figures are named renderers; each draws a PNG from the data it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cloudyeo.datasets.ssl4eo import SKIP_CATEGORIES, example_picks
from cloudyeo.report.renderers import render

SEASONS = ["2021-03-20", "2021-06-21"]


def test_cloud_cover_figure_with_valid_and_missing_seasons(tmp_path):
    index = pd.DataFrame(dict(
        season_date=SEASONS * 3, valid=[True, False, True, True, False, True],
        skip_category=[None, "cloud", None, None, "partial", None],
        l1c_cloud_cover=[1.0, np.nan, 4.0, 9.5, np.nan, 0.0], l2a_cloud_cover=[1.5, np.nan, 3.0, 9.0, np.nan, 0.0]))
    render("ssl4eo_cloud_cover", tmp_path / "h.png", index=index, max_cloud=10.0, skip_categories=list(SKIP_CATEGORIES))
    assert (tmp_path / "h.png").stat().st_size > 0


def test_example_figure_valid_missing_no_s1_and_no_location(tmp_path):
    n, px = 2, 6
    vv = np.full((n, 2, px, px), -12.0, np.float32)
    vv[1, 0] = np.nan
    render("ssl4eo_examples", tmp_path / "e.png", locations=["a", "b"], seasons=SEASONS,
           valid=np.array([[True, False], [True, True]]), s1_valid=np.array([[True, False], [False, True]]),
           skip_category=np.array([["", "cloud"], ["", ""]]), rgb=np.full((n, 2, 3, px, px), 0.1, np.float32), vv=vv)
    assert (tmp_path / "e.png").stat().st_size > 0
    empty = np.zeros((0, 2), bool)
    render("ssl4eo_examples", tmp_path / "none.png", locations=[], seasons=SEASONS, valid=empty, s1_valid=empty,
           skip_category=empty.astype(str), rgb=np.zeros((0, 2, 3, px, px)), vv=np.zeros((0, 2, px, px)))
    assert (tmp_path / "none.png").stat().st_size > 0


def test_example_picks_most_valid_and_most_missing():
    valid = np.array([[1, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 0], [1, 1, 0, 1], [1, 1, 1, 1]], bool)
    assert example_picks(valid) == [0, 4, 1]  # the two fullest, then the emptiest
    assert example_picks(valid[:3]) == [0, 2, 1]
