"""Optimiser and learning-rate schedule defaults of the papers, selectable from config.

Sang & Cuong (Multi-task BKNet): SGD, momentum 0.9, L2 weight decay lambda = 0.01 on the
weights, lr = init_lr * decay_rate ** (step / decay_step) with 0.01, 0.8, 10,000. The paper
writes the penalty as lambda * ||W||^2; like the TensorFlow ``l2_loss`` it was built with, we
apply it as SGD weight decay (gradient lambda * W).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

FUSED_DEVICES = ("cpu", "cuda")
"""Devices where torch's fused SGD kernel runs."""


class MomentumSGD(torch.optim.SGD):
    """``torch.optim.SGD`` with the Multi-task BKNet defaults (lr 0.01, momentum 0.9, wd 0.01),
    updating with the fewest calls torch offers.

    Unless ``foreach`` or ``fused`` is given, the update is torch's fused kernel (one call per
    parameter group) where every parameter is on a CPU or CUDA device, else ``foreach`` (one
    call per operation instead of a Python loop over the parameters). torch's default is the
    loop on a CPU and foreach on CUDA. Both are the loop's arithmetic (``tests/test_optim.py``):
    foreach bitwise, fused bitwise on some kernel paths and within rounding on others. On a
    small network's 23 parameters (Intel Xeon, one thread) an update took 155 microseconds
    as the loop, 131 as foreach and 53 fused (``mtl bench overhead`` measures the steps).

    The update is this process's choice, not a checkpoint's: a resumed run keeps it
    (:meth:`load_state_dict`). The gradient scaler of ``16-mixed`` unscales gradients before
    the fused update as before any other, so Lightning clips gradients under mixed precision
    as it does for the loop (it refuses an optimiser that unscales inside its own step), and
    callbacks see unscaled gradients. The price, under ``16-mixed`` on a GPU only: the scaler
    reads its overflow flag on the host every step, as it does for every optimiser but a
    fused one.
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
        """``foreach`` and ``fused`` None: fused where every parameter allows it, else foreach;
        one of them given: torch's meaning (``foreach=False``: the loop)."""
        if foreach and fused:
            raise ValueError("foreach and fused cannot both be true: pick one update")
        params = _materialised(params)  # an iterator would be spent by the device check
        if foreach is None and fused is None:
            fused = _on_devices(params, FUSED_DEVICES)
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
        self._step_supports_amp_scaling = False  # a GradScaler unscales first (docstring)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The checkpoint's state and hyperparameters, with each group's update as this
        process built it (torch would restore the saved ``foreach``/``fused``)."""
        updates = [(g["foreach"], g["fused"]) for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, (foreach, fused) in zip(self.param_groups, updates, strict=True):
            group["foreach"], group["fused"] = foreach, fused


def _materialised(params: Any) -> Any:
    """``params`` read into a list, as torch reads them, and a group's parameters too where
    they are an iterator (a tensor, torch's error, stays as it is)."""
    if isinstance(params, torch.Tensor):
        return params
    return [
        {**p, "params": list(p["params"])}
        if isinstance(p, dict) and isinstance(p.get("params"), Iterator)
        else p
        for p in params
    ]


def _on_devices(params: Any, devices: tuple[str, ...]) -> bool:
    """Whether every parameter (of every group; named or not) is on one of ``devices``."""
    if isinstance(params, torch.Tensor):
        return params.device.type in devices
    entries = [x for p in params for x in (_group_params(p) if isinstance(p, dict) else [p])]
    tensors = [x[1] if isinstance(x, tuple) else x for x in entries]  # (name, parameter)
    return all(isinstance(t, torch.Tensor) and t.device.type in devices for t in tensors)


def _group_params(group: dict) -> list:
    """A parameter group's parameters as a list (a group may hold one tensor)."""
    params = group.get("params", [])
    return [params] if isinstance(params, torch.Tensor) else list(params)


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
