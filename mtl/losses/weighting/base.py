"""The weighting interface: combine per-task losses into one scalar."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn


class Weighting(nn.Module):
    """Combines per-task losses; all state lives in parameters/buffers (so it checkpoints).

    ``forward`` takes ``{task: scalar loss}`` for every task of the run (absent tasks give an
    exact zero loss) and returns the total. ``weights`` reports the effective weight of each
    task at the last call, for logging.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {tasks}")
        self.tasks = list(tasks)

    def _stack(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = set(self.tasks) - set(losses)
        if missing:
            raise KeyError(f"losses missing for task(s) {sorted(missing)}")
        return torch.stack([losses[t] for t in self.tasks])  # T

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        """Effective per-task weights of the last call (detached scalars)."""
        raise NotImplementedError


WeightingCallable = Callable[[Sequence[str]], Weighting]
"""What configs give: a Weighting class (plus its init args) to be built with the task names."""
