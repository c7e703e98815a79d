"""The interface every registry backbone has (see :mod:`cloudyeo.models.registry`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Backbone(nn.Module):
    """An encoder: ``forward_features(x)`` maps (N, C, H, W) inputs to (N, ``out_dim``) features.

    ``spec`` holds the arguments :func:`~cloudyeo.models.registry.build_backbone` built it with.
    """

    out_dim: int
    spec: dict[str, Any]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
