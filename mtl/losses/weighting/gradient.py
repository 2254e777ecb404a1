"""Weightings that act on the gradients of the shared parameters: GradNorm and PCGrad.

Both return a surrogate total whose *value* is the plain weighted loss (so logs stay
comparable) and whose *gradient* is the method's: the correction term ``c - c.detach()`` is
zero in value and carries the extra gradient. They cost one extra backward pass per task
through the shared trunk on every training step; outside training they are a plain sum.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.weighting.base import Weighting


def _zero_valued(term: torch.Tensor) -> torch.Tensor:
    """A term that adds its gradient but nothing to the value."""
    return term - term.detach()


def _trainable(shared: Sequence[nn.Parameter] | None, loss: torch.Tensor) -> bool:
    return bool(shared) and torch.is_grad_enabled() and loss.requires_grad


class GradNorm(Weighting, name="gradnorm"):
    """GradNorm (Chen et al. 2018): learn w_t so each task's gradient norm on the last shared
    layer tracks the mean norm times (relative inverse training rate)^alpha."""

    needs_shared_params = True

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.alpha = alpha
        self.w = nn.Parameter(torch.ones(len(self.tasks)))  # T
        self.register_buffer("initial", torch.full((len(self.tasks),), float("nan")))

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        mask = present.bool()
        with torch.no_grad():  # renormalise: positive weights summing to T (as after each step)
            self.w.clamp_(min=1e-3).mul_(len(self.tasks) / self.w.sum())
        weight = self.w.detach().clone()
        total = (weight * loss).sum()
        if not _trainable(shared, total):
            return total, weight
        first = mask & torch.isnan(self.initial)
        self.initial = torch.where(first, loss.detach(), self.initial)
        layer = [p for p in shared if p.ndim > 1][-1]  # last shared weight matrix
        norms = torch.stack([
            torch.autograd.grad(loss[i], layer, retain_graph=True, allow_unused=True)[0].norm()
            if mask[i] and loss[i].requires_grad else loss.new_zeros(())
            for i in range(len(self.tasks))
        ])  # fmt: skip
        g = self.w * norms.detach()  # T, differentiable in w only
        rate = torch.where(mask, loss.detach() / self.initial.clamp(min=1e-12), 0)
        target = g.detach()[mask].mean() * (rate / rate[mask].mean()).pow(self.alpha)
        grad_loss = torch.where(mask, (g - target.detach()).abs(), 0).sum()
        return total + _zero_valued(grad_loss), weight


class PCGrad(Weighting, name="pcgrad"):
    """PCGrad (Yu et al. 2020): project each task's shared gradient off the others' where they
    conflict (negative dot product), in a random task order, then sum.

    The random order is drawn per (seed, step, task names), not per list position, so it does
    not depend on the order the run lists its tasks in."""

    needs_shared_params = True

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed = seed
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        total, weight = loss.sum(), torch.ones_like(loss)  # projection, not weights
        if not _trainable(shared, total):
            return total, weight
        mask = present.bool().tolist()
        params = list(shared)
        active = [i for i in range(len(self.tasks)) if mask[i]]
        grads = [self._flat_grad(loss[i], params) for i in active]
        if len(grads) < 2:
            return total, weight
        projected = self._project(torch.stack(grads), [self.tasks[i] for i in active])  # K x P
        correction = projected.sum(0) - torch.stack(grads).sum(0)  # P
        pieces = zip(self._split(correction, params), params, strict=True)
        surrogate = sum((c.view_as(p) * p).sum() for c, p in pieces)
        self.step += 1
        return total + _zero_valued(surrogate), weight

    @staticmethod
    def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
        if not loss.requires_grad:
            return torch.cat([p.new_zeros(p.numel()) for p in params])
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat([
            (g if g is not None else p.new_zeros(p.shape)).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ])  # fmt: skip

    @staticmethod
    def _split(flat: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
        return list(flat.split([p.numel() for p in params]))

    def _order(self, task: str, others: Sequence[str]) -> list[int]:
        """The seeded random order in which ``task`` is projected off ``others`` this step."""
        key = f"{self.seed}:{int(self.step)}:{task}"
        return sorted(range(len(others)), key=lambda j: zlib.crc32(f"{key}:{others[j]}".encode()))

    def _project(self, grads: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """K x P gradients of tasks ``names`` -> K x P projected ones."""
        out = grads.clone()
        for i in range(len(grads)):
            for j in self._order(names[i], names):
                if j == i:
                    continue
                dot = out[i] @ grads[j]
                if dot < 0:
                    out[i] -= dot / grads[j].square().sum().clamp(min=1e-20) * grads[j]
        return out
