"""Mechanism checks: each method, trained briefly on a small controlled input, does the one thing it
exists for. Toys are built here from a blocky "parcel" map, so the expected effect is known.

* Align-CR: SAR shifted by k pixels (random direction per sample) against noisy, hazed optical;
  the deformable alignment keeps SAR more useful than the no-align ablation as k grows, and the
  learned sampling positions should point along the shift (a known gap, marked xfail).
* seq2seq internal learning: the target date's change is visible in S1 only; S1 guidance beats
  fixed-noise guidance and the output stays in the reflectance range.
* seq2point: the change between the last clear input and the target is seen by S1 under clouds.
* HCR&LC: the uncertainty-weighted multi-task loss lowers both task losses; each learned log
  variance moves towards the log of its own task loss.
* MoCo v2 / MoCo v3 / MAE: pretraining beats a random backbone on a linear probe of a toy task.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from cloudyeo.models import build_ssl
from cloudyeo.models.cloud_removal import (
    AlignCR,
    HCRLCNet,
    Seq2Point,
    UncertaintyWeighting,
    UNet3D,
    carl_loss,
    clear_pixel_l1,
    noise_input,
    seq2point_loss,
    weighted_charbonnier,
)


def parcels(g: torch.Generator, n: int, size: int, block: int, states: int) -> torch.Tensor:
    """(N, size, size) integer map of square parcels (``block`` px), each in one of ``states``."""
    small = torch.randint(0, states, (n, 1, size // block, size // block), generator=g).float()
    return F.interpolate(small, scale_factor=block, mode="nearest")[:, 0].long()


def train(params, loss_fn, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        opt.zero_grad()
        loss_fn(step).backward()
        opt.step()


# ---------------------------------------------------------------------------------- Align-CR
SPECTRA = torch.tensor([[0.05, 0.08, 0.06, 0.40], [0.15, 0.14, 0.18, 0.25],
                        [0.10, 0.12, 0.08, 0.30], [0.25, 0.24, 0.26, 0.30]])  # 4 "classes", B G R NIR
SAR_DB = torch.tensor([[0.55, 0.35], [0.30, 0.10], [0.65, 0.50], [0.80, 0.60]])  # VV, VH in [0, 1]


def align_batch(g: torch.Generator, n: int, k: int, size: int = 24):
    """Optical truth, hazed noisy optical input, SAR displaced by k px (random sign, x or y)."""
    lc = parcels(g, n, size, 4, 4)
    truth = SPECTRA[lc].permute(0, 3, 1, 2)
    haze = 0.6 + 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    cloudy = (1 - haze) * truth + haze * 0.3 + 0.03 * torch.randn(truth.shape, generator=g)
    sar = SAR_DB[lc].permute(0, 3, 1, 2)
    shift = torch.zeros(n, 2, dtype=torch.long)  # (dx, dy): SAR content moved by +shift
    axis = torch.randint(0, 2, (n,), generator=g)
    sign = torch.randint(0, 2, (n,), generator=g) * 2 - 1
    shift[torch.arange(n), axis] = sign * k
    sar = torch.stack([torch.roll(s, (int(dy), int(dx)), dims=(1, 2)) for s, (dx, dy) in zip(sar, shift)])
    return cloudy, sar, truth, torch.ones(n, size, size), shift


def fit_aligncr(k: int, align: bool, steps: int = 250):
    torch.manual_seed(0)
    model = AlignCR(optical_bands=4, sar_bands=2, width=16, blocks=2, use_sar=True, align=align)
    g = torch.Generator().manual_seed(1)

    def loss(step):
        cloudy, sar, truth, mask, _ = align_batch(g, 12, k)
        return weighted_charbonnier(model(cloudy, sar), truth, mask)

    train(model.parameters(), loss, steps, 2e-3)
    cloudy, sar, truth, _, shift = align_batch(torch.Generator().manual_seed(99), 48, k)
    with torch.no_grad():
        mae = float((model(cloudy, sar) - truth).abs()[..., 4:-4, 4:-4].mean())
    return model, mae, (cloudy, sar, shift)


@pytest.fixture(scope="module")
def aligncr_runs():
    """(k, align) -> (model, MAE, held-out batch) for k = 0 and 3 pixels."""
    return {(k, align): fit_aligncr(k, align) for k in (0, 3) for align in (True, False)}


def test_aligncr_alignment_matters_more_as_the_shift_grows(aligncr_runs):
    mae = {key: run[1] for key, run in aligncr_runs.items()}
    assert mae[(3, True)] < mae[(3, False)]
    assert mae[(3, False)] - mae[(3, True)] > mae[(0, False)] - mae[(0, True)]  # the gap grows with k


@pytest.mark.xfail(strict=True, reason="known gap (#16): after 250 steps the deformable sampling "
                   "positions correlate only weakly (r ~ 0.2) with the shift; Align-CR's gain comes mostly "
                   "from elsewhere")
def test_aligncr_sampling_positions_follow_the_shift(aligncr_runs):
    model, _, (cloudy, sar, shift) = aligncr_runs[(3, True)]
    # Per block, the modulation-weighted sampling position of the deformable 3x3 (tap + offset),
    # averaged over interior pixels, has the sign of the sample's shift.
    with torch.no_grad():
        fo = model.opt_head(cloudy)
        fs = model.sar_head(model.upsample_sar(sar, cloudy.shape[-2:]))
        for block in model.blocks:
            om = block.offsets(torch.cat([fo, fs], dim=1))
            n, _, h, w = om.shape
            where = om[:, :18].reshape(n, 9, 2, h, w) + block.sar_read.taps.view(1, 9, 2, 1, 1)
            weight = torch.sigmoid(om[:, 18:27]).reshape(n, 9, 1, h, w)
            position = ((where * weight).sum(1) / weight.sum(1))[..., 4:-4, 4:-4].mean(dim=(2, 3))
            moved = shift != 0
            agree = torch.sign(position[moved]) == torch.sign(shift[moved].float())
            assert agree.float().mean() > 0.8
            fo, fs = block(fo, fs)


# ------------------------------------------------------------------------ seq2seq internal learning
def change_series(g: torch.Generator, t: int = 6, target: int = 3, size: int = 16):
    """Every parcel takes a random state on every date (S2 and S1 both follow it, so the clear
    dates teach the S1 -> S2 relation); at ``target`` the S2 is withheld, and the parcels whose
    state there differs from both neighbouring dates are the ones only S1 can tell."""
    states = parcels(g, t, size, 4, 2)
    s2 = SPECTRA[states].permute(3, 0, 1, 2)  # (4, T, H, W)
    s1 = SAR_DB[states].permute(3, 0, 1, 2) + 0.02 * torch.randn(2, t, size, size, generator=g)
    clear = torch.ones(t, size, size, dtype=torch.bool)
    clear[target] = False  # the target's S2 is never seen
    changed = (states[target] != states[target - 1]) & (states[target] != states[target + 1])
    return s1, s2, clear, changed


@pytest.mark.parametrize("guide", ["s1", "noise"])
def test_seq2seq_output_stays_in_the_reflectance_range(guide):
    g = torch.Generator().manual_seed(0)
    s1, s2, clear, _ = change_series(g)
    torch.manual_seed(0)
    model = UNet3D(2, 4, width=8, depth=1)
    with torch.no_grad():
        out = model(s1[None] if guide == "s1" else noise_input((1, *s1.shape), 0, 10.0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_seq2seq_s1_guidance_beats_noise_when_the_target_change_is_seen_in_s1():
    g = torch.Generator().manual_seed(0)
    s1, s2, clear, changed = change_series(g)
    errors = {}
    for guide in ("s1", "noise"):
        torch.manual_seed(0)
        model = UNet3D(2, 4, width=8, depth=1)
        x = s1[None] if guide == "s1" else noise_input((1, *s1.shape), 0, 0.1)
        train(model.parameters(), lambda step, model=model, x=x: clear_pixel_l1(model(x), s2[None], clear[None]),
              300, 1e-2)
        with torch.no_grad():
            pred = model(x)[0, :, 3]
        errors[guide] = float((pred - s2[:, 3]).abs()[:, changed].mean())
    assert errors["s1"] < 0.5 * errors["noise"]


# --------------------------------------------------------------------------------- seq2point
def change_batch(g: torch.Generator, n: int, size: int = 16):
    """Inputs: t0 clear before a change, t1/t2 under thick cloud; S1 sees the change at t1/t2."""
    before = parcels(g, n, size, 4, 2)
    changed = parcels(g, n, size, 4, 2).bool()
    after = torch.where(changed, 1 - before, before)
    s2 = torch.stack([SPECTRA[before], torch.full_like(SPECTRA[before], 0.9),
                      torch.full_like(SPECTRA[before], 0.9)], dim=1).permute(0, 1, 4, 2, 3)
    s1 = torch.stack([SAR_DB[before], SAR_DB[after], SAR_DB[after]], dim=1).permute(0, 1, 4, 2, 3)
    mask = torch.zeros(n, 3, size, size)
    mask[:, 1:] = 1.0
    return s2, s1, mask, SPECTRA[after].permute(0, 3, 1, 2), changed


def test_seq2point_s1_helps_when_only_s1_sees_the_change():
    errors = {}
    for use_sar in (True, False):
        torch.manual_seed(0)
        model = Seq2Point(optical_bands=4, sar_bands=2, use_sar=use_sar, width=16, blocks=1, temporal_layers=1)
        g = torch.Generator().manual_seed(1)

        def loss(step, model=model, use_sar=use_sar, g=g):
            s2, s1, mask, target, _ = change_batch(g, 8)
            return seq2point_loss(model(s2, s1 if use_sar else None, mask), target, perceptual_weight=0.0)

        train(model.parameters(), loss, 200, 2e-3)
        s2, s1, mask, target, changed = change_batch(torch.Generator().manual_seed(99), 32)
        with torch.no_grad():
            pred = model(s2, s1 if use_sar else None, mask)
        errors[use_sar] = float((pred - target).abs().mean(dim=1)[changed].mean())
    assert errors[True] < 0.5 * errors[False]


# ------------------------------------------------------------------------------------ HCR&LC
def hcrlc_batch(g: torch.Generator, n: int, size: int = 16):
    lc = parcels(g, n, size, 4, 3)
    clear = SPECTRA[lc].permute(0, 3, 1, 2)
    cloud = parcels(g, n, size, 8, 2).float()  # half the image under thick cloud, on average
    cloudy = clear * (1 - cloud[:, None]) + 0.9 * cloud[:, None]
    sar = SAR_DB[lc].permute(0, 3, 1, 2) + 0.02 * torch.randn(n, 2, size, size, generator=g)
    return cloudy, sar, clear, cloud, lc


def test_hcrlc_multi_task_loss_lowers_both_tasks_and_uncertainty_weights_follow_the_losses():
    torch.manual_seed(0)
    model = HCRLCNet(optical_bands=4, sar_bands=2, n_classes=3, width=8, depth=1)
    weighting = UncertaintyWeighting(2)
    g = torch.Generator().manual_seed(1)
    fixed = hcrlc_batch(torch.Generator().manual_seed(99), 32)

    def task_losses(batch):
        cloudy, sar, clear, cloud, lc = batch
        out = model(cloudy, sar)
        return [carl_loss(out["cr"], cloudy, clear, cloud, 1.0), F.cross_entropy(out["lc"], lc)]

    with torch.no_grad():
        before = [float(v) for v in task_losses(fixed)]
    train([*model.parameters(), *weighting.parameters()],
          lambda step: weighting(task_losses(hcrlc_batch(g, 8))), 300, 3e-3)
    with torch.no_grad():
        after = [float(v) for v in task_losses(fixed)]
    assert after[0] < 0.5 * before[0] and after[1] < 0.5 * before[1]
    # exp(-s) L + s is minimal at s = log L: each log variance moves from 0 towards log L_i.
    for s_i, loss_i in zip(weighting.log_vars.detach().tolist(), after):
        assert abs(s_i - np.log(loss_i)) < abs(0.0 - np.log(loss_i))
        assert np.sign(s_i) == np.sign(np.log(loss_i))


# ------------------------------------------------------------------------------ SSL objectives
PATTERNS = 4


def pattern_images(g: torch.Generator, n: int, size: int = 16, labels: torch.Tensor | None = None):
    """Class = stripe orientation (0, 45, 90, 135 deg); nuisances: phase, frequency, per-channel
    gain and offset, noise. Returns (images (N, 4, size, size), labels)."""
    if labels is None:
        labels = torch.randint(0, PATTERNS, (n,), generator=g)
    theta = labels.float() * (np.pi / PATTERNS)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    freq = 2 * np.pi / (4.0 + 2.0 * torch.rand(n, generator=g))
    phase = 2 * np.pi * torch.rand(n, generator=g)
    proj = xx[None] * torch.cos(theta)[:, None, None] + yy[None] * torch.sin(theta)[:, None, None]
    wave = torch.sin(freq[:, None, None] * proj + phase[:, None, None])  # (N, H, W)
    gain = 0.5 + torch.rand(n, 4, 1, 1, generator=g)
    offset = torch.randn(n, 4, 1, 1, generator=g)
    img = gain * wave[:, None] + offset + 0.3 * torch.randn(n, 4, size, size, generator=g)
    return img, labels


def two_views(g: torch.Generator, n: int):
    """Two label-free augmentations of each image: random circular shift, per-channel gain and
    offset jitter, noise."""
    img, _ = pattern_images(g, n)
    views = []
    for _ in range(2):
        dy, dx = (int(v) for v in torch.randint(0, img.shape[-1], (2,), generator=g))
        v = torch.roll(img, (dy, dx), dims=(2, 3))
        v = v * (0.7 + 0.6 * torch.rand(n, 4, 1, 1, generator=g)) + 0.5 * torch.randn(n, 4, 1, 1, generator=g)
        views.append(v + 0.2 * torch.randn(v.shape, generator=g))
    return views


def probe_accuracy(backbone, seed: int = 5) -> float:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(400) % PATTERNS
    x_train, y_train = pattern_images(g, 400, labels=labels)
    x_test, y_test = pattern_images(g, 400, labels=labels)
    backbone.eval()
    with torch.no_grad():
        f_train, f_test = backbone.forward_features(x_train), backbone.forward_features(x_test)
    clf = LogisticRegression(max_iter=2000).fit(f_train.numpy(), y_train.numpy())
    return float(clf.score(f_test.numpy(), y_test.numpy()))


# One small ViT for the three objectives, so they compare on equal footing. (A random ResNet is a
# much weaker probe here, 0.33 vs 0.71, and 300 MoCo v2 steps lift it only to ~0.41.)
TOY_VIT = {"img_size": 16, "patch_size": 4, "embed_dim": 48, "depth": 2, "num_heads": 3}
SSL_TOYS = {
    "moco2": ("vit_tiny", TOY_VIT, {"dim": 32, "hidden_dim": 64, "queue_size": 256}),
    "moco3": ("vit_tiny", TOY_VIT, {"dim": 32, "hidden_dim": 64}),
    "mae": ("vit_tiny", TOY_VIT, {"decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 2, "mask_ratio": 0.5}),
}


@pytest.mark.parametrize("method", sorted(SSL_TOYS))
def test_pretraining_beats_a_random_backbone_on_a_linear_probe(method):
    name, backbone_kwargs, hparams = SSL_TOYS[method]
    torch.manual_seed(0)
    model = build_ssl(method, name, 4, backbone_kwargs, **hparams)
    random_acc = probe_accuracy(model.backbone)
    model.train()
    g = torch.Generator().manual_seed(1)

    def loss(step):
        v1, v2 = two_views(g, 64)
        value, _ = model.loss(v1, v2)
        return value

    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3, weight_decay=0.05)
    for step in range(300):
        opt.zero_grad()
        loss(step).backward()
        opt.step()
        model.momentum_update(step=step, total_steps=300)
    trained_acc = probe_accuracy(model.backbone)
    assert trained_acc > random_acc + 0.1, (random_acc, trained_acc)
