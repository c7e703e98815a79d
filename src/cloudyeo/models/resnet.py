"""ResNet backbones in plain ``torch.nn`` for any number of input bands.

Two block types (He et al. 2016): the *basic* block (two 3x3 convolutions, ResNet-18/34) and the
*bottleneck* block (1x1 reduce, 3x3, 1x1 expand by 4, ResNet-50). The stride of a downsampling
bottleneck sits on its 3x3 convolution ("ResNet v1.5", the layout of the common ImageNet
weights). There is no classification layer: :meth:`ResNet.forward_features` returns globally
average-pooled features of size :attr:`ResNet.out_dim`; task heads live elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn

from cloudyeo.models.backbone import Backbone


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride here) -> 1x1 (expand x4) with a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(Backbone):
    """A ResNet trunk: stem, four stages, global average pooling.

    Args:
        block: ``"basic"`` or ``"bottleneck"``.
        layers: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        in_chans: input bands (14 for early-fused S1+S2, 12/13 for S2 only, 2 for S1...).
        width: multiplier on the stage widths 64, 128, 256, 512 (and the stem's 64).
        small_stem: a 3x3 stride-1 stem without max pooling, for small patches (e.g. 32-64 px)
            where the usual 7x7/2 conv + max pool would discard most of the resolution.
        zero_init_residual: start each block's last BatchNorm at gamma 0 so every residual
            branch begins as the identity (helps large-batch training).

    Any input size works (global pooling); the output stride is 32 (8 with ``small_stem``).
    """

    def __init__(
        self,
        block: str = "bottleneck",
        layers: tuple[int, ...] = (3, 4, 6, 3),
        in_chans: int = 3,
        width: float = 1.0,
        small_stem: bool = False,
        zero_init_residual: bool = True,
    ):
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {sorted(_BLOCKS)}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        block_cls = _BLOCKS[block]
        self.in_chans = in_chans
        stem_ch = max(8, round(64 * width))
        if small_stem:
            self.stem = nn.Sequential(
                _conv3x3(in_chans, stem_ch), nn.BatchNorm2d(stem_ch), nn.ReLU(inplace=True)
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, stem_ch, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        stages = []
        cin = stem_ch
        for i, n_blocks in enumerate(layers):
            stage_width = max(4, round(64 * width * 2**i))
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block_cls(cin, stage_width, stride))
                cin = stage_width * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.stage_dims = tuple(
            max(4, round(64 * width * 2**i)) * block_cls.expansion for i in range(len(layers))
        )
        self.out_dim = cin
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each stage (for dense heads): strides 4, 8, 16, 32 by default."""
        x = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, out_dim) globally average-pooled features."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def resnet50(in_chans: int = 3, **kw) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3), 2048-d features."""
    return ResNet("bottleneck", (3, 4, 6, 3), in_chans=in_chans, **kw)


def resnet18(in_chans: int = 3, **kw) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2), 512-d features."""
    return ResNet("basic", (2, 2, 2, 2), in_chans=in_chans, **kw)


def resnet_small(in_chans: int = 3, width: float = 0.25, **kw) -> ResNet:
    """ResNet-18 layout at a quarter of the width (128-d features, ~0.7M parameters): CPU demos."""
    return ResNet("basic", (2, 2, 2, 2), in_chans=in_chans, width=width, **kw)
