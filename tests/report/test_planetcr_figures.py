"""The Planet-CR figures are named renderers; each draws a PNG from the data it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cloudyeo.landcover import CLASSES
from cloudyeo.report.renderers import render

BINS = ["0-20%", "20-40%", "40-60%", "60-80%", "80-100%"]


def _index() -> pd.DataFrame:
    rows = []
    for i in range(6):
        rows.append(dict(sample=i, aoi=f"a{i % 2}", split=("train", "test")[i % 2], cloud_bin=BINS[i % 5],
                         cloud_percent=10.0 + 15 * i, shadow_percent=2.0 * i, dominant_class=CLASSES[i % 6],
                         cloudy_id=f"c{i}", clear_id=f"k{i}", dt_clear_days=1.5, dt_s1_days=-0.5,
                         **{f"lc_{c}": 1.0 / len(CLASSES) for c in CLASSES}))
    return pd.DataFrame(rows)


def test_distributions(tmp_path):
    render("planetcr_distributions", tmp_path / "d.png", index=_index(), bin_labels=BINS)
    assert (tmp_path / "d.png").stat().st_size > 0


def test_example_quartets_and_no_samples(tmp_path):
    rows = _index().iloc[:2]
    n3, n10 = 15, 5
    render("planetcr_examples", tmp_path / "e.png", rows=rows,
           optical_cloudy=[np.full((4, n3, n3), 3000, np.uint16)] * 2,
           optical_clear=[np.full((4, n3, n3), 800, np.uint16)] * 2,
           cloud_mask=[np.zeros((n3, n3), np.uint8)] * 2, s1=[np.full((2, n10, n10), -12.0, np.float32)] * 2,
           landcover=[np.full((n10, n10), 255, np.uint8)] * 2)
    assert (tmp_path / "e.png").stat().st_size > 0
    render("planetcr_examples", tmp_path / "none.png", rows=rows.iloc[:0], optical_cloudy=[], optical_clear=[],
           cloud_mask=[], s1=[], landcover=[])
    assert (tmp_path / "none.png").stat().st_size > 0
