"""The loss of regression tasks (``age_years``): Jassim & Hussainmary 2021, their Eq. 6.

L = (1 - lambda) * (y - a)^2 / 2 + lambda * (1 - exp(-(y - a)^2 / (2 sigma^2))), with lambda
switching from 0 (Euclidean: drives early training) to 1 (Gaussian: far-off ages stop
dominating) after ``switch_step`` optimisation steps, as in the paper (20k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtl.losses.task_losses import (
    Normalization,
    euclidean_gaussian_per_sample,
    masked_euclidean_gaussian,
)


@dataclass(frozen=True)
class EuclideanGaussian:
    """Settings of the regression loss (``--model.regression_loss.*``).

    Args:
        sigma: the Gaussian term's sigma, in the task's unit (the paper's default when no
            per-sample standard deviation is annotated: 3 years).
        switch_step: training step at which lambda goes from 0 to 1 (the paper: 20,000).
    """

    sigma: float = 3.0
    switch_step: int = 20_000

    def __call__(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        step: int,
        normalization: Normalization,
    ) -> torch.Tensor:
        return masked_euclidean_gaussian(
            pred, target, mask, self.lam(step), self.sigma, normalization
        )

    def per_sample(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, step: int
    ) -> torch.Tensor:
        """The loss of each row (B; 0 where unlabelled), for the training module's masked
        mean of every task at once."""
        return euclidean_gaussian_per_sample(pred, target, mask, self.lam(step), self.sigma)

    def lam(self, step: int) -> float:
        """lambda at optimisation step ``step``: 0, then 1 from ``switch_step`` on."""
        return 0.0 if step < self.switch_step else 1.0
