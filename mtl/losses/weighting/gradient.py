"""Weightings that act on the gradients of the shared parameters: GradNorm and PCGrad.

Both return a surrogate total whose *value* is the plain weighted loss (so logs stay
comparable) and whose *gradient* is the method's: the correction term ``c - c.detach()`` is
zero in value and carries the extra gradient. They cost one extra backward pass per task
through the shared trunk on every training step (a task absent from the batch too: skipping
it would mean reading the mask on the host, a wait for the GPU); outside training they are a
plain sum.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import nn

from mtl.losses.weighting.base import CountsSteps, Weighting


def _zero_valued(term: torch.Tensor) -> torch.Tensor:
    """A term that adds its gradient but nothing to the value."""
    return term - term.detach()


def _trainable(shared: Sequence[nn.Parameter] | None, loss: torch.Tensor) -> bool:
    return bool(shared) and torch.is_grad_enabled() and loss.requires_grad


def _grad(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> list[torch.Tensor]:
    """d loss / d params, zeros where ``loss`` does not reach a parameter (or has no graph)."""
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


class GradNorm(Weighting, name="gradnorm"):
    """GradNorm (Chen et al. 2018): learn w_t so each task's gradient norm on the last shared
    layer tracks the mean norm times (relative inverse training rate)^alpha."""

    needs_shared_params = True
    captures_step = False  # gradients inside the step

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.alpha = alpha
        self.w = nn.Parameter(torch.ones(len(self.tasks)))  # T
        self.register_buffer("initial", torch.full((len(self.tasks),), float("nan")))

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        mask = present > 0  # T
        with torch.no_grad():  # renormalise: positive weights summing to T (as after each step)
            self.w.clamp_(min=1e-3).mul_(len(self.tasks) / self.w.sum())
        weight = self.w.detach().clone()
        total = (weight * loss).sum()
        if not _trainable(shared, total):
            return total, weight
        first = mask & torch.isnan(self.initial)
        self.initial = torch.where(first, loss.detach(), self.initial)
        layer = [p for p in shared if p.ndim > 1][-1]  # last shared weight matrix
        # Every task's gradient norm, an absent task's too (its loss is an exact zero with a
        # zero gradient): choosing tasks on the host would wait for the device.
        norms = torch.stack([_grad(loss[i], [layer])[0].norm() for i in range(len(self.tasks))])
        g = self.w * norms.detach()  # T, differentiable in w only
        count = mask.sum().clamp(min=1)
        rate = torch.where(mask, loss.detach() / self.initial.clamp(min=1e-12), 0)  # T
        mean_g, mean_rate = (g.detach() * mask).sum() / count, rate.sum() / count
        target = mean_g * (rate / mean_rate.clamp(min=1e-12)).pow(self.alpha)  # T
        grad_loss = torch.where(mask, (g - target.detach()).abs(), 0).sum()
        return total + _zero_valued(grad_loss), weight


class PCGrad(CountsSteps, Weighting, name="pcgrad"):
    """PCGrad (Yu et al. 2020): project each task's shared gradient off the others' where they
    conflict (negative dot product), in a random task order, then sum.

    The random order is drawn per (seed, step, task names), not per list position, so it does
    not depend on the order the run lists its tasks in. Every task is projected, an absent one
    too: its gradient is zero, so projecting it, or projecting off it, changes nothing, and no
    decision waits for the device (the projection coefficient is clamped, not tested)."""

    needs_shared_params = True
    captures_step = False  # gradients inside the step

    def __init__(self, tasks: Sequence[str], seed: int = 0) -> None:
        super().__init__(tasks)
        self.seed = seed
        self.init_steps()  # the order is drawn on the host from the step, without a read

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        total, weight = loss.sum(), torch.ones_like(loss)  # projection, not weights
        if not _trainable(shared, total):
            return total, weight
        params = list(shared)
        grads = torch.stack([torch.cat([g.reshape(-1) for g in _grad(loss[i], params)])
                             for i in range(len(self.tasks))])  # fmt: skip  # T x P
        projected = self._project(grads, self.tasks)  # T x P
        correction = projected.sum(0) - grads.sum(0)  # P
        pieces = zip(correction.split([p.numel() for p in params]), params, strict=True)
        surrogate = sum((c.view_as(p) * p).sum() for c, p in pieces)
        self.advance()
        return total + _zero_valued(surrogate), weight

    def _order(self, task: str, others: Sequence[str]) -> list[int]:
        """The seeded random order in which ``task`` is projected off ``others`` this step."""
        key = f"{self.seed}:{self._step}:{task}"
        return sorted(range(len(others)), key=lambda j: zlib.crc32(f"{key}:{others[j]}".encode()))

    def _project(self, grads: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
        """K x P gradients of tasks ``names`` -> K x P projected ones."""
        out = grads.clone()
        squares = grads.square().sum(1).clamp(min=1e-20)  # K
        for i in range(len(grads)):
            for j in self._order(names[i], names):
                if j == i:
                    continue
                conflict = (out[i] @ grads[j]).clamp(max=0)  # 0 where they do not conflict
                out[i] = out[i] - conflict / squares[j] * grads[j]
        return out
