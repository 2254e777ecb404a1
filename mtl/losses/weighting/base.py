"""The weighting contract: combine per-task losses into one scalar, and the registry of every
weighting (each registers itself where it is defined: ``class DWA(Weighting, name="dwa")``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

WEIGHTINGS: dict[str, type[Weighting]] = {}
"""Every weighting class, by its short name (sweep tables, ``mtl models``, the tests walk it)."""


class Weighting(nn.Module, ABC):
    """Combines per-task losses; all state lives in parameters/buffers (so it checkpoints).

    The training module calls :meth:`combine` on its stacked losses and then :meth:`record`
    (one code path, eager or compiled); :meth:`forward` is the same for a mapping of losses.
    :meth:`forward` takes ``{task: scalar loss}`` for every task of the run (absent tasks give
    an exact zero loss), optionally ``present`` (T bool, tasks labelled in the batch, in task
    order) so learned terms of absent tasks stay still, and, for weightings that act on
    gradients (``needs_shared_params``), the shared parameters. It returns the total whose
    gradient trains the network (and the weighting's own parameters). A subclass implements
    :meth:`combine` on the stacked losses; the effective weights it returns are kept here, in
    one place, for :meth:`weights` (logged as ``train/<task>/weight``).
    """

    needs_shared_params: ClassVar[bool] = False
    reads_host: ClassVar[bool] = False  # waits for the device in its step (TorchJD's solvers)
    captures_step: ClassVar[bool] = True  # compile="step" takes it into the step's one graph
    name: ClassVar[str] = ""

    def __init_subclass__(cls, name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            taken = WEIGHTINGS.get(name)
            if taken is not None and taken.__qualname__ != cls.__qualname__:  # not a reload
                raise ValueError(f"weighting name {name!r} taken by {taken.__name__}")
            cls.name = name
            WEIGHTINGS[name] = cls

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {tasks}")
        self.tasks = list(tasks)
        self.register_buffer("last_weights", torch.ones(len(self.tasks)), persistent=False)

    def forward(
        self,
        losses: Mapping[str, torch.Tensor],
        present: torch.Tensor | None = None,
        shared: Sequence[nn.Parameter] | None = None,
    ) -> torch.Tensor:
        """``{task: scalar}`` (+ T bool ``present``, the shared parameters) -> the total loss."""
        loss = self._stack(losses)  # T
        mask = torch.ones_like(loss) if present is None else present.to(loss.dtype)  # T
        total, weights = self.combine(loss, mask, shared)
        self.record(weights)
        return total

    def record(self, weights: torch.Tensor) -> None:
        """Keep the T effective weights of a call for :meth:`weights` (a copy: a compiled
        step's outputs may be overwritten by the next step)."""
        self._buffers["last_weights"] = weights.detach().clone()  # no Module.__setattr__ checks

    @abstractmethod
    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """T losses and T float ``present`` mask -> (the total to differentiate, the T
        effective weights this call applied)."""

    def weights(self) -> dict[str, torch.Tensor]:
        """Effective per-task weights of the last call (detached scalars)."""
        return {t: self.last_weights[i].detach() for i, t in enumerate(self.tasks)}

    def epoch_end(self) -> None:
        """Called at the end of every training epoch (for weightings with epoch state)."""

    def _stack(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = set(self.tasks) - set(losses)
        if missing:
            raise KeyError(f"losses missing for task(s) {sorted(missing)}")
        return torch.stack([losses[t] for t in self.tasks])  # T


class CountsSteps(nn.Module):
    """A training-step count kept twice: a buffer, so checkpoints carry it, and a host int,
    so a weighting seeds its draws or orders by it without reading the device. Mix in before
    :class:`Weighting`; call :meth:`init_steps` in ``__init__`` and :meth:`advance` per step."""

    _step: int

    def init_steps(self) -> None:
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._step = 0

    def advance(self) -> None:
        self.step += 1
        self._step += 1

    def _load_from_state_dict(
        self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "step" in state_dict:  # read once, when a checkpoint is loaded
            self._step = int(state_dict[prefix + "step"])


WeightingCallable = Callable[[Sequence[str]], Weighting]
"""What configs give: a Weighting class (plus its init args) to be built with the task names."""
