"""Image metrics against scikit-image and against direct numpy computations."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from cloudyeo.metrics import (
    batch_image_metrics,
    cloud_region_masks,
    image_metrics,
    mae,
    nrmse,
    psnr,
    sam,
    ssim,
    ssim_map,
)

skm = pytest.importorskip("skimage.metrics")

SKIMAGE_SSIM = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": 1,
    "channel_axis": 0,
}
TOL = 1e-4
EPS64 = float(np.finfo(np.float64).eps)
# float64 SSIM against skimage's float64 SSIM: the same sums in another order; the rounding of the
# local variances (E[x^2] - E[x]^2, values <= 1, about one eps per term of the 11-tap window in
# each of the two passes) is divided by at most C2 = (0.03 * data_range)^2 in the SSIM quotient.
SSIM_TOL64 = 4 * 11 * EPS64 / 0.03**2


def _sam_tol(n_bands: int) -> float:
    """Bound on the float64 rounding of the atan2 spectral angle, in radians.

    Each 2 x 2 minor and the dot product are sums of ``n_bands`` rounded products: absolute
    errors of ``~2 n_bands eps |x| |y|`` in ``|x ^ y|`` and ``n_bands eps`` relative in
    ``<x, y>``, so at most ``(2 + pi) n_bands eps`` in the angle.
    """
    return (2 + math.pi) * n_bands * EPS64


def _exact_sam_rad(a: np.ndarray, b: np.ndarray) -> float:
    """Spectral angle of two float64 spectra from exact rational sums (rounded once at the end)."""
    fa = [Fraction(float(v)) for v in a]
    fb = [Fraction(float(v)) for v in b]
    dot = sum(x * y for x, y in zip(fa, fb))
    na2 = sum(x * x for x in fa)
    nb2 = sum(y * y for y in fb)
    if na2 == 0 or nb2 == 0:
        return math.pi / 2
    wedge2 = na2 * nb2 - dot * dot  # Lagrange's identity, exact in rationals
    return math.atan2(math.sqrt(float(wedge2)), float(dot))


def _pairs():
    """(target, prediction) pairs: random, structured, constant, float32."""
    rng = np.random.default_rng(42)
    out = []
    for shape in [(3, 32, 32), (13, 24, 40), (1, 11, 11), (4, 64, 48)]:
        y = rng.random(shape)
        x = np.clip(y + 0.08 * rng.standard_normal(shape), 0, 1)
        out.append((y, x))
    # structured: smooth gradients, stripes and a bright block ("cloud") on the prediction
    yy, xx = np.mgrid[0:48, 0:56] / 56.0
    target = np.stack([0.1 + 0.5 * xx, 0.2 + 0.3 * yy, 0.3 + 0.2 * np.sin(8 * xx) ** 2])
    pred = target.copy()
    pred[:, 10:30, 20:45] = 0.9
    pred[1, ::4] *= 0.5
    out.append((target, pred))
    # nearly constant images (small variances stress the constants C1, C2)
    flat = np.full((2, 16, 16), 0.3)
    out.append((flat, flat + 0.01 * rng.random((2, 16, 16))))
    # float32 inputs (we compute in float64; skimage in float32)
    y32 = rng.random((5, 20, 20)).astype(np.float32)
    x32 = np.clip(y32 + 0.05 * rng.standard_normal(y32.shape), 0, 1).astype(np.float32)
    out.append((y32, x32))
    return out


PAIRS = _pairs()


@pytest.mark.parametrize("k", range(len(PAIRS)))
def test_ssim_and_psnr_match_skimage(k):
    target, pred = PAIRS[k]
    ref_ssim = skm.structural_similarity(target, pred, **SKIMAGE_SSIM)
    ref_psnr = skm.peak_signal_noise_ratio(target, pred, data_range=1)
    assert ssim(pred, target) == pytest.approx(ref_ssim, abs=TOL)
    assert psnr(pred, target) == pytest.approx(ref_psnr, abs=TOL)
    # float64 inputs agree to rounding, not just within the tolerance
    if target.dtype == np.float64:
        assert abs(ssim(pred, target) - ref_ssim) < SSIM_TOL64


@pytest.mark.parametrize("k", range(len(PAIRS)))
def test_masked_ssim_is_the_skimage_map_mean_over_mask_and_interior(k):
    target, pred = PAIRS[k]
    _, smap = skm.structural_similarity(target, pred, full=True, **SKIMAGE_SSIM)
    np.testing.assert_allclose(ssim_map(pred, target), smap, atol=TOL)
    h, w = target.shape[1:]
    rng = np.random.default_rng(k)
    mask = rng.random((h, w)) < 0.4
    mask[h // 2, w // 2] = True  # at least one interior pixel
    interior = np.zeros((h, w), bool)
    interior[5 : h - 5, 5 : w - 5] = True
    expected = smap[:, mask & interior].mean()
    assert ssim(pred, target, mask) == pytest.approx(expected, abs=TOL)
    # an all-true mask gives the unmasked SSIM
    assert ssim(pred, target, np.ones((h, w), bool)) == pytest.approx(ssim(pred, target), abs=1e-12)


def test_masked_psnr_matches_skimage_on_the_selected_pixels():
    target, pred = PAIRS[0]
    mask = np.zeros(target.shape[1:], bool)
    mask[3:20, 7:30] = True
    ref = skm.peak_signal_noise_ratio(target[:, mask], pred[:, mask], data_range=1)
    assert psnr(pred, target, mask) == pytest.approx(ref, abs=TOL)


@pytest.mark.parametrize("k", range(len(PAIRS)))
def test_masked_nrmse_mae_sam_match_direct_numpy(k):
    target, pred = (a.astype(np.float64) for a in PAIRS[k])
    _, h, w = target.shape
    rng = np.random.default_rng(100 + k)
    mask = rng.random((h, w)) < 0.3
    mask[0, 0] = True
    # direct computations, written out loop-free but independently of the package
    sel_t = target[:, mask]  # (C, P)
    sel_p = pred[:, mask]
    n = sel_t.size
    direct_nrmse = np.sqrt(((sel_p - sel_t) ** 2).sum() / n)
    direct_mae = np.abs(sel_p - sel_t).sum() / n
    # SAM from exact rational sums: arccos of a float cosine is off by sqrt(eps) (~2e-8 rad) for
    # near-identical spectra, which is why the metric uses atan2
    angles = [_exact_sam_rad(sel_p[:, i], sel_t[:, i]) for i in range(sel_t.shape[1])]
    direct_sam_rad = float(np.mean(angles))
    tol = _sam_tol(target.shape[0])
    assert nrmse(pred, target, mask) == pytest.approx(direct_nrmse, rel=1e-12)
    assert mae(pred, target, mask) == pytest.approx(direct_mae, rel=1e-12)
    assert sam(pred, target, mask, degrees=False) == pytest.approx(direct_sam_rad, abs=tol)
    assert sam(pred, target, mask) == pytest.approx(np.degrees(direct_sam_rad), abs=np.degrees(tol))
    # unmasked = all pixels and bands
    assert nrmse(pred, target) == pytest.approx(np.sqrt(np.mean((pred - target) ** 2)), rel=1e-12)
    assert mae(pred, target) == pytest.approx(np.mean(np.abs(pred - target)), rel=1e-12)


def test_nrmse_on_cloudy_region_of_a_time_series():
    rng = np.random.default_rng(7)
    t, c, h, w = 3, 4, 16, 16
    cloud = np.zeros((t, h, w), bool)
    cloud[:, 4:10, 4:10] = True  # cloudy in every input
    cloud[0, 0:4, :] = True  # cloudy in one input only -> clear
    cloudy_all, clear_any = cloud_region_masks(cloud)
    assert cloudy_all.sum() == 36 and (clear_any == ~cloudy_all).all()
    assert not cloudy_all[0:4].any()
    target = rng.random((c, h, w))
    pred = rng.random((c, h, w))
    sq = (pred - target) ** 2
    assert nrmse(pred, target, cloudy_all) == pytest.approx(
        np.sqrt(sq[:, 4:10, 4:10].mean()), rel=1e-12
    )
    clear_vals = np.concatenate(
        [sq[:, i, j] for i in range(h) for j in range(w) if clear_any[i, j]]
    )
    assert nrmse(pred, target, clear_any) == pytest.approx(np.sqrt(clear_vals.mean()), rel=1e-12)


def test_cloud_region_masks_definitions():
    m = np.array(
        [
            [[1, 1, 0, 0]],
            [[1, 0, 1, 0]],
        ],
        dtype=bool,
    )
    cloudy, clear = cloud_region_masks(m)
    np.testing.assert_array_equal(cloudy, [[True, False, False, False]])
    np.testing.assert_array_equal(clear, [[False, True, True, True]])
    single_cloudy, _ = cloud_region_masks(m[0])  # (H, W): one input
    np.testing.assert_array_equal(single_cloudy, m[0])
    with pytest.raises(ValueError, match="threshold"):
        cloud_region_masks(np.full((2, 3, 3), 0.4))


def test_batch_equals_per_image_and_torch_is_accepted():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    target = rng.random((3, 4, 20, 24))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    masks = rng.random((3, 20, 24)) < 0.5
    batch = batch_image_metrics(torch.from_numpy(pred), torch.from_numpy(target), masks)
    for i in range(3):
        single = image_metrics(pred[i], target[i], masks[i])
        for name, value in single.items():
            assert batch[name][i] == pytest.approx(value, rel=1e-12), name


def test_clipping_edge_cases_and_errors():
    y = np.full((2, 12, 12), 0.5)
    over = np.full((2, 12, 12), 1.7)
    assert nrmse(over, y) == pytest.approx(0.5)  # clipped to 1
    assert nrmse(over, y, clip=False) == pytest.approx(1.2)
    assert psnr(y, y) == np.inf
    assert sam(y, y) == 0.0  # exactly: every 2 x 2 minor of identical spectra is 0
    assert np.isnan(nrmse(over, y, np.zeros((12, 12), bool)))  # empty mask -> NaN
    # SAM is scale-invariant and 90 degrees for orthogonal spectra
    a = np.zeros((2, 12, 12))
    a[0] = 0.4
    b = np.zeros((2, 12, 12))
    b[1] = 0.4
    assert sam(a, b) == pytest.approx(90.0)
    assert sam(a, 0.5 * a) == 0.0
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match="mask has shape"):
        nrmse(y, y, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="unknown metric"):
        image_metrics(y, y, metrics=["lpips"])


def test_torch_ssim_loss_matches_numpy_and_has_gradients():
    torch = pytest.importorskip("torch")
    from cloudyeo.metrics.losses import masked_l1, ssim_torch

    rng = np.random.default_rng(5)
    target = rng.random((2, 3, 24, 24))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    masks = rng.random((2, 24, 24)) < 0.5
    ref = batch_image_metrics(pred, target, masks, metrics=["ssim", "mae"])
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    m = torch.tensor(masks)
    value = ssim_torch(p, t, m)
    np.testing.assert_allclose(value.detach().numpy(), ref["ssim"], atol=1e-10)
    (1 - value.mean()).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    l1 = masked_l1(torch.tensor(pred), t, m)
    expected = np.abs(pred - target)[np.broadcast_to(masks[:, None], pred.shape)].mean()
    assert float(l1) == pytest.approx(expected, rel=1e-12)


def test_sam_is_exact_for_identical_and_accurate_for_nearly_parallel_spectra():
    rng = np.random.default_rng(11)
    y = rng.uniform(0.05, 0.9, (13, 12, 12))
    assert sam(y, y) == 0.0 and sam(y, y, degrees=False) == 0.0
    for dtype in (np.float32, np.float64):  # float32 inputs are computed in float64
        y32 = y.astype(dtype)
        assert sam(y32, y32) == 0.0
    # nearly parallel spectra: rotate each pixel's spectrum by a known tiny angle within [0, 1]
    theta = 1e-9
    x = y.reshape(13, -1)
    u = rng.standard_normal(x.shape)
    u -= (u * x).sum(0) / (x * x).sum(0) * x  # orthogonal to x
    u /= np.linalg.norm(u, axis=0)
    xn = x / np.linalg.norm(x, axis=0)
    p = (np.cos(theta) * xn + np.sin(theta) * u) * 0.8
    pred = p.reshape(y.shape)
    exact = np.mean([_exact_sam_rad(pred[:, i, j], y[:, i, j]) for i in range(12) for j in range(12)])
    assert exact == pytest.approx(theta, rel=1e-5)  # the construction itself (rounding of p)
    got = sam(pred, y, degrees=False)
    assert got == pytest.approx(exact, abs=_sam_tol(13))
    # the arccos form this replaced is off by ~sqrt(eps) here, orders above the bound
    cos = (pred * y).sum(0) / (np.linalg.norm(pred, axis=0) * np.linalg.norm(y, axis=0))
    assert abs(np.arccos(np.clip(cos, -1, 1)).mean() - exact) > 100 * _sam_tol(13)


def test_data_range_refuses_images_in_another_scale():
    rng = np.random.default_rng(12)
    y = rng.uniform(0.0, 1.0, (4, 16, 16))
    x = np.clip(y + 0.05 * rng.standard_normal(y.shape), 0, 1)
    # target in digital numbers: refused, naming its min/max and the data_range
    with pytest.raises(ValueError, match=r"target values span \[.*\].*data_range=1\b"):
        nrmse(x, y * 10000)
    with pytest.raises(ValueError, match="target values span"):
        batch_image_metrics(x[None], y[None] * 255)
    with pytest.raises(ValueError, match=r"target values span \[-0.4"):
        sam(x, y - 0.5, clip=False)
    # a prediction in percent, 8-bit or digital numbers is no overshoot: refused
    with pytest.raises(ValueError, match=r"prediction values span \[.*100.*data_range=1"):
        psnr(x * 100, y)
    with pytest.raises(ValueError, match=r"prediction values span \[-255"):
        image_metrics(-255 * x - 0.1, y)
    with pytest.raises(ValueError, match="prediction values span"):
        image_metrics(x * 10000, y)
    # an (undertrained) model's overshoot, even beyond the range itself, is clipped
    wild = x + rng.uniform(-3, 3, x.shape)
    assert nrmse(wild, y) == pytest.approx(nrmse(np.clip(wild, 0, 1), y), rel=1e-12)
    # the same images in their own scale, with the matching data_range, give the same scores
    for name in ("psnr", "ssim", "sam"):
        scaled = image_metrics(x * 10000, y * 10000, metrics=[name], data_range=10000)[name]
        assert scaled == pytest.approx(image_metrics(x, y, metrics=[name])[name], rel=1e-9), name
    # NaN (no data) is not a range violation
    y_nan = y.copy()
    y_nan[0, 0, 0] = np.nan
    assert np.isfinite(mae(x, y_nan, np.arange(256).reshape(16, 16) > 0))
    # the bound is widened by the input dtype's rounding and no more
    one_up32 = np.nextafter(np.float32(1), np.float32(2))  # 1 + eps(float32)
    y32 = y.astype(np.float32)
    y32[0, 0, 0] = one_up32
    assert np.isfinite(nrmse(x.astype(np.float32), y32))
    y64 = y.copy()
    y64[0, 0, 0] = float(one_up32)  # the same value is no rounding in float64
    with pytest.raises(ValueError, match="target values span"):
        nrmse(x, y64)
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="data_range must be a positive"):
            mae(x, y, data_range=bad)


def test_region_image_metrics_equal_image_metrics_per_mask():
    from cloudyeo.metrics import region_image_metrics

    rng = np.random.default_rng(3)
    target = rng.uniform(0, 1, (4, 32, 32))
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    cloud = rng.random((32, 32)) < 0.3
    masks = {"all": np.ones((32, 32), bool), "cloudy": cloud, "clear": ~cloud, "none": np.zeros((32, 32), bool)}
    got = region_image_metrics(pred, target, masks)
    for region, m in masks.items():
        want = image_metrics(pred, target, m)
        for name, value in want.items():
            if np.isnan(value):
                assert np.isnan(got[region][name]), (region, name)
            else:
                assert got[region][name] == pytest.approx(value, rel=1e-12, abs=1e-12), (region, name)
    with pytest.raises(ValueError, match="mask 'bad' has shape"):
        region_image_metrics(pred, target, {"bad": np.ones((8, 8), bool)})
