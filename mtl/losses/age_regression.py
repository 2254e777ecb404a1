"""Age as regression in years (Jassim & Hussainmary 2021), beside the age-group classifier.

Enabled with ``--model.age_regression.sigma=3`` (or any of its fields). The network gets an
extra branch ``age_years`` with one output; its loss is :func:`masked_age_regression` on the
samples whose age in years is known, with lambda switching from 0 (Euclidean) to 1 (Gaussian)
after ``switch_step`` optimisation steps, as in the paper (20k). The branch joins the weighting
as the task ``age_years`` (for uncertainty weighting pass ``regression: [age_years]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtl.losses.task_losses import Normalization, masked_age_regression

AGE_YEARS = "age_years"


@dataclass
class AgeRegression:
    """Settings of the age-in-years branch.

    Args:
        sigma: the Gaussian term's sigma in years (the paper's default when no per-sample
            standard deviation is annotated: 3).
        switch_step: training step at which lambda goes from 0 to 1 (the paper: 20,000).
    """

    sigma: float = 3.0
    switch_step: int = 20_000

    def loss(
        self, pred: torch.Tensor, years: torch.Tensor, step: int, normalization: Normalization
    ) -> torch.Tensor:
        lam = 0.0 if step < self.switch_step else 1.0
        return masked_age_regression(pred, years, lam, self.sigma, normalization)
