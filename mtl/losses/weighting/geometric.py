"""Geometric Loss Strategy (Chennupati et al., "MultiNet++", CVPRW 2019; LibMTL's GLS): the
objective is the geometric mean of the present tasks' losses, ``(prod_t L_t)^(1/K)``, which is
invariant to each loss's scale.

Its gradient is ``sum_t G / (K L_t) * grad L_t`` (G the geometric mean): a weighted sum with
weights from the losses themselves. The weights are computed from the global batch's losses
(each rank's sum, all-reduced every step on every rank) and applied to the rank's own losses, so
a DDP run equals one device. The total's value is G; absent tasks neither enter the mean nor
get a weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.distributed import sum_over_ranks, world_size
from mtl.losses.weighting.base import Weighting


class GeometricLossStrategy(Weighting, name="gls"):
    """The geometric mean of the present tasks' losses."""

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        mask = present > 0  # T
        k = mask.sum().clamp(min=1)
        global_loss = sum_over_ranks(loss.detach()) / world_size()  # T, the global batch's
        log = torch.where(mask, global_loss.clamp(min=1e-12).log(), 0.0)  # T
        mean = (log.sum() / k).exp()  # G
        weight = torch.where(mask, mean / (k * global_loss.clamp(min=1e-12)), 0.0)  # T
        total = torch.where(mask.any(), mean, 0.0) + (weight * (loss - loss.detach())).sum()
        return total, weight
