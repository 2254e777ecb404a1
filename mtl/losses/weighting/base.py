"""The weighting interface: combine per-task losses into one scalar."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn


class Weighting(nn.Module):
    """Combines per-task losses; all state lives in parameters/buffers (so it checkpoints).

    ``forward`` takes ``{task: scalar loss}`` for every task of the run (absent tasks give an
    exact zero loss), optionally ``present`` (T bool, tasks labelled in the batch, in task
    order) so learned terms of absent tasks stay still, and, for weightings that act on
    gradients (``needs_shared_params``), the shared parameters. It returns the total whose
    gradient trains the network (and the weighting's own parameters). ``weights`` reports the
    effective weight of each task at the last call, for logging.
    """

    needs_shared_params: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {tasks}")
        self.tasks = list(tasks)
        self.register_buffer("last_weights", torch.ones(len(self.tasks)), persistent=False)

    def _stack(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = set(self.tasks) - set(losses)
        if missing:
            raise KeyError(f"losses missing for task(s) {sorted(missing)}")
        return torch.stack([losses[t] for t in self.tasks])  # T

    def _present(self, present: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """T float mask of tasks labelled in the batch (all ones when not given)."""
        if present is None:
            return torch.ones_like(like)
        return present.to(like.dtype)

    def forward(
        self,
        losses: Mapping[str, torch.Tensor],
        present: torch.Tensor | None = None,
        shared: Sequence[nn.Parameter] | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        """Effective per-task weights of the last call (detached scalars)."""
        return {t: self.last_weights[i].detach() for i, t in enumerate(self.tasks)}

    def epoch_end(self) -> None:
        """Called at the end of every training epoch (for weightings with epoch state)."""


WeightingCallable = Callable[[Sequence[str]], Weighting]
"""What configs give: a Weighting class (plus its init args) to be built with the task names."""
