"""BKNet trunk, the shared network of Multi-task BKNet.

Sang & Cuong, "Effective Deep Multi-source Multi-task Learning Frameworks for Smile Detection,
Emotion Recognition and Gender Classification", Informatica 2018 (section 3.2), and the
plain (no batch norm) variant of Rohani et al. 2023, Table 3.

Four VGG-style blocks of 3x3 stride-1 "same" convolutions (32,32 | 64,64 | 128,128 |
256,256,256), each followed by 2x2/2 max-pooling: 48x48x1 -> 3x3x256 = 2,304 features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.models.backbones.base import Backbone

BKNET_CHANNELS: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128), (256, 256, 256))


class ConvBlock(nn.Sequential):
    """``len(channels)`` x (conv 3x3 -> [BN] -> ReLU), then max-pool 2x2/2."""

    def __init__(self, in_chans: int, channels: Sequence[int], batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for out_chans in channels:
            layers.append(nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_chans))
            layers.append(nn.ReLU(inplace=True))
            in_chans = out_chans
        layers.append(nn.MaxPool2d(2, 2))
        super().__init__(*layers)


class BKNet(Backbone, name="bknet"):
    """BKNet convolutional trunk; ``forward`` returns the flattened last block."""

    default_init_std = 0.01  # Sang & Cuong: all weights N(0, 0.01)
    # mtl bench train, framework: 1.14x on 2 CPU cores, 1.42x on an H100 (docs: guide/speed.md);
    # MBKNet inherits it: the same convolutions
    channels_last_default = True

    def __init__(
        self,
        in_chans: int = 1,
        input_size: int = 48,
        channels: Sequence[Sequence[int]] = BKNET_CHANNELS,
        batch_norm: bool = True,
    ) -> None:
        """
        Args:
            in_chans: input channels (1 for the papers' grayscale faces).
            input_size: side of the square input; must be divisible by 2 ** len(channels).
            channels: output channels of each convolution, grouped by block.
            batch_norm: batch norm after every convolution (Sang & Cuong) or none (Rohani).
        """
        super().__init__()
        factor = 2 ** len(channels)
        if input_size % factor:
            raise ValueError(f"input_size {input_size} is not divisible by {factor}")
        self.in_chans, self.input_size = in_chans, input_size
        self.channels = [list(c) for c in channels]
        blocks, prev = [], in_chans
        for block_channels in channels:
            blocks.append(ConvBlock(prev, block_channels, batch_norm))
            prev = block_channels[-1]
        self.blocks = nn.Sequential(*blocks)
        self.num_features = prev * (input_size // factor) ** 2

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)  # B x C_last x S x S, S = input_size / 2**blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).flatten(1)  # B x num_features
