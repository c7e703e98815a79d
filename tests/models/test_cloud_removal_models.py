"""Cloud-removal networks and losses: shapes, identities at initialisation, loss formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cloudyeo.models.cloud_removal import (
    PRETEXT_SHIFTS,
    UncertaintyWeighting,
    build_cr_model,
    carl_loss,
    clear_pixel_l1,
    list_cr_archs,
    noise_input,
    seq2point_loss,
    weighted_charbonnier,
)
from cloudyeo.models.cloud_removal.layers import Conv3x3x3, DeformConv2d, deform_sample


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_deformable_conv_with_zero_offsets_is_a_plain_convolution():
    conv = DeformConv2d(3, 5)
    x = torch.randn(2, 3, 9, 11)
    om = torch.zeros(2, 27, 9, 11)
    om[:, 18:] = 60.0  # modulation sigmoid(60) = 1
    ref = F.conv2d(x, conv.weight.view(5, 3, 3, 3), conv.bias, padding=1)
    torch.testing.assert_close(conv(x, om), ref, atol=1e-5, rtol=1e-5)


def test_conv3x3x3_equals_conv3d():
    conv = Conv3x3x3(3, 4)
    x = torch.randn(2, 3, 5, 7, 6)
    torch.testing.assert_close(conv(x), F.conv3d(x, conv.weight, conv.bias, padding=1), atol=1e-5, rtol=1e-5)
    assert conv.weight.shape == (4, 3, 3, 3, 3)


def test_deform_sample_reads_at_the_offset_and_is_differentiable():
    x = torch.arange(30.0).view(1, 1, 5, 6)
    off = torch.zeros(1, 2, 5, 6, requires_grad=True)
    with torch.no_grad():
        off[:, 0] = 1.0  # one pixel to the right
    out = deform_sample(x, off)
    torch.testing.assert_close(out[0, 0, :, :5], x[0, 0, :, 1:])
    assert torch.all(out[0, 0, :, 5] == 0)  # outside the image
    out.sum().backward()
    assert off.grad is not None and torch.isfinite(off.grad).all()


@pytest.mark.parametrize("arch,spec,inputs,shape", [
    ("dsen2cr", {"width": 8, "blocks": 2}, lambda: (torch.rand(2, 13, 20, 20), torch.rand(2, 2, 20, 20)),
     (2, 13, 20, 20)),
    ("seq2point", {"width": 8, "blocks": 1},
     lambda: (torch.rand(2, 3, 13, 16, 16), torch.rand(2, 3, 2, 16, 16), torch.rand(2, 3, 16, 16) > 0.5),
     (2, 13, 16, 16)),
    ("unet3d", {"width": 4, "depth": 2}, lambda: (torch.rand(1, 2, 5, 16, 16),), (1, 13, 5, 16, 16)),
    ("pretext", {"width": 4, "depth": 2}, lambda: (torch.rand(3, 13, 16, 16), torch.rand(3, 2, 16, 16)), (3, 4)),
    ("segunet", {"in_chans": 4, "n_classes": 6, "width": 4, "depth": 2}, lambda: (torch.rand(1, 4, 30, 30),),
     (1, 6, 30, 30)),
    ("aligncr", {"width": 8, "blocks": 2}, lambda: (torch.rand(1, 4, 30, 30), torch.rand(1, 2, 9, 9)),
     (1, 4, 30, 30)),
])
def test_architectures_build_run_and_backpropagate(arch, spec, inputs, shape):
    model = build_cr_model({"arch": arch, **spec})
    assert model.spec["arch"] == arch
    out = model(*inputs())
    assert tuple(out.shape) == shape
    out.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="known: .*seq2point"):
        build_cr_model({"arch": "nope"})
    assert "aligncr" in list_cr_archs()


def test_residual_networks_start_as_the_identity():
    opt, sar = torch.rand(1, 4, 30, 30), torch.rand(1, 2, 9, 9)
    for spec in ({"arch": "aligncr", "width": 8, "blocks": 1},
                 {"arch": "aligncr", "width": 8, "blocks": 1, "use_sar": False},
                 {"arch": "aligncr", "width": 8, "blocks": 1, "align": False}):
        torch.testing.assert_close(build_cr_model(spec)(opt, sar), opt)
    o13 = torch.rand(1, 13, 16, 16)
    torch.testing.assert_close(build_cr_model({"arch": "dsen2cr", "width": 8, "blocks": 1})(o13, torch.rand(1, 2, 16, 16)), o13)
    out = build_cr_model({"arch": "hcrlc", "width": 4, "depth": 2})(o13, torch.rand(1, 2, 16, 16))
    torch.testing.assert_close(out["cr"], o13)
    assert out["lc"].shape == (1, 19, 16, 16)


def test_hcrlc_tasks_and_odd_sizes():
    net = build_cr_model({"arch": "hcrlc", "width": 4, "depth": 3, "tasks": ["lc"]})
    out = net(torch.rand(1, 13, 21, 19), torch.rand(1, 2, 21, 19))
    assert set(out) == {"lc"} and out["lc"].shape[-2:] == (21, 19)
    with pytest.raises(ValueError, match="tasks"):
        build_cr_model({"arch": "hcrlc", "tasks": ["segment"]})


def test_seq2point_accepts_any_number_of_inputs_and_needs_declared_modalities():
    net = build_cr_model({"arch": "seq2point", "width": 4, "blocks": 1})
    for t in (3, 5):
        assert net(torch.rand(1, t, 13, 8, 8), torch.rand(1, t, 2, 8, 8), torch.zeros(1, t, 8, 8)).shape == (1, 13, 8, 8)
    with pytest.raises(ValueError, match="use_sar"):
        net(torch.rand(1, 3, 13, 8, 8), None, torch.zeros(1, 3, 8, 8))
    no_s1 = build_cr_model({"arch": "seq2point", "width": 4, "blocks": 1, "use_sar": False, "use_mask": False})
    assert no_s1(torch.rand(1, 4, 13, 8, 8)).shape == (1, 13, 8, 8)


def test_carl_loss_matches_its_formula():
    rng = np.random.default_rng(1)
    p, i, t = (rng.random((2, 3, 4, 5)) for _ in range(3))
    m = rng.random((2, 4, 5)) > 0.5
    mm = m[:, None].astype(float)
    expected = np.abs(mm * (p - t) + (1 - mm) * (p - i)).mean() + 0.7 * np.abs(p - t).mean()
    got = carl_loss(*(torch.from_numpy(a) for a in (p, i, t)), torch.from_numpy(m), lam=0.7)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    valid = rng.random((2, 4, 5)) > 0.3
    vv = np.broadcast_to(valid[:, None], p.shape)
    exp_v = (np.abs(mm * (p - t) + (1 - mm) * (p - i))[vv]).mean() + np.abs(p - t)[vv].mean()
    got_v = carl_loss(*(torch.from_numpy(a) for a in (p, i, t)), torch.from_numpy(m), valid=torch.from_numpy(valid))
    assert float(got_v) == pytest.approx(exp_v, rel=1e-12)


def test_weighted_charbonnier_matches_its_formula():
    rng = np.random.default_rng(2)
    p, t = rng.random((2, 4, 6, 6)), rng.random((2, 4, 6, 6))
    m = rng.random((2, 6, 6)) > 0.5
    w, eps, alpha = 5.0, 1e-3, 0.45
    expected = ((1 + w * m[:, None]) * ((p - t) ** 2 + eps**2) ** alpha).mean()
    got = weighted_charbonnier(torch.from_numpy(p), torch.from_numpy(t), torch.from_numpy(m), w, eps, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    valid = np.ones((2, 6, 6), bool)
    got_v = weighted_charbonnier(torch.from_numpy(p), torch.from_numpy(t), torch.from_numpy(m), w, eps, alpha,
                                 torch.from_numpy(valid))
    assert float(got_v) == pytest.approx(expected, rel=1e-12)


def test_uncertainty_weighting_learns_log_variances():
    uw = UncertaintyWeighting(2)
    losses = [torch.tensor(4.0), torch.tensor(0.25)]
    total = uw(losses)
    assert float(total.detach()) == pytest.approx(4.25)
    total.backward()
    # d/ds (exp(-s) L + s) at s = 0 is 1 - L: the larger loss gets its weight lowered
    torch.testing.assert_close(uw.log_vars.grad, torch.tensor([1 - 4.0, 1 - 0.25]))


def test_seq2point_loss_and_clear_pixel_l1():
    pred, target = torch.full((1, 13, 16, 16), 0.5), torch.full((1, 13, 16, 16), 0.25)
    assert float(seq2point_loss(pred, target, None, 100.0, 0.0)) == pytest.approx(25.0)
    assert float(seq2point_loss(target, target, None, 100.0, 1.0)) == pytest.approx(0.0, abs=1e-6)
    p = torch.zeros(1, 2, 3, 4, 4)
    t = torch.ones(1, 2, 3, 4, 4)
    clear = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    t[:, :, 1] = 3.0
    clear[:, 1] = True
    assert float(clear_pixel_l1(p, t, clear)) == pytest.approx(3.0)


def test_noise_input_is_reproducible_and_pretext_shifts_are_halves():
    torch.testing.assert_close(noise_input((2, 3, 4), 5), noise_input((2, 3, 4), 5))
    assert not torch.equal(noise_input((2, 3, 4), 5), noise_input((2, 3, 4), 6))
    assert sorted(PRETEXT_SHIFTS.values()) == [(-1, 0), (0, -1), (0, 1), (1, 0)]
