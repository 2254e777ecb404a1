"""Baselines of Kang et al.: LeNet, AlexNet, and their shallow shared CNN with LRN.

Each is the convolutional trunk; the fully connected layers are the per-task branches (their
default head), so every one works single- or multi-task. The trunks adapt to any input size
(AlexNet's pools use ``ceil_mode`` and an adaptive pool, so 48x48 faces work too).
"""

from __future__ import annotations

import torch
from torch import nn

from mtl.models.backbones.base import Backbone
from mtl.models.heads import HeadConfig


def _flat_features(trunk: nn.Module, in_chans: int, size: int) -> int:
    with torch.no_grad():
        return trunk(torch.zeros(1, in_chans, size, size)).flatten(1).shape[1]


class _ConvTrunk(Backbone):
    """A conv trunk whose flattened output feeds the branches."""

    def __init__(self, trunk: nn.Module, in_chans: int, input_size: int) -> None:
        super().__init__()
        self.trunk, self.in_chans, self.input_size = trunk, in_chans, input_size
        self.num_features = _flat_features(trunk, in_chans, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).flatten(1)  # B x num_features


class LeNet(_ConvTrunk, name="lenet"):
    """LeNet-5 as in Kang et al.: conv5 6 -> pool -> conv5 16 -> pool -> conv5 120; FC 84 -> C."""

    default_head = HeadConfig(hidden=[84], batch_norm=False, dropout=0.0)

    def __init__(self, in_chans: int = 1, input_size: int = 128) -> None:
        trunk = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 120, 5), nn.ReLU(inplace=True),
        )  # fmt: skip
        super().__init__(trunk, in_chans, input_size)


class AlexNet(_ConvTrunk, name="alexnet"):
    """AlexNet (Krizhevsky et al. 2012, one-GPU layout); FC 4096 -> FC 4096 -> C, dropout 0.5."""

    default_head = HeadConfig(hidden=[4096, 4096], batch_norm=False, dropout=0.5)

    def __init__(self, in_chans: int = 1, input_size: int = 224) -> None:
        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        trunk = nn.Sequential(
            nn.Conv2d(in_chans, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), pool(),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), pool(),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), pool(),
            nn.AdaptiveAvgPool2d(6),
        )  # fmt: skip
        super().__init__(trunk, in_chans, input_size)


class KangCNN(_ConvTrunk, name="kang"):
    """Kang et al.'s shared CNN: conv7 s2 32, conv5 64, conv3 64, each ReLU -> pool -> LRN;
    per task FC 512 -> FC 100 -> C with dropout (64x8x8 features at 128x128)."""

    default_head = HeadConfig(hidden=[512, 100], batch_norm=False, dropout=0.5)

    def __init__(self, in_chans: int = 1, input_size: int = 128) -> None:
        def block(c_in: int, c_out: int, k: int, stride: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
            ]

        trunk = nn.Sequential(
            *block(in_chans, 32, 7, 2), *block(32, 64, 5, 1), *block(64, 64, 3, 1)
        )
        super().__init__(trunk, in_chans, input_size)
