"""MBKNet: BKNet whose first-block features skip to the branches (Rohani et al. 2023, Config C).

Rohani, Farsi, Mohamadzadeh, "Deep Multi-task CNNs for Efficient Classification of Face
Attributes", IJE 2023, section 3.2: the first block's output (overall facial layout) is
concatenated with the last block's (details) before the task branches. The first block's
32 x 24 x 24 map is max-pooled to the last block's 3 x 3, adding 288 features to 2,304.
"""

from __future__ import annotations

import torch
from torch import nn

from mtl.models.backbones.bknet import BKNet


class MBKNet(BKNet, name="mbknet"):
    """BKNet trunk returning [pooled first block, last block], flattened and concatenated."""

    def __init__(self, **kwargs) -> None:
        """Takes :class:`BKNet`'s options (in_chans, input_size, channels, batch_norm)."""
        super().__init__(**kwargs)
        side = self.input_size // 2 ** len(self.channels)  # spatial side of the last block
        self.first_pool = nn.AdaptiveMaxPool2d(side)
        self.num_features += self.channels[0][-1] * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.blocks[0](x)  # B x C1 x H/2 x W/2
        last = self.blocks[1:](first)  # B x C_last x S x S
        skip = self.first_pool(first)  # B x C1 x S x S
        return torch.cat([skip.flatten(1), last.flatten(1)], dim=1)  # B x num_features
