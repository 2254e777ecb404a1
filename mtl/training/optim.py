"""Optimiser and learning-rate schedule defaults of the papers, selectable from config.

Sang & Cuong (Multi-task BKNet): SGD, momentum 0.9, L2 weight decay lambda = 0.01 on the
weights, lr = init_lr * decay_rate ** (step / decay_step) with 0.01, 0.8, 10,000. The paper
writes the penalty as lambda * ||W||^2; like the TensorFlow ``l2_loss`` it was built with, we
apply it as SGD weight decay (gradient lambda * W).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler


class MomentumSGD(torch.optim.SGD):
    """``torch.optim.SGD`` with the Multi-task BKNet defaults (lr 0.01, momentum 0.9, wd 0.01).

    ``foreach`` updates all parameters with one call per operation instead of a Python loop
    over them; torch does so by default on CUDA only, but it gives the same numbers on a CPU
    too (bitwise, ``tests/test_optim.py``) and takes about 70 microseconds of host time off a
    small network's step (``mtl bench overhead``).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.01,
        nesterov: bool = False,
        foreach: bool | None = True,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            foreach=foreach,
        )


class ExponentialDecay(LRScheduler):
    """lr = base_lr * rate ** (step / decay_steps), stepped every optimiser step.

    ``staircase=True`` uses ``step // decay_steps`` (the TensorFlow option).
    """

    interval = "step"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rate: float = 0.8,
        decay_steps: int = 10_000,
        staircase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be >= 1, got {decay_steps}")
        self.rate, self.decay_steps, self.staircase = rate, decay_steps, staircase
        super().__init__(optimizer, last_epoch)

    def _factor(self) -> float:
        exponent = self.last_epoch / self.decay_steps
        return self.rate ** (int(exponent) if self.staircase else exponent)

    def get_lr(self) -> list[float]:
        return [base * self._factor() for base in self.base_lrs]


def param_groups(
    network: nn.Module,
    never_decay: Iterable[nn.Parameter] = (),
    decay_norm_and_bias: bool = False,
) -> list[dict]:
    """Split parameters into a weight-decayed group and a no-decay group.

    Weights of convolutions and linear layers (ndim > 1) of ``network`` decay, as the paper's
    L2 term on "all network weights"; its biases and norm scales/shifts decay only if
    ``decay_norm_and_bias``. ``never_decay`` (e.g. learned loss weights) never decays.
    """
    decay, no_decay = [], list(never_decay)
    for p in network.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 or decay_norm_and_bias else no_decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
