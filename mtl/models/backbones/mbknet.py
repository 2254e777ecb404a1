"""MBKNet: BKNet whose first-block features skip to the branches (Rohani et al. 2023, Config C).

Rohani, Farsi, Mohamadzadeh, "Deep Multi-task CNNs for Efficient Classification of Face
Attributes", IJE 2023, section 3.2: the first block's output (overall facial layout) is
concatenated with the last block's (details) before the task branches. The first block's
32 x 24 x 24 map is max-pooled to the last block's 3 x 3, adding 288 features to 2,304.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.models.backbones.bknet import BKNET_CHANNELS, BKNet


class MBKNet(BKNet):
    """BKNet trunk returning [pooled first block, last block], flattened and concatenated."""

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int = 48,
        channels: Sequence[Sequence[int]] = BKNET_CHANNELS,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(in_chans, input_size, channels, batch_norm)
        side = input_size // 2 ** len(channels)  # spatial side of the last block
        self.first_pool = nn.AdaptiveMaxPool2d(side)
        self.num_features += channels[0][-1] * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.blocks[0](x)  # B x C1 x H/2 x W/2
        last = self.blocks[1:](first)  # B x C_last x S x S
        skip = self.first_pool(first)  # B x C1 x S x S
        return torch.cat([skip.flatten(1), last.flatten(1)], dim=1)  # B x num_features
