"""Fixed task weights: L = sum_t mu_t L_t (Sang & Cuong Eq. 3; all mu_t = 1 by default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mtl.losses.weighting.base import Weighting


class FixedWeighting(Weighting, name="fixed"):
    """Constant importance weights mu_t, held in a buffer."""

    def __init__(self, tasks: Sequence[str], weights: Mapping[str, float] | None = None) -> None:
        """
        Args:
            tasks: task names, in the run's order.
            weights: mu_t per task name; tasks not listed get 1.0.
        """
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = set(weights) - set(self.tasks)
        if unknown:
            raise ValueError(
                f"weights given for unknown task(s) {sorted(unknown)}; tasks: {self.tasks}"
            )
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"task weights must be non-negative, got {weights}")
        mu = torch.tensor([float(weights.get(t, 1.0)) for t in self.tasks])  # T
        self.register_buffer("mu", mu)

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        return (self.mu * loss).sum(), self.mu
