"""Backbone registry: shapes for any band count and image size, parameter counts."""

from __future__ import annotations

import pytest
import torch

from cloudyeo.models import (
    VisionTransformer,
    build_backbone,
    count_parameters,
    list_backbones,
)

# Tiny inputs per backbone: a non-square size and one unlike the size the model was built for.
SIZES = {
    "resnet18": (32, 48),
    "resnet50": (32, 32),
    "resnet_small": (40, 24),
    "vit_s16": (32, 48),  # built for 224: position embeddings are recomputed for a 2x3 grid
    "vit_tiny": (24, 40),  # patch 8, built for 64
}
OUT_DIM = {"resnet18": 512, "resnet50": 2048, "resnet_small": 128, "vit_s16": 384, "vit_tiny": 192}


def test_registry_lists_all():
    assert list_backbones() == sorted(SIZES)


# Every backbone with 14 (S1 + S2 L2A), 2 (S1) and 13 (S2 L1C) bands; the two large ones
# skip 13 to keep the suite fast on CPU.
CASES = [(n, c) for n in sorted(SIZES) for c in (14, 2, 13) if not (c == 13 and n in ("resnet50", "vit_s16"))]


@pytest.mark.parametrize(("name", "in_chans"), CASES)
def test_forward_features_shapes(name, in_chans):
    torch.manual_seed(0)
    net = build_backbone(name, in_chans).eval()
    h, w = SIZES[name]
    with torch.no_grad():
        feats = net.forward_features(torch.randn(2, in_chans, h, w))
    assert net.out_dim == OUT_DIM[name]
    assert feats.shape == (2, net.out_dim)
    assert torch.isfinite(feats).all()
    assert net.spec == {"name": name, "in_chans": in_chans}


def test_parameter_counts():
    # ResNet-50 without its 1000-class fc: 25,557,032 - (2048 * 1000 + 1000).
    assert count_parameters(build_backbone("resnet50", 3)) == 23_508_032
    assert count_parameters(build_backbone("resnet18", 3)) == 11_176_512
    n_vit = count_parameters(build_backbone("vit_s16", 3))
    assert abs(n_vit - 21.7e6) < 0.1e6, n_vit
    assert n_vit == 21_665_280  # patch embedding + cls + 196 positions + 12 blocks + norm
    # Band count only changes the first layer.
    assert count_parameters(build_backbone("resnet50", 14)) == 23_508_032 + 11 * 64 * 7 * 7
    assert count_parameters(build_backbone("vit_s16", 14)) == n_vit + 11 * 384 * 16 * 16


def test_unknown_backbone_lists_known_names():
    with pytest.raises(ValueError, match="resnet50.*vit_s16|known backbones"):
        build_backbone("resnet51", 14)


def test_vit_tokens_and_masking():
    net = build_backbone("vit_tiny", 14, img_size=32, embed_dim=32, depth=1, num_heads=2).eval()
    x = torch.randn(3, 14, 32, 48)
    tokens = net.forward_tokens(x)
    assert tokens.shape == (3, 1 + 4 * 6, 32)
    keep = torch.tensor([[0, 5, 7], [1, 2, 3], [20, 21, 23]])
    assert net.forward_tokens(x, keep).shape == (3, 4, 32)
    assert net.forward_grid(x).shape == (3, 32, 4, 6)
    with pytest.raises(ValueError, match="multiple of patch size"):
        net.forward_features(torch.randn(1, 14, 30, 32))


def test_vit_position_embeddings_other_sizes():
    small = VisionTransformer(in_chans=2, img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    large = VisionTransformer(in_chans=2, img_size=64, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    # Fixed sine-cosine embeddings are recomputed exactly for any grid.
    assert torch.allclose(small.position_embedding(8, 8), large.pos_embed)
    assert not small.pos_embed.requires_grad
    # Learned embeddings are interpolated; the built size uses the parameter itself.
    learned = VisionTransformer(in_chans=2, img_size=32, patch_size=8, embed_dim=32, depth=1,
                                num_heads=2, pos_embed="learned")
    assert learned.pos_embed.requires_grad
    assert learned.position_embedding(4, 4) is learned.pos_embed
    assert learned.position_embedding(6, 3).shape == (1, 18, 32)
    assert learned.forward_features(torch.randn(1, 2, 48, 24)).shape == (1, 32)


def test_resnet_stages_and_small_stem():
    net = build_backbone("resnet_small", 14, width=0.125).eval()
    maps = net.forward_stages(torch.randn(1, 14, 64, 64))
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]
    assert [m.shape[1] for m in maps] == list(net.stage_dims)
    small = build_backbone("resnet_small", 14, width=0.125, small_stem=True).eval()
    assert [m.shape[-1] for m in small.forward_stages(torch.randn(1, 14, 32, 32))] == [32, 16, 8, 4]
