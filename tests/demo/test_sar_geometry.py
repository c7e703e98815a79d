"""S1 viewing geometry and misregistration (cloudyeo.demo.sar_geometry)."""

from __future__ import annotations

import numpy as np

from cloudyeo.demo.sar_geometry import (
    S1_INCIDENCE,
    dem_error_field,
    displace,
    displacement_truth,
    geolocation_shift,
    incidence_angles,
    s1_displacement,
    track_incidence,
)


def test_incidence_inside_the_iw_swath_and_growing_away_from_the_track():
    near, far = track_incidence("33UUP", "ascending", 7200.0)
    assert S1_INCIDENCE[0] <= near < far <= S1_INCIDENCE[1]
    assert abs((far - near) - (S1_INCIDENCE[1] - S1_INCIDENCE[0]) * 7200.0 / 250_000.0) < 1e-9
    asc = incidence_angles((4, 10), near, far, descending=False)[0]
    desc = incidence_angles((4, 10), near, far, descending=True)[0]
    assert np.all(np.diff(asc) > 0) and np.all(np.diff(desc) < 0)  # looks east / west
    assert track_incidence("33UUP", "ascending", 7200.0) != track_incidence("33UUP", "descending", 7200.0)


def test_geolocation_shift_is_deterministic_and_metres_small():
    a = geolocation_shift(1, "33UUP", "2018-01-01")
    assert a == geolocation_shift(1, "33UUP", "2018-01-01")
    shifts = np.array([geolocation_shift(1, "t", k) for k in range(400)])
    p95 = np.percentile(np.hypot(*shifts.T), 95)
    assert 5.0 < p95 < 10.0  # < 10 m at 95 % (Schubert et al. 2017)


def test_displacement_moves_features_the_way_the_truth_says():
    img = np.zeros((1, 20, 20))
    img[0, :, 10] = 1.0  # a north-south line
    flat = np.zeros((20, 20), dtype=np.float32)
    d_row, d_col = s1_displacement(flat, (10.0, 0.0), 35.0, 36.0, "ascending", 10.0)
    assert np.allclose(d_col, 1.0) and np.allclose(d_row, 0.0)
    out = displace(img, d_row, d_col)
    # Pixel p shows the ground at p + 1 column: the line appears one column west.
    assert np.allclose(out[0, :, 9], 1.0) and np.allclose(out[0, :, 10], 0.0)
    truth = displacement_truth(d_row, d_col, 10.0)
    assert truth["displacement_m_p50"] == truth["displacement_m_max"] == 10.0


def test_terrain_distortion_follows_the_look_direction_and_the_relief():
    unit = np.random.default_rng(0).standard_normal((60, 60)).astype(np.float32)
    steep = dem_error_field(unit, relief_m=2000.0)
    gentle = dem_error_field(unit, relief_m=100.0)
    assert steep.std() > 3 * gentle.std()
    _, asc = s1_displacement(steep, (0.0, 0.0), 35.0, 35.0, "ascending", 10.0)
    _, desc = s1_displacement(steep, (0.0, 0.0), 35.0, 35.0, "descending", 10.0)
    expected = steep / np.tan(np.deg2rad(35.0)) / 10.0
    np.testing.assert_allclose(asc, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(desc, -expected, rtol=1e-5, atol=1e-6)
