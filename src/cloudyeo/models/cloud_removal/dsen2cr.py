"""DSen2-CR-style residual network and the cloud-adaptive regularised loss (CARL).

Network (Meraner et al. 2020, written from the paper's description): the cloudy optical image and
the SAR image are concatenated, a 3x3 convolution lifts them to ``width`` features, ``blocks``
residual blocks (conv-ReLU-conv, output scaled by ``res_scale`` = 0.1 before the shortcut) follow,
a 3x3 convolution maps back to the optical bands, and a long skip adds the cloudy optical input:
the network predicts a correction of the cloudy image. The paper uses ``width`` 256 and 16 blocks;
the demo default is much smaller (config ``cloud_removal.methods.dsen2cr``). ``use_sar=False``
gives the optical-only variant.

CARL (cloud-adaptive regularised loss)::

    L = mean| m * (P - T) + (1 - m) * (P - I) |  +  lambda * mean| P - T |

with ``P`` prediction, ``T`` cloud-free target, ``I`` cloudy input and ``m`` the cloud(-shadow)
mask of the input (1 = cloudy): inside clouds the prediction is pulled to the target, outside to
the input it should leave untouched; the second term (``lambda`` = 1) regularises towards the
target everywhere. Means run over bands and (valid) pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from cloudyeo.models.cloud_removal.layers import ResBlock, zero_init_


class DSen2CR(nn.Module):
    def __init__(self, optical_bands: int = 13, sar_bands: int = 2, width: int = 256,
                 blocks: int = 16, res_scale: float = 0.1, use_sar: bool = True):
        super().__init__()
        self.use_sar = bool(use_sar)
        cin = optical_bands + (sar_bands if use_sar else 0)
        self.head = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResBlock(width, res_scale) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, optical_bands, 3, padding=1)
        zero_init_(self.tail)  # start as the identity (the cloudy input)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor | None = None) -> torch.Tensor:
        x = optical
        if self.use_sar:
            if sar is None:
                raise ValueError("this DSen2-CR was built with use_sar=True: pass the SAR image")
            x = torch.cat([optical, sar], dim=1)
        return optical + self.tail(self.body(self.head(x)))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return values.mean()
    w = valid.to(values.dtype).unsqueeze(1).expand_as(values)
    return (values * w).sum() / w.sum().clamp_min(1.0)


def carl_loss(pred: torch.Tensor, cloudy: torch.Tensor, target: torch.Tensor, cloud_mask: torch.Tensor,
              lam: float = 1.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """CARL of ``(N, C, H, W)`` tensors; ``cloud_mask`` and ``valid`` ``(N, H, W)`` (truthy =
    cloudy / scored)."""
    m = cloud_mask.to(pred.dtype).unsqueeze(1)
    adaptive = (m * (pred - target) + (1.0 - m) * (pred - cloudy)).abs()
    return _masked_mean(adaptive, valid) + lam * _masked_mean((pred - target).abs(), valid)
