"""The validation page (cloudyeo.report.demo_validation) from plain tables."""

from __future__ import annotations

import pandas as pd

from cloudyeo.report.demo_validation import FIGURES, write_page


def test_page_table_verdicts_and_figures(tmp_path):
    table = pd.DataFrame([
        {"key": "s1_vv_water", "statistic": "water VV", "value": -21.0, "low": -99.0, "high": -18.0, "unit": "dB",
         "holds": True, "detail": "", "source": "twele2016", "reference": "Twele et al. 2016"},
        {"key": "s2_s1_shift_p95_m", "statistic": "S2 vs S1", "value": 16.0, "low": 0.0, "high": 15.0, "unit": "m",
         "holds": False, "detail": "3 products", "source": "gascon2017", "reference": "Gascon et al. 2017"},
    ])
    sigma0 = pd.DataFrame([{"group": "inland water", "state": "all", "season": "JJA", "vv_db": -21.0, "vh_db": -27.0},
                           {"group": "arable", "state": "bare", "season": "JJA", "vv_db": -14.0, "vh_db": -21.0}])
    ndvi = pd.DataFrame([{"group": "arable", "month": m, "ndvi": 0.2 + 0.05 * m} for m in range(1, 13)])
    mis = pd.DataFrame([{"pair": "S2 vs S1", "p95_m": v} for v in (5.0, 8.0, 16.0)])
    parcels = pd.DataFrame([{"area_ha": a, "class": c, "mowings": m} for a, c, m in ((1.0, 2, 0), (2.5, 4, 2), (0.3, 4, 3))])
    landcover = pd.DataFrame([{"tile": t, "country": c, "forest_percent": f, "country_forest_percent": r,
                               **{f"class_{k}": (f if k == 9 else (100.0 - f if k == 2 else 0.0)) for k in range(19)}}
                              for t, c, f, r in (("35VLH", "Finland", 66.0, 73.7), ("29UPV", "Ireland", 11.0, 11.4))])
    page = write_page(table, tmp_path, sigma0=sigma0, ndvi=ndvi, misregistration=mis, parcels=parcels,
                      examples=[], landcover=landcover)
    text = page.read_text()
    assert "**1 of 2 statistics hold.**" in text
    assert "| water VV | -21.000 | [-99, -18] | dB | holds |" in text
    assert "**does not hold**" in text and "- `gascon2017`: Gascon et al. 2017" in text
    for name in FIGURES.values():
        assert (tmp_path / name).stat().st_size > 1000 and f"]({name})" in text
    assert pd.read_csv(tmp_path / "validation.csv")["holds"].tolist() == [True, False]
