"""The time-series figures are named renderers; each draws a PNG from the data it is given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cloudyeo.report.renderers import render


def _index() -> pd.DataFrame:
    rows = []
    for patch, split in ((0, "train"), (1, "test")):
        for t in range(3):
            rows.append(dict(patch=patch, patch_id=f"R{patch}_0_0", roi=f"R{patch}", split=split, time=t,
                             valid=t != 1, cloud_coverage=10.0 * (t + patch), dt_days=float(t - 1),
                             s2_datetime=pd.Timestamp("2018-01-01", tz="UTC") + pd.Timedelta(days=30 * t)))
    return pd.DataFrame(rows)


def test_coverage_and_dt_figures(tmp_path):
    index = _index()
    render("timeseries_coverage", tmp_path / "coverage.png", index=index)
    render("timeseries_dt", tmp_path / "dt.png", index=index, max_days=14.0)
    assert (tmp_path / "coverage.png").stat().st_size > 0 and (tmp_path / "dt.png").stat().st_size > 0


def test_example_figure_with_gaps_and_without_any_valid_patch(tmp_path):
    rows = _index().query("patch == 0")
    n_t, px = len(rows), 8
    render("timeseries_example", tmp_path / "example.png", rows=rows,
           s2=np.full((n_t, 13, px, px), 1000, dtype=np.int16), s1=np.full((n_t, 2, px, px), -12.0, np.float32),
           cloud_mask=np.zeros((n_t, px, px), dtype=np.uint8))
    assert (tmp_path / "example.png").stat().st_size > 0
    render("timeseries_example", tmp_path / "none.png", rows=rows.iloc[:0], s2=None, s1=None, cloud_mask=None)
    assert (tmp_path / "none.png").stat().st_size > 0
