"""Kang et al.'s trainable task weights: Loss = p * loss_age + q * loss_gender (their Eq. 5).

As published (``form="published"``), the weights are free parameters trained by the same
gradient descent as the network. d(total)/d(w_t) = L_t > 0, so every step lowers each weight
by lr * L_t: the weights fall through zero and the objective runs to minus infinity (or,
if the weights are left out of the optimiser, they do nothing). ``tests/test_weightings.py``
shows both. The report's own future work asks for a constraint; two are offered:

* ``log`` (default): w_t = exp(-s_t) with a + s_t barrier, whose stationary point is the finite
  weight w_t = 1 / L_t (the same family as uncertainty weighting);
* ``softmax``: w = T * softmax(theta) keeps the weights positive and summing to T (it still
  favours the easier task).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mtl.losses.weighting.base import Weighting


class KangWeighting(Weighting, name="kang"):
    """Trainable per-task weights (p, q, ... for every task), with an optional constraint."""

    def __init__(
        self,
        tasks: Sequence[str],
        form: Literal["published", "log", "softmax"] = "log",
        init: float = 1.0,
    ) -> None:
        super().__init__(tasks)
        if init <= 0:
            raise ValueError(f"initial task weight must be positive, got {init}")
        if form not in ("published", "log", "softmax"):
            raise ValueError(f"form must be published, log or softmax, got {form!r}")
        self.form = form
        n = len(self.tasks)
        start = {"published": init, "log": -math.log(init), "softmax": 0.0}
        self.raw = nn.Parameter(torch.full((n,), float(start[form])))  # T

    def effective(self) -> torch.Tensor:
        if self.form == "published":
            return self.raw
        if self.form == "log":
            return torch.exp(-self.raw)
        return len(self.tasks) * torch.softmax(self.raw, dim=0)

    def combine(
        self, loss: torch.Tensor, present: torch.Tensor, shared: Sequence[nn.Parameter] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:  # T losses -> (total, T weights)
        weight = self.effective()
        if self.form == "softmax":  # normalise over the tasks present, so absent ones stay put
            logits = self.raw.masked_fill(present == 0, float("-inf"))
            weight = present.sum() * torch.softmax(logits, dim=0)
        total = weight * loss
        if self.form == "log":
            total = total + self.raw  # barrier: keeps exp(-s) finite (stationary at 1 / L)
        return (present * total).sum(), weight  # as applied (softmax: over the tasks present)
