"""MoCo v2, MoCo v3 and MAE on tiny backbones: losses, gradients, momentum encoders, queue, masks."""

from __future__ import annotations

import pytest
import torch

from cloudyeo.models import (
    MAE,
    MoCoV2,
    MoCoV3,
    build_backbone,
    build_ssl,
    cosine_momentum,
)

TINY_VIT = {"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
TINY_RESNET = {"width": 0.125, "small_stem": True}


def tiny(method: str, in_chans: int = 14):
    torch.manual_seed(0)
    if method == "moco2":
        return build_ssl("moco2", "resnet_small", in_chans, TINY_RESNET, dim=16, hidden_dim=32, queue_size=10)
    if method == "moco3":
        return build_ssl("moco3", "vit_tiny", in_chans, TINY_VIT, dim=16, hidden_dim=32)
    return build_ssl("mae", "vit_tiny", in_chans, TINY_VIT, decoder_dim=16, decoder_depth=1, decoder_heads=2)


def views(n=4, c=14, size=16):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, c, size, size, generator=g)
    return x, x + 0.1 * torch.randn(x.shape, generator=g)


@pytest.mark.parametrize("method", ["moco2", "moco3", "mae"])
def test_step_trains_online_encoder_only(method):
    model = tiny(method).train()
    v1, v2 = views()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    loss, logs = model.loss(v1, v2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) >= {"loss"} and all(isinstance(v, float) for v in logs.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("backbone.") for k in changed)
    # The momentum encoder is not trained: no grads, unchanged by the optimiser step
    # (BatchNorm running statistics are buffers and may move).
    for name, p in model.named_parameters():
        if name.startswith("momentum_"):
            assert not p.requires_grad and p.grad is None
            assert torch.equal(p, before[name])
    assert all(p.requires_grad for p in model.trainable_parameters())


@pytest.mark.parametrize("method", ["moco2", "moco3"])
def test_momentum_update_is_ema(method):
    model = tiny(method)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    old = [p.clone() for p in model.momentum_backbone.parameters()]
    m = model.momentum_update(0.9)
    assert m == 0.9
    for k_old, k_new, q in zip(old, model.momentum_backbone.parameters(), model.backbone.parameters()):
        assert torch.allclose(k_new, 0.9 * k_old + 0.1 * q, atol=1e-6)


def test_moco2_queue_wraps():
    model = MoCoV2(build_backbone("resnet_small", 2, **TINY_RESNET), dim=4, hidden_dim=8, queue_size=10)
    keys = torch.arange(1, 13, dtype=torch.float32).repeat(4, 1).t()  # key i is filled with i
    model.enqueue(keys[:4])
    model.enqueue(keys[4:8])
    assert int(model.queue_ptr) == 8
    model.enqueue(keys[8:12])  # 8, 9 then wraps to 0, 1
    assert int(model.queue_ptr) == 2
    assert model.queue[:, 0].tolist() == [11, 12, 3, 4, 5, 6, 7, 8, 9, 10]
    big = 100 + torch.arange(13, dtype=torch.float32).repeat(4, 1).t()
    model.enqueue(big)  # larger than the queue: its last 10 keys, in ring order
    assert int(model.queue_ptr) == (2 + 13) % 10
    assert sorted(model.queue[:, 0].tolist()) == list(range(103, 113))
    assert model.queue[(2 + 12) % 10, 0] == 112  # newest key sits just before the pointer


def test_moco2_loss_enqueues_in_training_only():
    model = tiny("moco2")
    v1, v2 = views(n=3)
    model.train().loss(v1, v2)
    assert int(model.queue_ptr) == 3
    with torch.no_grad():
        model.eval().loss(v1, v2)
    assert int(model.queue_ptr) == 3
    split = build_ssl("moco2", "resnet_small", 14, TINY_RESNET, dim=16, hidden_dim=32,
                      queue_size=10, bn_splits=2, symmetric=True).train()
    loss, _ = split.loss(*views(n=4))
    loss.backward()
    assert torch.isfinite(loss) and int(split.queue_ptr) == 8


def test_moco3_momentum_schedule_and_defaults():
    assert cosine_momentum(0, 100) == pytest.approx(0.99)
    assert cosine_momentum(50, 100) == pytest.approx(0.995)
    assert cosine_momentum(100, 100) == pytest.approx(1.0)
    model = tiny("moco3")
    assert model.momentum_update(step=0, total_steps=100) == pytest.approx(0.99)
    assert isinstance(model, MoCoV3) and model.temperature == 0.2
    assert sum(isinstance(m, torch.nn.Linear) for m in model.projector) == 3
    res = build_ssl("moco3", "resnet_small", 14, TINY_RESNET, dim=16, hidden_dim=32)
    assert res.temperature == 1.0 and sum(isinstance(m, torch.nn.Linear) for m in res.projector) == 2


def test_mae_mask_ratio_and_shapes():
    model = build_ssl("mae", "vit_tiny", 13, {**TINY_VIT, "img_size": 80},
                      decoder_dim=16, decoder_depth=1, decoder_heads=2)
    assert isinstance(model, MAE) and model.mask_ratio == 0.7
    x = torch.randn(2, 13, 80, 80)  # 10 x 10 patches
    _, pred, mask = model(x, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 100, 8 * 8 * 13)
    assert mask.shape == (2, 100) and mask.sum(dim=1).tolist() == [70.0, 70.0]
    assert not torch.equal(mask[0], mask[1])  # each sample has its own mask
    _, _, again = model(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)
    # Other sizes than built for: 2 x 3 patches keep int(6 * 0.3) = 1.
    _, pred, mask = model(torch.randn(1, 13, 16, 24))
    assert pred.shape == (1, 6, 8 * 8 * 13) and mask.sum() == 5
    assert torch.equal(model.unpatchify(model.patchify(x), (10, 10)), x)


def test_mae_loss_uses_masked_patches_only():
    model = tiny("mae").eval()
    x = torch.randn(2, 14, 16, 16)
    grid = (2, 2)
    ids_keep, mask = model.random_masking(2, 4, x.device, generator=torch.Generator().manual_seed(3))
    assert (mask.gather(1, ids_keep) == 0).all() and mask.sum() == 2 * 3
    latent = model.backbone.forward_tokens(x, ids_keep)
    assert latent.shape == (2, 2, 32)  # class token + 1 visible patch
    assert model._decode(latent, ids_keep, grid).shape == (2, 4, 8 * 8 * 14)


def test_backbone_weights_transfer_to_fine_tuning():
    model = tiny("moco3")
    fresh = build_backbone("vit_tiny", 14, **TINY_VIT)
    fresh.load_state_dict(model.backbone.state_dict())
    x = torch.randn(1, 14, 16, 16)
    assert torch.allclose(fresh.eval()(x), model.backbone.eval()(x))
    assert model.spec["method"] == "moco3" and model.spec["backbone_kwargs"] == TINY_VIT


def test_build_ssl_errors():
    with pytest.raises(ValueError, match="known methods: moco2, moco3, mae"):
        build_ssl("simclr", "resnet_small", 14)
    with pytest.raises(ValueError, match="MAE needs a ViT"):
        build_ssl("mae", "resnet_small", 14)


@pytest.mark.parametrize("method", ["moco2", "moco3", "mae"])
def test_losses_stay_float32_under_bf16_autocast(method):
    model = tiny(method).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.loss(*views(n=4))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
