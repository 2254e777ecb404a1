"""The backbone interface: a trunk that maps images to a flat feature vector."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Shared trunk of a multi-task network.

    Subclasses set ``num_features`` (length of the flat feature vector ``forward`` returns),
    ``in_chans`` and ``input_size`` (the square input side they are built for).
    ``default_init_std`` is the N(0, std) initialisation the backbone's paper prescribes for
    the whole network, or None to keep the layers' own initialisation.
    """

    default_init_std: float | None = None
    num_features: int
    in_chans: int
    input_size: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x C x H x W -> B x num_features
        raise NotImplementedError
