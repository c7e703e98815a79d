"""cloudyeo.masks.s2cloudless: shapes, provenance, working resolution, no data, band order."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

pytest.importorskip("s2cloudless")

from cloudyeo.masks import (
    MODEL_BANDS,
    PROBABILITY_NODATA,
    CloudMaskParams,
    compute_cloud_masks,
    decode_probability,
    detector_attrs,
    encode_probability,
    mask_attrs,
    probability_attrs,
    run_s2cloudless,
)
from cloudyeo.masks.s2cloudless import block_nanmean, upsample_bilinear
from cloudyeo.sentinel import S2_L1C_BANDS

CLEAR = np.array([.12, .10, .11, .08, .14, .29, .35, .39, .40, .23, .004, .23, .12], dtype=np.float32)
CLOUD = np.array([.50, .52, .52, .53, .53, .54, .54, .53, .53, .26, .145, .41, .29], dtype=np.float32)


def scene(h: int, w: int, seed: int = 0, blob: float = 0.3) -> np.ndarray:
    """(13, h, w) reflectance: a smooth cloud blob over a noisy clear surface."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((yy - 0.4 * h) / h, (xx - 0.55 * w) / w)
    alpha = np.clip((blob - d) / 0.08, 0.0, 1.0).astype(np.float32)
    x = CLEAR[:, None, None] * (1 - alpha) + CLOUD[:, None, None] * alpha
    return (x + rng.normal(0, 0.004, x.shape)).astype(np.float32)


def reference_detector(**kw):
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(all_bands=True, **kw)


def test_params_validation():
    assert CloudMaskParams().factor == 6
    assert CloudMaskParams(working_resolution_m=160).factor == 16
    for bad in ({"threshold": 1.5}, {"average_over": -1}, {"dilation_size": 1.5},
                {"working_resolution_m": 25}, {"working_resolution_m": 0}):
        with pytest.raises(ValueError, match="masks\\."):
            CloudMaskParams(**bad)


def test_detector_attrs_record_everything():
    p = CloudMaskParams(threshold=0.35, average_over=3, dilation_size=1, working_resolution_m=20)
    a = detector_attrs(p)
    json.dumps(a)  # Zarr attrs must be JSON
    assert a["cloud_detector"] == "s2cloudless"
    assert a["cloud_detector_version"] == importlib.metadata.version("s2cloudless")
    assert (a["threshold"], a["average_over"], a["dilation_size"], a["working_resolution_m"]) == (0.35, 3, 1, 20)
    assert "working-resolution pixels" in a["average_over_units"]
    assert "working-resolution pixels" in a["dilation_size_units"]
    assert a["cloud_detector_bands"] == list(MODEL_BANDS)
    pa, ma = probability_attrs(p), mask_attrs(p)
    assert pa["scale_factor"] == 0.01 and pa["nodata"] == PROBABILITY_NODATA
    assert "scale_factor" not in ma and ma["threshold"] == 0.35


def test_shapes_and_dtypes_single_and_stack():
    x = scene(50, 70)  # not a multiple of 6: edge blocks are partial
    prob, mask = compute_cloud_masks(x)
    assert prob.shape == mask.shape == (50, 70)
    assert prob.dtype == np.uint8 and mask.dtype == bool
    assert prob.max() <= 100
    stack = np.stack([x, scene(50, 70, seed=1, blob=0.0)])
    probs, masks = compute_cloud_masks(stack)
    assert probs.shape == masks.shape == (2, 50, 70)
    np.testing.assert_array_equal(probs[0], prob)
    np.testing.assert_array_equal(masks[0], mask)
    assert masks[0].mean() > 0.2 and not masks[1].any()  # blob vs clear


def test_native_resolution_matches_s2cloudless():
    """At 10 m nothing is resampled: exactly s2cloudless' own probability and mask."""
    x = scene(60, 60)
    params = CloudMaskParams(working_resolution_m=10)
    prob, mask = compute_cloud_masks(x, params)
    det = reference_detector(threshold=0.4, average_over=4, dilation_size=2)
    data = np.moveaxis(x, 0, -1)[None]
    ref_p = det.get_cloud_probability_maps(data)[0]
    ref_m = det.get_cloud_masks(data)[0].astype(bool)
    np.testing.assert_array_equal(mask, ref_m)
    np.testing.assert_array_equal(prob, np.rint(ref_p * 100).astype(np.uint8))


def test_working_resolution_path():
    """60 m: block mean in, s2cloudless at 60 m, nearest mask / bilinear probability out."""
    k = 6
    x = scene(72, 96)
    params = CloudMaskParams()  # 60 m
    prob, mask = compute_cloud_masks(x, params)

    # The block mean is the 6 x 6 mean to float32 rounding (36 rounded additions at most); the
    # reference detector then gets the package's block means, not numpy's: a last-bit difference
    # (summation order differs between OpenCV's SIMD paths and numpy, and across CPUs) may
    # cross a LightGBM split and flip a pixel near the threshold.
    x60 = block_nanmean(x, k)
    np.testing.assert_allclose(x60, x.reshape(13, 12, k, 16, k).mean(axis=(2, 4)), rtol=0,
                               atol=k * k * np.finfo(np.float32).eps * float(np.abs(x).max()))
    det = reference_detector(threshold=0.4, average_over=4, dilation_size=2)
    data = np.moveaxis(x60, 0, -1)[None]
    p60 = det.get_cloud_probability_maps(data)[0]
    m60 = det.get_cloud_masks(data)[0].astype(bool)
    np.testing.assert_array_equal(mask, np.kron(m60, np.ones((k, k), dtype=bool)))

    # Bilinear with pixel centres aligned: 10 m pixel r sits at (r + 0.5) / k - 0.5 in 60 m pixels.
    rr = (np.arange(72) + 0.5) / k - 0.5
    cc = (np.arange(96) + 0.5) / k - 0.5
    R, C = np.meshgrid(np.clip(rr, 0, 11), np.clip(cc, 0, 15), indexing="ij")
    expected = map_coordinates(p60.astype(np.float64), [R, C], order=1, mode="nearest")
    assert np.abs(decode_probability(prob) - expected).max() <= 0.0051  # uint8 percent rounding

    # run_s2cloudless on 60 m input gives the same working-resolution answer.
    pw, mw = run_s2cloudless(x60, params)
    np.testing.assert_allclose(pw, p60, atol=1e-6)
    np.testing.assert_array_equal(mw, m60)


def test_nodata_is_flagged_and_does_not_spread():
    params = CloudMaskParams()
    x = scene(120, 120)
    holed = x.copy()
    holed[:, 0:18, 0:24] = np.nan  # whole 60 m blocks
    holed[S2_L1C_BANDS.index("B10"), 100, 50] = np.nan  # one pixel, one band
    holed[S2_L1C_BANDS.index("B03"), 110, 110] = np.nan  # not a model band: ignored
    prob, mask = compute_cloud_masks(holed, params)
    nodata = np.zeros((120, 120), bool)
    nodata[0:18, 0:24] = True
    nodata[100, 50] = True
    np.testing.assert_array_equal(prob == PROBABILITY_NODATA, nodata)
    assert mask[nodata].all()
    assert prob[~nodata].max() <= 100

    # Beyond the averaging + dilation reach (in 60 m pixels) of the hole nothing changes. The
    # reference has one no-data pixel inside the hole, so that it takes the same (NaN-aware)
    # block-mean path: the all-finite path sums in another order, and a last-bit difference may
    # flip a LightGBM split or the threshold, differently on another CPU.
    ref_in = x.copy()
    ref_in[S2_L1C_BANDS.index("B01"), 0, 0] = np.nan
    ref_p, ref_m = compute_cloud_masks(ref_in, params)
    reach = (params.average_over + params.dilation_size + 2) * params.factor
    far = np.ones((120, 120), bool)
    far[: 18 + reach, : 24 + reach] = False
    far[100 - 6:100 + 6 + 1, 50 - 6:50 + 6 + 1] = False  # the single pixel's own block and neighbours
    np.testing.assert_array_equal(mask[far], ref_m[far])
    assert np.abs(prob[far].astype(int) - ref_p[far].astype(int)).max() <= 1

    allnan = np.full((13, 30, 30), np.nan, dtype=np.float32)
    p, m = compute_cloud_masks(allnan, params)
    assert (p == PROBABILITY_NODATA).all() and m.all()


def test_band_order_by_name():
    x = scene(36, 36)
    ref = compute_cloud_masks(x)
    order = list(reversed(MODEL_BANDS))
    sub = x[[S2_L1C_BANDS.index(b) for b in order]]
    got = compute_cloud_masks(sub, band_order=order)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    with pytest.raises(ValueError, match="B10"):
        compute_cloud_masks(x[:10], band_order=S2_L1C_BANDS[:10])
    with pytest.raises(ValueError, match="bands"):
        compute_cloud_masks(x, band_order=MODEL_BANDS)


def test_encoding_roundtrip_and_helpers():
    p = np.array([0.0, 0.004, 0.4, 0.996, 1.0, np.nan], dtype=np.float32)
    u8 = encode_probability(p)
    np.testing.assert_array_equal(u8, [0, 0, 40, 100, 100, 255])
    back = decode_probability(u8)
    assert np.isnan(back[-1]) and np.allclose(back[:-1], [0, 0, 0.4, 1, 1])

    a = np.arange(7 * 5, dtype=np.float32).reshape(7, 5)
    a[0, 0] = np.nan
    m = block_nanmean(a, 3)
    assert m.shape == (3, 2)
    assert m[0, 0] == pytest.approx(np.nanmean(a[0:3, 0:3]))
    assert m[2, 1] == pytest.approx(a[6:7, 3:5].mean())  # partial corner block
    up = upsample_bilinear(np.array([[0.0, 1.0]], dtype=np.float32), 2, (2, 4))
    np.testing.assert_allclose(up[0], [0.0, 0.25, 0.75, 1.0])


def test_zero_radii_switch_the_spatial_steps_off():
    """average_over=0 / dilation_size=0 turn the steps off (s2cloudless 1.7.3 itself fails on
    average_over=None with dilation under OpenCV 5; cloudyeo handles that case itself)."""
    from s2cloudless.utils import cv2_disk
    from scipy.ndimage import binary_dilation

    x = scene(48, 48)
    ref_p = reference_detector().get_cloud_probability_maps(np.moveaxis(x, 0, -1)[None])[0]
    _, plain = compute_cloud_masks(x, CloudMaskParams(average_over=0, dilation_size=0, working_resolution_m=10))
    np.testing.assert_array_equal(plain, ref_p > 0.4)
    _, dilated = compute_cloud_masks(x, CloudMaskParams(average_over=0, dilation_size=2, working_resolution_m=10))
    np.testing.assert_array_equal(dilated, binary_dilation(ref_p > 0.4, structure=cv2_disk(2).astype(bool)))
    assert dilated.sum() > plain.sum()


def test_digital_numbers_are_refused_not_masked_as_cloud():
    from cloudyeo.masks.s2cloudless import InputRangeError

    x = scene(36, 36)
    dn = np.rint(x * 10000 + 1000)  # L1C digital numbers, baseline >= 04.00
    with pytest.raises(InputRangeError, match=r"band B\w+ has median \d+.*digital numbers"):
        compute_cloud_masks(dn)
    with pytest.raises(InputRangeError, match="digital numbers"):
        run_s2cloudless(dn[:, ::6, ::6])
    # in a stack, the error names the scene
    with pytest.raises(InputRangeError, match=r"reflectance\[1\]: band"):
        compute_cloud_masks(np.stack([x, dn.astype(np.float32)]))


def test_an_offset_applied_where_not_due_is_refused():
    from cloudyeo.masks.s2cloudless import InputRangeError

    x = scene(36, 36) - np.float32(0.1)  # -1000 DN on data that never carried +1000 (or twice)
    with pytest.raises(InputRangeError, match=r"band B10 has median -0\.09.*RADIO_ADD_OFFSET"):
        compute_cloud_masks(x)


def test_nodata_saturation_and_bright_scenes_do_not_trigger_the_check(caplog):
    x = scene(48, 48)
    x[:, :30] = np.nan  # most of the scene is no data
    x[:, 30:, :2] = 6.5535  # saturated pixels (DN 65535)
    prob, mask = compute_cloud_masks(x)
    assert (prob[:30] == PROBABILITY_NODATA).all()
    # entirely no data: nothing to check, everything no data
    prob, mask = compute_cloud_masks(np.full((13, 12, 12), np.nan, np.float32))
    assert (prob == PROBABILITY_NODATA).all() and mask.all()
    # a bright overcast scene (medians up to ~1.1) is reflectance: masked, not refused, but as no
    # value is below 0.1 it is reported as possibly lacking the offset
    overcast = np.broadcast_to(2 * CLOUD[:, None, None], (13, 24, 24)).astype(np.float32)
    with caplog.at_level("WARNING", logger="cloudyeo.masks.s2cloudless"):
        _, mask = compute_cloud_masks(overcast)
    assert mask.all()
    assert "RADIO_ADD_OFFSET" in caplog.text and "thick high cloud" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="cloudyeo.masks.s2cloudless"):
        compute_cloud_masks(scene(24, 24))
    assert caplog.text == ""
