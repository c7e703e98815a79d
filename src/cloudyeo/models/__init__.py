"""Backbones (ResNet, ViT) and self-supervised pretraining methods, in plain ``torch.nn``."""

from cloudyeo.models.backbone import Backbone
from cloudyeo.models.registry import (
    build_backbone,
    count_parameters,
    list_backbones,
    register_backbone,
)
from cloudyeo.models.resnet import ResNet
from cloudyeo.models.ssl import (
    MAE,
    MoCoV2,
    MoCoV3,
    SSLMethod,
    build_ssl,
    cosine_momentum,
)
from cloudyeo.models.vit import VisionTransformer

__all__ = [
    "MAE", "Backbone", "MoCoV2", "MoCoV3", "ResNet", "SSLMethod", "VisionTransformer", "build_backbone",
    "build_ssl", "cosine_momentum", "count_parameters", "list_backbones", "register_backbone",
]
