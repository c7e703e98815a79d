"""A small U-Net for semantic segmentation (land cover from optical images).

Used twice: on Planet-CR for *semantic recovery* (trained on clear optical images, then applied to
clear, cloudy and cloud-removed images; labels are at 10 m while the optical image is at 3 m, so
:meth:`SegUNet.logits_at` pools the logits to the label grid by area averaging), and as the
classifier of the HCR-then-classify ensemble on the time series.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cloudyeo.models.cloud_removal.layers import UNetDecoder, UNetEncoder, pad_to_multiple


class SegUNet(nn.Module):
    def __init__(self, in_chans: int = 4, n_classes: int = 6, width: int = 32, depth: int = 3):
        super().__init__()
        self.depth = depth
        self.encoder = UNetEncoder(in_chans, width, depth)
        self.decoder = UNetDecoder(self.encoder.widths)
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp, (h, w) = pad_to_multiple(x, 2**self.depth)
        return self.head(self.decoder(self.encoder(xp)))[..., :h, :w]

    def logits_at(self, x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        """Logits resampled to ``size`` (the label grid) by area averaging; as is when None."""
        logits = self(x)
        if size is None or tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return F.interpolate(logits, size=size, mode="area")
