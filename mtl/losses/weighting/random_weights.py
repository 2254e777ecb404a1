"""Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random Weighting", TMLR 2022;
LibMTL's RLW): every training step weights the tasks by ``softmax(z)``, z ~ N(0, I), drawn over
the tasks labelled in the batch only (an absent task gets weight 0 and takes no share).

The draw is seeded by (``seed``, step) and given to the tasks by name, on the host and without
reading the device: every DDP rank draws the same weights, so a DDP run equals one device.
Outside training the weights are their expectation, 1/K for each of the K present tasks, so
validation losses are not random.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.weighting.base import CountsSteps, Weighting


class RandomLossWeighting(CountsSteps, Weighting, name="rlw"):
    """Weights drawn afresh every step: softmax of a standard normal over the present tasks."""

    captures_step = False  # a host generator per step: compile="step" keeps the step eager

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed = seed
        # Draws go to tasks in name order: the weights follow a task, not its list position.
        self._by_name = [sorted(self.tasks).index(t) for t in self.tasks]
        self.init_steps()  # the draw is seeded on the host, without a device read

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        mask = present > 0  # T
        if self.training and torch.is_grad_enabled():
            g = torch.Generator().manual_seed(zlib.crc32(f"rlw:{self.seed}:{self._step}".encode()))
            z = torch.randn(len(self.tasks), generator=g)[self._by_name]  # T, in task order
            z = z.to(loss.device, non_blocking=True)
            weight = torch.softmax(torch.where(mask, z, -torch.inf), dim=0)  # T
            self.advance()
        else:
            weight = mask.to(loss.dtype) / mask.sum().clamp(min=1)
        weight = torch.where(mask, weight, 0.0)  # no present task: zeros, not NaN
        return (weight * loss).sum(), weight
