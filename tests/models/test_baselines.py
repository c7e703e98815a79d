"""Cloud-removal baselines on tiny time series, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cloudyeo.models.baselines import identity, least_cloudy, least_cloudy_index, mosaicing


def _series():
    # T = 3 time points, C = 2 bands, 2 x 2 pixels; frame t has value t + 1 (band 0), 10 (t + 1)
    x = np.stack(
        [np.stack([np.full((2, 2), t + 1.0), np.full((2, 2), 10.0 * (t + 1))]) for t in range(3)]
    )
    masks = np.array(
        [
            [[1, 1], [1, 0]],  # 3/4 cloudy
            [[1, 0], [0, 0]],  # 1/4 cloudy
            [[1, 0], [1, 0]],  # 2/4 cloudy
        ],
        dtype=bool,
    )
    return x, masks


def test_identity_returns_a_copy():
    x, _ = _series()
    out = identity(x[0])
    np.testing.assert_array_equal(out, x[0])
    out[:] = -1
    assert x[0, 0, 0, 0] == 1.0


def test_least_cloudy_picks_lowest_fraction_and_earliest_on_ties():
    x, masks = _series()
    assert least_cloudy_index(masks) == 1
    np.testing.assert_array_equal(least_cloudy(x, masks), x[1])
    tied = masks.copy()
    tied[2] = tied[1]
    assert least_cloudy_index(tied) == 1
    tied[0] = tied[1]
    assert least_cloudy_index(tied) == 0


def test_mosaicing_by_hand():
    x, masks = _series()
    out = mosaicing(x, masks)
    # pixel (0,0): cloudy everywhere -> fallback 0.5 in every band
    np.testing.assert_array_equal(out[:, 0, 0], [0.5, 0.5])
    # pixel (0,1): clear at t=1,2 -> mean of 2 and 3
    np.testing.assert_allclose(out[:, 0, 1], [2.5, 25.0])
    # pixel (1,0): clear at t=1 only
    np.testing.assert_allclose(out[:, 1, 0], [2.0, 20.0])
    # pixel (1,1): clear at all -> mean of 1, 2, 3
    np.testing.assert_allclose(out[:, 1, 1], [2.0, 20.0])
    assert out.shape == (2, 2, 2)


def test_mosaicing_fallbacks():
    x, masks = _series()
    np.testing.assert_array_equal(mosaicing(x, masks, fallback=0.0)[:, 0, 0], [0.0, 0.0])
    np.testing.assert_array_equal(
        mosaicing(x, masks, fallback="least_cloudy")[:, 0, 0], [2.0, 20.0]
    )
    np.testing.assert_allclose(mosaicing(x, masks, fallback="mean")[:, 0, 0], [2.0, 20.0])
    with pytest.raises(ValueError, match="fallback"):
        mosaicing(x, masks, fallback="zero")
    # 0/1 float masks are accepted, probabilities are not
    np.testing.assert_array_equal(mosaicing(x, masks.astype(np.float32)), mosaicing(x, masks))
    with pytest.raises(ValueError, match="threshold"):
        mosaicing(x, masks * 0.7)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        mosaicing(x, masks[:, :1])
