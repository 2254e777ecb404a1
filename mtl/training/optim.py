"""Optimiser and learning-rate schedule defaults of the papers, selectable from config.

Sang & Cuong (Multi-task BKNet): SGD, momentum 0.9, L2 weight decay lambda = 0.01 on the
weights, lr = init_lr * decay_rate ** (step / decay_step) with 0.01, 0.8, 10,000. The paper
writes the penalty as lambda * ||W||^2; like the TensorFlow ``l2_loss`` it was built with, we
apply it as SGD weight decay (gradient lambda * W).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

FUSED_DEVICES = ("cpu", "cuda")
"""Devices where torch's fused SGD kernel runs."""


class MomentumSGD(torch.optim.SGD):
    """``torch.optim.SGD`` with the Multi-task BKNet defaults (lr 0.01, momentum 0.9, wd 0.01),
    updating with the fewest calls torch offers.

    By default the update is torch's fused kernel (one call per parameter group) where every
    parameter is on a CPU or CUDA device, else ``foreach`` (one call per operation, instead
    of a Python loop over the parameters; torch does either by default on CUDA only). Both
    give the numbers of the per-parameter loop bitwise (``tests/test_optim.py``) and take
    host time off every step: on a small network's 23 parameters, about 100 microseconds
    (fused) and 25 (foreach) off the loop's 155 (``mtl bench overhead``). Lightning refuses
    gradient clipping under ``16-mixed`` with a fused optimizer: set ``fused: false`` there.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.01,
        nesterov: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
    ) -> None:
        """``fused`` None: fused where the parameters allow it and ``foreach`` is not true;
        ``foreach`` None: foreach where not fused."""
        params = [_listed(p) for p in params]  # generators would be spent by the check
        if fused is None:
            fused = foreach is not True and _on_devices(params, FUSED_DEVICES)
        if foreach is None:
            foreach = not fused
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            foreach=foreach,
            fused=fused,
        )


def _listed(param: Any) -> Any:
    """A parameter group with its parameters in a list (a parameter stays as it is)."""
    if not isinstance(param, dict):
        return param
    params = param["params"]
    return {**param, "params": [params] if isinstance(params, torch.Tensor) else list(params)}


def _on_devices(params: list, devices: tuple[str, ...]) -> bool:
    """Whether every parameter (of every group) is on one of ``devices``."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    return all(t.device.type in devices for t in tensors)


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
