"""The backbone interface: a trunk that maps images to a flat feature vector."""

from __future__ import annotations

import torch
from torch import nn

from mtl.models.heads import HeadConfig


class Backbone(nn.Module):
    """Shared trunk of a multi-task network.

    Subclasses set ``num_features`` (length of the flat feature vector ``forward`` returns),
    ``in_chans`` and ``input_size`` (the square input side they are built for).
    ``default_init_std`` is the N(0, std) initialisation the backbone's paper prescribes for
    the whole network, or None to keep the layers' own initialisation. ``default_head`` is the
    branch shape its paper uses (None: the Sang & Cuong FC 256 -> FC 256 branch).
    Designs whose tasks also get private layers on top of the shared trunk (ResNet-v2 ver2)
    return a fresh module per task from :meth:`task_trunk`.
    """

    default_init_std: float | None = None
    default_head: HeadConfig | None = None
    num_features: int
    in_chans: int
    input_size: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x C x H x W -> B x num_features
        raise NotImplementedError

    def task_trunk(self) -> nn.Module | None:
        """A new per-task module between the shared trunk and a task's branch, or None."""
        return None
