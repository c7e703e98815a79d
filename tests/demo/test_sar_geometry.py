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


def _terrain_error(slope: float, seed: int = 0) -> np.ndarray:
    unit = np.random.default_rng(seed).standard_normal((80, 80)).astype(np.float32)
    ramp = slope * 10.0 * np.arange(80, dtype=np.float32)[None, :].repeat(80, 0)  # rises east
    return dem_error_field(np.random.default_rng(seed + 1), unit, ramp, 10.0)


def test_terrain_model_error_follows_the_copernicus_dem_specification_and_the_look_direction():
    gentle = np.stack([_terrain_error(0.05, s) for s in range(40)])
    steep = np.stack([_terrain_error(1.0, s) for s in range(40)])
    # Relative part (within an area): 2 m LE90 on gentle slopes; the absolute error (bias included)
    # stays within the product's 4 m LE90.
    within = gentle - gentle.mean(axis=(1, 2), keepdims=True)
    assert 1.5 < np.percentile(np.abs(within), 90) < 2.5
    assert np.percentile(np.abs(gentle), 90) < 4.4
    # Steep terrain: 4 m LE90 relative error plus the DEM's horizontal offset on the slope.
    assert np.percentile(np.abs(steep), 90) > 1.5 * np.percentile(np.abs(gentle), 90)
    one = steep[0]
    _, asc = s1_displacement(one, (0.0, 0.0), 35.0, 35.0, "ascending", 10.0)
    _, desc = s1_displacement(one, (0.0, 0.0), 35.0, 35.0, "descending", 10.0)
    expected = one / np.tan(np.deg2rad(35.0)) / 10.0
    np.testing.assert_allclose(asc, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(desc, -expected, rtol=1e-5, atol=1e-6)
