"""Backbones by name: one place that maps a config string to a constructor.

>>> net = build_backbone("resnet50", in_chans=14)
>>> net.out_dim
2048

Every backbone exposes ``out_dim`` and ``forward_features(x) -> (N, out_dim)``; ViTs also
``forward_tokens``. The arguments a backbone was built with are kept on it as ``.spec`` (a plain
dict) so a checkpoint can record how to rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cloudyeo.models.backbone import Backbone
from cloudyeo.models.resnet import ResNet, resnet18, resnet50, resnet_small
from cloudyeo.models.vit import VisionTransformer, vit_s16, vit_tiny

_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_backbone(name: str, factory: Callable[..., Backbone]) -> None:
    """Register ``factory(in_chans=..., **kw) -> module`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"backbone {name!r} is already registered")
    _REGISTRY[name] = factory


_BUILTIN: dict[str, Callable[..., Backbone]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "resnet_small": resnet_small,
    "vit_s16": vit_s16,
    "vit_tiny": vit_tiny,
}
for _name, _factory in _BUILTIN.items():
    register_backbone(_name, _factory)


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def build_backbone(name: str, in_chans: int, **kw) -> Backbone:
    """Build the backbone ``name`` for ``in_chans`` input bands; ``kw`` go to its constructor
    (e.g. ``img_size``/``patch_size`` for ViTs, ``width``/``small_stem`` for ResNets)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(list_backbones())}")
    model = _REGISTRY[name](in_chans=in_chans, **kw)
    model.spec = {"name": name, "in_chans": in_chans, **kw}
    return model


def is_vit(model: nn.Module) -> bool:
    return isinstance(model, VisionTransformer)


def is_convnet(model: nn.Module) -> bool:
    return isinstance(model, ResNet)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
