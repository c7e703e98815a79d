import numpy as np
import pytest
from affine import Affine

from cloudyeo.grids import GridMismatch, scaled_transform, union_window, upsample_bilinear, window_for


def test_window_for_exact_patch():
    src = Affine(10, 0, 500000, 0, -10, 5400000)
    patch = Affine(10, 0, 501200, 0, -10, 5398800)
    w = window_for(src, patch, (120, 120))
    assert (w.col_off, w.row_off, w.width, w.height) == (120, 120, 120, 120)
    w20 = window_for(scaled_transform(src, 2), scaled_transform(patch, 2), (60, 60))
    assert (w20.col_off, w20.row_off) == (60, 60)


def test_window_for_refuses_off_grid_and_other_resolution():
    src = Affine(10, 0, 500000, 0, -10, 5400000)
    with pytest.raises(GridMismatch, match="between pixels"):
        window_for(src, Affine(10, 0, 500005, 0, -10, 5400000), (120, 120))
    with pytest.raises(GridMismatch, match="pixel size"):
        window_for(src, Affine(20, 0, 500000, 0, -20, 5400000), (60, 60))


def test_union_window():
    src = Affine(10, 0, 0, 0, -10, 0)
    ws = [window_for(src, Affine(10, 0, x, 0, -10, y), (120, 120)) for x, y in ((0, 0), (2400, -1200))]
    u = union_window(ws)
    assert (u.col_off, u.row_off, u.width, u.height) == (0, 0, 360, 240)


def test_upsample_bilinear_preserves_constants_and_linear_ramps():
    const = np.full((3, 20, 20), 0.25, np.float32)
    assert np.allclose(upsample_bilinear(const, 6), 0.25)
    ramp = np.tile(np.arange(60, dtype=np.float32), (60, 1))
    up = upsample_bilinear(ramp, 2)
    assert up.shape == (120, 120)
    # Interior pixel centres of a linear ramp are reproduced exactly.
    x = (np.arange(120) + 0.5) / 2 - 0.5
    assert np.allclose(up[5, 2:-2], x[2:-2])
    # Block means stay close to the input (no bias).
    assert abs(up.mean() - ramp.mean()) < 1e-3


def test_upsample_propagates_nan():
    a = np.ones((4, 4), np.float32)
    a[1, 1] = np.nan
    up = upsample_bilinear(a, 2)
    assert np.isnan(up[2:4, 2:4]).all()
    assert np.isfinite(up[7, 7])
