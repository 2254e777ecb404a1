"""Dynamic Weight Average (Liu, Johns & Davison 2019).

w_t = T * softmax_t(r_t / tau), with r_t = Lbar_t(k-1) / Lbar_t(k-2) the ratio of the task's
mean training loss over the last two epochs; w_t = 1 for the first two epochs. Epoch means
count only batches where the task was labelled, and are all-reduced under DDP so every rank
uses the same weights, computed from every rank's batches.

The running sums of an epoch are rank-local and must stay so until the all-reduce: they are not
buffers (DDP overwrites every buffer with rank 0's copy before each forward) but plain tensors,
saved in checkpoints through ``get_extra_state``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.distributed import sum_over_ranks
from mtl.losses.weighting.base import Weighting


class DynamicWeightAverage(Weighting, name="dwa"):
    """Weights from how fast each task's loss fell over the last two epochs."""

    def __init__(self, tasks: Sequence[str], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        n = len(self.tasks)
        self.epoch_sum, self.epoch_count = torch.zeros(n), torch.zeros(n)  # T each, rank-local
        self.register_buffer("history", torch.ones(2, n))  # epoch means k-2, k-1
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("weight", torch.ones(n))

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        if self.training:
            if self.epoch_sum.device != loss.device:  # plain tensors: .to() does not move them
                self.epoch_sum = self.epoch_sum.to(loss.device)
                self.epoch_count = self.epoch_count.to(loss.device)
            self.epoch_sum += loss.detach() * present
            self.epoch_count += present.detach()
        return (self.weight * loss).sum(), self.weight

    def epoch_end(self) -> None:
        device = self.history.device
        total = sum_over_ranks(self.epoch_sum.to(device, copy=True))  # T, every rank's
        count = sum_over_ranks(self.epoch_count.to(device, copy=True))
        mean = torch.where(count > 0, total / count.clamp(min=1), self.history[1])  # T
        self.history = torch.stack([self.history[1], mean])
        self.epochs_seen += 1
        self.epoch_sum.zero_()
        self.epoch_count.zero_()
        if self.epochs_seen >= 2:
            ratio = self.history[1] / self.history[0].clamp(min=1e-12)  # T
            self.weight = len(self.tasks) * torch.softmax(ratio / self.temperature, dim=0)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {"epoch_sum": self.epoch_sum, "epoch_count": self.epoch_count}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.epoch_sum, self.epoch_count = state["epoch_sum"], state["epoch_count"]
