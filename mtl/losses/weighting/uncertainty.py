"""Uncertainty weighting (Kendall, Gal & Cipolla 2018): learn each task's log-variance.

With s_t = log sigma_t^2: L = sum_t f_t exp(-s_t) L_t + s_t / 2, where f_t is 1 for
classification and 1/2 for regression tasks (the kind comes from the task registry). The s_t
are never weight-decayed (the module puts every weighting parameter in the no-decay group). The
total may go negative; that is expected. Absent tasks (no label in the batch) add nothing, so
their s_t do not drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.weighting.base import Weighting
from mtl.tasks import task_kind


class UncertaintyWeighting(Weighting, name="uncertainty"):
    """Learned homoscedastic-uncertainty weights exp(-s_t)."""

    def __init__(
        self,
        tasks: Sequence[str],
        init: float = 0.0,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        """
        Args:
            tasks: registered task names, in the run's order.
            init: initial s_t (0: weight 1).
            clamp: optional (min, max) bounds on s_t, against runaway weights.
        """
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))  # T
        factor = [task_kind(t).uncertainty_scale for t in self.tasks]
        self.register_buffer("factor", torch.tensor(factor))
        self.clamp = clamp

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        s = self.log_vars if self.clamp is None else self.log_vars.clamp(*self.clamp)
        weight = self.factor * torch.exp(-s)  # T
        return (present * (weight * loss + s / 2)).sum(), weight
