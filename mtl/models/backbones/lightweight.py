"""A lightweight multi-task CNN with depthwise-separable convolutions (after Rajababu et al.).

The paper describes a real-time age + gender network built from depthwise-separable
convolutions with about a fifth of the parameters of earlier models, but gives no layer table;
this is a MobileNet-v1-style trunk sized for 48x48 faces (about 0.27 M shared parameters,
against BKNet's 2.4 M trunk) with a small FC branch per task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.models.backbones.base import Backbone
from mtl.models.heads import HeadConfig

LIGHTWEIGHT_PLAN: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
)
"""(output channels, stride) of each depthwise-separable block after the 32-channel stem."""


def separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (one filter per channel) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )  # fmt: skip


class LightweightCNN(Backbone, name="lightweight"):
    """Stem conv3 32 -> depthwise-separable blocks -> global average pool."""

    default_head = HeadConfig(hidden=[128], batch_norm=True, dropout=0.3)

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int = 48,
        plan: Sequence[tuple[int, int]] = LIGHTWEIGHT_PLAN,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        ]
        c = 32
        for c_out, stride in plan:
            layers.append(separable(c, c_out, stride))
            c = c_out
        self.trunk = nn.Sequential(*layers)
        self.in_chans, self.input_size, self.num_features = in_chans, input_size, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean(dim=(2, 3))  # B x C x h x w -> B x num_features
